"""VAE latents as a feature target: a local diffusers ``AutoencoderKL`` -> ``latent_dist.mean``, flattened.

BrainHiVE fuses CLIP targets with SDXL-VAE latents; the low-level reconstruction path of eegvision
(``generation/``) also regresses VAE latents. Here the latent mean of each image (no sampling, so the target is
deterministic) is optionally average-pooled to ``pool`` x ``pool`` cells per channel, multiplied by the VAE's
``scaling_factor`` when ``scale=True`` (the units a diffusion model sees) and flattened into one row.

Images: RGB, shortest side resized to ``size`` (bicubic), centre-cropped to ``size`` x ``size``, mapped to
[-1, 1] as diffusers' ``VaeImageProcessor`` does. Weights: a ``save_pretrained`` folder (``config.json`` +
weights) of an ``AutoencoderKL``, or a diffusers pipeline folder with a ``vae/`` sub-folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from eegvision.checks import check_int
from eegvision.features.backbones import Backbone
from eegvision.utils import default_device

__all__ = ["load_vae_backbone"]


def load_vae_backbone(weights: str | os.PathLike, size: int = 256, pool: int = 0, scale: bool = False,
                      device: str | None = None, model: str = "") -> Backbone:
    """A :class:`~eegvision.features.backbones.Backbone` whose only layer, ``final``, is the flattened latent.

    Parameters
    ----------
    weights : path
        ``AutoencoderKL`` folder (or a pipeline folder holding ``vae/``).
    size : int
        Square input size in pixels (a multiple of the VAE's downsampling factor, 8 for SD VAEs).
    pool : int
        Average-pool the latent map to ``pool`` x ``pool`` per channel before flattening; 0 keeps it whole.
    scale : bool
        Multiply by ``vae.config.scaling_factor``.
    """
    from diffusers import AutoencoderKL
    from torchvision import transforms

    check_int("vae size", size, minimum=8)
    check_int("vae pool", pool, minimum=0)
    path = Path(weights)
    if path.is_dir() and (path / "vae" / "config.json").is_file():
        path = path / "vae"
    if not (path.is_dir() and (path / "config.json").is_file()):
        raise FileNotFoundError(f"{weights} is not a diffusers AutoencoderKL folder (config.json + weights, or a "
                                "pipeline folder with vae/); save one with vae.save_pretrained(folder).")
    device = default_device(device)
    vae = AutoencoderKL.from_pretrained(str(path), local_files_only=True).to(device).eval()
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    if size % factor:
        raise ValueError(f"vae size must be a multiple of {factor} (the VAE's downsampling factor); got {size}")
    tf = transforms.Compose([
        transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    scaling = float(vae.config.scaling_factor) if scale else 1.0

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        z = vae.encode(pixels).latent_dist.mean * scaling
        if pool:
            z = F.adaptive_avg_pool2d(z, pool)
        return z.flatten(1)

    desc = (f"Resize({size}, bicubic); CenterCrop({size}); to [-1, 1]; latent_dist.mean"
            f"{f' * scaling_factor {scaling}' if scale else ''}{f'; adaptive_avg_pool {pool}x{pool}' if pool else ''}"
            "; flattened (channel, row, column)")
    return Backbone(vae, "vae", "vae", model or path.name, str(weights), tf, desc, 1, device,
                    extra={"encode_final": encode, "final_embedding": "latent_dist.mean, flattened",
                           "size": size, "pool": pool, "scale": scale})
