"""The world's small VAE: a diffusers ``AutoencoderKL`` trained on the world's images (the low-level path).

The low-level path of the two-stage pipeline (EEG → VAE latent → img2img, :mod:`eegvision.generation.lowlevel`)
needs a VAE whose latents describe the images' layout and colours. SDXL's VAE (4 × 64 × 64 latents of 512-px
images) plays that part on real data; the world's images are 32 × 32, so the world ships its own tiny
``AutoencoderKL`` (3 levels, widths 16/32/32, 4 channels per GroupNorm group, no attention; 4 × 8 × 8 latents,
about 234 k parameters). With one channel per group (``norm_num_groups`` = width) every channel's image mean is
normalised away before the decoder's last convolution, and the VAE loses the images' colours: 4 channels per
group keep them (measured: held-out PixCorr 0.62 with widths 8/16/32 and 8 groups after 2000 steps, 0.64 with
16/32/32 and 4 groups after 300).

Training: L1 reconstruction + ``kl_weight`` × KL of the posterior (``posterior.kl()``, summed over latent
dimensions), AdamW with a linear warm-up and a cosine decay, every random draw (batches, posterior samples) from
one seeded ``torch.Generator``; after training the ``scaling_factor`` is set to 1 / std of the posterior means of
the training images, as Stable Diffusion's VAEs are scaled, so that scaled latents have unit variance.

Resumable: with ``checkpoint_dir`` the model, optimiser and generator state are written every
``checkpoint_every`` steps (safetensors + JSON, atomic), and ``resume=True`` continues from there; the resumed
run equals the uninterrupted one (same seed, same number of threads).

Saved into a world folder as ``vae.safetensors`` + ``vae.json``, listed with their sha256 in ``world.json``
(``eegvision world-train-vae``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from eegvision.sim.world.data import IMAGE_SIZE

#: Steps of the shipped VAE (the default of :func:`train_world_vae`).
SHIPPED_VAE_STEPS = 1500
VAE_FILES = ("vae.safetensors", "vae.json")


def vae_config(widths: tuple[int, ...] = (16, 32, 32), latent_channels: int = 4, norm_groups: int = 4) -> dict:
    """Config of the world VAE's ``AutoencoderKL`` (JSON-able); ``len(widths) - 1`` halvings of the side."""
    return {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * len(widths),
            "up_block_types": ["UpDecoderBlock2D"] * len(widths), "block_out_channels": list(widths),
            "latent_channels": latent_channels, "norm_num_groups": norm_groups, "layers_per_block": 1,
            "sample_size": IMAGE_SIZE, "mid_block_add_attention": False, "scaling_factor": 1.0}


def build_vae(config: dict):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**config)


def _state_tensors(vae, opt, g: torch.Generator) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v.detach().cpu().contiguous() for k, v in vae.state_dict().items()}
    for i, p in enumerate(vae.parameters()):
        st = opt.state.get(p)
        if st:
            out[f"opt.{i}.exp_avg"] = st["exp_avg"].contiguous()
            out[f"opt.{i}.exp_avg_sq"] = st["exp_avg_sq"].contiguous()
            out[f"opt.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    out["rng"] = g.get_state()
    return out


def _restore(state: dict[str, torch.Tensor], vae, opt, g: torch.Generator) -> None:
    vae.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")}, strict=True)
    for i, p in enumerate(vae.parameters()):
        if f"opt.{i}.exp_avg" in state:
            opt.state[p] = {"exp_avg": state[f"opt.{i}.exp_avg"].clone(),
                            "exp_avg_sq": state[f"opt.{i}.exp_avg_sq"].clone(),
                            "step": state[f"opt.{i}.step"][0].clone()}
    g.set_state(state["rng"])


def train_world_vae(images: torch.Tensor, steps: int = SHIPPED_VAE_STEPS, batch_size: int = 32, lr: float = 1e-3,
                    kl_weight: float = 1e-6, seed: int = 0, config: dict | None = None, checkpoint_every: int = 0,
                    checkpoint_dir: str | Path | None = None, resume: bool = False):
    """Train the world VAE on ``images`` (``(n, 3, 32, 32)`` float in ``[-1, 1]``) on the CPU.

    Returns the ``AutoencoderKL`` (eval mode) with its ``scaling_factor`` set (see the module docstring).
    """
    from eegvision.progress import track
    from eegvision.tensorfiles import load_safetensors
    from eegvision.utils import atomic_path, write_text_atomic

    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (n, 3, H, W) in [-1, 1]; got shape {tuple(images.shape)}.")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1; got {steps} and {batch_size}.")
    torch.manual_seed(seed)
    config = dict(config or vae_config())
    vae = build_vae(config).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    warm = min(100, max(1, steps // 10))
    start = 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    record = {"steps": steps, "batch_size": batch_size, "lr": lr, "kl_weight": kl_weight, "seed": seed,
              "config": config, "n_images": len(images)}
    if resume and ckpt is not None and (ckpt / "vae_state.json").is_file():
        saved = json.loads((ckpt / "vae_state.json").read_text())
        if saved["record"] != json.loads(json.dumps(record)):
            raise ValueError(f"The checkpoint in {ckpt} was written with other settings ({saved['record']}); resume "
                             f"with the same settings or delete {ckpt} to start again.")
        _restore(load_safetensors(ckpt / "vae_state.safetensors", "World VAE checkpoint"), vae, opt, g)
        start = int(saved["step"])

    for step in track(range(start, steps), description="training world VAE", total=steps - start):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x = images[idx].float()
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        loss = (rec - x).abs().mean() + kl_weight * post.kl().mean()
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * step / steps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if ckpt is not None and checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            from safetensors.torch import save_file

            ckpt.mkdir(parents=True, exist_ok=True)
            with atomic_path(ckpt / "vae_state.safetensors", suffix=".safetensors") as tmp:
                save_file(_state_tensors(vae, opt, g), str(tmp))
            write_text_atomic(ckpt / "vae_state.json", json.dumps(
                {"step": step + 1, "loss": loss.item(), "record": record}) + "\n")
    vae.eval()
    with torch.no_grad():
        sub = images[torch.randperm(len(images), generator=g)[:2048]].float()
        mu = torch.cat([vae.encode(sub[s:s + 256]).latent_dist.mean for s in range(0, len(sub), 256)])
    vae.register_to_config(scaling_factor=float(1.0 / mu.std()))
    return vae


def constructor_config(vae) -> dict:
    """The ``AutoencoderKL`` constructor arguments of ``vae`` (JSON-able, no diffusers bookkeeping keys)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(vae.config).items() if not k.startswith("_")}


def save_world_vae(vae, directory: str | Path, record: dict | None = None) -> list[Path]:
    """Write ``vae.safetensors`` + ``vae.json`` (constructor config and the training record) into ``directory``."""
    from safetensors.torch import save_file

    from eegvision.utils import atomic_path, write_text_atomic

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "vae.safetensors", suffix=".safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in vae.state_dict().items()}, str(tmp))
    write_text_atomic(directory / "vae.json", json.dumps({"vae": constructor_config(vae), "image_size": IMAGE_SIZE,
                                                          "training": record or {}}, indent=1) + "\n")
    return [directory / n for n in VAE_FILES]


def load_world_vae(path: str | Path | None = None, device: str | None = None):
    """The world VAE of a world folder (default: the shipped one), verified against its ``world.json``."""
    from eegvision.sim.world.assets import SHIPPED_DIR, verify_world_dir
    from eegvision.tensorfiles import load_safetensors
    from eegvision.utils import default_device

    path = Path(path) if path is not None else SHIPPED_DIR
    manifest = verify_world_dir(path)
    if "vae.safetensors" not in manifest.get("files", {}):
        raise FileNotFoundError(f"{path / 'world.json'} lists no vae.safetensors; train one with "
                                f"`eegvision world-train-vae {path}`.")
    meta = json.loads((path / "vae.json").read_text())
    vae = build_vae(meta["vae"])
    vae.load_state_dict(load_safetensors(path / "vae.safetensors", "World VAE weights"), strict=True)
    return vae.to(default_device(device)).eval()


@torch.no_grad()
def vae_quality(vae, images: torch.Tensor, batch_size: int = 256) -> dict[str, float]:
    """PixCorr and SSIM (world resolution) of the VAE's reconstructions (posterior mean) of ``images`` in [-1, 1]."""
    from eegvision.metrics.images import pixcorr, ssim

    rec = torch.cat([vae.decode(vae.encode(images[s:s + batch_size].float()).latent_dist.mean).sample
                     for s in range(0, len(images), batch_size)]).clamp(-1, 1)
    gt, out = (images.float() + 1) / 2, (rec + 1) / 2
    return {"pixcorr": float(pixcorr(gt, out, size=IMAGE_SIZE).mean()),
            "ssim": float(ssim(gt, out, size=IMAGE_SIZE).mean()), "n_images": len(images)}


def train_world_vae_into(out: str | Path, steps: int = SHIPPED_VAE_STEPS, seed: int | None = None,
                         resume: bool = False, overwrite: bool = False) -> dict:
    """Train the world VAE on the world's training images and add it to the world folder ``out``.

    ``out`` must hold a ``world.json`` (the shipped folder or one written by ``eegvision world-train``); the VAE
    files are written beside the other models and listed with their sha256 in ``world.json`` (key ``files``), its
    settings and measured quality under the key ``vae``. Checkpoints go to ``out/.vae-partial`` every 250 steps;
    ``resume`` continues from them.

    Returns the ``vae`` entry written to ``world.json``.
    """
    from eegvision.sim.world.assets import verify_world_dir
    from eegvision.sim.world.data import to_model_input
    from eegvision.sim.world.train import world_data
    from eegvision.utils import sha256_file, write_text_atomic

    out = Path(out)
    manifest = verify_world_dir(out)
    if "vae.safetensors" in manifest.get("files", {}) and not overwrite:
        raise FileExistsError(f"{out / 'world.json'} already lists a VAE; pass --overwrite to train a new one.")
    seed = int(manifest.get("seed", 0)) if seed is None else int(seed)
    t0 = time.perf_counter()
    data = world_data(seed)
    images = to_model_input(data.train.images)
    vae = train_world_vae(images, steps=steps, seed=seed, checkpoint_every=250,
                          checkpoint_dir=out / ".vae-partial", resume=resume)
    wall = time.perf_counter() - t0
    quality = vae_quality(vae, to_model_input(data.test.images))
    files = save_world_vae(vae, out, {"steps": steps, "seed": seed})
    for f in files:
        manifest["files"][f.name] = {"sha256": sha256_file(f), "size": f.stat().st_size}
    side = IMAGE_SIZE // 2 ** (len(vae.config.block_out_channels) - 1)
    entry = {"steps": steps, "seed": seed, "n_train_images": len(images),
             "latent_shape": [int(vae.config.latent_channels), side, side],
             "scaling_factor": float(vae.config.scaling_factor), "quality": {"eval_set": "held-out demo test images",
                                                                             **quality},
             "training": {"train_s": wall, "threads": torch.get_num_threads()},
             "command": f"eegvision world-train-vae OUT --steps {steps} --seed {seed}"}
    manifest["vae"] = entry
    write_text_atomic(out / "world.json", json.dumps(manifest, indent=1) + "\n")
    import shutil

    shutil.rmtree(out / ".vae-partial", ignore_errors=True)
    return entry


def latents_to_images(vae, latents: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Decode scaled latents ``(n, C, h, w)`` → images ``(n, 3, H, W)`` in ``[-1, 1]`` (CPU float32)."""
    with torch.no_grad():
        return torch.cat([vae.decode(latents[s:s + batch_size].float() / vae.config.scaling_factor).sample.clamp(-1, 1)
                          for s in range(0, len(latents), batch_size)]).cpu()


__all__ = ["SHIPPED_VAE_STEPS", "build_vae", "latents_to_images", "load_world_vae", "save_world_vae",
           "train_world_vae", "train_world_vae_into", "vae_config", "vae_quality"]
