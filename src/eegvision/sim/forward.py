r"""Neural forward model: image latent factors → EEG/MEG epochs with known statistics.

Model
-----
Sensors sit at unit-sphere positions :math:`p_c` (EEG: the 63 THINGS-EEG2 channels of MNE's
``colin27_1020`` montage, falling back to ``standard_1020``; MEG: 271 synthetic points on the
upper half of a sphere). The signal is a sum of *sources*; source :math:`s` belongs to one
ERP-like component :math:`k(s)` (P1 ~100 ms, N1 ~170 ms, P2 ~240 ms, P3 ~400 ms) and has a
smooth spatial pattern, a Gaussian blob on the scalp around a posterior direction :math:`d_s`:

.. math::  P_s(c) = \exp\bigl(-\lVert p_c - d_s\rVert^2 / 2\rho_s^2\bigr).

The amplitude of source :math:`s` for an image with latent factors :math:`z` (see
:meth:`World.latents`) is linear in a fixed feature expansion of :math:`z`,

.. math::  a_s(z) = \gamma_s\,\sigma_k\,\bigl(A\,\mathrm{common}_s + \mathrm{signal}\;
           g_s(z)\,M_s^\top \phi(z)\bigr),\qquad
           \phi(z) = \bigl[(1-\nu)\,z,\;\nu \tanh(R z + b)\bigr],

where :math:`\sigma_k = \pm 1` is the component's polarity, :math:`\gamma_s` a subject gain,
``common`` a stimulus-independent evoked response, and :math:`\nu` (``nonlinearity``) moves
the code from linear in :math:`z` to a random nonlinear expansion (``R`` has gain ``nl_gain``).

**Gain modulation.** The early component (P1) is a feed-forward response, linear in
:math:`\phi(z)` (:math:`g_s = 1`). The stimulus-specific part of the later components
(``gated_components``, default N1, P2, P3) is multiplied by a signed gain set by one image
factor, :math:`g_s(z) = \tanh(\text{gate\_gain}\cdot z_{\text{gate\_axis}})`: the same
image dimension flips the polarity of what later components say about everything else, as the
C1 component flips with the visual field. This multiplicative interaction is what makes the code
hard for linear decoders — a ridge regression from EEG to image features averages the two signs
away (its expected cross-covariance with the gated part is close to zero) — while a decoder that
reads the gate from the ungated P1 can undo it. It is the simulator's structural reason for the gap
between simple decoders and what the signal allows (design target at 200-way on the ``demo``
preset: Bayes ceiling ≥ 0.8 with ridge ≤ 0.4, as on real EEG). ``gated_components=[]`` gives the
purely additive code.

Trial :math:`n` of image :math:`i` is

.. math::  x_n(c, t) = g_n \sum_s a_s(z_i)\,P_s(c)\,w_{k(s)}(t - \delta_n) + \varepsilon_n(c, t),

with Gaussian time courses :math:`w_k(t) = \exp(-(t-\tau_k-\tau^{\mathrm{subj}})^2/2\omega_k^2)`,
per-trial latency jitter :math:`\delta_n \sim N(0, \text{latency\_sd}^2)` and amplitude jitter
:math:`\log g_n \sim N(-\text{amplitude\_sd}^2/2, \text{amplitude\_sd}^2)` (so :math:`E g_n = 1`).

Noise :math:`\varepsilon` is a sum of three independent stationary Gaussian processes, each a
spatial mixing :math:`L_j` of independent temporal processes with two-sided PSD :math:`S_j(f)`:
spatially smooth 1/f background (:math:`S \propto (f + 1)^{-\beta}`, :math:`L L^\top` a Gaussian
kernel of sensor distance), alpha (a narrow-band Gaussian process around 10 Hz, whose Rayleigh
envelope produces waxing and waning bursts, over posterior sensors) and white sensor noise.
Variances are given for the 0–125 Hz band. Epoch noise is synthesised in the rFFT domain, so the
real and imaginary parts of bin :math:`f` of an epoch are independent with covariance

.. math::  C_f = \sum_j v_j(f)\,L_j L_j^\top,\qquad v_j(f) = N f_s S_j(f)/2

(:math:`N f_s S_j(f)` and no imaginary part at DC and Nyquist); this is what the Bayes decoder
(:mod:`eegvision.sim.ceiling`) uses. Continuous raw recordings use the same PSDs.

Subjects share the code (:math:`M, R, b`, directions, polarities) but each has its own
perturbation of the blob centres and widths, per-source gains :math:`\gamma_s` and a latency
offset. The ``imagination`` paradigm (for mental-imagery decoding) scales early sensory
components down, delays and broadens all components, and triples the latency jitter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from eegvision.readers.channels import THINGS_EEG2_CHANNELS
from eegvision.sim.scene import LATENT_DIM

PARADIGMS = ("viewing", "imagination")


@dataclass(frozen=True)
class Component:
    """An ERP-like component: latency and width (s), polarity and blob centres (EEG channel names)."""

    name: str
    latency: float
    width: float
    polarity: float
    centres: tuple[str, ...]
    spread: float


EEG_COMPONENTS: tuple[Component, ...] = (
    Component("P1", 0.100, 0.018, +1.0, ("O1", "Oz", "O2", "POz"), 0.30),
    Component("N1", 0.170, 0.025, -1.0, ("PO7", "PO8", "P7", "P8", "PO3"), 0.32),
    Component("P2", 0.240, 0.035, +1.0, ("PO3", "PO4", "P5", "P6", "Oz"), 0.35),
    Component("P3", 0.400, 0.070, +1.0, ("Pz", "CPz", "P3", "P4", "CP1"), 0.45),
)


@dataclass(frozen=True)
class Layout:
    """Sensors: names, types, unit-sphere positions, sampling rate and epoch length."""

    kind: str
    ch_names: tuple[str, ...]
    positions: np.ndarray
    sfreq: float
    n_times: int

    @property
    def n_chans(self) -> int:
        return len(self.ch_names)

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.n_times) / self.sfreq


def _eeg_positions(names: tuple[str, ...]) -> np.ndarray:
    import mne

    try:
        montage = mne.channels.make_standard_montage("colin27_1020")
    except ValueError:  # older MNE
        montage = mne.channels.make_standard_montage("standard_1020")
    pos = montage.get_positions()["ch_pos"]
    xyz = np.array([pos[n] for n in names], dtype=np.float64)
    # Least-squares sphere fit: |p|^2 = 2 p.c + (r^2 - |c|^2).
    a = np.c_[2 * xyz, np.ones(len(xyz))]
    sol, *_ = np.linalg.lstsq(a, (xyz**2).sum(1), rcond=None)
    centred = xyz - sol[:3]
    return centred / np.linalg.norm(centred, axis=1, keepdims=True)


_EEG_CACHE: dict[str, np.ndarray] = {}


def eeg_layout() -> Layout:
    """The 63 THINGS-EEG2 channels (THINGS order), 250 Hz, 250 samples (0 … 0.996 s)."""
    if "eeg" not in _EEG_CACHE:
        _EEG_CACHE["eeg"] = _eeg_positions(THINGS_EEG2_CHANNELS)
    return Layout("eeg", THINGS_EEG2_CHANNELS, _EEG_CACHE["eeg"], 250.0, 250)


def meg_layout(n_chans: int = 271) -> Layout:
    """THINGS-MEG-shaped sensors: 271 synthetic points on the upper hemisphere, 200 Hz, 201 samples.

    Names are ``MEG001`` … ; positions are a Fibonacci lattice on the cap above the ears.
    """
    i = np.arange(n_chans) + 0.5
    zc = 1.0 - 1.2 * i / n_chans            # from the vertex down to ~20 degrees below the equator
    r = np.sqrt(1.0 - zc**2)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    pos = np.c_[r * np.cos(phi), r * np.sin(phi), zc]
    names = tuple(f"MEG{j + 1:03d}" for j in range(n_chans))
    return Layout("meg", names, pos, 200.0, 201)


@dataclass
class ForwardParams:
    """Every number of the forward model (JSON-able; written to ``simulation.json``)."""

    signal: float = 1.8
    common: float = 1.0
    gated_components: list[str] = field(default_factory=lambda: ["N1", "P2", "P3"])
    gate_gain: float = 3.0
    gate_axis: int = 0
    nonlinearity: float = 0.6
    nl_gain: float = 2.0
    nl_hidden: int = 64
    latency_sd: float = 0.015
    amplitude_sd: float = 0.25
    bg_var: float = 0.65
    bg_exponent: float = 1.5
    bg_length: float = 0.6
    alpha_var: float = 0.25
    alpha_freq: float = 10.0
    alpha_bandwidth: float = 1.2
    white_var: float = 0.10
    subject_pattern_sd: float = 0.12
    subject_gain_sd: float = 0.25
    subject_latency_sd: float = 0.008
    paradigm: str = "viewing"
    components: list[dict] = field(default_factory=lambda: [asdict(c) for c in EEG_COMPONENTS])

    def to_dict(self) -> dict:
        return asdict(self)


def _paradigm_components(params: ForwardParams) -> tuple[list[Component], float, float]:
    """Components, amplitude scale per component and latency jitter for the paradigm."""
    comps = [Component(**{**c, "centres": tuple(c["centres"])}) for c in params.components]
    if params.paradigm == "viewing":
        return comps, np.ones(len(comps)), params.latency_sd
    if params.paradigm == "imagination":
        comps = [replace(c, latency=c.latency + 0.15, width=c.width * 1.8) for c in comps]
        scale = np.array([0.04 if c.latency < 0.35 else 0.14 for c in comps])
        return comps, scale, params.latency_sd * 3.0
    raise ValueError(f"Unknown paradigm {params.paradigm!r}; use one of {', '.join(PARADIGMS)}.")


class ForwardModel:
    """The shared neural code of a simulated population (see the module docstring).

    Parameters
    ----------
    layout
        Sensors (:func:`eeg_layout` or :func:`meg_layout`).
    params
        :class:`ForwardParams`; ``params.paradigm`` is ``"viewing"`` or ``"imagination"``.
    seed
        Draws the shared code ``M, R, b`` and the subject perturbations.
    """

    def __init__(self, layout: Layout, params: ForwardParams | None = None, seed: int = 0) -> None:
        self.layout = layout
        self.params = params or ForwardParams()
        self.seed = seed
        comps, self.comp_scale, self.latency_sd = _paradigm_components(self.params)
        self.components = comps
        eeg_pos = dict(zip(THINGS_EEG2_CHANNELS, eeg_layout().positions))
        self.source_component = np.array([k for k, c in enumerate(comps) for _ in c.centres])
        self.source_dirs = np.array([eeg_pos[n] for c in comps for n in c.centres])
        self.source_spread = np.array([c.spread for c in comps for _ in c.centres])
        n_src = len(self.source_component)
        p = self.params
        names = [c.name for c in comps]
        # names of the default components that a custom component list leaves out are simply absent
        unknown = sorted(set(p.gated_components) - set(names) - {c.name for c in EEG_COMPONENTS})
        if unknown:
            raise ValueError(f"gated_components names unknown components {unknown}; the model has {names}.")
        if not 0 <= p.gate_axis < LATENT_DIM:
            raise ValueError(f"gate_axis must index a latent factor (0..{LATENT_DIM - 1}); got {p.gate_axis}.")
        self.gated = np.isin(self.source_component, [names.index(n) for n in p.gated_components if n in names])
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF0_2D]))
        self.R = rng.standard_normal((p.nl_hidden, LATENT_DIM)) * p.nl_gain / np.sqrt(LATENT_DIM)
        self.b = rng.uniform(-1.0, 1.0, p.nl_hidden)
        n_feat = LATENT_DIM + p.nl_hidden
        self.M = rng.standard_normal((n_src, n_feat)) / np.sqrt(n_feat / 2)
        self.common_amp = rng.uniform(0.5, 1.5, n_src)
        # Noise spatial factors (shared: a property of head and sensors, not of the code).
        d2 = ((layout.positions[:, None, :] - layout.positions[None, :, :]) ** 2).sum(-1)
        self.L_bg = _sqrtm(np.exp(-d2 / (2 * p.bg_length**2)) + 1e-3 * np.eye(layout.n_chans))
        post = np.array([0.0, -1.0, 0.3]) / np.linalg.norm([0.0, -1.0, 0.3])
        w = np.exp(-((layout.positions - post) ** 2).sum(1) / (2 * 0.55**2))
        self.L_alpha = w[:, None] * _sqrtm(np.exp(-d2 / (2 * 0.35**2)) + 1e-3 * np.eye(layout.n_chans))
        self.L_alpha *= np.sqrt(layout.n_chans / np.trace(self.L_alpha @ self.L_alpha.T))
        self.L_bg *= np.sqrt(layout.n_chans / np.trace(self.L_bg @ self.L_bg.T))

    # ----------------------------------------------------------------------------- subjects
    def subject(self, index: int) -> SubjectModel:
        """The model of subject ``index`` (0-based): perturbed patterns, gains and latency offset."""
        p = self.params
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5B, index]))
        dirs = self.source_dirs + rng.normal(0.0, p.subject_pattern_sd, self.source_dirs.shape)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        spread = self.source_spread * np.exp(rng.normal(0.0, 0.1, len(dirs)))
        d2 = ((self.layout.positions[None, :, :] - dirs[:, None, :]) ** 2).sum(-1)
        patterns = np.exp(-d2 / (2 * spread[:, None] ** 2))            # (n_src, n_chans)
        gains = np.exp(rng.normal(0.0, p.subject_gain_sd, len(dirs)))
        latency = float(rng.normal(0.0, p.subject_latency_sd))
        return SubjectModel(self, index, patterns, gains, latency)

    # ----------------------------------------------------------------------------- code
    def amplitudes(self, z: np.ndarray) -> np.ndarray:
        """``(n, n_sources)`` source amplitudes before subject gains (``a_s(z)/gamma_s``)."""
        p = self.params
        z = np.asarray(z, dtype=np.float64)
        phi = np.concatenate([(1 - p.nonlinearity) * z, p.nonlinearity * np.tanh(z @ self.R.T + self.b)], axis=1)
        pol = np.array([self.components[k].polarity for k in self.source_component])
        scale = self.comp_scale[self.source_component]
        content = p.signal * phi @ self.M.T
        if self.gated.any():
            gate = np.tanh(p.gate_gain * z[:, p.gate_axis])[:, None]
            content = np.where(self.gated[None, :], gate * content, content)
        return pol * scale * (p.common * self.common_amp + content)

    # ----------------------------------------------------------------------------- noise
    def _psds(self, freqs: np.ndarray) -> list[np.ndarray]:
        """Two-sided PSDs of (background, alpha, white) at ``freqs`` (Hz), normalised so that each
        process's variance in the 0–125 Hz band equals its ``*_var`` parameter."""
        p = self.params
        grid = np.linspace(0.0, 125.0, 20001)
        shapes = [
            (lambda f: (np.abs(f) + 1.0) ** -p.bg_exponent, p.bg_var),
            (lambda f: np.exp(-((np.abs(f) - p.alpha_freq) ** 2) / (2 * p.alpha_bandwidth**2)), p.alpha_var),
            (lambda f: np.ones_like(f), p.white_var),
        ]
        out = []
        for shape, var in shapes:
            total = 2 * _trapezoid(shape(grid), grid)
            out.append(var * shape(freqs) / total)
        return out

    def bin_variances(self, n_times: int, sfreq: float) -> np.ndarray:
        """``(3, n_bins)`` variance of the real part of each rFFT bin per process (imag: same, 0 at DC/Nyquist)."""
        freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
        v = np.stack(self._psds(freqs)) * n_times * sfreq / 2
        v[:, 0] *= 2
        if n_times % 2 == 0:
            v[:, -1] *= 2
        return v

    def spatial_factors(self) -> list[np.ndarray]:
        return [self.L_bg, self.L_alpha, np.eye(self.layout.n_chans)]

    def noise_covariance(self, n_times: int, sfreq: float) -> np.ndarray:
        """``(n_bins, n_chans, n_chans)``: covariance of the real (and imaginary) part of each rFFT bin."""
        v = self.bin_variances(n_times, sfreq)
        covs = [L @ L.T for L in self.spatial_factors()]
        return np.einsum("jf,jab->fab", v, np.stack(covs))

    def noise(self, rng: np.random.Generator, n: int, n_times: int, sfreq: float) -> np.ndarray:
        """``(n, n_chans, n_times)`` noise epochs (or one continuous stretch with ``n=1``).

        The spatial mixing runs on one BLAS thread: a multi-threaded matrix product splits long recordings
        differently with the thread count, which changed the last bits of raw files, so the same seed gave other
        bytes on another machine. (One thread is no slower at these sizes.)"""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            return self._noise(rng, n, n_times, sfreq)

    def _noise(self, rng: np.random.Generator, n: int, n_times: int, sfreq: float) -> np.ndarray:
        v = self.bin_variances(n_times, sfreq)
        n_bins = v.shape[1]
        out = np.zeros((n, self.layout.n_chans, n_times))
        for j, L in enumerate(self.spatial_factors()):
            spec = rng.standard_normal((n, self.layout.n_chans, n_bins)) + 1j * rng.standard_normal(
                (n, self.layout.n_chans, n_bins))
            spec.imag[..., 0] = 0.0
            if n_times % 2 == 0:
                spec.imag[..., -1] = 0.0
            spec *= np.sqrt(v[j])
            src = np.fft.irfft(spec, n=n_times, axis=-1)
            out += src if j == 2 else np.matmul(L, src)
        return out


@dataclass
class SubjectModel:
    """One simulated subject: patterns ``(n_sources, n_chans)``, gains and latency offset (s)."""

    model: ForwardModel
    index: int
    patterns: np.ndarray
    gains: np.ndarray
    latency: float

    def _time_courses(self, times: np.ndarray, shift: np.ndarray, extra_var: float = 0.0) -> np.ndarray:
        """``(n, n_components, n_times)`` Gaussian time courses shifted by ``shift`` (n,)."""
        lat = np.array([c.latency for c in self.model.components]) + self.latency
        width = np.array([c.width for c in self.model.components])
        w2 = width**2 + extra_var
        t = times[None, None, :] - lat[None, :, None] - shift[:, None, None]
        return np.sqrt(width**2 / w2)[None, :, None] * np.exp(-(t**2) / (2 * w2[None, :, None]))

    def spatial(self, z: np.ndarray) -> np.ndarray:
        """``(n, n_components, n_chans)``: per-component scalp maps for images with latents ``z``."""
        a = self.model.amplitudes(z) * self.gains                       # (n, n_src)
        n_comp = len(self.model.components)
        out = np.zeros((len(a), n_comp, self.patterns.shape[1]))
        for k in range(n_comp):
            sel = self.model.source_component == k
            out[:, k] = a[:, sel] @ self.patterns[sel]
        return out

    def evoked(self, z: np.ndarray, times: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(n, n_chans, n_times)`` single-trial evoked signals (with jitter when ``rng`` is given)."""
        n = len(z)
        if rng is None:
            shift, gain = np.zeros(n), np.ones(n)
        else:
            sd = self.model.params.amplitude_sd
            shift = rng.normal(0.0, self.model.latency_sd, n)
            gain = np.exp(rng.normal(-sd**2 / 2, sd, n))
        tc = self._time_courses(times, shift)                            # (n, K, T)
        maps = self.spatial(z)                                           # (n, K, C)
        return gain[:, None, None] * np.matmul(maps.transpose(0, 2, 1), tc)

    def template(self, z: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Expected evoked response over latency and amplitude jitter (exact mean for Gaussian bumps)."""
        tc = self._time_courses(times, np.zeros(len(z)), extra_var=self.model.latency_sd**2)
        return np.matmul(self.spatial(z).transpose(0, 2, 1), tc)

    def trials(self, z: np.ndarray, rng: np.random.Generator, n_times: int | None = None,
               sfreq: float | None = None) -> np.ndarray:
        """``(n, n_chans, n_times)`` complete epochs (evoked with jitter + noise) for latents ``z``."""
        lay = self.model.layout
        n_times = n_times or lay.n_times
        sfreq = sfreq or lay.sfreq
        times = np.arange(n_times) / sfreq
        return self.evoked(z, times, rng) + self.model.noise(rng, len(z), n_times, sfreq)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
