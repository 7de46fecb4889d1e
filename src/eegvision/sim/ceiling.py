r"""What the simulated signal allows: the Bayes decoder that knows the model, and a ridge baseline.

Bayes ceiling
-------------
For a test image :math:`i` averaged over :math:`R` repetitions, the decoder knows every
candidate's template :math:`m_j = E[\bar x \mid j]` (:meth:`SubjectModel.template`: the exact mean
over latency and amplitude jitter) and the noise covariance of the average. In the rFFT domain the
noise of bin :math:`f` has independent real and imaginary parts with covariance :math:`C_f / R`
(:meth:`ForwardModel.noise_covariance`), so the Gaussian log-likelihood is

.. math::  \log p(\bar x \mid j) = -\tfrac{R}{2} \sum_f \bigl\lVert C_f^{-1/2}
           (\hat{\bar x}_f - \hat m_{j,f}) \bigr\rVert^2 + \text{const}

(a whitened matched filter). With a flat prior over the :math:`n` candidates the posterior ranks
them by this score. **Approximation**: the trial-to-trial variability caused by jitter (the
spread of :math:`g_n w(t-\delta_n)` around its mean) is not added to the covariance; it is
signal-dependent and shrinks as :math:`1/R`, so the ceiling is very slightly optimistic about the
noise model and slightly pessimistic about ignoring that information (both small at R ≥ 20).

Ridge baseline
--------------
Ridge regression from EEG (repetitions averaged, decimated in time by bin means, standardised,
flattened) to the L2-normalised image features; the penalty is chosen on a held-out 20 % of the
training *concepts* (zero-shot, as the test), then refit on all; test retrieval by cosine.
"""

from __future__ import annotations

import numpy as np

from eegvision.sim.forward import SubjectModel


def topk_from_scores(scores: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Top-k accuracies when row ``i`` of ``scores`` (higher = better) should pick column ``i``.

    Ties count against the decoder (a tie with the true candidate ranks it below).
    """
    scores = np.asarray(scores)
    true = np.diag(scores)[:, None]
    rank = (scores > true).sum(1) + ((scores == true).sum(1) - 1)
    return {f"top{k}": float((rank < k).mean()) for k in ks}


def bayes_scores(subject: SubjectModel, x_avg: np.ndarray, z: np.ndarray, n_reps: int,
                 sfreq: float | None = None) -> np.ndarray:
    """``(n, n)`` log-likelihood (up to a constant) of candidate ``j`` for averaged trial ``i``.

    Parameters
    ----------
    subject
        The subject's model (knows patterns, gains, latencies, noise).
    x_avg
        ``(n, n_chans, n_times)`` repetition-averaged test epochs (epoch starts at stimulus onset).
    z
        ``(n, LATENT_DIM)`` latent factors of the candidates (row ``i`` is the truth for trial ``i``).
    n_reps
        Number of repetitions averaged in ``x_avg``.
    """
    model = subject.model
    n, n_chans, n_times = x_avg.shape
    sfreq = sfreq or model.layout.sfreq
    templates = subject.template(z, np.arange(n_times) / sfreq)
    cov = model.noise_covariance(n_times, sfreq) / n_reps               # (F, C, C)
    w, v = np.linalg.eigh(cov)
    whiten = np.einsum("fab,fb,fcb->fac", v, 1.0 / np.sqrt(w), v)      # C_f^{-1/2}, symmetric

    def project(x: np.ndarray) -> np.ndarray:
        spec = np.fft.rfft(x, axis=-1)                                   # (n, C, F)
        wt = np.einsum("fab,nbf->nfa", whiten, spec.real) + 1j * np.einsum("fab,nbf->nfa", whiten, spec.imag)
        return np.concatenate([wt.real.reshape(len(x), -1), wt.imag.reshape(len(x), -1)], axis=1)

    y, m = project(x_avg), project(templates)
    d2 = (y**2).sum(1)[:, None] + (m**2).sum(1)[None, :] - 2 * y @ m.T
    return -0.5 * d2


def bayes_ceiling(subject: SubjectModel, x_avg: np.ndarray, z: np.ndarray, n_reps: int,
                  sfreq: float | None = None) -> dict[str, float]:
    """Top-1/top-5 of the Bayes decoder among the ``n`` candidates (see :func:`bayes_scores`)."""
    return topk_from_scores(bayes_scores(subject, x_avg, z, n_reps, sfreq))


def decimate_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """Average consecutive blocks of ``factor`` samples along the last axis (drops a ragged tail)."""
    t = (x.shape[-1] // factor) * factor
    return x[..., :t].reshape(*x.shape[:-1], t // factor, factor).mean(-1)


def ridge_retrieval(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    groups: np.ndarray, seed: int = 0, alphas: np.ndarray | None = None,
) -> dict[str, float]:
    """Ridge EEG → features, then cosine retrieval among the test images.

    Parameters
    ----------
    x_train, x_test
        ``(n, n_features)`` flattened EEG (already averaged over repetitions and decimated).
    y_train, y_test
        ``(n, dim)`` image features of the training conditions and of the test candidates.
    groups
        ``(n_train,)`` concept index of each training row (the validation split holds out concepts).

    Returns
    -------
    dict with ``top1``, ``top5`` (test), ``alpha`` (chosen penalty, relative to the top squared
    singular value) and ``val_top1``.
    """
    x_train = np.asarray(x_train, np.float64)
    x_test = np.asarray(x_test, np.float64)
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
    res = topk_from_scores(_cosine(predict(xte @ xtr.T, u, s2, uty, best), y_test))
    return {**res, "alpha": float(best), "val_top1": float(best_key[0])}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return a @ b.T
