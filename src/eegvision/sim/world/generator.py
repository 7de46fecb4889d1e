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

import numpy as np
import torch
import torch.nn.functional as F

from eegvision.sim.world.data import IMAGE_SIZE


def unet_config(cond_dim: int, channels: tuple[int, ...] = (32, 64, 64), layers_per_block: int = 1,
                time_scale_shift: str = "scale_shift") -> dict:
    """Config of the generator's ``UNet2DConditionModel`` (JSON-able).

    ``time_scale_shift="scale_shift"`` makes the (timestep + image-embedding) vector scale *and* shift
    every ResNet block's features (FiLM) instead of only adding a bias, which the conditioning needs to
    control the object's outline, not just its colour.
    """
    return {
        "sample_size": IMAGE_SIZE, "in_channels": 3, "out_channels": 3, "layers_per_block": layers_per_block,
        "block_out_channels": list(channels), "down_block_types": ["DownBlock2D"] * len(channels),
        "up_block_types": ["UpBlock2D"] * len(channels), "mid_block_type": "UNetMidBlock2D",
        "norm_num_groups": 8, "class_embed_type": "projection", "projection_class_embeddings_input_dim": cond_dim,
        "cross_attention_dim": 8, "attention_head_dim": 8, "resnet_time_scale_shift": time_scale_shift,
    }


def scheduler_config() -> dict:
    return {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction",
            "clip_sample": True, "clip_sample_range": 1.0}


def build_unet(config: dict):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**config)


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
        return self.unet(x, t, encoder_hidden_states=None, class_labels=cond).sample

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
        out = []
        for start in range(0, len(cond), batch_size):
            c = cond[start:start + batch_size].to(self.device)
            x = noise[start:start + batch_size].to(self.device)
            cc = torch.cat([torch.zeros_like(c), c]) if guidance_scale != 1.0 else c
            for t in sched.timesteps:
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


def train_generator(images: torch.Tensor, embeddings: torch.Tensor, steps: int = 2000, batch_size: int = 32,
                    lr: float = 1e-3, seed: int = 0, device: str | None = None, config: dict | None = None,
                    cond_drop: float = 0.1, checkpoint_every: int = 0,
                    checkpoint_dir: str | Path | None = None) -> WorldGenerator:
    """Train the conditional UNet on ``images`` (``(n, 3, 32, 32)`` in ``[-1, 1]``) and their ``embeddings``.

    Standard DDPM objective (v-prediction, uniform timesteps), AdamW with a linear warm-up then a
    constant learning rate (so the checkpoint at step ``k`` of a long run is the result of a run with
    ``steps=k``), an exponential moving average of the weights (decay 0.995) is what is returned and checkpointed,
    condition dropout ``cond_drop`` (zero vector) for classifier-free guidance. With ``checkpoint_every``
    the EMA model is saved to ``checkpoint_dir`` every that many steps (atomic writes), so a long run can
    be stopped at any time and still leave usable weights.
    """
    import copy

    from diffusers import DDPMScheduler

    from eegvision.progress import track
    from eegvision.utils import default_device

    device = default_device(device)
    torch.manual_seed(seed)
    emb = F.normalize(embeddings.float(), dim=-1)
    config = config or unet_config(emb.shape[1])
    unet = build_unet(config).to(device).train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    sched = DDPMScheduler(**scheduler_config())
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    warm = 100

    def lr_at(s: int) -> float:
        return min(1.0, (s + 1) / warm)

    g = torch.Generator().manual_seed(seed)
    for step in track(range(steps), description="training world generator"):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x0 = images[idx].to(device)
        c = emb[idx].to(device)
        drop = (torch.rand(batch_size, generator=g) < cond_drop).to(device)
        c = torch.where(drop[:, None], torch.zeros_like(c), c)
        noise = torch.randn(x0.shape, generator=g).to(device)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,), generator=g).to(device)
        xt = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t)
        pred = unet(xt, t, encoder_hidden_states=None, class_labels=c).sample
        loss = F.mse_loss(pred, target)
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
        if checkpoint_every and checkpoint_dir and (step + 1) % checkpoint_every == 0:
            WorldGenerator(copy.deepcopy(ema), config, device="cpu").save(checkpoint_dir)
            Path(checkpoint_dir, "generator_step.txt").write_text(f"{step + 1} {loss.item():.4f}\n")
    return WorldGenerator(ema.cpu(), config, device=device)
