"""UBP's uncertainty-aware blur level per training sample (the training side of the blur prior).

Source: Wu et al., CVPR 2025 (arXiv 2503.04207); HaitaoWuTJU/Uncertainty-aware-Blur-Prior commit 89d8b83,
``main.py`` ``PLModel.forward`` / ``training_step`` and ``base/data_eeg.py`` ``__getitem__``. What the code does:

1. the loss is the plain symmetric CLIP loss -- **UBP does not weight the loss per sample**; its uncertainty
   chooses, per sample, which blurred version of the image is the target;
2. each step, ``s = diag(logits)``, the matched-pair logits ``logit_scale * eeg_z @ img_z.T`` (image rows
   unit-norm), updates a running similarity per training sample, ``r <- gamma * s + (1 - gamma) * r``
   (``gamma = 0.3``, ``r`` starts at 1);
3. over the batch's updated ``r``: ``mean +/- z * std`` (``std`` with ``ddof=1``, ``z`` the normal quantile
   ``1 - alpha / 2``, ``alpha = 0.05``); a sample whose *current* ``s`` is above the upper bound gets the
   ``low`` blur (kernel 51 - 6), below the lower bound the ``high`` blur (51 + 6), else ``medium`` (51);
4. the levels are handed to the dataset at the end of the epoch, so they take effect from the next epoch
   (UBP assigns its level array to the dataset object; after the first epoch both share one array, so a
   level may change within an epoch there -- here the levels change only at :meth:`end_epoch`).

The image side (features of the three blurred versions) is :class:`eegvision.features.image_priors.ImagePrior`
``("blur")``, which writes one feature file per level.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import torch

from eegvision.checks import check_range
from eegvision.features.image_priors import UBP_LEVELS

LOW, MEDIUM, HIGH = 0, 1, 2

__all__ = ["HIGH", "LOW", "MEDIUM", "BlurLevels", "UBPBlurSchedule", "select_blur_targets", "ubp_blur_levels"]


@dataclass
class BlurLevels:
    """Result of one UBP update: ``levels`` (0 low, 1 medium, 2 high blur) and the updated running similarity."""

    levels: torch.Tensor
    running: torch.Tensor
    lower: float
    upper: float


def ubp_blur_levels(diag_logits: torch.Tensor, running: torch.Tensor, gamma: float = 0.3,
                    alpha: float = 0.05) -> BlurLevels:
    """UBP's per-sample blur level from the matched-pair logits of a batch.

    Parameters
    ----------
    diag_logits : tensor (batch,)
        ``logits[i, i]`` of the batch's contrastive logits (detached).
    running : tensor (batch,)
        The samples' running similarities (1.0 for a sample never seen).
    gamma : float
        Weight of the new value in the running similarity (UBP 0.3).
    alpha : float
        Two-sided level of the confidence interval (UBP 0.05, z = 1.96).
    """
    check_range("gamma", gamma, 0.0, 1.0, include_high=True)
    check_range("alpha", alpha, 0.0, 1.0, include_low=False, include_high=False)
    s = diag_logits.detach().double().flatten()
    if s.numel() < 2:
        raise ValueError(f"UBP's confidence interval needs a batch of at least 2 samples; got {s.numel()}")
    r = gamma * s + (1 - gamma) * running.detach().double().flatten().to(s.device)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    mean, std = r.mean(), r.std(unbiased=True)
    upper, lower = float(mean + z * std), float(mean - z * std)
    levels = torch.full_like(s, MEDIUM, dtype=torch.long)
    levels[s > upper] = LOW
    levels[s < lower] = HIGH
    return BlurLevels(levels, r.float(), lower, upper)


class UBPBlurSchedule:
    """Running similarities and blur levels of every training sample (dataset index), as UBP keeps them.

    Use: ``levels = schedule.levels[idx]`` picks the targets of a batch (:func:`select_blur_targets`);
    after the loss, ``schedule.update(idx, logits.diagonal())``; at the end of each epoch ``schedule.end_epoch()``.
    """

    def __init__(self, n_samples: int, gamma: float = 0.3, alpha: float = 0.05):
        self.gamma, self.alpha = gamma, alpha
        self.running = torch.ones(n_samples)
        self.pending = torch.full((n_samples,), MEDIUM, dtype=torch.long)
        self.levels = self.pending.clone()

    def update(self, indices: torch.Tensor, diag_logits: torch.Tensor) -> BlurLevels:
        idx = torch.as_tensor(indices, dtype=torch.long).cpu()
        out = ubp_blur_levels(diag_logits.cpu(), self.running[idx], self.gamma, self.alpha)
        self.running[idx] = out.running
        self.pending[idx] = out.levels
        return out

    def end_epoch(self) -> dict[str, int]:
        """Make this epoch's levels the ones used next epoch; returns how many samples each level has."""
        self.levels = self.pending.clone()
        return {name: int((self.levels == i).sum()) for i, name in enumerate(UBP_LEVELS)}


def select_blur_targets(targets: torch.Tensor, indices: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Rows ``targets[levels[k], indices[k]]``: ``targets`` (3, n_images, dim) stacks the low/medium/high files."""
    if targets.ndim != 3 or targets.shape[0] != len(UBP_LEVELS):
        raise ValueError(f"targets must stack the low, medium and high blur features as (3, n_images, dim); got "
                         f"shape {tuple(targets.shape)}")
    return targets[levels.to(targets.device), indices.to(targets.device)]
