r"""Encoding-model identification: a linear baseline that predicts the EEG from the image, not the reverse.

Decoders such as ridge map EEG to image features and retrieve by cosine in feature space. When the brain
response depends on a few directions of a high-dimensional feature space, that cosine ranks candidates partly by
how large their brain-visible part is, which the EEG says nothing about. The classic alternative of visual
neuroscience (Kay et al., *Nature* 2008; Naselaris et al., *NeuroImage* 2011) fits an **encoding model**,
features → EEG, and identifies the seen image as the candidate whose *predicted* response correlates best with
the measured one:

.. math::  \hat B(\alpha) = \arg\min_B \lVert (X - \bar x) - (Y - \bar y) B \rVert_F^2 + \alpha\, s_{\max}^2 \lVert B\rVert_F^2,
           \qquad \mathrm{score}(i, j) = \cos\bigl(x_i - \bar x,\; (y_j - \bar y)\hat B\bigr),

with :math:`X` the repetition-averaged, time-binned, standardised epochs of the training conditions (as for
:func:`~eegvision.evaluation.linear.ridge_retrieval`), :math:`Y` their image features and the penalty relative
to the largest squared singular value of :math:`Y - \bar y`. One eigendecomposition of the
:math:`D \times D` feature Gram matrix serves every penalty. :math:`\alpha` is chosen on 20 % of the training
*concepts* held out (by the identification top-1 among one image per held-out concept, as the test has one
image per concept; ties broken by the mean true-pair score); then the model is refit on all training
conditions.

This is an evaluation-only baseline: its scores compare EEG with predicted EEG, so it gives no embedding in the
vision model's space (nothing for the diffusion prior or a generator). The generalisation benchmark reports it
beside ridge to show what a linear model can reach on each simulator family.
"""

from __future__ import annotations

import numpy as np

from eegvision.evaluation.linear import ranks_from_scores

__all__ = ["encoding_identification"]


def encoding_identification(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, groups: np.ndarray,
    seed: int = 0, alphas: np.ndarray | None = None, return_ranks: bool = False,
) -> dict:
    """Fit the linear encoding model and identify each test image among the test candidates (module docstring).

    Parameters
    ----------
    x_train, x_test
        ``(n, n_features)`` flattened EEG (averaged over repetitions, time-binned).
    y_train, y_test
        ``(n, dim)`` image features of the training conditions and of the test candidates.
    groups
        ``(n_train,)`` concept of each training row (the validation rows are whole held-out concepts).
    seed
        Draws the validation concepts.
    alphas
        Penalties relative to the largest squared singular value of the centred features
        (default ``logspace(-4, 1, 11)``).
    return_ranks
        Also return ``ranks``, each test image's 0-based rank among the candidates (ties count against it).

    Returns
    -------
    dict with ``top1``, ``top5`` (test), ``alpha`` (chosen) and ``val_top1`` (and ``ranks``).
    """
    x_train = np.asarray(x_train, np.float64)
    x_test = np.asarray(x_test, np.float64)
    y_train = np.asarray(y_train, np.float64)
    y_test = np.asarray(y_test, np.float64)
    groups = np.asarray(groups)
    if len(x_train) != len(y_train) or len(x_train) != len(groups) or len(x_test) != len(y_test):
        raise ValueError(f"encoding_identification: rows differ: x_train {x_train.shape}, y_train {y_train.shape}, "
                         f"groups {groups.shape}, x_test {x_test.shape}, y_test {y_test.shape}; pass one row per "
                         "condition in each.")
    concepts = np.unique(groups)
    if len(concepts) < 2:
        raise ValueError("encoding_identification needs at least 2 training concepts to hold some out for "
                         f"choosing the penalty; got {len(concepts)}.")
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-12
    xtr, xte = (x_train - mu) / sd, (x_test - mu) / sd
    rel = np.logspace(-4, 1, 11) if alphas is None else np.asarray(alphas, np.float64)
    rng = np.random.default_rng(seed)
    val = np.isin(groups, rng.choice(concepts, size=max(1, len(concepts) // 5), replace=False))
    # score the penalty like the test: one image per held-out concept (its first), so that candidates are
    # distinct concepts rather than near-duplicate images of one concept
    first = np.zeros(len(groups), bool)
    first[np.unique(groups, return_index=True)[1]] = True
    probe = val & first

    def fit(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Eigen-decomposition of the centred feature Gram matrix and ``V^T Y^T X`` of ``rows``."""
        ym, xm = y_train[rows].mean(0), xtr[rows].mean(0)
        yc = y_train[rows] - ym
        s2, v = np.linalg.eigh(yc.T @ yc)
        return ym, xm, np.clip(s2, 0.0, None), v, v.T @ (yc.T @ (xtr[rows] - xm))

    def scores(model: tuple, a: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ym, xm, s2, v, vtyx = model
        pred = ((y - ym) @ v) @ (vtyx / (s2 + a * s2.max())[:, None])   # predicted (centred) EEG per candidate
        return _cosine(x - xm, pred)

    model = fit(~val)
    best, best_key = rel[0], (-1.0, -np.inf)
    for a in rel:
        sc = scores(model, a, xtr[probe], y_train[probe])
        key = (float((ranks_from_scores(sc) < 1).mean()), float(np.mean(np.diag(sc))))
        if key > best_key:
            best, best_key = a, key
    ranks = ranks_from_scores(scores(fit(np.ones(len(xtr), bool)), best, xte, y_test))
    out = {"top1": float((ranks < 1).mean()), "top5": float((ranks < 5).mean()), "alpha": float(best),
           "val_top1": float(best_key[0])}
    return {**out, "ranks": ranks} if return_ranks else out


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return a @ b.T
