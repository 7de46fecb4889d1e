r"""The component-ERP mechanism shared by the ``linear-erp``, ``ar1-noise``, ``few-images``, ``meg`` and
``nonlinear`` families, and its exact Bayes decoder (``docs/families.md`` has the full specification).

Model
-----
Image :math:`i` with features :math:`f_i` has a code :math:`u_i \in \mathbb R^K` (one entry per component),
standardised over the training images:

* ``code="linear"``: :math:`u_i = \mathrm{std}(\Pi f_i)`, :math:`\Pi_{kd} \sim N(0, 1/D)`;
* ``code="rectified"``: :math:`v_i = \mathrm{std}(\Pi f_i)`, :math:`u_i = \mathrm{std}(W_2\lvert W_1 v_i + b_1\rvert)`
  (a random one-hidden-layer network with full-wave rectification, ``hidden`` units).

Component :math:`k` has latency :math:`\tau_k`, width :math:`\omega_k`, polarity :math:`\sigma_k = \pm 1`, a
stimulus-independent amplitude :math:`c_k` and a scalp pattern :math:`P_k` (a Gaussian blob on EEG; a dipolar
pair of blobs of opposite sign on MEG). Subject :math:`s` has component gains :math:`\gamma_k`, a latency offset
:math:`\tau^s` and perturbed pattern centres. Trial :math:`n` of image :math:`i`:

.. math::  x_n = g_n \sum_k \gamma_k a_{ik} P_k\, w_k(\cdot - \delta_n)^\top + \varepsilon_n,\quad
           a_{ik} = \sigma_k (c_k + \mathrm{signal}\; u_{ik}),\quad
           w_k(t) = e^{-(t-\tau_k-\tau^s)^2/2\omega_k^2},

:math:`\delta_n \sim N(0,\sigma_\delta^2)`, :math:`g_n \sim N(1, \sigma_g^2)`, and
:math:`\varepsilon_n` matrix-normal noise (:class:`~eegvision.sim.families.noise.SeparableNoise`).

Exact Bayes decoder
-------------------
With :math:`\Sigma = \sigma^2 \Sigma_s\otimes\Sigma_t` and :math:`M_j(\delta) = \sum_k \gamma_k a_{jk} P_k
w_{k}(\cdot-\delta)^\top`, the log-likelihood of trial :math:`X` given candidate :math:`j`, shift :math:`\delta` and
gain :math:`g` is, up to a term that does not depend on the candidate,

.. math::  \ell = \frac{g\, S_1 - g^2 S_2 / 2}{\sigma^2},\quad
           S_1 = \sum_k \gamma_k a_{jk}\, q_k^\top X r_{k,\delta},\quad
           S_2 = \sum_{k,l} \gamma_k\gamma_l a_{jk}a_{jl}\, (P_k^\top\Sigma_s^{-1}P_l)(w_{k,\delta}^\top\Sigma_t^{-1}w_{l,\delta}),

with spatial filters :math:`q_k = \Sigma_s^{-1}P_k` and temporal filters :math:`r_{k,\delta} = \Sigma_t^{-1}
w_{k,\delta}`. In :math:`p(X\mid j) = \iint e^{\ell} p(\delta)p(g)\,d\delta\,dg` the gain integral is
analytic (Gaussian gain) and the latency integral is the trapezoid rule every ``latency_step`` (1 ms) on
:math:`[-4\sigma_\delta, 4\sigma_\delta]` with Gaussian weights — a fine grid, because the single-trial
posterior of :math:`\delta` is a few milliseconds wide (the common ERP pins it down). A condition's score is the
sum over its repetitions of :math:`\log p(X_n\mid j)`. Ranking the candidates by it is the Bayes-optimal
decision under a flat prior.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from eegvision.sim.families.base import Family, Stimuli
from eegvision.sim.families.noise import SeparableNoise
from eegvision.sim.forward import Layout, eeg_layout, meg_layout
from eegvision.sim.presets import Preset

__all__ = ["ErpFamily", "ErpModel", "ErpParams", "ErpSubject", "EXACT_BAYES_LABEL"]

EXACT_BAYES_LABEL = "exact Bayes (quadrature over latency and gain)"
CODES = ("linear", "rectified")
SENSORS = ("eeg", "meg")


@dataclass
class ErpParams:
    """Every number of the component-ERP model (JSON-able; written to ``simulation.json``)."""

    n_components: int = 12
    code: str = "linear"
    hidden: int = 48
    signal: float = 1.0
    common: float = 1.0
    latency_min: float = 0.08
    latency_max: float = 0.50
    width_base: float = 0.01
    width_slope: float = 0.1
    spread_min: float = 0.25
    spread_max: float = 0.45
    dipole_offset: float = 0.2
    latency_sd: float = 0.015
    gain_sd: float = 0.25
    noise_sd: float = 1.0
    noise_length: float = 0.3
    noise_white: float = 0.5
    noise_ar1: float = 0.5
    subject_pattern_sd: float = 0.08
    subject_gain_sd: float = 0.2
    subject_latency_sd: float = 0.008
    sensors: str = "eeg"
    latency_step: float = 0.001

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"ErpParams.code must be one of {', '.join(CODES)}; got {self.code!r}.")
        if self.sensors not in SENSORS:
            raise ValueError(f"ErpParams.sensors must be one of {', '.join(SENSORS)}; got {self.sensors!r}.")
        if self.n_components < 1 or self.latency_sd < 0 or self.gain_sd < 0:
            raise ValueError(f"ErpParams needs n_components >= 1 and non-negative jitter; got "
                             f"n_components={self.n_components}, latency_sd={self.latency_sd}, "
                             f"gain_sd={self.gain_sd}.")


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), x.std(0) + 1e-12


class ErpModel:
    """A population's component-ERP code (see the module docstring), drawn from ``seed``.

    Parameters
    ----------
    params
        :class:`ErpParams`.
    training_features
        ``(n, D)`` features of the training images: fix the code's standardisation constants.
    seed
        Draws projections, network weights, components and the subjects.
    """

    def __init__(self, params: ErpParams, training_features: np.ndarray, seed: int = 0) -> None:
        params.validate()
        self.params, self.seed = params, seed
        p = params
        self.layout: Layout = eeg_layout() if p.sensors == "eeg" else meg_layout()
        feats = np.asarray(training_features, np.float64)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE1F]))
        k, d = p.n_components, feats.shape[1]
        self.proj = rng.standard_normal((k, d)) / np.sqrt(d)
        self.v_mean, self.v_sd = _standardiser(feats @ self.proj.T)
        if p.code == "rectified":
            self.w1 = rng.standard_normal((p.hidden, k)) / np.sqrt(k)
            self.b1 = rng.normal(0.0, 0.5, p.hidden)
            self.w2 = rng.standard_normal((k, p.hidden)) / np.sqrt(p.hidden)
            self.u_mean, self.u_sd = _standardiser(self._rectified(self._v(feats)))
        step = (p.latency_max - p.latency_min) / k                  # stratified: one latency per slot
        self.latency = p.latency_min + (np.arange(k) + rng.uniform(0.2, 0.8, k)) * step
        self.width = p.width_base + p.width_slope * self.latency
        self.polarity = rng.choice([-1.0, 1.0], k)
        self.common_amp = rng.uniform(0.5, 1.5, k)
        pos = self.layout.positions
        if p.sensors == "eeg":                      # blobs centred on posterior-half sensors (y < 0.1)
            candidates = np.flatnonzero(pos[:, 1] < 0.1)
        else:                                       # MEG: any sensor
            candidates = np.arange(len(pos))
        self.centre_index = rng.choice(candidates, k, replace=len(candidates) < k)
        self.centres = pos[self.centre_index]
        self.spread = rng.uniform(p.spread_min, p.spread_max, k)
        t = rng.standard_normal((k, 3))
        t -= (t * self.centres).sum(1, keepdims=True) * self.centres
        self.tangent = t / np.linalg.norm(t, axis=1, keepdims=True)
        self.noise = SeparableNoise(pos, p.noise_length, p.noise_white, p.noise_ar1, p.noise_sd)

    # ------------------------------------------------------------------------------------- code
    def _v(self, feats: np.ndarray) -> np.ndarray:
        return (feats @ self.proj.T - self.v_mean) / self.v_sd

    def _rectified(self, v: np.ndarray) -> np.ndarray:
        return np.abs(v @ self.w1.T + self.b1) @ self.w2.T

    def codes(self, stimuli: Stimuli) -> np.ndarray:
        """``(n, K)`` standardised code :math:`u` of each image."""
        v = self._v(np.asarray(stimuli.features, np.float64))
        if self.params.code == "linear":
            return v
        return (self._rectified(v) - self.u_mean) / self.u_sd

    def amplitudes(self, codes: np.ndarray) -> np.ndarray:
        """``(n, K)`` component amplitudes :math:`a = \\sigma (c + \\mathrm{signal}\\, u)` before subject gains."""
        p = self.params
        return self.polarity * (p.common * self.common_amp + p.signal * np.asarray(codes, np.float64))

    # ------------------------------------------------------------------------------------- subjects
    def subject(self, index: int) -> ErpSubject:
        """Subject ``index``: perturbed pattern centres, component gains and a latency offset."""
        p = self.params
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5B, index]))
        centres = self.centres + rng.normal(0.0, p.subject_pattern_sd, self.centres.shape)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        gains = np.exp(rng.normal(0.0, p.subject_gain_sd, p.n_components))
        latency = float(rng.normal(0.0, p.subject_latency_sd))
        return ErpSubject(self, index, self._patterns(centres), gains, latency)

    def _patterns(self, centres: np.ndarray) -> np.ndarray:
        """``(K, n_chans)`` scalp/field patterns, maximum absolute value 1."""
        pos = self.layout.positions

        def blob(c: np.ndarray) -> np.ndarray:
            return np.exp(-((pos[None, :, :] - c[:, None, :]) ** 2).sum(-1) / (2 * self.spread[:, None] ** 2))

        if self.params.sensors == "eeg":
            pat = blob(centres)
        else:
            off = self.params.dipole_offset * self.tangent
            pat = blob(centres + off) - blob(centres - off)
        return pat / np.abs(pat).max(1, keepdims=True)

    def to_dict(self) -> dict:
        return {"params": self.params.to_dict(), "seed": self.seed, "sensors": self.layout.kind,
                "components": [{"latency_s": float(t), "width_s": float(w), "polarity": float(s),
                                "common_amplitude": float(c), "centre_channel": self.layout.ch_names[int(i)],
                                "spread": float(r)}
                               for t, w, s, c, i, r in zip(self.latency, self.width, self.polarity,
                                                           self.common_amp, self.centre_index, self.spread)],
                "noise": self.noise.to_dict()}


class ErpSubject:
    """One subject of an :class:`ErpModel`: trials and the exact Bayes decoder (module docstring)."""

    def __init__(self, model: ErpModel, index: int, patterns: np.ndarray, gains: np.ndarray, latency: float) -> None:
        self.model, self.index = model, index
        self.patterns, self.gains, self.latency = patterns, gains, latency
        self._decoder: dict[str, Any] | None = None

    @property
    def times(self) -> np.ndarray:
        return self.model.layout.times

    def time_courses(self, shift: np.ndarray) -> np.ndarray:
        """``(n, K, n_times)`` Gaussian time courses shifted by ``shift`` (s)."""
        m = self.model
        t = self.times[None, None, :] - (m.latency + self.latency)[None, :, None] - np.asarray(shift)[:, None, None]
        return np.exp(-(t**2) / (2 * m.width[None, :, None] ** 2))

    def evoked(self, codes: np.ndarray, shift: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """``(n, n_chans, n_times)`` noise-free responses with latency shifts and gains per trial."""
        amp = self.model.amplitudes(codes) * self.gains * np.asarray(gain)[:, None]        # (n, K)
        tc = self.time_courses(shift) * amp[:, :, None]                                     # (n, K, T)
        return np.matmul(self.patterns.T[None], tc)

    def trials(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(n, n_chans, n_times)`` epochs: jittered, gain-modulated responses plus noise (draw order: latency
        shifts, log-gains, noise)."""
        p = self.model.params
        n = len(codes)
        shift = rng.normal(0.0, p.latency_sd, n)
        gain = rng.normal(1.0, p.gain_sd, n)
        return self.evoked(codes, shift, gain) + self.model.noise.sample(rng, n, len(self.times))

    # ------------------------------------------------------------------------------------- decoder
    def latency_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Latency nodes (every ``latency_step`` s on :math:`[-4\\sigma_\\delta, 4\\sigma_\\delta]`) and their
        log-weights (Gaussian prior, summing to 1)."""
        p = self.model.params
        if p.latency_sd == 0:
            return np.zeros(1), np.zeros(1)
        half = int(np.ceil(4 * p.latency_sd / p.latency_step))
        d = np.arange(-half, half + 1) * p.latency_step
        lw = -0.5 * (d / p.latency_sd) ** 2
        return d, lw - np.log(np.exp(lw).sum())

    def _prepare(self) -> dict[str, Any]:
        if self._decoder is None:
            noise = self.model.noise
            d, lw = self.latency_nodes()
            w = self.time_courses(d)                                            # (D, K, T)
            r = noise.temporal_precision(w)                                     # (D, K, T)
            q = self.patterns @ noise.spatial_precision                         # (K, C)
            gs = q @ self.patterns.T                                            # (K, K)
            gt = np.matmul(w, r.transpose(0, 2, 1))                             # (D, K, K)
            self._decoder = {"d": d, "lw": lw, "r": np.ascontiguousarray(r.transpose(1, 2, 0)), "q": q,
                             "gram": gs[None] * gt, "var": noise.sd**2}              # r as (K, T, D)
        return self._decoder

    def known_model_scores(self, epochs: np.ndarray, codes: np.ndarray, chunk: int = 32) -> np.ndarray:
        """``(b, m)``: :math:`\\sum_n \\log p(X_{i,n} \\mid j)` (up to a per-condition constant) for the
        ``(b, n_reps, n_chans, n_times)`` epochs of ``b`` conditions and the ``m`` candidates' codes.

        The gain integral is analytic: with :math:`g \\sim N(1, s^2)`, :math:`A = S_2/\\sigma^2 + 1/s^2` and
        :math:`B = S_1/\\sigma^2 + 1/s^2`, :math:`\\log\\int e^{(gS_1 - g^2S_2/2)/\\sigma^2} N(g; 1, s^2)\\,dg
        = B^2/2A - \\tfrac12\\log(s^2 A) - 1/2s^2`; the latency integral is the trapezoid rule on
        :meth:`latency_nodes` (spectrally accurate once the step is below the posterior's width).
        """
        dec = self._prepare()
        epochs = np.asarray(epochs, np.float64)
        b, reps = epochs.shape[:2]
        s = self.model.params.gain_sd
        amp = self.model.amplitudes(codes) * self.gains                        # (m, K)
        s2 = np.einsum("jk,dkl,jl->jd", amp, dec["gram"], amp) / dec["var"]    # (m, D)
        y = np.matmul(dec["q"], epochs.reshape(b * reps, *epochs.shape[2:]))  # (n, K, T) spatially filtered
        u = np.matmul(y.transpose(1, 0, 2), dec["r"]).transpose(1, 0, 2) / dec["var"]   # (n, K, D)
        out = np.empty((b * reps, len(amp)))
        for start in range(0, b * reps, chunk):
            s1 = np.matmul(amp[None], u[start:start + chunk])                  # (c, m, D)
            if s > 0:
                a = s2[None] + 1.0 / s**2
                ll = (s1 + 1.0 / s**2) ** 2 / (2 * a) - 0.5 * np.log(s**2 * a) - 0.5 / s**2
            else:
                ll = s1 - 0.5 * s2[None]
            ll += dec["lw"]
            top = ll.max(-1)
            out[start:start + chunk] = top + np.log(np.exp(ll - top[..., None]).sum(-1))
        return out.reshape(b, reps, -1).sum(1)

    def info(self) -> dict:
        return {"subject": f"sub-{self.index + 1:02d}", "latency_offset_s": self.latency,
                "component_gains": self.gains.tolist()}


class ErpFamily(Family):
    """A family simulated by the component-ERP mechanism with its own parameters and sizes."""

    decoder_label = EXACT_BAYES_LABEL
    exact_bayes = True

    def __init__(self, name: str, summary: str, params: ErpParams, presets: dict[str, Preset],
                 target: tuple[float, float], held_out: bool = False, default_preset: str = "default") -> None:
        params.validate()
        self.name, self.summary, self.params = name, summary, params
        self.presets, self.target, self.held_out, self.default_preset = presets, target, held_out, default_preset

    def default_params(self) -> ErpParams:
        return replace(self.params)

    def build(self, training: Stimuli, seed: int, params: ErpParams | dict | None = None) -> ErpModel:
        if isinstance(params, dict):
            params = replace(self.params, **params)
        elif params is not None and not isinstance(params, ErpParams):
            raise TypeError(f"Family {self.name!r} takes ErpParams (or a dict of its fields); "
                            f"got {type(params).__name__}.")
        return ErpModel(params or self.default_params(), training.features, seed=seed)


def erp_presets(default: Preset, **small) -> dict[str, Preset]:
    """``{"default": default, "small": ...}``: the reduced size for tests (a few seconds on 2 cores); ``small``
    overrides its fields."""
    reduced = replace(default, name="small", n_train_concepts=40, n_train_images=2,
                      train_reps=min(default.train_reps, 2), n_test_concepts=50,
                      test_reps=max(2, default.test_reps // 4), feature_dim=default.feature_dim)
    reduced = replace(reduced, **small)
    reduced.validate()
    return {"default": default, "small": reduced}
