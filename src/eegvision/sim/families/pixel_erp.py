r"""The ``pixel-erp`` family: early ERP components (80-150 ms) driven by pixel statistics of the rendered image,
later ones (200-400 ms) by its semantic features (``docs/families.md``, section *The pixel-erp family*).

The mechanism is :mod:`~eegvision.sim.families.erp`'s (components, jitter, gain noise, matrix-normal noise, exact
Bayes decoder); only the code and the component latencies differ:

* early components (``n_early``): :math:`u = \mathrm{std}(\Pi_e\,\mathrm{std}(s))` with :math:`s` the 12 pixel
  statistics of :func:`pixel_statistics` (colour, edge energy and orientation, luminance layout);
* late components: :math:`u = \mathrm{std}(\Pi f)` with the world's semantic features :math:`f`, as the other
  families.

No layer of any network (in particular not the world CLIP) is read: the data cannot favour a target model by
construction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from eegvision.sim.families.base import Stimuli
from eegvision.sim.families.erp import ErpFamily, ErpModel, ErpParams, erp_presets
from eegvision.sim.presets import Preset

__all__ = ["FAMILY", "PIXEL_STATISTICS", "PixelErpFamily", "PixelErpModel", "PixelErpParams", "pixel_statistics"]

#: The names of :func:`pixel_statistics`' columns, in order.
PIXEL_STATISTICS = ("luminance", "red_green", "blue_yellow", "saturation", "edge_energy", "orientation_0",
                    "orientation_45", "orientation_90", "orientation_135", "left_right", "top_bottom",
                    "centre_surround")


def pixel_statistics(pixels: np.ndarray) -> np.ndarray:
    """``(n, 12)`` float64 low-level statistics of ``(n, H, W, 3)`` uint8 RGB pictures (see
    :data:`PIXEL_STATISTICS`): mean luminance (``(R+G+B)/3``), mean red-green (``R-G``) and blue-yellow
    (``B-(R+G)/2``) opponent colour, mean saturation (``max-min`` of RGB); edge energy (mean magnitude of the
    luminance's central-difference gradient) and the share of it in four orientation bins centred on 0, 45, 90
    and 135 degrees minus 1/4; the luminance layout as mean(left) - mean(right), mean(top) - mean(bottom) and
    mean(central quarter) - mean(rest). Values of RGB in [0, 1]."""
    x = np.asarray(pixels, np.float64) / 255.0
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"pixel_statistics takes (n, H, W, 3) RGB pictures; got shape {x.shape}.")
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    lum = (r + g + b) / 3
    out = [lum.mean((1, 2)), (r - g).mean((1, 2)), (b - (r + g) / 2).mean((1, 2)),
           (x.max(-1) - x.min(-1)).mean((1, 2))]
    gy, gx = np.gradient(lum, axis=(1, 2))
    mag = np.hypot(gx, gy)
    energy = mag.sum((1, 2))
    out.append(mag.mean((1, 2)))
    angle = np.mod(np.arctan2(gy, gx), np.pi)                          # orientation of the gradient, [0, pi)
    bins = np.mod(np.round(angle / (np.pi / 4)).astype(int), 4)         # nearest of 0, 45, 90, 135 degrees
    for k in range(4):
        out.append((mag * (bins == k)).sum((1, 2)) / np.maximum(energy, 1e-12) - 0.25)
    h, w = lum.shape[1:]
    out.append(lum[:, :, : w // 2].mean((1, 2)) - lum[:, :, w - w // 2:].mean((1, 2)))
    out.append(lum[:, : h // 2].mean((1, 2)) - lum[:, h - h // 2:].mean((1, 2)))
    centre = np.zeros((h, w), bool)
    centre[h // 4: h - h // 4, w // 4: w - w // 4] = True
    out.append(lum[:, centre].mean(1) - lum[:, ~centre].mean(1))
    return np.stack(out, 1)


@dataclass
class PixelErpParams(ErpParams):
    """:class:`ErpParams` plus the split into early (pixel-driven) and late (semantic) components."""

    n_early: int = 4
    early_min: float = 0.08
    early_max: float = 0.15
    late_min: float = 0.20
    late_max: float = 0.40
    early_sensor_quantile: float = 1.0 / 3.0

    def validate(self) -> None:
        super().validate()
        if not 0 < self.n_early < self.n_components:
            raise ValueError(f"PixelErpParams.n_early must be between 1 and n_components - 1 "
                             f"({self.n_components - 1}); got {self.n_early}.")
        if not (0 <= self.early_min < self.early_max <= self.late_min < self.late_max):
            raise ValueError("PixelErpParams needs 0 <= early_min < early_max <= late_min < late_max; got "
                             f"{self.early_min}, {self.early_max}, {self.late_min}, {self.late_max}.")


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), x.std(0) + 1e-12


class PixelErpModel(ErpModel):
    """:class:`ErpModel` whose first ``n_early`` components read the pixels and the rest the semantic features."""

    def __init__(self, params: PixelErpParams, training: Stimuli, seed: int = 0) -> None:
        super().__init__(params, training.features, seed)
        p = params
        if training.pixels is None:
            raise ValueError("The pixel-erp family needs the rendered training images (Stimuli.pixels); the "
                             "runner renders them for this family.")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x91E]))
        stats = pixel_statistics(training.pixels)
        self.s_mean, self.s_sd = _standardise(stats)
        self.proj_early = rng.standard_normal((p.n_early, stats.shape[1])) / np.sqrt(stats.shape[1])
        self.e_mean, self.e_sd = _standardise(self._early_raw(stats))
        n_late = p.n_components - p.n_early
        early = p.early_min + (np.arange(p.n_early) + rng.uniform(0.2, 0.8, p.n_early)) * (
            (p.early_max - p.early_min) / p.n_early)
        late = p.late_min + (np.arange(n_late) + rng.uniform(0.2, 0.8, n_late)) * ((p.late_max - p.late_min) / n_late)
        self.latency = np.concatenate([early, late])
        self.width = p.width_base + p.width_slope * self.latency
        pos = self.layout.positions                  # early components over occipital sensors
        occipital = np.flatnonzero(pos[:, 1] <= np.quantile(pos[:, 1], p.early_sensor_quantile))
        self.centre_index[: p.n_early] = rng.choice(occipital, p.n_early, replace=len(occipital) < p.n_early)
        self.centres = pos[self.centre_index]
        t = rng.standard_normal((p.n_components, 3))
        t -= (t * self.centres).sum(1, keepdims=True) * self.centres
        self.tangent = t / np.linalg.norm(t, axis=1, keepdims=True)

    def _early_raw(self, stats: np.ndarray) -> np.ndarray:
        return ((stats - self.s_mean) / self.s_sd) @ self.proj_early.T

    def codes(self, stimuli: Stimuli) -> np.ndarray:
        """``(n, K)``: the standardised pixel code of the early components, then the semantic code of the late."""
        if stimuli.pixels is None:
            raise ValueError("The pixel-erp family's code reads the rendered images (Stimuli.pixels); got none.")
        early = (self._early_raw(pixel_statistics(stimuli.pixels)) - self.e_mean) / self.e_sd
        late = self._v(np.asarray(stimuli.features, np.float64))[:, self.params.n_early:]
        return np.concatenate([early, late], 1)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["pixel_code"] = {"statistics": list(PIXEL_STATISTICS), "n_early": self.params.n_early,
                             "early_components": list(range(self.params.n_early))}
        return out


class PixelErpFamily(ErpFamily):
    """An :class:`ErpFamily` whose model is a :class:`PixelErpModel` (needs the rendered images)."""

    needs_pixels = True

    def build(self, training: Stimuli, seed: int, params: PixelErpParams | dict | None = None) -> PixelErpModel:
        if isinstance(params, dict):
            params = replace(self.params, **params)
        elif params is not None and not isinstance(params, PixelErpParams):
            raise TypeError(f"Family {self.name!r} takes PixelErpParams (or a dict of its fields); "
                            f"got {type(params).__name__}.")
        return PixelErpModel(params or self.default_params(), training, seed=seed)


PARAMS = PixelErpParams(code="linear", signal=0.12, latency_sd=0.015, gain_sd=0.25,
                        noise_length=0.30, noise_white=0.50, noise_ar1=0.50)
DEFAULT = Preset("default", n_subjects=1, n_train_concepts=400, n_train_images=5, train_reps=4,
                 n_test_concepts=200, test_reps=20, n_sessions=1, feature_dim=768, write_raw=False)

FAMILY = PixelErpFamily("pixel-erp", "early ERP components from the image's pixel statistics, later ones from its "
                        "semantic features", PARAMS, erp_presets(DEFAULT), target=(0.6, 0.95))
