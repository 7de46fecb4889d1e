r"""Linear baselines for zero-shot retrieval: ridge and whitened (MVNN) ridge on repetition-averaged epochs.

These are the reference decoders every recipe is compared with (the simulator records them next to its
known-model decoders; the benchmark runs them on any THINGS-EEG2-shaped data). They live here rather than in
``sim/`` because nothing in them is simulated: they read epochs and image features.

Ridge
-----
Epochs are averaged over repetitions, decimated in time by bin means (:func:`decimate_mean`; 250 Hz → 25 Hz with
``decim=10``), standardised per feature with the training mean and std, and flattened to
:math:`x \in \mathbb R^{C T'}`. Ridge regression to the L2-normalised image features :math:`y`,

.. math::  \hat W(\alpha) = \arg\min_W \lVert (Y - \bar y) - X W\rVert_F^2 + \alpha\, s_{\max}^2 \lVert W\rVert_F^2,

(the penalty relative to the largest squared singular value :math:`s_{\max}^2` of :math:`X`), is solved in
kernel form. :math:`\alpha` is chosen on 20 % of the training *concepts* held out (zero-shot, as the test; ties
broken by the mean cosine of the true pairs), then the model is refit on all training rows; test images are
retrieved by the cosine between predicted and true features.

Whitened ridge (MVNN)
---------------------
The noise covariance is estimated from the training data only: every training epoch's residual around its
condition mean, :math:`r_{c,n} = x_{c,n} - \bar x_c`, is a (time × channel) observation matrix; its Ledoit–Wolf
covariance (:func:`eegvision.preprocess.mvnn.ledoit_wolf_covariances`, the THINGS-EEG2 MVNN estimator) is
averaged over all epochs and scaled by :math:`R/(R-1)` (a residual around a mean of :math:`R` repetitions has
:math:`(R-1)/R` of the noise variance). Its symmetric inverse square root :math:`W = \hat\Sigma^{-1/2}`
(:func:`~eegvision.preprocess.mvnn.inverse_sqrt`) multiplies the channel axis of the training and the test
epochs alike; then ridge as above. Since :math:`W` is linear and acts on channels only it commutes with
averaging over repetitions and with decimation in time, so it is applied to the decimated averages.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from eegvision.preprocess.mvnn import inverse_sqrt, ledoit_wolf_covariances

__all__ = [
    "ResidualCovariance", "decimate_mean", "linear_baselines", "ranks_from_scores", "residual_covariance",
    "ridge_retrieval", "topk_from_scores", "whitened_ridge_retrieval",
]


def ranks_from_scores(scores: np.ndarray) -> np.ndarray:
    """0-based rank of the true candidate of each query when row ``i`` of ``scores`` (higher = better) should
    pick column ``i``: the number of candidates scoring higher, plus those tied with it (ties count against
    the decoder). Query ``i`` is top-k correct when ``rank[i] < k``.
    """
    scores = np.asarray(scores)
    true = np.diag(scores)[:, None]
    return ((scores > true).sum(1) + ((scores == true).sum(1) - 1)).astype(np.int64)


def topk_from_scores(scores: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Top-k accuracies when row ``i`` of ``scores`` (higher = better) should pick column ``i``.

    Ties count against the decoder (a tie with the true candidate ranks it below; :func:`ranks_from_scores`).
    """
    rank = ranks_from_scores(scores)
    return {f"top{k}": float((rank < k).mean()) for k in ks}


def decimate_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """Average consecutive blocks of ``factor`` samples along the last axis (drops a ragged tail)."""
    t = (x.shape[-1] // factor) * factor
    return x[..., :t].reshape(*x.shape[:-1], t // factor, factor).mean(-1)


def ridge_retrieval(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    groups: np.ndarray, seed: int = 0, alphas: np.ndarray | None = None, return_ranks: bool = False,
) -> dict:
    """Ridge EEG → features, then cosine retrieval among the test images (see the module docstring).

    Parameters
    ----------
    x_train, x_test
        ``(n, n_features)`` flattened EEG (already averaged over repetitions and decimated).
    y_train, y_test
        ``(n, dim)`` image features of the training conditions and of the test candidates.
    groups
        ``(n_train,)`` concept index of each training row (the validation split holds out concepts).
    seed
        Draws the validation concepts.
    alphas
        Penalties relative to the top squared singular value (default ``logspace(-4, 1, 11)``).
    return_ranks
        Also return ``ranks``: the ``(n_test,)`` int array of each test image's rank among the candidates
        (:func:`ranks_from_scores`; ``top1 == mean(ranks < 1)``), for paired per-image comparisons. The other
        numbers do not change.

    Returns
    -------
    dict with ``top1``, ``top5`` (test), ``alpha`` (chosen penalty) and ``val_top1`` (and ``ranks``).
    """
    x_train = np.asarray(x_train, np.float64)
    x_test = np.asarray(x_test, np.float64)
    if len(x_train) != len(y_train) or len(x_train) != len(groups) or len(x_test) != len(y_test):
        raise ValueError(f"ridge_retrieval: rows differ: x_train {x_train.shape}, y_train {np.shape(y_train)}, "
                         f"groups {np.shape(groups)}, x_test {x_test.shape}, y_test {np.shape(y_test)}; "
                         "pass one row per condition in each.")
    if len(np.unique(groups)) < 2:
        raise ValueError("ridge_retrieval needs at least 2 training concepts (groups) to hold some out for "
                         f"choosing the penalty; got {len(np.unique(groups))}.")
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-12
    xtr, xte = (x_train - mu) / sd, (x_test - mu) / sd
    ymu = y_train.mean(0)
    rel = np.logspace(-4, 1, 11) if alphas is None else np.asarray(alphas)
    rng = np.random.default_rng(seed)
    concepts = np.unique(groups)
    val_c = rng.choice(concepts, size=max(1, len(concepts) // 5), replace=False)
    val = np.isin(groups, val_c)
    fit = ~val

    def solve(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Kernel form of the SVD solution: with ``x x^T = U diag(s^2) U^T``, ``x^T U = V diag(s)``, so
        ``coef(a) = x^T U diag(1 / (s^2 + a)) U^T (y - ymu)``; an ``n x n`` eigenproblem instead of an SVD
        of the ``n x n_features`` matrix (n_features is channels x times, far more than n)."""
        s2, u = np.linalg.eigh(x @ x.T)
        s2 = np.clip(s2, 0.0, None)
        return u, s2, u.T @ (y - ymu)

    def predict(kernel: np.ndarray, u: np.ndarray, s2: np.ndarray, uty: np.ndarray, a: float) -> np.ndarray:
        """Predictions for new rows from their kernel ``x_new @ x_fit.T`` (penalty relative to the top s^2)."""
        return kernel @ (u @ (uty / (s2 + a * s2.max())[:, None])) + ymu

    u, s2, uty = solve(xtr[fit], y_train[fit])
    k_val = xtr[val] @ xtr[fit].T
    best, best_key = rel[0], (-1.0, -np.inf)
    for a in rel:
        sc = _cosine(predict(k_val, u, s2, uty, a), y_train[val])
        key = (topk_from_scores(sc)["top1"], float(np.mean(np.diag(sc))))
        if key > best_key:
            best, best_key = a, key
    u, s2, uty = solve(xtr, y_train)
    ranks = ranks_from_scores(_cosine(predict(xte @ xtr.T, u, s2, uty, best), y_test))
    out = {**{f"top{k}": float((ranks < k).mean()) for k in (1, 5)}, "alpha": float(best),
           "val_top1": float(best_key[0])}
    return {**out, "ranks": ranks} if return_ranks else out


class ResidualCovariance:
    """Running MVNN covariance of training residuals, fed block by block (see the module docstring).

    ``add(block)`` takes ``(n_conditions, n_reps, n_chans, n_times)`` epochs of whole conditions (all their
    repetitions); ``covariance`` is the mean Ledoit–Wolf covariance of the residuals, scaled by ``R/(R-1)``.
    """

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.n_epochs = 0
        self.n_reps: int | None = None

    def add(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 4:
            raise ValueError(f"Expected epochs (conditions, repetitions, channels, times); got shape {block.shape}.")
        n_cond, n_rep, n_chans, n_times = block.shape
        if n_rep < 2:
            raise ValueError(f"The residual covariance needs >= 2 repetitions per training condition (the noise "
                             f"is what varies around a condition mean); got {n_rep}. Simulate or load more "
                             "repetitions, or use the unwhitened ridge.")
        if self.n_reps not in (None, n_rep):
            raise ValueError(f"Blocks must all have the same repetitions: got {n_rep} after {self.n_reps}.")
        self.n_reps = n_rep
        resid = (block - block.mean(1, keepdims=True)).reshape(-1, n_chans, n_times)
        covs = ledoit_wolf_covariances(resid.transpose(0, 2, 1))        # (epochs, C, C), time x channel obs.
        self.total = covs.sum(0) if self.total is None else self.total + covs.sum(0)
        self.n_epochs += len(resid)

    @property
    def covariance(self) -> np.ndarray:
        if self.total is None:
            raise ValueError("ResidualCovariance has seen no epochs; add() the training blocks first.")
        return self.total / self.n_epochs * self.n_reps / (self.n_reps - 1)


def residual_covariance(epochs: np.ndarray | Iterable[np.ndarray], chunk: int = 64) -> np.ndarray:
    """MVNN noise covariance ``(C, C)`` of training epochs ``(n_cond, n_reps, C, T)`` (an array, a memory map,
    or an iterable of such blocks), from their residuals around the condition means (module docstring)."""
    acc = ResidualCovariance()
    if isinstance(epochs, np.ndarray):
        for start in range(0, len(epochs), chunk):
            acc.add(epochs[start:start + chunk])
    else:
        for block in epochs:
            acc.add(block)
    return acc.covariance


def whitened_ridge_retrieval(
    train_avg: np.ndarray, y_train: np.ndarray, test_avg: np.ndarray, y_test: np.ndarray, groups: np.ndarray,
    noise_cov: np.ndarray, seed: int = 0, return_ranks: bool = False,
) -> dict:
    """Ridge after MVNN: ``noise_cov^{-1/2}`` on the channel axis of ``(n, C, T')`` averaged, decimated epochs.

    ``noise_cov`` must come from training data only (:func:`residual_covariance`). Returns
    :func:`ridge_retrieval`'s dict (with ``ranks`` when ``return_ranks``) plus ``whitener_trace`` (the trace of
    the whitening matrix, a fingerprint that changes only with the training data).
    """
    w = inverse_sqrt(noise_cov)
    tr = np.matmul(w, np.asarray(train_avg, np.float64)).reshape(len(train_avg), -1)
    te = np.matmul(w, np.asarray(test_avg, np.float64)).reshape(len(test_avg), -1)
    return {**ridge_retrieval(tr, y_train, te, y_test, groups, seed=seed, return_ranks=return_ranks),
            "whitener_trace": float(np.trace(w))}


def linear_baselines(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, groups: np.ndarray,
    decim: int, seed: int = 0, chunk: int = 64, return_ranks: bool = False,
) -> dict[str, dict]:
    """Ridge and whitened ridge from full epoch arrays (e.g. a store's memory maps), read in chunks.

    Parameters
    ----------
    train, test
        ``(n_conditions, n_reps, n_chans, n_times)`` epochs (training needs ``n_reps >= 2`` for the whitening).
    y_train, y_test
        ``(n_conditions, dim)`` image features.
    groups
        ``(n_train_conditions,)`` concept of each training condition.
    decim
        Time decimation by bin means (10 at 250 Hz, 8 at 200 Hz: 25 Hz).
    return_ranks
        Per-image ranks in both results (:func:`ridge_retrieval`).

    Returns
    -------
    ``{"ridge": {...}, "whitened_ridge": {...}, "noise_cov": (C, C) array}``.
    """
    acc = ResidualCovariance()
    parts = []
    for start in range(0, len(train), chunk):
        block = np.asarray(train[start:start + chunk], np.float64)
        acc.add(block)
        parts.append(decimate_mean(block.mean(1), decim))
    tr = np.concatenate(parts)
    te = np.concatenate([decimate_mean(np.asarray(test[s:s + chunk], np.float64).mean(1), decim)
                         for s in range(0, len(test), chunk)])
    ridge = ridge_retrieval(tr.reshape(len(tr), -1), y_train, te.reshape(len(te), -1), y_test, groups, seed=seed,
                            return_ranks=return_ranks)
    cov = acc.covariance
    white = whitened_ridge_retrieval(tr, y_train, te, y_test, groups, cov, seed=seed, return_ranks=return_ranks)
    return {"ridge": ridge, "whitened_ridge": white, "noise_cov": cov}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return a @ b.T
