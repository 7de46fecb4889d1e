"""The ``eegvision`` family: the simulator's own forward model (:mod:`eegvision.sim.forward`), as is.

:func:`eegvision.sim.simulate` simulates it with its historical pipeline (raw sessions, paradigms, world-CLIP
features; byte-identical files for the historical presets). This module describes the family for the registry
and adapts the model to the family interface (:mod:`~eegvision.sim.families.base`), so code written for
families — a benchmark scoring the known-model decoder, say — handles it like any other.

Known-model decoder: :func:`eegvision.sim.ceiling.bayes_scores` on the repetition-averaged epochs — the exact
mean template over latency and amplitude jitter with the exact noise covariance, but the jitter's
signal-dependent variance ignored: an approximation of the Bayes decoder, labelled so.
"""

from __future__ import annotations

import numpy as np

from eegvision.sim.ceiling import bayes_projector, bayes_scores
from eegvision.sim.families.base import Family, Stimuli
from eegvision.sim.forward import ForwardModel, ForwardParams, SubjectModel, eeg_layout
from eegvision.sim.presets import PRESETS

__all__ = ["FAMILY", "EegvisionFamily"]


class _Subject:
    """A :class:`SubjectModel` behind the family interface (codes are the world's latents)."""

    def __init__(self, subject: SubjectModel) -> None:
        self.subject, self.index = subject, subject.index
        self._projectors: dict[tuple[int, int], object] = {}

    def trials(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.subject.trials(codes, rng)

    def known_model_scores(self, epochs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        epochs = np.asarray(epochs, np.float64)
        key = (epochs.shape[-1], epochs.shape[1])
        if key not in self._projectors:
            self._projectors[key] = bayes_projector(self.subject, key[0], key[1])
        return bayes_scores(self.subject, epochs.mean(1), codes, epochs.shape[1], projector=self._projectors[key])

    def info(self) -> dict:
        return {"subject": f"sub-{self.index + 1:02d}", "latency_offset_s": self.subject.latency,
                "source_gains": self.subject.gains.tolist()}


class _Model:
    def __init__(self, model: ForwardModel) -> None:
        self.model, self.layout = model, model.layout

    def codes(self, stimuli: Stimuli) -> np.ndarray:
        return np.asarray(stimuli.latents, np.float64)

    def subject(self, index: int) -> _Subject:
        return _Subject(self.model.subject(index))

    def to_dict(self) -> dict:
        return {"params": self.model.params.to_dict(), "seed": self.model.seed}


class EegvisionFamily(Family):
    name = "eegvision"
    summary = ("the simulator's own model: P1/N1/P2/P3 sources, gain-modulated later components, "
               "1/f + alpha + white noise")
    decoder_label = "known-model (Gaussian approximation: mean templates over jitter, jitter variance ignored)"
    exact_bayes = False
    target = (0.5, 0.95)
    held_out = False
    presets = PRESETS
    default_preset = "bench"

    def default_params(self) -> ForwardParams:
        return ForwardParams()

    def build(self, training: Stimuli, seed: int, params: ForwardParams | None = None) -> _Model:
        return _Model(ForwardModel(eeg_layout(), params or ForwardParams(), seed=seed))


FAMILY = EegvisionFamily()
