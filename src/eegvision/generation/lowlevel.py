"""Low-level path: EEG → VAE latent regressor, whose output initialises img2img generation.

The regressor follows the reference's ``encoder_low_level`` (``atm.md`` §5.4): a per-channel linear map of the
time course, the (channel × feature) vector reshaped to a 1 × 1 map, a stack of stride-2 transposed convolutions
(BN, ReLU) up to the latent size, then two 1 × 1 convolutions to the latent channels. It is fitted with an L1
loss to **scaled** VAE latents (``vae.encode(2x − 1).latent_dist.mean × scaling_factor``: images in [−1, 1] as
the VAE expects, not CLIP-normalised as in the reference notebook).

At generation time the predicted latents go to the pipeline's img2img variant as ``image=`` (diffusers treats a
4-channel input as latents) with a ``strength``: the scheduler adds noise **at the start timestep**
(``scheduler.add_noise(latent, noise, t_start)``), the standard SDEdit schedule, instead of the reference's
``latent + N(0, I)`` at σ = 1 whatever the strength.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn


class LatentRegressor(nn.Module):
    """EEG ``(B, n_chans, n_times)`` → latents ``(B, latent_channels, latent_size, latent_size)``.

    Parameters
    ----------
    n_chans, n_times : int
        EEG input (braindecode names).
    latent_channels, latent_size : int
        VAE latent shape (SDXL at 512 px: 4 × 64 × 64). ``latent_size`` must be a power of two.
    n_features : int
        Per-channel linear features of the time course (reference: 128).
    widths : sequence of int, optional
        Channels after each ×2 upsampling, ``log2(latent_size)`` of them; reference for 64:
        ``(1024, 512, 256, 128, 64, 32)``.
    """

    def __init__(self, n_chans: int, n_times: int, latent_channels: int = 4, latent_size: int = 64,
                 n_features: int = 128, widths: Sequence[int] | None = None) -> None:
        super().__init__()
        n_up = int(round(math.log2(latent_size)))
        if 2 ** n_up != latent_size:
            raise ValueError(f"latent_size must be a power of two, got {latent_size}.")
        widths = list(widths) if widths is not None else [max(32, 1024 >> i) for i in range(n_up)]
        if len(widths) != n_up:
            raise ValueError(f"widths needs {n_up} entries for latent_size {latent_size}, got {len(widths)}.")
        self.config = {"n_chans": n_chans, "n_times": n_times, "latent_channels": latent_channels,
                       "latent_size": latent_size, "n_features": n_features, "widths": widths}
        self.time_proj = nn.Linear(n_times, n_features)
        layers: list[nn.Module] = []
        c_in = n_chans * n_features
        for c_out in widths:
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        mid = max(latent_channels, c_in // 2)
        layers += [nn.ConvTranspose2d(c_in, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(),
                   nn.ConvTranspose2d(mid, latent_channels, 1)]
        self.final_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        z = self.time_proj(x)                                 # (B, n_chans, n_features)
        return self.final_layer(z.reshape(b, -1, 1, 1))       # (B, latent_channels, size, size)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors``."""
        from safetensors.torch import save_file

        from eegvision.utils import atomic_path, write_text_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "model.safetensors", suffix=".safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp))
        write_text_atomic(directory / "config.json", json.dumps({"class": "LatentRegressor", **self.config},
                                                                indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> LatentRegressor:
        from eegvision.tensorfiles import load_safetensors

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"No config.json in {directory}; expected a LatentRegressor folder.")
        cfg = json.loads((directory / "config.json").read_text())
        cfg.pop("class", None)
        model = cls(**cfg)
        model.load_state_dict(load_safetensors(directory / "model.safetensors", "Low-level regressor weights"))
        return model.eval()


@torch.no_grad()
def encode_images_to_latents(vae, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Scaled VAE latents (posterior mean × ``scaling_factor``) of images ``(N, 3, H, W)`` in [0, 1]."""
    device, dtype = vae.device, vae.dtype
    out = []
    for s in range(0, len(images), batch_size):
        x = images[s:s + batch_size].to(device=device, dtype=dtype) * 2 - 1
        out.append(vae.encode(x).latent_dist.mean.float().cpu() * vae.config.scaling_factor)
    return torch.cat(out)


def fit_latent_regressor(eeg: torch.Tensor | np.ndarray, latents: torch.Tensor, epochs: int = 200,
                         batch_size: int = 30, learning_rate: float = 1e-3, seed: int = 0,
                         device: str | None = None, **model_options) -> tuple[LatentRegressor, list[float]]:
    """Fit a :class:`LatentRegressor` with L1 loss, AdamW and cosine annealing (reference settings).

    Returns the model (eval mode) and the per-epoch training loss.
    """
    from eegvision.progress import track
    from eegvision.utils import default_device, seed_everything

    eeg = torch.as_tensor(np.asarray(eeg) if not torch.is_tensor(eeg) else eeg, dtype=torch.float32)
    latents = torch.as_tensor(latents, dtype=torch.float32)
    if eeg.ndim != 3 or latents.ndim != 4 or len(eeg) != len(latents):
        raise ValueError(f"eeg must be (N, n_chans, n_times) and latents (N, C, h, w) with the same N; got "
                         f"{tuple(eeg.shape)} and {tuple(latents.shape)}.")
    seed_everything(seed)
    dev = torch.device(default_device(device))
    model = LatentRegressor(eeg.shape[1], eeg.shape[2], latents.shape[1], latents.shape[-1], **model_options).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=1e-6)
    x, y = eeg.to(dev), latents.to(dev)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in track(range(epochs), "low-level", total=epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g).to(dev)
        total = torch.zeros((), device=dev)
        for s in range(0, len(x), batch_size):
            idx = perm[s:s + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            loss = (model(x[idx]) - y[idx]).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        sched.step()
        losses.append(float(total) / len(x))
    return model.eval(), losses


@torch.no_grad()
def predict_latents(model: LatentRegressor, eeg: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Latents ``(N, C, h, w)`` for EEG ``(N, n_chans, n_times)`` (model in eval mode, on its device)."""
    model.eval()
    device = next(iter(model.state_dict().values())).device  # parameters (neural) or buffers (ridge)
    eeg = torch.as_tensor(eeg, dtype=torch.float32)
    return torch.cat([model(eeg[s:s + batch_size].to(device)).cpu() for s in range(0, len(eeg), batch_size)])


# ----------------------------------------------------------------------------- closed-form (ridge) regressor
def bin_time(x: torch.Tensor, time_bin: int) -> torch.Tensor:
    """Mean of consecutive blocks of ``time_bin`` samples along the last axis (a ragged tail is dropped)."""
    if time_bin <= 1:
        return x
    t = (x.shape[-1] // time_bin) * time_bin
    return x[..., :t].reshape(*x.shape[:-1], t // time_bin, time_bin).mean(-1)


class RidgeLatentRegressor(nn.Module):
    """Linear EEG → latent map solved in closed form: ``latent = bin_time(eeg).flatten() @ weight + bias``.

    The time course of each channel is averaged in blocks of ``time_bin`` samples (fewer features, less noise),
    the ``(n_chans × n_times // time_bin)`` vector is mapped by ridge regression to the flattened latents
    (``ridge_cv``: the penalty chosen by grouped cross-validation over concepts, see
    :func:`eegvision.training.lowlevel_fit.fit_lowlevel`).
    """

    def __init__(self, n_chans: int, n_times: int, latent_shape: Sequence[int], time_bin: int = 1,
                 alpha: float | None = None) -> None:
        super().__init__()
        latent_shape = [int(v) for v in latent_shape]
        if len(latent_shape) != 3 or min(latent_shape) < 1 or time_bin < 1 or n_times // time_bin < 1:
            raise ValueError(f"latent_shape must be (channels, height, width) and 1 <= time_bin <= n_times; got "
                             f"{latent_shape} and time_bin={time_bin} for n_times={n_times}.")
        self.config = {"n_chans": int(n_chans), "n_times": int(n_times), "latent_shape": latent_shape,
                       "time_bin": int(time_bin), "alpha": alpha}
        n_in = int(n_chans) * (int(n_times) // int(time_bin))
        self.register_buffer("weight", torch.zeros(n_in, int(np.prod(latent_shape))))
        self.register_buffer("bias", torch.zeros(int(np.prod(latent_shape))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """EEG ``(B, n_chans, n_times)`` → the regression's input ``(B, n_chans × n_times // time_bin)``."""
        c = self.config
        if x.ndim != 3 or tuple(x.shape[1:]) != (c["n_chans"], c["n_times"]):
            raise ValueError(f"Expected EEG of shape (n, {c['n_chans']}, {c['n_times']}); got {tuple(x.shape)}.")
        return bin_time(x.float(), c["time_bin"]).reshape(len(x), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.features(x) @ self.weight + self.bias).reshape(len(x), *self.config["latent_shape"])

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors``."""
        from safetensors.torch import save_file

        from eegvision.utils import atomic_path, write_text_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "model.safetensors", suffix=".safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp))
        write_text_atomic(directory / "config.json", json.dumps({"class": "RidgeLatentRegressor", **self.config},
                                                                indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> RidgeLatentRegressor:
        from eegvision.tensorfiles import load_safetensors

        cfg = json.loads((Path(directory) / "config.json").read_text())
        cfg.pop("class", None)
        model = cls(**cfg)
        model.load_state_dict(load_safetensors(Path(directory) / "model.safetensors", "Low-level regressor weights"))
        return model.eval()


def load_latent_regressor(directory: str | Path) -> LatentRegressor | RidgeLatentRegressor:
    """The regressor saved in ``directory`` (``config.json`` names its class: neural or ridge)."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"No config.json in {directory}; expected a low-level regressor folder written by "
                                "`eegvision lowlevel fit`.")
    kind = json.loads((directory / "config.json").read_text()).get("class", "LatentRegressor")
    classes = {"LatentRegressor": LatentRegressor, "RidgeLatentRegressor": RidgeLatentRegressor}
    if kind not in classes:
        raise ValueError(f"{directory / 'config.json'} names class {kind!r}; expected one of {sorted(classes)}.")
    return classes[kind].from_pretrained(directory)


def load_vae(path: str | Path, device: str | None = None):
    """A diffusers ``AutoencoderKL`` from a local folder: the VAE folder itself (``config.json`` +
    ``diffusion_pytorch_model.safetensors``) or a pipeline folder holding it in ``vae/``."""
    from diffusers import AutoencoderKL

    from eegvision.utils import default_device

    path = Path(path).expanduser()
    folder = path if (path / "config.json").is_file() else path / "vae"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"No VAE in {path}: expected a diffusers AutoencoderKL folder (config.json + "
                                "diffusion_pytorch_model.safetensors) or a pipeline folder with vae/ (e.g. the SDXL "
                                "folder given to `eegvision reconstruct --generator`).")
    return AutoencoderKL.from_pretrained(folder, local_files_only=True).to(default_device(device)).eval()
