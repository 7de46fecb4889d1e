"""The world's image generator: a small diffusers UNet conditioned on world-CLIP image embeddings.

unCLIP-style decoder for the built-in world: a ``diffusers.UNet2DConditionModel`` at 32×32 whose only
condition is a world-CLIP image embedding, added to the timestep embedding through the UNet's own
``class_embed_type="projection"`` layer, which then scales and shifts every ResNet block's features
(no cross-attention, no text). Trained with the standard
denoising objective of a ``DDPMScheduler`` (v-prediction, cosine noise schedule) and 10 % condition
dropout so that sampling can use classifier-free guidance; sampled with a ``DDIMScheduler`` in a few
steps (:meth:`WorldGenerator.generate`), batched, seeded.

Saved as ``generator.safetensors`` + ``generator.json`` (UNet and scheduler configs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eegvision.sim.world.data import IMAGE_SIZE


def unet_config(cond_dim: int, channels: tuple[int, ...] = (32, 64, 64), layers_per_block: int = 1,
                time_scale_shift: str = "scale_shift", cross_attention: bool = False,
                cross_attention_dim: int = 64) -> dict:
    """Config of the generator's ``UNet2DConditionModel`` (JSON-able).

    ``time_scale_shift="scale_shift"`` makes the (timestep + image-embedding) vector scale *and* shift
    every ResNet block's features (FiLM) instead of only adding a bias, which the conditioning needs to
    control the object's outline, not just its colour.

    ``cross_attention=True`` also turns the embedding into 32 tokens (diffusers' ``image_proj``: one linear
    map and a LayerNorm, as in Kandinsky 2.2) that every block below the full resolution and the middle block
    attend to, so each spatial position can ask the embedding where the outline goes (the shipped layout).
    """
    config = {
        "sample_size": IMAGE_SIZE, "in_channels": 3, "out_channels": 3, "layers_per_block": layers_per_block,
        "block_out_channels": list(channels), "down_block_types": ["DownBlock2D"] * len(channels),
        "up_block_types": ["UpBlock2D"] * len(channels), "mid_block_type": "UNetMidBlock2D",
        "norm_num_groups": 8, "class_embed_type": "projection", "projection_class_embeddings_input_dim": cond_dim,
        "cross_attention_dim": 8, "attention_head_dim": 8, "resnet_time_scale_shift": time_scale_shift,
    }
    if cross_attention:
        n = len(channels)
        config.update({
            "down_block_types": ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (n - 1),
            "up_block_types": ["CrossAttnUpBlock2D"] * (n - 1) + ["UpBlock2D"],
            "mid_block_type": "UNetMidBlock2DCrossAttn", "cross_attention_dim": cross_attention_dim,
            "encoder_hid_dim": cond_dim, "encoder_hid_dim_type": "image_proj", "attention_head_dim": 16,
        })
    return config


def scheduler_config() -> dict:
    return {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction",
            "clip_sample": True, "clip_sample_range": 1.0}


def build_unet(config: dict):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**config)


def predict(unet, config: dict, x: torch.Tensor, t, cond: torch.Tensor) -> torch.Tensor:
    """The UNet's output for noisy images ``x`` at ``t`` given (normalised) embeddings ``cond``.

    The embedding conditions through the class-embedding projection (FiLM) and, in the cross-attention layout,
    also as the 32 tokens the attention blocks read.
    """
    if config.get("encoder_hid_dim_type") == "image_proj":
        return unet(x, t, encoder_hidden_states=None, class_labels=cond,
                    added_cond_kwargs={"image_embeds": cond}).sample
    return unet(x, t, encoder_hidden_states=None, class_labels=cond).sample


class WorldGenerator:
    """A conditional UNet and its noise schedule; ``generate(embeddings)`` → images in ``[-1, 1]``."""

    def __init__(self, unet, config: dict, sched_config: dict | None = None, device: str | None = None) -> None:
        from eegvision.utils import default_device

        self.device = default_device(device)
        self.unet = unet.to(self.device).eval()
        self.config, self.sched_config = config, sched_config or scheduler_config()

    @property
    def cond_dim(self) -> int:
        return int(self.config["projection_class_embeddings_input_dim"])

    def _predict(self, x: torch.Tensor, t, cond: torch.Tensor) -> torch.Tensor:
        return predict(self.unet, self.config, x, t, cond)

    @torch.no_grad()
    def generate(self, embeddings, steps: int = 20, guidance_scale: float = 2.0, seed: int = 0,
                 batch_size: int = 64, eta: float = 0.0) -> torch.Tensor:
        """Sample one image per embedding with DDIM.

        Parameters
        ----------
        embeddings
            ``(n, cond_dim)`` world-CLIP image embeddings (they are L2-normalised here, as in training).
        steps
            DDIM steps (20 is plenty at 32×32).
        guidance_scale
            Classifier-free guidance weight (1 = none).
        seed
            Initial noise (one ``torch.Generator`` on CPU, so CPU and CUDA draw the same noise).

        Returns
        -------
        torch.Tensor
            ``(n, 3, 32, 32)`` float32 CPU images in ``[-1, 1]`` (:func:`to_uint8` converts them).
        """
        from diffusers import DDIMScheduler

        cond = torch.as_tensor(np.asarray(embeddings, dtype=np.float32) if not isinstance(embeddings, torch.Tensor)
                               else embeddings).float()
        if cond.ndim != 2 or cond.shape[1] != self.cond_dim:
            raise ValueError(f"Expected embeddings of shape (n, {self.cond_dim}) (world-CLIP image space); got "
                             f"{tuple(cond.shape)}.")
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}.")
        cond = F.normalize(cond, dim=-1)
        sched = DDIMScheduler(**self.sched_config, timestep_spacing="trailing", set_alpha_to_one=False)
        sched.set_timesteps(steps)
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn((len(cond), 3, IMAGE_SIZE, IMAGE_SIZE), generator=g)
        return self.reverse(noise, cond, sched, sched.timesteps, guidance_scale=guidance_scale, eta=eta,
                            batch_size=batch_size)

    @torch.no_grad()
    def reverse(self, start: torch.Tensor, cond: torch.Tensor, sched: Any, timesteps: Any, *,
                guidance_scale: float, eta: float, batch_size: int) -> torch.Tensor:
        """Run the reverse process from ``start`` (noise, or a noised image for img2img) over ``timesteps`` of
        ``sched``, conditioned on the L2-normalised ``cond`` with classifier-free guidance; images in [-1, 1]."""
        out = []
        for s in range(0, len(cond), batch_size):
            c = cond[s:s + batch_size].to(self.device)
            x = start[s:s + batch_size].to(self.device)
            cc = torch.cat([torch.zeros_like(c), c]) if guidance_scale != 1.0 else c
            for t in timesteps:
                if guidance_scale != 1.0:
                    un, co = self._predict(torch.cat([x, x]), t, cc).chunk(2)
                    pred = un + guidance_scale * (co - un)
                else:
                    pred = self._predict(x, t, cc)
                x = sched.step(pred, t, x, eta=eta).prev_sample
            out.append(x.clamp(-1, 1).float().cpu())
        return torch.cat(out)

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``generator.safetensors`` and ``generator.json`` into ``directory``."""
        from safetensors.torch import save_file

        from eegvision.utils import atomic_path, write_text_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.unet.state_dict().items()}
        with atomic_path(directory / "generator.safetensors", suffix=".safetensors") as tmp:
            save_file(state, str(tmp))
        meta = {"unet": self.config, "scheduler": self.sched_config, "image_size": IMAGE_SIZE}
        write_text_atomic(directory / "generator.json", json.dumps(meta, indent=1) + "\n")
        return [directory / "generator.safetensors", directory / "generator.json"]

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> "WorldGenerator":
        from eegvision.tensorfiles import load_safetensors

        directory = Path(directory)
        meta = json.loads((directory / "generator.json").read_text())
        unet = build_unet(meta["unet"])
        unet.load_state_dict(load_safetensors(directory / "generator.safetensors", "World generator weights"), strict=True)
        return cls(unet, meta["unet"], meta["scheduler"], device)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(n, 3, H, W)`` in ``[-1, 1]`` → ``(n, H, W, 3)`` uint8."""
    x = ((images.clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _load_matching(unet, state: dict) -> list[str]:
    """Copy the tensors of ``state`` whose name and shape match into ``unet``; zero the output projection of
    every attention block that got none, so the warm-started UNet first computes what the old one did.

    Returns the names of the parameters that were not in ``state`` (newly initialised).
    """
    own = unet.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    unet.load_state_dict(loaded, strict=False)
    new = [k for k in own if k not in loaded]
    with torch.no_grad():
        for name, module in unet.named_modules():
            if type(module).__name__ == "Transformer2DModel" and f"{name}.proj_out.weight" in new:
                module.proj_out.weight.zero_()
                module.proj_out.bias.zero_()
    return new


def _save_train_state(directory: Path, unet, opt, g: torch.Generator, step: int, loss: float, meta: dict) -> None:
    """The full training state (model, Adam moments, noise generator, step) as safetensors + JSON."""
    from safetensors.torch import save_file

    from eegvision.utils import atomic_path, write_text_atomic

    state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in unet.state_dict().items()}
    names = [n for n, _ in unet.named_parameters()]
    for n, p in unet.named_parameters():
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                state[f"opt.{n}.{key}"] = st[key].detach().cpu().contiguous()
    state["rng"] = g.get_state().clone()
    with atomic_path(directory / "train_state.safetensors", suffix=".safetensors") as tmp:
        save_file(state, str(tmp))
    write_text_atomic(directory / "train_state.json", json.dumps(
        {"step": step, "loss": loss, "adam_step": int(opt.state[unet.get_parameter(names[0])]["step"])
         if opt.state else 0, **meta}, indent=1) + "\n")


def _load_train_state(directory: Path, unet, opt, g: torch.Generator, meta: dict) -> int:
    """Restore what :func:`_save_train_state` wrote; returns the step to continue from."""
    from eegvision.tensorfiles import load_safetensors

    info = json.loads((directory / "train_state.json").read_text())
    for key in ("config", "batch_size", "lr", "seed", "cond_drop", "snr_gamma", "n_images"):
        if info.get(key) != meta.get(key):
            raise ValueError(f"The checkpoint in {directory} was trained with {key}={info.get(key)!r}, this run asks "
                             f"for {meta.get(key)!r}; resume with the same settings or delete {directory}.")
    state = load_safetensors(directory / "train_state.safetensors", "Generator training checkpoint")
    unet.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")}, strict=True)
    for n, p in unet.named_parameters():
        if f"opt.{n}.exp_avg" in state:
            opt.state[p] = {"step": torch.tensor(float(info["adam_step"])),
                            "exp_avg": state[f"opt.{n}.exp_avg"].to(p.device),
                            "exp_avg_sq": state[f"opt.{n}.exp_avg_sq"].to(p.device)}
    g.set_state(state["rng"])
    return int(info["step"])


def train_generator(images: torch.Tensor, embeddings: torch.Tensor, steps: int = 2000, batch_size: int = 32,
                    lr: float = 1e-3, seed: int = 0, device: str | None = None, config: dict | None = None,
                    cond_drop: float = 0.1, checkpoint_every: int = 0,
                    checkpoint_dir: str | Path | None = None, snr_gamma: float | None = None,
                    init_from: str | Path | None = None, resume: bool = True) -> WorldGenerator:
    """Train the conditional UNet on ``images`` (``(n, 3, 32, 32)`` in ``[-1, 1]``) and their ``embeddings``.

    Standard DDPM objective (v-prediction, uniform timesteps), AdamW with a linear warm-up then a
    constant learning rate (so the checkpoint at step ``k`` of a long run is the result of a run with
    ``steps=k``), an exponential moving average of the weights (decay 0.995) is what is returned and checkpointed,
    condition dropout ``cond_drop`` (zero vector) for classifier-free guidance. With ``checkpoint_every``
    the EMA model is saved to ``checkpoint_dir`` every that many steps (atomic writes), with the full training
    state (``train_state.safetensors`` + ``.json``: weights, Adam moments, the noise generator's state, the step).
    A run stopped at any time resumes from there when called again with the same ``checkpoint_dir`` and settings
    (``resume=True``): the weights it ends with are those of an uninterrupted run.

    ``snr_gamma`` weights each sample's loss by ``min(SNR, γ) / (SNR + 1)`` (min-SNR-γ for v-prediction, Hang et
    al. 2023), which spends less of the training on nearly clean images and speeds up learning the layout.
    ``init_from`` (a folder with ``generator.safetensors``) warm-starts every tensor whose name and shape match;
    attention blocks new to ``config`` start with a zero output projection.
    """
    import copy

    from diffusers import DDPMScheduler

    from eegvision.progress import track
    from eegvision.tensorfiles import load_safetensors
    from eegvision.utils import default_device

    device = default_device(device)
    torch.manual_seed(seed)
    emb = F.normalize(embeddings.float(), dim=-1)
    config = config or unet_config(emb.shape[1])
    unet = build_unet(config)
    if init_from is not None:
        _load_matching(unet, load_safetensors(Path(init_from) / "generator.safetensors", "World generator weights"))
    unet = unet.to(device).train()
    sched = DDPMScheduler(**scheduler_config())
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    warm = 100
    alphas = sched.alphas_cumprod.to(device)

    def lr_at(s: int) -> float:
        return min(1.0, (s + 1) / warm)

    g = torch.Generator().manual_seed(seed)
    meta = {"config": config, "batch_size": batch_size, "lr": lr, "seed": seed, "cond_drop": cond_drop,
            "snr_gamma": snr_gamma, "n_images": len(images), "init_from": str(init_from) if init_from else None}
    start = 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    if resume and ckpt is not None and (ckpt / "train_state.json").is_file():
        start = _load_train_state(ckpt, unet, opt, g, meta)
        ema.load_state_dict(WorldGenerator.load(ckpt, device="cpu").unet.state_dict())
        ema.to(device)
    for step in track(range(start, steps), description="training world generator", total=steps - start):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x0 = images[idx].to(device)
        c = emb[idx].to(device)
        drop = (torch.rand(batch_size, generator=g) < cond_drop).to(device)
        c = torch.where(drop[:, None], torch.zeros_like(c), c)
        noise = torch.randn(x0.shape, generator=g).to(device)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,), generator=g).to(device)
        xt = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t)
        pred = predict(unet, config, xt, t, c)
        if snr_gamma is None:
            loss = F.mse_loss(pred, target)
        else:
            snr = alphas[t] / (1 - alphas[t])
            weight = snr.clamp(max=snr_gamma) / (snr + 1)
            loss = (weight * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = lr * lr_at(step)
        opt.step()
        with torch.no_grad():
            d = min(0.995, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - d)
        if checkpoint_every and ckpt is not None and (step + 1) % checkpoint_every == 0:
            WorldGenerator(copy.deepcopy(ema), config, device="cpu").save(ckpt)
            _save_train_state(ckpt, unet, opt, g, step + 1, float(loss.detach()), meta)
            (ckpt / "generator_step.txt").write_text(f"{step + 1} {loss.item():.4f}\n")
    return WorldGenerator(ema.cpu(), config, device=device)
