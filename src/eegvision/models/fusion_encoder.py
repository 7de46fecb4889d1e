"""BrainHiVE's trainable image-side fusion encoder (``FitConfig.fusion_encoder``).

BrainHiVE (ssshamiii/Brain-HIVE@f06db69) does not train against one vision model's vector: ``main/layers.py``
``FusionEncoder`` (built by ``main/models_clip.py`` ``BrainCLIPModel`` with ``num_layers=1``, ``hidden_size`` =
``intermediate_size`` = 1024 and the config's ``dropout``, 0.1 in ``configs/train_clip.yaml``) maps each vision
model's features (``proj_meta``: synclr_vit_b_16 768-d, CLIP ViT-B/32 512-d, the flattened SDXL VAE latent
1024-d) by its own ``nn.Linear(width, hidden)`` (with bias), sums them and applies ``num_layers`` residual layers
(``ResNet1DLayer``)::

    x = LayerNorm_eps1e-6( W2 dropout(gelu(W1 x)) + x )      # W1, W2: Linear(hidden, hidden, bias=False)

Its output (``hidden``-d) is the retrieval space: the EEG encoder's embedding has that size, both are
L2-normalised in the contrastive loss. eegvision gives the module its inputs concatenated per image (the primary
features, then each ``--target`` file, in that order; :func:`concat_features`) and splits them by the recorded
``widths``. A run saves it in each unit's ``image_projector/`` (``config.json`` + ``model.safetensors``) and records
its test output in ``test_features.safetensors``.

>>> enc = FusionEncoder([768, 512, 1024], hidden=1024, blocks=1, dropout=0.1)
>>> sum(p.numel() for p in enc.parameters())
4461568
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eegvision.checks import check_int, check_range, check_settings
from eegvision.features.files import Features, save_features
from eegvision.models.image_projector import ImageModule

__all__ = ["FUSION_ENCODER_DEFAULTS", "FusionEncoder", "check_fusion_encoder", "concat_features",
           "fusion_encoder_conflicts"]

#: The settings of ``FitConfig.fusion_encoder`` and their defaults (BrainHiVE's run).
FUSION_ENCODER_DEFAULTS = {"hidden": 1024, "blocks": 1, "dropout": 0.1}


def check_fusion_encoder(value: Any) -> dict[str, Any] | None:
    """``FitConfig.fusion_encoder`` checked, missing keys filled from :data:`FUSION_ENCODER_DEFAULTS`."""
    out = check_settings("fusion_encoder", value, FUSION_ENCODER_DEFAULTS)
    if out is None:
        return None
    out["hidden"] = check_int("fusion_encoder hidden", out["hidden"], minimum=1,
                              hint="It is the size of the shared space (BrainHiVE: 1024).")
    out["blocks"] = check_int("fusion_encoder blocks", out["blocks"], minimum=0,
                              hint="It is the number of residual layers after the sum (BrainHiVE: 1).")
    check_range("fusion_encoder dropout", out["dropout"], 0.0, 1.0, include_high=False,
                hint="BrainHiVE uses 0.1; 0 turns it off.")
    out["dropout"] = float(out["dropout"])
    return out


def fusion_encoder_conflicts(config: Any, closed_form: bool) -> dict[str, bool]:
    """``{reason: set}`` of what a ``FitConfig`` with ``fusion_encoder`` cannot join (``closed_form``: its encoder
    is fitted in closed form)."""
    return {"closed-form encoder": closed_form,
            "encoder 'auto' (it may keep its closed-form ridge candidate)": config.encoder == "auto",
            f"objective {config.objective!r}": config.objective != "retrieval",
            "--reference/--reference-loss (their loss adds text features)": config.reference or config.reference_loss,
            f"target_mode {config.target_mode!r} (the --target files are the fusion encoder's inputs)":
                config.target_mode != "heads",
            "target weights (the fusion encoder learns how to combine its inputs)":
                any(t["weight"] != 1.0 for t in config.targets) or config.primary_weight != 1.0,
            "projector": config.projector is not None, "multi_view_target": config.multi_view_target is not None,
            "blur_levels": bool(config.blur_levels),
            "ensemble > 1 (each member would have its own fusion encoder)": config.ensemble > 1,
            "ema_decay (the fusion encoder is not averaged)": config.ema_decay is not None}


class ResidualLayer(nn.Module):
    """``LayerNorm(W2 dropout(gelu(W1 x)) + x)`` (BrainHiVE ``ResNet1DLayer`` around ``BaseMLP``)."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(hidden, hidden, bias=False)
        self.w2 = nn.Linear(hidden, hidden, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.w2(self.dropout(F.gelu(self.w1(x)))) + x)


class FusionEncoder(ImageModule):
    """Concatenated features ``(batch, sum(widths))`` -> ``(batch, hidden)`` (module docstring).

    Parameters
    ----------
    widths : list of int
        The width of each input, in the order of the concatenation (primary first).
    hidden, blocks, dropout
        See :data:`FUSION_ENCODER_DEFAULTS`.
    """

    name = "fusion_encoder"
    what = "a fusion encoder"

    def __init__(self, widths: list[int], hidden: int = 1024, blocks: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        settings = check_fusion_encoder({"hidden": hidden, "blocks": blocks, "dropout": dropout})
        if not widths:
            raise ValueError("FusionEncoder needs the width of each input (widths); got none.")
        self.widths = [check_int("FusionEncoder width", w, minimum=1) for w in widths]
        self.hidden, self.n_blocks, self.p = settings["hidden"], settings["blocks"], settings["dropout"]
        self.dim = self.hidden
        self.inputs = nn.ModuleList(nn.Linear(w, self.hidden) for w in self.widths)
        self.blocks = nn.ModuleList(ResidualLayer(self.hidden, self.p) for _ in range(self.n_blocks))

    @property
    def in_dim(self) -> int:
        return sum(self.widths)

    @property
    def config(self) -> dict[str, Any]:
        """What :meth:`from_pretrained` rebuilds the module from."""
        return {"name": self.name, "widths": self.widths, "hidden": self.hidden, "blocks": self.n_blocks,
                "dropout": self.p}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.in_dim:
            raise ValueError(f"The fusion encoder reads {len(self.widths)} feature sets of widths {self.widths} "
                             f"concatenated ({self.in_dim} columns); got shape {tuple(features.shape)}. Give the "
                             "features the run was trained with (its recorded features/fusion_input files).")
        parts = features.to(self.inputs[0].weight.dtype).split(self.widths, dim=-1)
        x = torch.stack([proj(part) for proj, part in zip(self.inputs, parts)]).sum(dim=0)
        for layer in self.blocks:
            x = layer(x)
        return x


def concat_features(parts: list[Features], path: str | os.PathLike | None = None) -> Features:
    """The fusion encoder's input: the image rows of ``parts`` concatenated per image (in order; no text rows),
    written to ``path`` when given (metadata ``fusion_widths`` and ``fusion_sources``)."""
    if any(p.is_tokens for p in parts) or len({len(p) for p in parts}) != 1:
        raise ValueError("The fusion encoder's inputs are one vector per image, one row per image in every file; "
                         f"got image shapes {[tuple(p.image.shape) for p in parts]}.")
    image = torch.cat([p.image.float() for p in parts], dim=1)
    widths = [p.dim for p in parts]
    meta = {**parts[0].metadata, "normalized": "false", "fusion_widths": ",".join(map(str, widths)),
            "fusion_sources": ",".join(str(p.path) for p in parts)}
    if path is not None:
        save_features(path, image, None, normalized=False, concepts=parts[0].concepts,
                      **{k: v for k, v in meta.items() if k not in ("concepts", "normalized", "eegvision_version")})
    return Features(image=image, text=None, metadata=meta, path=Path(path) if path is not None else None,
                    concepts=parts[0].concepts)
