r"""The weights of a fused target chosen by grouped cross-validation of the ridge encoder (issue #17).

A fused target (:func:`eegvision.features.fused.fuse_targets`) concatenates L2-normalised targets
:math:`X_0, \ldots, X_m` scaled by :math:`\sqrt{w_j / W}`. Which weights suit a subject is a question for its own
training data: a layer, or pixel-level features, that the EEG does not carry only adds noise to retrieval.

For a ridge encoder the question is cheap. Ridge fits every output column independently, so the solution towards
the fused target is the concatenation of the solutions towards each (unit-row) target, scaled by
:math:`\sqrt{w_j/W}` — one multi-output ridge per penalty serves every weight vector. Cosine retrieval in the fused
space ranks candidate :math:`k` for prediction :math:`i` by

.. math::  \sum_j w_j\, \hat x_{ji}^\top x_{jk}

(the prediction's norm does not depend on the candidate and every candidate row has norm 1), so each weight
vector of the grid is scored from the per-target similarity matrices of each held-out fold.

:func:`fusion_cv` does this with the folds and solvers of :func:`eegvision.evaluation.ridge_cv.ridge_cv` (grouped
K-fold over concepts; every fold holds out whole concepts, as the test does): for every penalty, fold and weight
vector (the primary's weight fixed, each extra target's from ``grid``, so weight 0 — the primary alone — is always
a candidate) the held-out pairwise accuracy (:func:`~eegvision.evaluation.ridge_cv.pairwise_accuracy`; top-1
breaks ties, then fewer and smaller extra weights win). Pairwise accuracy is the criterion because it uses every
rank: where 200-way top-1 sits near chance, top-1 among a fold's held-out images cannot tell weights apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from eegvision.checks import check_shape
from eegvision.evaluation.linear import topk_from_scores
from eegvision.evaluation.ridge_cv import _check, default_alphas, fold_solver, pairwise_accuracy

__all__ = ["FusionCVResult", "MAX_COMBINATIONS", "fusion_cv", "weight_grid"]

#: The most weight vectors :func:`fusion_cv` scores (``len(grid) ** n_extra``).
MAX_COMBINATIONS = 4096


@dataclass
class FusionCVResult:
    """What :func:`fusion_cv` returns: the chosen ``weights`` (primary first) and ``alpha``; ``table`` holds every
    weight vector's best penalty and its mean held-out ``pairwise`` and ``top1`` (rows in grid order)."""

    weights: list[float]
    alpha: float
    pairwise: float
    top1: float
    primary_only: dict[str, float]
    table: list[dict] = field(default_factory=list)
    n_splits: int = 5
    rule: str = ("grouped CV over training concepts (held out whole); highest mean pairwise accuracy, then top-1, "
                 "then the smallest extra weights")

    def to_dict(self) -> dict:
        return {"weights": self.weights, "alpha": self.alpha, "pairwise": self.pairwise, "top1": self.top1,
                "primary_only": self.primary_only, "n_splits": self.n_splits, "rule": self.rule,
                "table": self.table}


def weight_grid(n_extra: int, grid: Sequence[float], primary_weight: float = 1.0) -> list[tuple[float, ...]]:
    """Every weight vector ``(primary_weight, w_1, ..., w_m)`` with each ``w_j`` from ``grid`` (grid order)."""
    values = sorted({float(v) for v in grid})
    if not values or min(values) < 0 or not all(np.isfinite(values)):
        raise ValueError(f"A target weight grid holds finite weights >= 0 (0 drops the target); got {list(grid)}.")
    if len(values) ** n_extra > MAX_COMBINATIONS:
        raise ValueError(f"{len(values)} weights for each of {n_extra} extra targets make {len(values) ** n_extra} "
                         f"combinations (at most {MAX_COMBINATIONS}); give fewer weights or fewer targets.")
    return [(float(primary_weight), *c) for c in itertools.product(values, repeat=n_extra)]


def fusion_cv(x: np.ndarray, targets: Sequence[np.ndarray], groups: np.ndarray, grid: Sequence[float],
              alphas: Sequence[float] | None = None, *, primary_weight: float = 1.0, n_splits: int = 5,
              chunk_rows: int = 2048) -> FusionCVResult:
    """Choose the fused target's weights and the ridge penalty by grouped cross-validation (module docstring).

    Parameters
    ----------
    x : ndarray, shape (rows, features)
        The encoder's design (standardised EEG features, one row per training condition).
    targets : list of ndarray, each (rows, dim_j)
        The primary target first, then the extra ones; rows are L2-normalised here.
    groups : ndarray, shape (rows,)
        The concept of each row.
    grid : list of float
        The weights each extra target may take (0 drops it).
    alphas : list of float, optional
        Penalties (default :func:`~eegvision.evaluation.ridge_cv.default_alphas`).
    """
    if len(targets) < 2:
        raise ValueError("fusion_cv needs the primary target and at least one extra target.")
    for j, t in enumerate(targets):
        check_shape(f"fusion_cv's target {j}", t, (len(x), "dim"), "Give one target row per row of x.")
    units = [np.asarray(t, np.float64) / np.linalg.norm(np.asarray(t, np.float64), axis=1, keepdims=True).clip(1e-12)
             for t in targets]
    y = np.concatenate(units, 1)
    groups = np.asarray(groups)
    _check(x, y, groups, n_splits)
    combos = weight_grid(len(targets) - 1, grid, primary_weight)
    w = np.asarray(combos)                                              # (combos, targets)
    bounds = np.cumsum([0] + [u.shape[1] for u in units])
    n, p = x.shape
    alphas = default_alphas(n, p) if alphas is None else [float(a) for a in alphas]
    folds, _, solver = fold_solver(x, y, groups, n_splits, chunk_rows)
    pair = np.zeros((len(combos), len(alphas)))
    top1 = np.zeros((len(combos), len(alphas)))
    for f, va in enumerate(folds):
        truth = [y[va, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        for i, pred in enumerate(solver.fold_predictions(f, va, alphas, None)):
            sims = np.stack([pred[:, a:b] @ t.T for (a, b), t in zip(zip(bounds[:-1], bounds[1:]), truth)])
            for c in range(len(combos)):
                s = np.tensordot(w[c], sims, axes=1)
                pair[c, i] += pairwise_accuracy(s) / n_splits
                top1[c, i] += topk_from_scores(s.astype(np.float32), (1,))["top1"] / n_splits
    best_alpha = [max(range(len(alphas)), key=lambda i: (pair[c, i], top1[c, i], -i)) for c in range(len(combos))]
    table = [{"weights": list(combos[c]), "alpha": alphas[best_alpha[c]], "pairwise": float(pair[c, best_alpha[c]]),
              "top1": float(top1[c, best_alpha[c]])} for c in range(len(combos))]
    chosen = max(range(len(combos)), key=lambda c: (round(table[c]["pairwise"], 12), round(table[c]["top1"], 12),
                                                     -sum(combos[c][1:]), -c))
    return FusionCVResult(weights=list(combos[chosen]), alpha=table[chosen]["alpha"],
                          pairwise=table[chosen]["pairwise"], top1=table[chosen]["top1"],
                          primary_only=({k: table[0][k] for k in ("alpha", "pairwise", "top1")}
                                        if not any(combos[0][1:]) else {}), table=table,
                          n_splits=n_splits)
