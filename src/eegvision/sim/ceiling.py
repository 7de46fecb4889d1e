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
:func:`~eegvision.evaluation.linear.ridge_retrieval` (re-exported here): ridge regression from EEG
(repetitions averaged, decimated in time by bin means, standardised, flattened) to the L2-normalised image
features; the penalty is chosen on a held-out 20 % of the training *concepts* (zero-shot, as the test), then
refit on all; test retrieval by cosine. The whitened (MVNN) ridge is in the same module.
"""

from __future__ import annotations

import numpy as np

from eegvision.evaluation.linear import decimate_mean, ridge_retrieval, topk_from_scores
from eegvision.sim.forward import SubjectModel

__all__ = ["bayes_ceiling", "bayes_projector", "bayes_scores", "decimate_mean", "ridge_retrieval",
           "topk_from_scores"]


def bayes_projector(subject: SubjectModel, n_times: int, n_reps: int, sfreq: float | None = None):
    """The whitening map of :func:`bayes_scores`: epochs ``(n, n_chans, n_times)`` → rows whose squared
    distances are the Gaussian log-likelihood's quadratic form (``C_f^{-1/2}`` per rFFT bin, averages of
    ``n_reps`` repetitions). Computing it once serves any number of calls (it is the costly part)."""
    model = subject.model
    sfreq = sfreq or model.layout.sfreq
    cov = model.noise_covariance(n_times, sfreq) / n_reps               # (F, C, C)
    w, v = np.linalg.eigh(cov)
    whiten = np.einsum("fab,fb,fcb->fac", v, 1.0 / np.sqrt(w), v)      # C_f^{-1/2}, symmetric

    def project(x: np.ndarray) -> np.ndarray:
        spec = np.fft.rfft(x, axis=-1)                                   # (n, C, F)
        wt = np.einsum("fab,nbf->nfa", whiten, spec.real) + 1j * np.einsum("fab,nbf->nfa", whiten, spec.imag)
        return np.concatenate([wt.real.reshape(len(x), -1), wt.imag.reshape(len(x), -1)], axis=1)

    return project


def bayes_scores(subject: SubjectModel, x_avg: np.ndarray, z: np.ndarray, n_reps: int,
                 sfreq: float | None = None, projector=None) -> np.ndarray:
    """``(n, m)`` log-likelihood (up to a constant) of candidate ``j`` for averaged trial ``i``.

    Parameters
    ----------
    subject
        The subject's model (knows patterns, gains, latencies, noise).
    x_avg
        ``(n, n_chans, n_times)`` repetition-averaged test epochs (epoch starts at stimulus onset).
    z
        ``(m, LATENT_DIM)`` latent factors of the candidates (row ``i`` is the truth for trial ``i`` when
        ``x_avg`` holds all of them).
    n_reps
        Number of repetitions averaged in ``x_avg``.
    projector
        :func:`bayes_projector` of the same subject, sizes and ``n_reps``, to reuse across calls.
    """
    n, n_chans, n_times = x_avg.shape
    sfreq = sfreq or subject.model.layout.sfreq
    templates = subject.template(z, np.arange(n_times) / sfreq)
    project = projector or bayes_projector(subject, n_times, n_reps, sfreq)
    y, m = project(x_avg), project(templates)
    d2 = (y**2).sum(1)[:, None] + (m**2).sum(1)[None, :] - 2 * y @ m.T
    return -0.5 * d2


def bayes_ceiling(subject: SubjectModel, x_avg: np.ndarray, z: np.ndarray, n_reps: int,
                  sfreq: float | None = None) -> dict[str, float]:
    """Top-1/top-5 of the Bayes decoder among the ``n`` candidates (see :func:`bayes_scores`)."""
    return topk_from_scores(bayes_scores(subject, x_avg, z, n_reps, sfreq))
