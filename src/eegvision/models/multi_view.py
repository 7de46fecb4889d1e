"""SVTL's trainable image target (``FitConfig.multi_view_target``): routed views of a vision tower's patch tokens.

SVTL (arXiv 2609.36971; code unreleased) does not train against a fixed image vector: a module trained with the EEG
encoder computes the target from the spatial patch tokens of PE-Core-G14 (layers 20/24/28/32/36). What the paper
says: learnable queries (12) do multi-head cross-attention over the layer-normalised patch tokens, giving 12
views; "block attention-residual routing" combines them (within 4 blocks of 3 views, then across blocks, routing
temperature 0.7); a projector maps the result to the 512-d space of the InfoNCE loss. :class:`MultiViewTarget`
implements that, with these choices of eegvision where the text says nothing (**assumptions**):

1. ``x = LayerNorm(tokens) + E[layer(t)]``: one LayerNorm over every token's channels (shared by the layers), then a
   learned embedding per source layer (only when the tokens come from several layers; the file's ``layers``
   metadata says which), so the queries can tell the layers apart.
2. Cross-attention: ``views`` queries ``Q`` (learned, ``(views, dim)``), standard multi-head attention with
   learned ``q/k/v/out`` projections (``Linear(dim, dim)`` with bias each, ``heads`` heads of ``dim / heads``
   channels): ``view_v = W_o concat_h( softmax(q_vh . k_th / sqrt(dim / heads))_t v_th ) + b_o``.
3. Routing, "attention-residual": a learned linear score ``s_v = w . view_v + b`` (``view_score``); in each of the
   ``blocks`` groups of consecutive views, ``block = mean(views) + sum_v softmax(s / tau)_v view_v`` (the mean is
   the residual path, the softmax-weighted sum the routed one); across blocks the same with a second score
   (``block_score``): ``pooled = mean(blocks) + sum_b softmax(s_b / tau)_b block_b``.
4. ``head``: ``Linear(dim, out_dim)`` -- the projector of ``FitConfig.projector`` (``out_dim`` its ``dim``; the EEG
   side then ends with its own projection), else a ``Linear`` to the EEG embedding's size (the token width).

A run saves the module in each unit's ``image_projector/`` (``config.json`` + ``model.safetensors``), as
:class:`~eegvision.models.image_projector.ImageProjector`, and records its test targets
(:meth:`MultiViewTarget.project_features` of the test token file) in ``test_features.safetensors``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

from eegvision.checks import check_int, check_positive, check_settings
from eegvision.models.encoders.checkpoint import (
    read_checkpoint_config,
)
from eegvision.models.image_projector import ImageModule

__all__ = ["MULTI_VIEW_DEFAULTS", "MultiViewTarget", "check_multi_view", "load_image_module", "route"]

#: The settings of ``FitConfig.multi_view_target`` and their defaults (SVTL's; its head count is not stated).
MULTI_VIEW_DEFAULTS = {"views": 12, "blocks": 4, "heads": 8, "routing_temperature": 0.7}


def check_multi_view(value: Any) -> dict[str, Any] | None:
    """``FitConfig.multi_view_target`` checked, missing keys filled from :data:`MULTI_VIEW_DEFAULTS`."""
    out = check_settings("multi_view_target", value, MULTI_VIEW_DEFAULTS)
    if out is None:
        return None
    for key in ("views", "blocks", "heads"):
        out[key] = check_int(f"multi_view_target {key}", out[key], minimum=1)
    if out["views"] % out["blocks"]:
        raise ValueError(f"multi_view_target splits its {out['views']} views into {out['blocks']} blocks of equal "
                         "size; give views a multiple of blocks (SVTL: 12 views, 4 blocks).")
    out["routing_temperature"] = float(check_positive("multi_view_target routing_temperature",
                                                      out["routing_temperature"]))
    return out


def route(x: torch.Tensor, scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Attention-residual routing over dim -2: ``mean(x) + sum softmax(scores / temperature) x``.

    ``x`` is ``(..., n, dim)``, ``scores`` ``(..., n)``."""
    weights = torch.softmax(scores / temperature, dim=-1)
    return x.mean(dim=-2) + (weights.unsqueeze(-1) * x).sum(dim=-2)


class MultiViewTarget(ImageModule):
    """Token features ``(batch, n_tokens, in_dim)`` -> one target vector ``(batch, dim)`` (module docstring).

    Parameters
    ----------
    in_dim : int
        The tokens' width (PE-Core-G14: 1536).
    dim : int
        The output size (the projector's ``dim``, else the EEG embedding's size).
    token_layers : list of int
        The source layer of each token (a token file's ``layers``); one learned embedding per distinct layer when
        there are several.
    views, blocks, heads, routing_temperature
        See :data:`MULTI_VIEW_DEFAULTS`; ``in_dim`` must be a multiple of ``heads``.
    """

    name = "multi_view_target"
    what = "a multi-view target"
    project_batch = 256  # token files are large per image

    def __init__(self, in_dim: int, dim: int, token_layers: list[int], views: int = 12, blocks: int = 4,
                 heads: int = 8, routing_temperature: float = 0.7) -> None:
        super().__init__()
        settings = check_multi_view({"views": views, "blocks": blocks, "heads": heads,
                                     "routing_temperature": routing_temperature})
        self.in_dim = check_int("MultiViewTarget in_dim", in_dim, minimum=1)
        self.dim = check_int("MultiViewTarget dim", dim, minimum=1)
        if self.in_dim % settings["heads"]:
            raise ValueError(f"multi_view_target heads ({settings['heads']}) must divide the token width "
                             f"{self.in_dim}; choose e.g. heads=1 or {math.gcd(self.in_dim, 8)}.")
        self.views, self.blocks, self.heads = settings["views"], settings["blocks"], settings["heads"]
        self.temperature = settings["routing_temperature"]
        self.token_layers = [int(v) for v in token_layers]
        if not self.token_layers:
            raise ValueError("MultiViewTarget needs the layer of each token (token_layers); got none.")
        distinct = sorted(set(self.token_layers))
        self.register_buffer("layer_index", torch.tensor([distinct.index(v) for v in self.token_layers]),
                             persistent=False)
        self.norm = nn.LayerNorm(self.in_dim)
        self.layer_embedding = nn.Parameter(torch.zeros(len(distinct), self.in_dim)) if len(distinct) > 1 else None
        self.queries = nn.Parameter(torch.randn(self.views, self.in_dim) * 0.02)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(self.in_dim, self.in_dim) for _ in range(4))
        self.view_score = nn.Linear(self.in_dim, 1)
        self.block_score = nn.Linear(self.in_dim, 1)
        self.head = nn.Linear(self.in_dim, self.dim)

    @property
    def config(self) -> dict[str, Any]:
        """What :meth:`from_pretrained` rebuilds the module from."""
        return {"name": self.name, "in_dim": self.in_dim, "dim": self.dim, "token_layers": self.token_layers,
                "views": self.views, "blocks": self.blocks, "heads": self.heads,
                "routing_temperature": self.temperature}

    def make_views(self, tokens: torch.Tensor) -> torch.Tensor:
        """The ``(batch, views, in_dim)`` views: the queries' cross-attention over the normalised tokens."""
        if tokens.ndim != 3 or tokens.shape[1:] != (len(self.token_layers), self.in_dim):
            raise ValueError(f"The multi-view target reads token features (images, {len(self.token_layers)}, "
                             f"{self.in_dim}); got shape {tuple(tokens.shape)}. Give the token files the run was "
                             "trained with (`eegvision features ... --pooling tokens`).")
        x = self.norm(tokens.to(self.queries.dtype))
        if self.layer_embedding is not None:
            x = x + self.layer_embedding[self.layer_index]
        b, t, d = x.shape
        h, dh = self.heads, d // self.heads
        q = self.q_proj(self.queries).view(self.views, h, dh).transpose(0, 1)  # (h, V, dh)
        k = self.k_proj(x).view(b, t, h, dh).transpose(1, 2)  # (b, h, T, dh)
        v = self.v_proj(x).view(b, t, h, dh).transpose(1, 2)
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)  # (b, h, V, T)
        return self.out_proj((attention @ v).transpose(1, 2).reshape(b, self.views, d))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        views = self.make_views(tokens)
        groups = views.view(len(views), self.blocks, self.views // self.blocks, self.in_dim)
        blocks = route(groups, self.view_score(groups).squeeze(-1), self.temperature)  # (b, blocks, in_dim)
        pooled = route(blocks, self.block_score(blocks).squeeze(-1), self.temperature)
        return self.head(pooled)

    def projected_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """A mapped token file's metadata: the token keys dropped (one vector per image now)."""
        return super().projected_metadata({k: v for k, v in metadata.items() if k not in ("kind", "layers")})


def load_image_module(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """The image-side module saved in ``directory``: a :class:`MultiViewTarget`, a
    :class:`~eegvision.models.fusion_encoder.FusionEncoder` or an
    :class:`~eegvision.models.image_projector.ImageProjector`, by its ``config.json`` name."""
    from eegvision.models.fusion_encoder import FusionEncoder
    from eegvision.models.image_projector import ImageProjector

    name = read_checkpoint_config(directory).get("name")
    cls = {MultiViewTarget.name: MultiViewTarget, FusionEncoder.name: FusionEncoder}.get(name, ImageProjector)
    return cls.from_pretrained(directory, map_location)
