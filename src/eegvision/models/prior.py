"""Stage I diffusion prior: EEG embedding → CLIP image embedding.

Two denoisers share one wrapper, :class:`DiffusionPrior`:

* ``"unet"``: the MLP U-Net of the ATM reference (``DiffusionPriorUNet``, ``atm.md`` §5.2): a sinusoidal
  timestep embedding, an input projection, four encoder steps that add a time and a condition embedding and
  narrow the width (1024 → 512 → 256 → 128 → 64), four mirrored decoder steps with skip connections, and an
  output projection. It predicts the noise ε.
* ``"transformer"``: diffusers' :class:`~diffusers.PriorTransformer` (the DALL·E-2 / unCLIP prior) configured
  without text tokens: its sequence is ``[condition, time, noisy embedding, prd]`` and it predicts ε as well.

The wrapper owns the noise schedule (a diffusers ``DDPMScheduler`` with ``clip_sample=False``: CLIP image
embeddings are not in ±1, and clipping x̂₀ there, as the reference does, distorts them; ``clip_sample=True`` for
priors imported from the reference, :mod:`eegvision.models.reference`), an optional per-dimension
standardisation of the targets, classifier-free-guidance sampling with one generator per sample, and
``save_pretrained`` / ``from_pretrained`` (``model.safetensors`` + ``config.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

PRIOR_ARCHITECTURES = ("unet", "transformer")
#: The reference's prior, ``DiffusionPriorUNet(cond_dim=1024, dropout=0.1)`` sampled with diffusers' default
#: ``DDPMScheduler()`` (``clip_sample=True``), written out in full so that it does not follow this module's
#: defaults: ``DiffusionPrior(**REFERENCE_PRIOR_CONFIG)`` is the reference layout whatever they become.
REFERENCE_PRIOR_CONFIG: dict[str, Any] = {
    "embed_dim": 1024, "cond_dim": 1024, "architecture": "unet",
    "architecture_options": {"hidden_dims": [1024, 512, 256, 128, 64], "time_embed_dim": 512, "dropout": 0.1},
    "num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02,
    "clip_sample": True, "normalize_condition": False, "residual": False, "num_samples": 1,
    "prediction_type": "epsilon",
}
_CONFIG_NAME = "config.json"
_WEIGHTS_NAME = "model.safetensors"


class PriorUNet(nn.Module):
    """The reference's MLP U-Net denoiser (``atm.md`` §5.2).

    Parameters
    ----------
    embed_dim : int
        Size of the image embedding being denoised (1024 for ViT-H-14).
    cond_dim : int
        Size of the EEG embedding that conditions the denoiser.
    hidden_dims : sequence of int
        Widths of the U-Net levels, outermost first; ``(1024, 512, 256, 128, 64)`` in the reference.
    time_embed_dim : int
        Size of the sinusoidal timestep embedding.
    dropout : float
        Dropout after every hidden block.
    """

    def __init__(self, embed_dim: int = 1024, cond_dim: int = 1024,
                 hidden_dims: Sequence[int] = (1024, 512, 256, 128, 64), time_embed_dim: int = 512,
                 dropout: float = 0.1) -> None:
        super().__init__()
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps

        hidden_dims = list(hidden_dims)
        if len(hidden_dims) < 2:
            raise ValueError(f"hidden_dims needs at least two widths, got {hidden_dims}.")
        self.hidden_dims = hidden_dims
        self.time_proj = Timesteps(time_embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.input_layer = nn.Sequential(nn.Linear(embed_dim, hidden_dims[0]), nn.LayerNorm(hidden_dims[0]), nn.SiLU())

        def block(d_in: int, d_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(d_in, d_out), nn.LayerNorm(d_out), nn.SiLU(), nn.Dropout(dropout))

        n = len(hidden_dims) - 1
        self.enc_time = nn.ModuleList(TimestepEmbedding(time_embed_dim, hidden_dims[i]) for i in range(n))
        self.enc_cond = nn.ModuleList(nn.Linear(cond_dim, hidden_dims[i]) for i in range(n))
        self.enc_layers = nn.ModuleList(block(hidden_dims[i], hidden_dims[i + 1]) for i in range(n))
        # decoder step j goes from width hidden_dims[n - j] to hidden_dims[n - j - 1]
        self.dec_time = nn.ModuleList(TimestepEmbedding(time_embed_dim, hidden_dims[n - j]) for j in range(n))
        self.dec_cond = nn.ModuleList(nn.Linear(cond_dim, hidden_dims[n - j]) for j in range(n))
        self.dec_layers = nn.ModuleList(block(hidden_dims[n - j], hidden_dims[n - j - 1]) for j in range(n))
        self.output_layer = nn.Linear(hidden_dims[0], embed_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the noise in ``x`` (batch, embed_dim) at timesteps ``t`` (batch,) given ``cond`` or ``None``.

        ``cond_mask`` (batch,) bool zeroes the condition term of the rows where it is False (as ``cond=None``
        does for the whole batch).
        """
        t_emb = self.time_proj(t).to(x.dtype)  # (B, time_embed_dim), no parameters
        keep = None if cond_mask is None else cond_mask.to(x.dtype)[:, None]

        def cond_term(layer: nn.Module) -> torch.Tensor | float:
            if cond is None:
                return 0.0
            return layer(cond) if keep is None else layer(cond) * keep

        x = self.input_layer(x)
        skips = []
        for time_layer, cond_layer, layer in zip(self.enc_time, self.enc_cond, self.enc_layers):
            skips.append(x)
            x = x + time_layer(t_emb) + cond_term(cond_layer)
            x = layer(x)
        for time_layer, cond_layer, layer, skip in zip(self.dec_time, self.dec_cond, self.dec_layers,
                                                        reversed(skips)):
            x = x + time_layer(t_emb) + cond_term(cond_layer)
            x = layer(x) + skip
        return self.output_layer(x)


def _transformer(embed_dim: int, cond_dim: int, num_layers: int = 4, num_attention_heads: int = 8,
                 attention_head_dim: int = 64, dropout: float = 0.0) -> nn.Module:
    """diffusers' PriorTransformer without text tokens: tokens ``[cond, time, x_t, prd]``."""
    from diffusers import PriorTransformer

    return PriorTransformer(
        num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim, num_layers=num_layers,
        embedding_dim=embed_dim, num_embeddings=0, additional_embeddings=4, dropout=dropout,
        encoder_hid_proj_type=None, added_emb_type="prd", embedding_proj_dim=cond_dim, clip_embed_dim=embed_dim,
        norm_in_type="layer",
    )


class DiffusionPrior(nn.Module):
    """A conditional diffusion prior over CLIP image embeddings, with its noise schedule.

    Parameters
    ----------
    embed_dim, cond_dim : int
        Sizes of the target image embedding and of the conditioning EEG embedding.
    architecture : {"unet", "transformer"}
        The denoiser: the reference's MLP U-Net or diffusers' ``PriorTransformer``.
    architecture_options : dict, optional
        Keyword arguments of the denoiser (``hidden_dims``, ``time_embed_dim``, ``dropout`` for the U-Net;
        ``num_layers``, ``num_attention_heads``, ``attention_head_dim``, ``dropout`` for the transformer).
    num_train_timesteps, beta_schedule, beta_start, beta_end : diffusion schedule (diffusers ``DDPMScheduler``;
        the defaults are those of the reference: 1000 steps, linear 1e-4 → 0.02).
    target_mean, target_std : tensor, optional
        Per-dimension statistics of the training targets. When given, the diffusion runs on standardised
        embeddings ``(h - mean) / std`` and :meth:`sample` maps back.
    clip_sample : bool
        Clip the predicted x̂₀ to ±1 at every sampling step, as the reference's ``DDPMScheduler()`` does
        (default False: CLIP image embeddings are not in ±1). Only priors imported from the reference set it.
    normalize_condition : bool
        L2-normalise the EEG embedding before it conditions the denoiser (training and sampling alike), so that
        the prior does not read the embedding's norm, which differs between single trials (what it is trained on)
        and trial averages (what it is used on).
    residual : bool
        Diffuse the *correction* ``h − a·c`` of the (normalised) EEG embedding ``c`` instead of ``h`` itself, and
        add ``a·c`` back after sampling (``a = anchor_scale``, a least-squares scalar fitted on the training pairs).
        The unconditional part of classifier-free guidance then shrinks towards the EEG embedding, not towards the
        mean image. Needs ``cond_dim == embed_dim``.
    prediction_type : {"epsilon", "sample"}
        What the denoiser predicts: the noise ε (the reference) or the clean embedding x₀ (as DALL·E 2's prior
        does). With ε, the sampler's x̂₀ = (x_t − √(1−ᾱ) ε̂) / √ᾱ divides ε̂'s error by √ᾱ_T ≈ 0.006 at the first
        step of a short schedule, which throws samples far off when the denoiser is small or briefly trained;
        predicting x₀ has no such division.
    num_samples : int
        How many samples :meth:`sample` averages by default (the prior's output as used: the mean of N samples
        estimates the posterior mean, which is closer to the true embedding than any single sample).

    Notes
    -----
    The default is the reference's layout; :data:`PRIOR_DEFAULTS` are the options :func:`~eegvision.training.
    prior_fit.fit_prior` uses by default (measured in ``docs/prior.md``).

    ``forward`` predicts ε. The condition can be dropped per sample (``cond_mask`` False), which is how
    classifier-free guidance is trained: the U-Net then adds no condition term (the reference's ``c=None``), the
    transformer sees a zero condition vector.
    """

    def __init__(self, embed_dim: int = 1024, cond_dim: int = 1024, architecture: str = "unet",
                 architecture_options: dict[str, Any] | None = None, num_train_timesteps: int = 1000,
                 beta_schedule: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02,
                 target_mean: torch.Tensor | None = None, target_std: torch.Tensor | None = None,
                 clip_sample: bool = False, normalize_condition: bool = False, residual: bool = False,
                 anchor_scale: float = 1.0, num_samples: int = 1, prediction_type: str = "epsilon") -> None:
        super().__init__()
        if residual and embed_dim != cond_dim:
            raise ValueError(f"residual=True predicts the correction to the EEG embedding, which needs it in the image "
                             f"space: cond_dim ({cond_dim}) must equal embed_dim ({embed_dim}).")
        check_choice("prior architecture", architecture, PRIOR_ARCHITECTURES)
        options = dict(architecture_options or {})
        if architecture == "unet":
            if "hidden_dims" in options:
                options["hidden_dims"] = list(options["hidden_dims"])
            self.net = PriorUNet(embed_dim=embed_dim, cond_dim=cond_dim, **options)
        else:
            self.net = _transformer(embed_dim, cond_dim, **options)
        self.config = {
            "embed_dim": embed_dim, "cond_dim": cond_dim, "architecture": architecture,
            "architecture_options": options, "num_train_timesteps": num_train_timesteps,
            "beta_schedule": beta_schedule, "beta_start": beta_start, "beta_end": beta_end,
            "standardize": target_mean is not None,
        }
        if clip_sample:  # only written when set, so that existing config.json files stay as they were
            self.config["clip_sample"] = True
        if normalize_condition:
            self.config["normalize_condition"] = True
        if residual:
            self.config["residual"] = True
        check_choice("prior prediction_type", prediction_type, ("epsilon", "sample"))
        if prediction_type != "epsilon":
            self.config["prediction_type"] = prediction_type
        if num_samples != 1:
            if num_samples < 1:
                raise ValueError(f"num_samples must be ≥ 1, got {num_samples}.")
            self.config["num_samples"] = int(num_samples)
        self.register_buffer("anchor_scale", torch.tensor(float(anchor_scale)), persistent=residual)
        if (target_mean is None) != (target_std is None):
            raise ValueError("Give both target_mean and target_std, or neither.")
        if target_mean is not None:
            self.register_buffer("target_mean", torch.as_tensor(target_mean, dtype=torch.float32).reshape(embed_dim))
            self.register_buffer("target_std", torch.as_tensor(target_std, dtype=torch.float32).reshape(embed_dim)
                                 .clamp_min(1e-6))
        else:
            self.target_mean = None
            self.target_std = None

    # ------------------------------------------------------------------ schedule and data scaling
    def make_scheduler(self, kind: str = "ddpm"):
        """A fresh diffusers scheduler for this prior (``"ddpm"`` ancestral, or ``"ddim"`` deterministic)."""
        from diffusers import DDIMScheduler, DDPMScheduler

        check_choice("prior scheduler", kind, ("ddpm", "ddim"))
        common = dict(num_train_timesteps=self.config["num_train_timesteps"],
                      beta_schedule=self.config["beta_schedule"], beta_start=self.config["beta_start"],
                      beta_end=self.config["beta_end"], clip_sample=self.config.get("clip_sample", False),
                      prediction_type=self.config.get("prediction_type", "epsilon"))
        if kind == "ddpm":
            return DDPMScheduler(variance_type="fixed_small", **common)
        return DDIMScheduler(**common)

    def to_model_space(self, h: torch.Tensor) -> torch.Tensor:
        """Standardise image embeddings when the prior was fitted on standardised targets."""
        if self.target_mean is None:
            return h
        return (h - self.target_mean) / self.target_std

    def from_model_space(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_model_space`."""
        if self.target_mean is None:
            return z
        return z * self.target_std + self.target_mean

    def condition(self, cond: torch.Tensor) -> torch.Tensor:
        """The EEG embedding as the denoiser reads it (L2-normalised when ``normalize_condition``)."""
        if self.config.get("normalize_condition"):
            return torch.nn.functional.normalize(cond, dim=-1)
        return cond

    def anchor(self, cond: torch.Tensor) -> torch.Tensor:
        """What the residual prior adds back: ``anchor_scale · condition(cond)`` (zeros when not residual)."""
        if not self.config.get("residual"):
            return torch.zeros(cond.shape[0], self.config["embed_dim"], dtype=cond.dtype, device=cond.device)
        return self.anchor_scale.to(cond.dtype) * self.condition(cond)

    def target(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The denoiser's clean sample for image embeddings ``h`` and EEG embeddings ``cond`` (model space)."""
        return self.to_model_space(h - self.anchor(cond))

    # ------------------------------------------------------------------ denoiser
    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predict ε (or x₀, with ``prediction_type="sample"``) for noisy embeddings ``x_t`` (B, embed_dim) at ``t`` (B,) given ``cond`` (B, cond_dim).

        ``cond_mask`` (B,) bool: False drops that sample's condition (classifier-free guidance).
        """
        cond = self.condition(cond)
        if self.config["architecture"] == "unet":
            return self.net(x_t, t, cond, cond_mask=cond_mask)
        if cond_mask is not None:  # the transformer's "no condition" is a zero condition vector
            cond = cond * cond_mask.to(cond.dtype)[:, None]
        return self.net(x_t, t, proj_embedding=cond).predicted_image_embedding

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, cond: torch.Tensor, num_inference_steps: int = 50, guidance_scale: float = 5.0,
               seed: int | Sequence[int] | None = 0, generator: torch.Generator | list | None = None,
               scheduler: str = "ddpm", batch_size: int = 1024, num_samples: int | None = None) -> torch.Tensor:
        """Draw one image embedding per condition row (or the mean of ``num_samples`` of them).

        Parameters
        ----------
        cond : tensor (N, cond_dim)
            EEG embeddings.
        num_inference_steps : int
            Denoising steps (the reference uses 50 for reconstruction).
        guidance_scale : float
            Classifier-free guidance weight w in ε̂ = ε_u + w (ε_c − ε_u); 1 means no guidance, 0 unconditional.
        seed : int or sequence of int, optional
            Row i uses a generator seeded with ``seed + i`` (or ``seed[i]``), so each sample is reproducible
            whatever the batching. Ignored when ``generator`` is given.
        generator : torch.Generator or list of them, optional
            Explicit generator(s), one per row for batch-independent results.
        scheduler : {"ddpm", "ddim"}
            Sampler.
        batch_size : int
            Rows per forward pass.
        num_samples : int, optional
            Return the mean of this many samples per row (an estimate of the posterior mean, closer to the true
            embedding than any one sample); default: the prior's ``num_samples`` (1 unless it was fitted with more). Sample 0 of row i is the one-sample draw; sample j > 0 uses a
            generator seeded from ``(seed + i, j)``. Needs ``seed`` (not ``generator``) when above 1.

        Returns
        -------
        tensor (N, embed_dim), float32, in the original (unstandardised) embedding space, on ``cond``'s device.
        """
        num_samples = self.config.get("num_samples", 1) if num_samples is None else int(num_samples)
        if num_samples < 1:
            raise ValueError(f"num_samples must be ≥ 1, got {num_samples}.")
        if num_samples > 1:
            if seed is None or generator is not None:
                raise ValueError("num_samples > 1 needs an integer seed (or one per row), not generator=; got "
                                 f"seed={seed!r}, generator={type(generator).__name__}.")
            import numpy as np

            base = [int(seed) + i for i in range(len(cond))] if isinstance(seed, int) else [int(x) for x in seed]
            draws = [self.sample(cond, num_inference_steps, guidance_scale, seed=base, scheduler=scheduler,
                                 batch_size=batch_size, num_samples=1)]
            for j in range(1, num_samples):
                seeds = [int(np.random.SeedSequence([b, j]).generate_state(1)[0]) for b in base]
                draws.append(self.sample(cond, num_inference_steps, guidance_scale, seed=seeds, scheduler=scheduler,
                                         batch_size=batch_size, num_samples=1))
            return torch.stack(draws).mean(0)
        from diffusers.utils.torch_utils import randn_tensor

        if cond.ndim != 2 or cond.shape[1] != self.config["cond_dim"]:
            raise ValueError(f"cond must have shape (N, {self.config['cond_dim']}), got {tuple(cond.shape)}.")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be ≥ 1, got {num_inference_steps}.")
        device = next(self.parameters()).device
        dtype = next(self.parameters()).dtype
        n = cond.shape[0]
        if generator is None:
            if seed is None:
                generators = None
            else:
                seeds = [int(seed) + i for i in range(n)] if isinstance(seed, int) else [int(s) for s in seed]
                if len(seeds) != n:
                    raise ValueError(f"Got {len(seeds)} seeds for {n} conditions; give one seed per row.")
                generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        elif isinstance(generator, list):
            if len(generator) != n:
                raise ValueError(f"Got {len(generator)} generators for {n} conditions.")
            generators = generator
        else:
            generators = None
            shared = generator
        was_training = self.training
        self.eval()
        out = []
        for start in range(0, n, batch_size):
            c = cond[start:start + batch_size].to(device=device, dtype=dtype)
            b = c.shape[0]
            gen = generators[start:start + b] if generators is not None else (shared if generator is not None
                                                                               else None)
            if isinstance(gen, list) and b == 1:
                gen = gen[0]
            sched = self.make_scheduler(scheduler)
            sched.set_timesteps(num_inference_steps, device=device)
            x = randn_tensor((b, self.config["embed_dim"]), generator=gen, device=device, dtype=dtype)
            x = x * sched.init_noise_sigma
            for t in sched.timesteps:
                tt = t.expand(b).to(device)
                if guidance_scale == 1.0:
                    eps = self(x, tt, c)
                elif guidance_scale == 0.0:
                    eps = self(x, tt, c, cond_mask=torch.zeros(b, dtype=torch.bool, device=device))
                else:  # one pass over [unconditional; conditional]
                    mask = torch.cat([torch.zeros(b, dtype=torch.bool, device=device),
                                      torch.ones(b, dtype=torch.bool, device=device)])
                    eps_u, eps_c = self(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([c, c]),
                                        cond_mask=mask).chunk(2)
                    eps = eps_u + guidance_scale * (eps_c - eps_u)
                x = sched.step(eps, t, x, generator=gen).prev_sample
            out.append(self.from_model_space(x.float()) + self.anchor(c.float()))
        self.train(was_training)
        return torch.cat(out).to(cond.device)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically)."""
        from safetensors.torch import save_file

        from eegvision.utils import atomic_path, write_text_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(directory / _WEIGHTS_NAME, suffix=".safetensors") as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        write_text_atomic(directory / _CONFIG_NAME, json.dumps({"class": "DiffusionPrior", **self.config},
                                                               indent=2) + "\n")
        return directory

    @staticmethod
    def is_saved(directory: str | Path) -> bool:
        """Whether ``directory`` holds a prior written by :meth:`save_pretrained`."""
        return all((Path(directory) / name).is_file() for name in (_CONFIG_NAME, _WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> DiffusionPrior:
        """Rebuild a prior written by :meth:`save_pretrained`."""
        from eegvision.tensorfiles import load_safetensors

        directory = Path(directory)
        for name in (_CONFIG_NAME, _WEIGHTS_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"No {name} in {directory}; expected a folder written by "
                                        "DiffusionPrior.save_pretrained (e.g. RUN/prior/).")
        config = json.loads((directory / _CONFIG_NAME).read_text())
        state = load_safetensors(directory / _WEIGHTS_NAME, "Prior weights",
                                 "Train the prior again with `eegvision prior fit`.")
        standardize = config.pop("standardize", False)
        config.pop("class", None)
        embed_dim = config["embed_dim"]
        stats = {}
        if standardize:
            stats = {"target_mean": torch.zeros(embed_dim), "target_std": torch.ones(embed_dim)}
        prior = cls(**config, **stats)
        prior.load_state_dict(state)  # anchor_scale, when residual, is one of the saved buffers
        prior.eval()
        if device is not None:
            prior.to(device)
        return prior
from eegvision.checks import check_choice
