r"""Learned fusion of layer targets (``FitConfig.target_mode="learned"``), SAMGA's subject-aware layer weights.

SAMGA (arXiv 2604.17782; ``anchors.md`` §1, §7) aligns the EEG embedding with several intermediate layers of the
vision model (InternViT-6B blocks 20-36) fused by *learned* weights that a subject-aware router sets in training
only, with subject and layer dropout; inference is subject-agnostic. Its code is not public, so the form below is
ours. The ``L`` targets are the primary features and ``FitConfig.targets`` in that order, each row L2-normalised
(:func:`stack_layer_targets`; the layers must share one width, since they are added); the fused target of
training sample :math:`b` (image :math:`i_b`, subject :math:`s_b`) is

.. math::  t_b = \sum_{l=1}^{L} w_{b,l}\, F_l[i_b], \qquad
           w_b = \mathrm{softmax}(\theta + m_b\, \Delta_{s_b}),

with learnable shared logits :math:`\theta \in \mathbb R^L` (zero at the start: equal weights) and the router, a
learnable per-subject offset table :math:`\Delta \in \mathbb R^{S \times L}` (zero at the start) indexed by the
training subject's id. In training:

* **subject dropout** (probability ``subject_dropout`` = p): :math:`m_b = 0` with probability p, else 1 (one draw
  per sample, ``torch.rand(B) < p``), so the shared logits also learn to fuse alone;
* **layer dropout** (probability ``layer_dropout`` = q): each weight :math:`w_{b,l}` is zeroed with probability q
  (``torch.rand(B, L) < q``, drawn after the subject draw) and the sample's remaining weights are divided by their
  sum; a sample that would lose every layer keeps them all.

Draws are made only when p (or q) is above 0, from torch's global generator, which the training module reseeds per
batch (a resumed run draws the same masks). Unseen subjects (id -1) get no offset. **Evaluation** (``eval()``, and
validation, test embeddings, the recorded weights): :math:`w = \mathrm{softmax}(\theta)` for every subject, no
dropout; the test images' fused features are :math:`\sum_l w_l F^{test}_l`. The weights and logits are module
parameters, so checkpoints save and restore them with the encoder; the unit records the selected epoch's weights
in ``fusion.json`` and the fused test features in ``fusion_test.safetensors``.

The gradient reaches :math:`\theta` and :math:`\Delta` through the targets of the training loss (the InfoNCE
objective, or the coarse MMD of ``mmd_epochs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eegvision.checks import check_range

__all__ = ["FusionTargets", "LayerFusion", "check_fusion_config", "fusion_record", "save_fusion", "stack_layer_targets"]


class LayerFusion(nn.Module):
    """Softmax weights over ``n_layers`` targets with a per-subject offset in training (module docstring).

    Parameters
    ----------
    n_layers : int
    n_subjects : int
        Rows of the router's offset table (the training subjects' ids ``0 .. n_subjects - 1``).
    subject_dropout, layer_dropout : float
        p and q of the module docstring, in ``[0, 1)``.
    """

    def __init__(self, n_layers: int, n_subjects: int = 1, subject_dropout: float = 0.0,
                 layer_dropout: float = 0.0) -> None:
        super().__init__()
        self.subject_dropout = check_range("fusion_subject_dropout", subject_dropout, 0.0, 1.0)
        self.layer_dropout = check_range("fusion_layer_dropout", layer_dropout, 0.0, 1.0)
        self.logits = nn.Parameter(torch.zeros(int(n_layers)))
        self.subject_offsets = nn.Parameter(torch.zeros(max(1, int(n_subjects)), int(n_layers)))

    @property
    def n_layers(self) -> int:
        return int(self.logits.shape[0])

    def shared_weights(self) -> Tensor:
        """``(L,)`` the subject-agnostic weights ``softmax(logits)`` (evaluation)."""
        return torch.softmax(self.logits, dim=-1)

    def subject_weights(self) -> Tensor:
        """``(S, L)`` each training subject's weights without dropout, ``softmax(logits + offset_s)`` (recorded
        for inspection; never used at evaluation)."""
        return torch.softmax(self.logits[None] + self.subject_offsets, dim=-1)

    def weights(self, subject_ids: Tensor | None, batch: int) -> Tensor:
        """``(batch, L)``: the training weights of each sample (offsets, subject and layer dropout) in training
        mode with ids; the shared weights for every sample otherwise."""
        if not self.training or subject_ids is None:
            return self.shared_weights().expand(batch, -1)
        ids = subject_ids.long().to(self.logits.device)
        seen = (ids >= 0) & (ids < self.subject_offsets.shape[0])
        keep = seen.to(self.logits.dtype)
        if self.subject_dropout > 0:
            keep = keep * (torch.rand(batch, device=ids.device) >= self.subject_dropout).to(keep.dtype)
        offsets = self.subject_offsets[ids.clamp(0, self.subject_offsets.shape[0] - 1)] * keep[:, None]
        w = torch.softmax(self.logits[None] + offsets, dim=-1)
        if self.layer_dropout > 0:
            dropped = torch.rand(batch, self.n_layers, device=ids.device) < self.layer_dropout
            dropped = dropped & ~dropped.all(dim=-1, keepdim=True)   # a sample keeps at least its layers
            w = w * (~dropped).to(w.dtype)
            w = w / w.sum(dim=-1, keepdim=True)
        return w

    def forward(self, features: Tensor, subject_ids: Tensor | None = None) -> Tensor:
        """Fuse ``features`` ``(L, batch, dim)`` (each layer's rows of the batch's images) into ``(batch, dim)``."""
        if features.ndim != 3 or features.shape[0] != self.n_layers:
            raise ValueError(f"LayerFusion fuses (layers={self.n_layers}, batch, dim) features; got shape "
                             f"{tuple(features.shape)}.")
        w = self.weights(subject_ids, features.shape[1]).to(features.dtype)
        return torch.einsum("bl,lbd->bd", w, features)

    def fuse_shared(self, features: Tensor) -> Tensor:
        """``(L, n, dim) -> (n, dim)`` with the shared weights (evaluation), whatever the mode."""
        return torch.einsum("l,lnd->nd", self.shared_weights().to(features.dtype), features)


@dataclass(frozen=True)
class FusionTargets:
    """The layer targets of a learned fusion: ``train`` ``(L, n_train, dim)``, ``test`` ``(L, n_test, dim)``
    (rows L2-normalised) and a name per layer (the primary first)."""

    train: Tensor
    test: Tensor
    names: tuple[str, ...]


def stack_layer_targets(primary: tuple[Any, Any], extras: list[tuple[Any, Any]], names: list[str]) -> FusionTargets:
    """Stack the primary and extra ``(train, test)`` features (objects with ``.image``) into :class:`FusionTargets`,
    each row L2-normalised; ``ValueError`` when the layers' widths differ (they are added, and eegvision has no
    per-layer projection)."""
    layers = [primary, *extras]
    dims = [int(tr.image.shape[1]) for tr, _ in layers]
    if len(set(dims)) > 1:
        shown = ", ".join(f"{n}: {d}" for n, d in zip(names, dims))
        raise ValueError(f"target_mode='learned' adds the layers' features, so they need one width; got {shown}. "
                         "Give layers of one width (e.g. blocks of one vision model), or concatenate them with "
                         "--target-mode fused.")
    train = torch.stack([F.normalize(tr.image.float(), dim=-1) for tr, _ in layers])
    test = torch.stack([F.normalize(te.image.float(), dim=-1) for _, te in layers])
    return FusionTargets(train, test, tuple(names))


def fusion_record(fusion: LayerFusion, names: tuple[str, ...], subject_ids: dict[str, int]) -> dict[str, Any]:
    """The JSON record of a trained fusion: the shared weights (used at evaluation), the logits, and each training
    subject's weights and offsets (training only)."""
    with torch.no_grad():
        shared = fusion.shared_weights().cpu().tolist()
        per_subject = fusion.subject_weights().cpu()
        offsets = fusion.subject_offsets.detach().cpu()
    subjects = sorted(subject_ids, key=subject_ids.get)
    return {"layers": list(names), "weights": shared, "logits": fusion.logits.detach().cpu().tolist(),
            "subject_weights": {s: per_subject[subject_ids[s]].tolist() for s in subjects},
            "subject_offsets": {s: offsets[subject_ids[s]].tolist() for s in subjects},
            "subject_dropout": fusion.subject_dropout, "layer_dropout": fusion.layer_dropout,
            "evaluation": "the shared weights (softmax of the logits) fuse the test images' features for every "
                          "subject; the subject weights were used in training only"}


def check_fusion_config(config: Any, closed_form: bool) -> None:
    """``FitConfig.validate``'s part for ``target_mode="learned"`` and its dropout options (``closed_form``: whether
    ``config.encoder`` is solved in closed form)."""
    for name in ("fusion_subject_dropout", "fusion_layer_dropout"):
        setattr(config, name, check_range(name, getattr(config, name), 0.0, 1.0,
                                          hint="It is a probability per training sample; 0 turns it off."))
        if getattr(config, name) and config.target_mode != "learned":
            raise ValueError(f"{name} is a dropout of the learned layer fusion; set target_mode='learned' "
                             f"(--target-mode learned) or drop --{name.replace('_', '-')}.")
    if config.target_mode != "learned":
        return
    if closed_form or config.encoder == "auto":
        why = "may keep its ridge candidate" if config.encoder == "auto" else "is solved in closed form"
        raise ValueError(f"target_mode='learned' learns the layer weights by gradient with the encoder; encoder "
                         f"{config.encoder!r} {why}. Choose a gradient-trained encoder (e.g. --encoder eegproject), "
                         "or fix the weights with --target-mode fused.")
    refused = [name for name, bad in (("ensemble > 1", config.ensemble > 1), ("blur_levels", bool(config.blur_levels)),
                                      ("objective='generation'", config.objective != "retrieval"))
               if bad]
    if refused:
        raise ValueError(f"target_mode='learned' is not combined with {', '.join(refused)} yet; drop them, or use "
                         "--target-mode fused.")


def save_fusion(folder: Any, fusion: LayerFusion, targets: FusionTargets, subject_ids: dict[str, int],
                test_feats: Any) -> Any:
    """Write a unit's ``fusion.json`` (:func:`fusion_record`) and ``fusion_test.safetensors`` (the test images'
    features fused with the shared weights, the primary's text features beside them) into ``folder`` (a
    :class:`~eegvision.training.rundir.UnitFolder`); return ``test_feats`` with the fused image features."""
    import dataclasses

    from eegvision.features.files import save_features

    with torch.no_grad():
        fused = fusion.cpu().fuse_shared(targets.test.float().cpu()).contiguous()
    meta = dict(test_feats.metadata)
    meta.update(layer="learned fusion of " + ", ".join(Path(n).name for n in targets.names), split="test")
    meta.pop("normalized", None)
    meta.pop("eegvision_version", None)
    path = save_features(folder.fused_test_features_path, fused, test_feats.text, concepts=test_feats.concepts,
                         **meta)
    folder.write_fusion(fusion_record(fusion, targets.names, subject_ids))
    return dataclasses.replace(test_feats, image=fused, path=path, metadata={**test_feats.metadata, **meta})
