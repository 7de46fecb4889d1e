"""Contrastive and regression losses for aligning brain embeddings with CLIP features.

The building blocks are:

* :class:`LogitScale` — a learnable temperature. The default (CLIP-style) stores
  ``log(1/τ)`` and uses ``exp(log_scale)`` clamped to at most 100, so the effective scale is
  always positive and bounded. ``mode="raw"`` reproduces the reference (ATM / LAVIS
  ``ClipLoss``) which multiplies the logits by the parameter *as is* (it can become negative,
  which inverts the ranking; ``atm.md`` §6.2 item 10).
* :func:`info_nce` — symmetric InfoNCE (CLIP loss). Embeddings are L2-normalised by default;
  ``normalize=False`` uses raw embeddings like the reference. With ``concepts`` given
  (same-concept positives), every pair of samples sharing a concept counts as a positive:
  the target of row *i* is uniform over all columns *j* with ``concepts[j] == concepts[i]``
  (soft targets, cross-entropy against that distribution). When no concept occurs twice in
  the batch this is exactly the standard one-hot InfoNCE.
* :class:`Objective` — the weighted mixes used for training:

  ``retrieval``
      ``0.99 · InfoNCE(eeg, image) + 0.01 · InfoNCE(eeg, text of the sample's concept)``
      (ATM ``ATMS_retrieval.py``). Targets are the *normalised* CLIP features. Without text
      features the image term gets weight 1.
  ``generation``
      ``10 · (0.9 · MSE(eeg, image) + 0.1 · InfoNCE(eeg, image))`` (ATM
      ``ATMS_reconstruction.py``). Targets are the *raw* (unnormalised) image embeddings,
      because the diffusion prior and IP-Adapter consume raw embeddings.

* :func:`mmd2` / :func:`multi_kernel_mmd` — the squared maximum mean discrepancy between two sets of embeddings
  with a sum of Gaussian kernels (DAN, Long et al. 2015), and :func:`subject_mmd`, the mean MMD between each
  subject's embeddings and the other subjects' in a batch. SAMGA (arXiv 2604.17782) aligns EEG and image
  embeddings coarsely with MMD before InfoNCE; SVTL (arXiv 2609.36971) adds MMD to align subjects. Neither's code
  was public, so the kernel family and bandwidths here are DAN's recipe, stated in :data:`MMD_MULTIPLIERS`.

  ``reference=True`` switches to the reference's exact ``ClipLoss`` arithmetic: raw logit
  scale (initialised at ``log(1/0.07) ≈ 2.66`` and used without ``exp``) and raw EEG embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OBJECTIVES = ("retrieval", "generation")

#: Loss weights of each objective: (image InfoNCE, text InfoNCE, MSE, overall factor).
OBJECTIVE_WEIGHTS: dict[str, tuple[float, float, float, float]] = {
    "retrieval": (0.99, 0.01, 0.0, 1.0),
    "generation": (0.1, 0.0, 0.9, 10.0),
}


#: How the learnable logit scale maps its parameter to the scale (:class:`LogitScale`).
LOGIT_SCALE_MODES = ("exp", "raw", "softplus")


class LogitScale(nn.Module):
    """Learnable inverse temperature of the contrastive logits.

    Parameters
    ----------
    init_temperature : float
        Initial temperature τ; the parameter starts at ``log(1/τ)`` (CLIP uses 0.07).
    mode : {"exp", "raw", "softplus"}
        ``"exp"`` (default): scale = ``exp(log_scale)`` clamped to ``max_scale``.
        ``"raw"``: scale = the parameter itself (reference behaviour, unclamped).
        ``"softplus"``: scale = ``softplus(log_scale)`` (UBP's ClipLoss: the parameter starts at ``log(1/τ)``,
        so the scale starts near 2.7 for τ = 0.07), unclamped.
    max_scale : float
        Upper clamp of the exponentiated scale (CLIP uses 100).
    """

    def __init__(self, init_temperature: float = 0.07, mode: str = "exp", max_scale: float = 100.0) -> None:
        super().__init__()
        self.mode = check_choice("logit_scale_mode", mode, LOGIT_SCALE_MODES)
        check_positive("init_temperature", init_temperature)
        self.max_scale = float(max_scale)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature), dtype=torch.float32))

    def forward(self) -> Tensor:
        if self.mode == "raw":
            return self.log_scale
        if self.mode == "softplus":
            return F.softplus(self.log_scale)
        return self.log_scale.exp().clamp(max=self.max_scale)

    @property
    def temperature(self) -> float:
        """Current temperature 1/scale (a float, for logging)."""
        with torch.no_grad():
            return float(1.0 / self.forward())


def info_nce(
    a: Tensor,
    b: Tensor,
    scale: Tensor | float,
    *,
    concepts: Tensor | None = None,
    normalize: bool | str = True,
) -> Tensor:
    """Symmetric InfoNCE between two batches of paired embeddings.

    Parameters
    ----------
    a, b : Tensor
        ``(batch, dim)`` embeddings; row *i* of ``a`` is paired with row *i* of ``b``.
    scale : Tensor or float
        Multiplier of the similarity logits (inverse temperature).
    concepts : Tensor, optional
        ``(batch,)`` integer concept labels. When given, samples sharing a concept are all
        positives for each other (soft targets uniform over positives); otherwise only the
        diagonal is positive and duplicates count as negatives (reference behaviour).
    normalize : bool or "image"
        L2-normalise ``a`` and ``b`` before the dot product (cosine logits); ``"image"``: ``b`` only (the
        targets; UBP's loss keeps the EEG embedding ``a`` raw).

    Returns
    -------
    Tensor
        Scalar: ``(CE(logits, targets) + CE(logits.T, targets.T)) / 2``.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"info_nce needs two (batch, dim) tensors of equal shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}.")
    a = a.float()
    b = b.float()
    if normalize:
        if normalize != "image":
            a = F.normalize(a, dim=-1)
        b = F.normalize(b, dim=-1)
    logits = scale * (a @ b.T)
    if concepts is None:
        labels = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    positives = (concepts[:, None] == concepts[None, :]).float()
    targets = positives / positives.sum(dim=1, keepdim=True)  # symmetric mask → same targets both ways
    loss_a = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_b = -(targets * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_a + loss_b)


def reference_clip_loss(eeg: Tensor, features: Tensor, logit_scale: Tensor) -> Tensor:
    """The reference's LAVIS ``ClipLoss`` (world size 1): raw embeddings, raw logit scale.

    ``logits = s · E @ F.T`` with ``s`` used without ``exp``; in-batch duplicates are negatives.
    Kept for fidelity experiments; prefer :func:`info_nce` with an exponentiated scale.
    """
    return info_nce(eeg, features, logit_scale, normalize=False)


#: Bandwidth multipliers of :func:`multi_kernel_mmd`: ``sigma = m * median pairwise distance`` for each ``m``
#: (five kernels from a quarter to four times the median-heuristic bandwidth, as DAN's multi-kernel MMD).
MMD_MULTIPLIERS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


def mmd2(x: Tensor, y: Tensor, bandwidths: tuple[float, ...] | list[float] | Tensor) -> Tensor:
    """Squared MMD (biased V-statistic) between the rows of ``x`` ``(n, d)`` and ``y`` ``(m, d)``.

    With :math:`k(a, b) = \\sum_\\sigma \\exp(-\\lVert a - b\\rVert^2 / 2\\sigma^2)` over ``bandwidths``::

        MMD^2 = mean_{i,j} k(x_i, x_j) + mean_{i,j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)

    (diagonal terms included, so the value is never negative).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
        raise ValueError(f"mmd2 needs two non-empty (rows, dim) tensors of the same dim, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}.")
    x, y = x.float(), y.float()
    sig = torch.as_tensor(bandwidths, dtype=torch.float32, device=x.device).reshape(-1)
    if not bool((sig > 0).all()):
        raise ValueError(f"MMD bandwidths must be positive, got {sig.tolist()}.")
    gamma = 1.0 / (2.0 * sig**2)

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        d2 = torch.cdist(a, b).pow(2)
        return torch.exp(-d2[None] * gamma[:, None, None]).sum(0).mean()

    return kernel(x, x) + kernel(y, y) - 2.0 * kernel(x, y)


def median_distance(x: Tensor, y: Tensor) -> Tensor:
    """Median of the distances between distinct rows of ``x`` and ``y`` pooled (detached): the base bandwidth of
    the median heuristic (Gretton et al. 2012)."""
    z = torch.cat([x, y]).detach().float()
    d = torch.cdist(z, z)
    off = d[~torch.eye(len(z), dtype=torch.bool, device=z.device)]
    return off.median().clamp_min(1e-6)


def multi_kernel_mmd(x: Tensor, y: Tensor, multipliers: tuple[float, ...] = MMD_MULTIPLIERS) -> Tensor:
    """:func:`mmd2` with bandwidths ``m * median_distance(x, y)`` for ``m`` in ``multipliers``."""
    base = median_distance(x, y)
    return mmd2(x, y, base * torch.as_tensor(multipliers, dtype=torch.float32, device=base.device))


def subject_mmd(emb: Tensor, subjects: Tensor, multipliers: tuple[float, ...] = MMD_MULTIPLIERS) -> Tensor:
    """Mean over the subjects of a batch of the MMD between that subject's embeddings and all other subjects'
    (subjects with fewer than 2 samples, or a batch of one subject, contribute nothing: the result is 0)."""
    total, count = emb.new_zeros((), dtype=torch.float32), 0
    for s in torch.unique(subjects):
        mine = subjects == s
        if int(mine.sum()) >= 2 and int((~mine).sum()) >= 2:
            total = total + multi_kernel_mmd(emb[mine], emb[~mine], multipliers)
            count += 1
    return total / max(count, 1)


@dataclass
class LossOutput:
    """Total loss and its named parts (detached parts are for logging)."""

    loss: Tensor
    parts: dict[str, Tensor]


class Objective(nn.Module):
    """The training objective: a weighted mix of InfoNCE (image, text) and MSE (image).

    Parameters
    ----------
    name : {"retrieval", "generation"}
        Which mix (see the module docstring for weights and target normalisation).
    init_temperature : float
        Initial temperature of the learnable logit scale.
    logit_scale_mode : {"exp", "raw", "softplus"}
        See :class:`LogitScale`.
    normalize : bool or "image"
        L2-normalise embeddings inside the InfoNCE terms (cosine logits); ``"image"``: the targets only.
    same_concept_positives : bool
        Treat samples of the same concept in a batch as positives (see :func:`info_nce`).
    reference : bool
        Reference mode: raw logit scale and raw embeddings (overrides the two options above).
    weights : tuple, optional
        Override ``(image_nce, text_nce, mse, factor)``.
    """

    def __init__(
        self,
        name: str = "retrieval",
        *,
        init_temperature: float = 0.07,
        logit_scale_mode: str = "exp",
        normalize: bool | str = True,
        same_concept_positives: bool = False,
        reference: bool = False,
        weights: tuple[float, float, float, float] | None = None,
    ) -> None:
        super().__init__()
        self.name = check_choice("objective", name, OBJECTIVES)
        if reference:
            logit_scale_mode, normalize = "raw", False
        self.logit_scale = LogitScale(init_temperature, mode=logit_scale_mode)
        self.normalize = normalize
        self.same_concept_positives = same_concept_positives
        self.weights = tuple(weights) if weights is not None else OBJECTIVE_WEIGHTS[name]

    @property
    def expects_normalized_targets(self) -> bool:
        """Normalised CLIP features for retrieval, raw ones for the generation encoder."""
        return self.name == "retrieval"

    def forward(
        self,
        eeg: Tensor,
        image: Tensor,
        text: Tensor | None = None,
        concepts: Tensor | None = None,
    ) -> LossOutput:
        """Loss of a batch.

        Parameters
        ----------
        eeg : Tensor
            ``(batch, dim)`` encoder outputs.
        image : Tensor
            ``(batch, dim)`` image features of each sample's image.
        text : Tensor, optional
            ``(batch, dim)`` text features of each sample's concept.
        concepts : Tensor, optional
            ``(batch,)`` concept labels (used only with ``same_concept_positives``).
        """
        w_img, w_txt, w_mse, factor = self.weights
        scale = self.logit_scale()
        pos = concepts if self.same_concept_positives else None
        parts: dict[str, Tensor] = {}
        total = eeg.new_zeros((), dtype=torch.float32)
        if text is None:
            w_img, w_txt = w_img + w_txt, 0.0  # no text features: the image term takes the text weight
        if w_img:
            parts["image_nce"] = info_nce(eeg, image, scale, concepts=pos, normalize=self.normalize)
            total = total + w_img * parts["image_nce"]
        if w_txt and text is not None:
            parts["text_nce"] = info_nce(eeg, text, scale, concepts=pos, normalize=self.normalize)
            total = total + w_txt * parts["text_nce"]
        if w_mse:
            parts["mse"] = F.mse_loss(eeg.float(), image.float())
            total = total + w_mse * parts["mse"]
        return LossOutput(loss=factor * total, parts={k: v.detach() for k, v in parts.items()})
from eegvision.checks import check_choice, check_positive


def weighted_info_nce(pairs: list[tuple[Tensor, Tensor]], weights: list[float], scale: Tensor | float, *,
                      concepts: Tensor | None = None, normalize: bool | str = True) -> Tensor:
    """:math:`\\sum_j w_j\\,\\mathrm{InfoNCE}(a_j, b_j)` over the ``(a_j, b_j)`` pairs (:func:`info_nce` each, the
    same ``scale``, ``concepts`` and ``normalize``): the extra heads' part of the ``heads`` target mode."""
    if len(pairs) != len(weights) or not pairs:
        raise ValueError(f"weighted_info_nce needs one weight per pair; got {len(pairs)} pairs, {len(weights)} weights.")
    total = None
    for (a, b), w in zip(pairs, weights):
        term = float(w) * info_nce(a, b, scale, concepts=concepts, normalize=normalize)
        total = term if total is None else total + term
    return total


@dataclass
class TargetHeads:
    """The extra targets of the ``heads`` mode (``FitConfig.target_mode``): each one's ``(n_train_images, d_j)``
    training image features, its weight, and the primary objective's weight. The module adds one linear head
    ``embedding -> d_j`` per target (:class:`~eegvision.training.module.ContrastiveModule`); the batch loss is
    ``primary_weight * objective + weighted_info_nce(heads' outputs, targets)`` with the objective's scale."""

    features: list[Tensor]
    weights: list[float]
    primary_weight: float = 1.0

    @classmethod
    def from_features(cls, features: list[Any], weights: list[float], primary_weight: float = 1.0) -> "TargetHeads":
        """From :class:`~eegvision.features.files.Features` (their image rows) and weights."""
        return cls([f.image.float() for f in features], [float(w) for w in weights], float(primary_weight))

    @property
    def dims(self) -> list[int]:
        return [int(f.shape[1]) for f in self.features]
