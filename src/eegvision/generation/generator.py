"""Stage II: CLIP image embeddings → images, with diffusers pipelines used as they are.

Two kinds of pipeline take a precomputed image embedding:

* ``"ip_adapter"`` — any pipeline whose ``__call__`` accepts ``ip_adapter_image_embeds`` (SDXL-Turbo,
  SDXL, SD 1.5, …) with an IP-Adapter loaded by ``pipe.load_ip_adapter`` from a local folder. diffusers 0.42
  expects a list (one entry per adapter) of tensors ``(B, 1, d)``; under classifier-free guidance
  (``guidance_scale > 1``) each entry is ``[negative; positive]`` stacked on dim 0, ``(2B, 1, d)``.
  The negative is the zero embedding (as the reference), unless given.
* ``"unclip"`` — pipelines that take ``image_embeds=`` (``StableUnCLIPImg2ImgPipeline``), shape ``(B, d)``;
  they build their own negative.

No pipeline code is copied: :meth:`EmbeddingGenerator.generate` only prepares arguments and calls the pipeline,
one embedding per call (diffusers tiles ``ip_adapter_image_embeds`` over the batch, so different embeddings must
not share a call) with the samples of that embedding as the batch. Every image gets its own ``torch.Generator``
(CPU, seeded), so an image depends on its seed and embedding only, not on the batch it was drawn in.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import torch

IP_ADAPTER_SUBFOLDER = "sdxl_models"
IP_ADAPTER_WEIGHT = "ip-adapter_sdxl_vit-h.safetensors"


class EmbeddingGenerator:
    """A loaded diffusers pipeline plus the knowledge of how to feed it an image embedding.

    Use :func:`load_generator` to build one from local paths.
    """

    def __init__(self, pipe, kind: str, path: str | None = None) -> None:
        self.pipe = pipe
        self.kind = check_choice("generator kind", kind, ("ip_adapter", "unclip"))
        self.path = path
        self._img2img = None
        pipe.set_progress_bar_config(disable=True)

    @property
    def device(self) -> torch.device:
        return self.pipe.device

    @property
    def embed_dim(self) -> int:
        """Size of the image embedding the pipeline expects (1024 for the ViT-H IP-Adapter)."""
        if self.kind == "ip_adapter":
            layer = self.pipe.unet.encoder_hid_proj.image_projection_layers[0]
            for mod in layer.modules():
                if isinstance(mod, torch.nn.Linear):
                    return int(mod.in_features)
        return int(self.pipe.image_normalizer.mean.shape[-1])

    @property
    def vae_scale_factor(self) -> int:
        return int(self.pipe.vae_scale_factor)

    def describe(self) -> dict:
        """What to record in a manifest about this generator."""
        return {"generator": self.path, "generator_class": type(self.pipe).__name__, "generator_kind": self.kind,
                "dtype": str(self.pipe.unet.dtype).removeprefix("torch.")}

    def _check(self, embed: torch.Tensor) -> torch.Tensor:
        embed = torch.as_tensor(embed)
        if embed.ndim == 2 and embed.shape[0] == 1:
            embed = embed[0]
        if embed.ndim != 1 or embed.shape[0] != self.embed_dim:
            raise ValueError(f"The image embedding must have shape ({self.embed_dim},) for this generator; got "
                             f"{tuple(embed.shape)}. Check that the prior/encoder targets the generator's CLIP "
                             "model (ViT-H-14, 1024-d, for the SDXL IP-Adapter).")
        return embed

    @torch.no_grad()
    def generate(self, embed: torch.Tensor, seeds: Sequence[int], prompt: str = "",
                 num_inference_steps: int = 4, guidance_scale: float = 0.0, height: int | None = None,
                 width: int | None = None, negative_embed: torch.Tensor | None = None,
                 init_latents: torch.Tensor | None = None, strength: float = 0.5, noise_level: int = 0,
                 output_type: str = "pil"):
        """Draw ``len(seeds)`` images from one image embedding (one pipeline call, batch = ``len(seeds)``).

        One embedding per call is deliberate: diffusers' SDXL pipelines tile ``ip_adapter_image_embeds`` over the
        whole batch (``prepare_ip_adapter_image_embeds`` repeats every entry ``batch_size × num_images_per_prompt``
        times), so a batch of *different* embeddings ``(B, 1, d)`` would make every image attend to all B
        embeddings. Samples of one concept share their embedding, so they batch exactly (``num_images_per_prompt``).

        Parameters
        ----------
        embed : tensor (d,) or (1, d)
            Image embedding (raw CLIP scale, as the IP-Adapter's image encoder outputs it).
        seeds : sequence of int
            One seed per image (a CPU ``torch.Generator`` each), so an image does not depend on the batch.
        prompt : str
            Text prompt (a caption); default empty, as the reference.
        num_inference_steps, guidance_scale, height, width :
            Passed to the pipeline (SDXL-Turbo: 4 steps, guidance 0, 512 px).
        negative_embed : tensor (d,), optional
            Negative image embedding under guidance (``ip_adapter`` kind); zeros by default (as the reference).
        init_latents : tensor (C, h, w) or (1, C, h, w), optional
            Low-level init: scaled VAE latents (``vae.encode(x).latent_dist.mean * scaling_factor``); the
            pipeline's img2img variant adds noise at the start timestep given by ``strength``.
        strength : float
            img2img strength (fraction of the schedule that is run), used with ``init_latents``.
        noise_level : int
            ``unclip`` kind: noise added to the image embedding.
        output_type : {"pil", "np", "pt"}

        Returns
        -------
        The pipeline's ``images`` (a list of PIL images by default), in ``seeds`` order.
        """
        embed = self._check(embed)
        n = len(seeds)
        if n < 1:
            raise ValueError("Give at least one seed.")
        device, dtype = self.pipe.device, self.pipe.unet.dtype
        common = dict(prompt=prompt, num_images_per_prompt=n, num_inference_steps=num_inference_steps,
                      guidance_scale=guidance_scale, output_type=output_type,
                      generator=[torch.Generator("cpu").manual_seed(int(s)) for s in seeds])
        embed = embed.to(device=device, dtype=dtype)
        if self.kind == "unclip":
            if init_latents is not None:
                raise ValueError("The low-level img2img init needs an IP-Adapter (SDXL-style) generator; unCLIP "
                                 "pipelines use their image input as a condition, not as an init.")
            return self.pipe(image_embeds=embed[None], noise_level=noise_level, height=height, width=width,
                             **common).images
        ip = embed[None, None, :]                                         # (1, 1, d)
        if guidance_scale > 1.0:                                          # (2, 1, d): negative first
            neg = (torch.zeros_like(ip) if negative_embed is None
                   else torch.as_tensor(negative_embed).to(device=device, dtype=dtype).reshape(1, 1, -1))
            ip = torch.cat([neg, ip])
        if init_latents is None:
            return self.pipe(ip_adapter_image_embeds=[ip], height=height, width=width, **common).images
        init = torch.as_tensor(init_latents)
        init = init[None] if init.ndim == 3 else init
        if init.ndim != 4 or init.shape[0] != 1:
            raise ValueError(f"init_latents must be (C, h, w) or (1, C, h, w); got {tuple(init.shape)}.")
        if int(num_inference_steps * strength) < 1:
            raise ValueError(f"strength={strength} with {num_inference_steps} steps runs no denoising step; "
                             "raise strength or steps so that steps × strength ≥ 1.")
        return self.img2img(image=init.to(device=device, dtype=dtype), strength=strength,
                            ip_adapter_image_embeds=[ip], **common).images

    @property
    def img2img(self):
        """The img2img variant of the pipeline sharing the same modules (``AutoPipelineForImage2Image.from_pipe``)."""
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            self._img2img = AutoPipelineForImage2Image.from_pipe(self.pipe)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img


def _pipeline_kind(pipe) -> str:
    params = inspect.signature(pipe.__call__).parameters
    if "ip_adapter_image_embeds" in params:
        return "ip_adapter"
    if "image_embeds" in params:
        return "unclip"
    raise ValueError(f"{type(pipe).__name__} takes neither `ip_adapter_image_embeds` nor `image_embeds`; it cannot "
                     "be driven by an image embedding. Use an SDXL/SD pipeline with an IP-Adapter or StableUnCLIP.")


def load_generator(path: str | Path, ip_adapter: str | Path | None = None,
                   ip_adapter_subfolder: str = IP_ADAPTER_SUBFOLDER, ip_adapter_weight: str = IP_ADAPTER_WEIGHT,
                   ip_adapter_scale: float = 1.0, device: str | None = None,
                   dtype: torch.dtype | str | None = None) -> EmbeddingGenerator:
    """Load a local diffusers pipeline folder (``model_index.json``) and, for IP-Adapter pipelines, the adapter.

    Parameters
    ----------
    path : path
        A pipeline saved in diffusers format, e.g. a local copy of ``stabilityai/sdxl-turbo`` or
        ``stabilityai/stable-diffusion-2-1-unclip``.
    ip_adapter : path, optional
        Folder holding ``{ip_adapter_subfolder}/{ip_adapter_weight}`` (a local copy of ``h94/IP-Adapter``).
        Default: ``path/ip_adapter`` when it exists.
    ip_adapter_scale : float
        ``pipe.set_ip_adapter_scale`` (the reference uses 1).
    device : str, optional
        Default CUDA when available.
    dtype : torch dtype or "float16"/"float32", optional
        Default float16 on CUDA, float32 on CPU.
    """
    from diffusers import DiffusionPipeline

    from eegvision.utils import default_device

    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"{path} is not a diffusers pipeline folder (no model_index.json). Give a local "
                                "copy of e.g. stabilityai/sdxl-turbo (see docs/reconstruction.md).")
    device = default_device(device)
    if dtype is None:
        dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    pipe = DiffusionPipeline.from_pretrained(str(path), torch_dtype=dtype, local_files_only=True)
    kind = _pipeline_kind(pipe)
    if kind == "ip_adapter":
        folder = Path(ip_adapter) if ip_adapter is not None else path / "ip_adapter"
        weight = folder / ip_adapter_subfolder / ip_adapter_weight
        if not weight.is_file():
            raise FileNotFoundError(
                f"IP-Adapter weights {weight} not found. {type(pipe).__name__} needs an IP-Adapter to take image "
                "embeddings: pass --ip-adapter DIR with DIR/sdxl_models/ip-adapter_sdxl_vit-h.safetensors "
                "(a local copy of h94/IP-Adapter).")
        pipe.load_ip_adapter(str(folder), subfolder=ip_adapter_subfolder, weight_name=ip_adapter_weight,
                             image_encoder_folder=None, local_files_only=True)
        pipe.set_ip_adapter_scale(ip_adapter_scale)
    pipe.to(device)
    gen = EmbeddingGenerator(pipe, kind, path=str(path))
    gen.ip_adapter = str(weight) if kind == "ip_adapter" else None
    return gen
from eegvision.checks import check_choice
