r"""Matrix-normal sensor noise: spatially smooth in space, stationary AR(1) in time.

.. math::  \varepsilon = \sigma\, L_s\, E\, L_t^\top,\qquad L_sL_s^\top = \Sigma_s = (1-\lambda) K_\ell + \lambda I,
           \qquad L_tL_t^\top = \Sigma_t,\ \Sigma_t(t,t') = \rho^{\lvert t-t'\rvert},

with :math:`E` of iid :math:`N(0,1)` entries, :math:`K_\ell(c,c') = \exp(-\lVert p_c-p_{c'}\rVert^2/2\ell^2)` a
Gaussian kernel of the sensors' unit-sphere positions, and :math:`\lambda` the fraction of independent sensor
noise. The covariance of the vectorised epoch is the Kronecker product :math:`\sigma^2\,\Sigma_s\otimes\Sigma_t`
(variance :math:`\sigma^2` on every channel and sample).

The temporal factor is the AR(1) recursion itself: :math:`y_0 = e_0`,
:math:`y_t = \rho\,y_{t-1} + \sqrt{1-\rho^2}\,e_t` (stationary from the first sample), and
:math:`\Sigma_t^{-1}` is tridiagonal,

.. math::  \Sigma_t^{-1} = \frac{1}{1-\rho^2}\begin{pmatrix} 1 & -\rho & & \\ -\rho & 1+\rho^2 & -\rho & \\
           & \ddots & \ddots & \ddots \\ & & -\rho & 1 \end{pmatrix},

which the exact Bayes decoders (:mod:`eegvision.sim.families.erp`) apply without forming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

__all__ = ["SeparableNoise"]


@dataclass
class SeparableNoise:
    """Spatially smooth, AR(1)-in-time Gaussian noise on sensors at ``positions`` (see the module docstring).

    Parameters
    ----------
    positions
        ``(n_chans, 3)`` unit-sphere sensor positions.
    length
        Spatial length :math:`\\ell` of the smooth part (on the unit sphere; 0.3 ≈ neighbouring electrodes).
    white
        Fraction :math:`\\lambda \\in (0, 1]` of independent sensor noise (keeps :math:`\\Sigma_s` invertible).
    ar1
        AR(1) coefficient :math:`\\rho \\in [0, 1)` per sample.
    sd
        Noise standard deviation :math:`\\sigma` per channel and sample.
    """

    positions: np.ndarray
    length: float
    white: float
    ar1: float
    sd: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.white <= 1.0:
            raise ValueError(f"Noise 'white' fraction must be in (0, 1] (0 makes the spatial covariance "
                             f"singular); got {self.white}.")
        if not 0.0 <= self.ar1 < 1.0:
            raise ValueError(f"Noise AR(1) coefficient must be in [0, 1) for a stationary process; got {self.ar1}.")
        if self.length <= 0 or self.sd <= 0:
            raise ValueError(f"Noise length and sd must be positive; got length={self.length}, sd={self.sd}.")
        pos = np.asarray(self.positions, np.float64)
        d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
        self.spatial_cov = (1.0 - self.white) * np.exp(-d2 / (2 * self.length**2)) + self.white * np.eye(len(pos))
        self.spatial_factor = np.linalg.cholesky(self.spatial_cov)
        self.spatial_precision = np.linalg.inv(self.spatial_cov)
        self.spatial_precision = (self.spatial_precision + self.spatial_precision.T) / 2

    @property
    def n_chans(self) -> int:
        return len(self.spatial_cov)

    def sample(self, rng: np.random.Generator, n: int, n_times: int) -> np.ndarray:
        """``(n, n_chans, n_times)`` noise epochs."""
        e = rng.standard_normal((n, self.n_chans, n_times))
        rho = self.ar1
        if rho > 0:
            s = np.sqrt(1.0 - rho**2)
            e[..., 0] /= s                                   # so that y_0 = e_0 (stationary start)
            e = lfilter([s], [1.0, -rho], e, axis=-1)
        c = self.n_chans                                     # one large product instead of n small ones
        mixed = self.spatial_factor @ e.transpose(1, 0, 2).reshape(c, n * n_times)
        return self.sd * mixed.reshape(c, n, n_times).transpose(1, 0, 2)

    def temporal_precision(self, w: np.ndarray) -> np.ndarray:
        """``w @ Sigma_t^{-1}`` along the last axis (unit-variance AR(1); tridiagonal, never formed)."""
        rho = self.ar1
        w = np.asarray(w, np.float64)
        if rho == 0:
            return w.copy()
        out = (1.0 + rho**2) * w
        out[..., 0] = w[..., 0]
        out[..., -1] = w[..., -1]
        out[..., 1:] -= rho * w[..., :-1]
        out[..., :-1] -= rho * w[..., 1:]
        return out / (1.0 - rho**2)

    def covariance(self, n_times: int) -> np.ndarray:
        """``(n_chans * n_times, n_chans * n_times)`` covariance of a vectorised epoch (small sizes only: tests)."""
        t = np.arange(n_times)
        return self.sd**2 * np.kron(self.spatial_cov, self.ar1 ** np.abs(t[:, None] - t[None, :]))

    def to_dict(self) -> dict:
        return {"kind": "matrix-normal: smooth spatial kernel + white, AR(1) in time", "length": self.length,
                "white": self.white, "ar1": self.ar1, "sd": self.sd}
