"""The interface of a simulator family: stimuli → forward model → subjects → trials, and a known-model decoder.

A *family* (:class:`Family`) is a way of simulating a THINGS-like EEG/MEG dataset: a forward model, a noise
model, default sizes and a decoder that knows the model (``docs/families.md`` specifies every built-in one).
The generic runner (:func:`eegvision.sim.families.runner.simulate_family`) only talks to these interfaces:

1. the world's images become :class:`Stimuli` (features, latents and, for later pixel-driven families, the
   rendered pixels);
2. ``family.build(training_stimuli, seed, params)`` draws a :class:`FamilyModel` — the population's code;
3. ``model.codes(stimuli)`` is what drives the brain for each image (e.g. component amplitudes), a
   deterministic function of the stimulus;
4. ``model.subject(i)`` is a :class:`FamilySubject`: ``trials(codes, rng)`` draws single-trial epochs and
   ``known_model_scores(epochs, codes)`` scores each candidate for each condition's repetitions with the
   known model (higher = more likely).

Adding a family is one new module that defines a :class:`Family` (usually a subclass with its own
``build``) and its entry in :mod:`~eegvision.sim.families.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from eegvision.checks import check_name
from eegvision.sim.forward import Layout
from eegvision.sim.presets import Preset

__all__ = ["Family", "FamilyModel", "FamilySubject", "Stimuli"]


@dataclass(frozen=True)
class Stimuli:
    """The images of one split as a brain model may read them.

    ``features``: ``(n, D)`` L2-normalised image features (those written to ``sim_features_*.pt``);
    ``latents``: ``(n, LATENT_DIM)`` latent factors of the world (:meth:`World.latents`);
    ``pixels``: ``(n, H, W, 3)`` uint8 renders, when the simulation rendered them (else None).
    """

    features: np.ndarray
    latents: np.ndarray
    pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.features)


class FamilySubject(Protocol):
    """One simulated subject of a family's population."""

    index: int

    def trials(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(n, n_chans, n_times)`` single-trial epochs for the images whose codes are the rows of ``codes``."""

    def known_model_scores(self, epochs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """``(b, m)`` log-likelihood (up to a per-row constant) of candidate ``j`` (row ``j`` of ``codes``) for
        condition ``i``, from its epochs ``epochs[i]`` ``(b, n_reps, n_chans, n_times)``."""

    def info(self) -> dict:
        """JSON-able description of what is specific to this subject (gains, latency offset, ...)."""


class FamilyModel(Protocol):
    """A family's population code: sensors, the stimulus code and its subjects."""

    layout: Layout

    def codes(self, stimuli: Stimuli) -> np.ndarray:
        """``(n, ...)`` what drives the brain for each image (deterministic)."""

    def subject(self, index: int) -> FamilySubject:
        """Subject ``index`` (0-based)."""

    def to_dict(self) -> dict:
        """JSON-able parameters and drawn quantities (written to ``simulation.json``)."""


class Family(ABC):
    """A simulator family: what it models, its sizes, its known-model decoder and its target range.

    Attributes
    ----------
    name
        Registry name (``"linear-erp"``), as given to ``simulate(family=...)`` and ``--family``.
    summary
        One line for listings.
    decoder_label
        What the known-model decoder is: ``"exact Bayes ..."`` when it is the Bayes-optimal decision, otherwise
        ``"known-model ..."`` saying what it approximates.
    exact_bayes
        Whether the known-model decoder is exact Bayes (no decoder can beat it in expectation).
    target
        ``(low, high)``: where its 200-way top-1 must land at the default size (``docs/families.md``).
    held_out
        Never used to choose anything; reported separately.
    presets, default_preset
        Named sizes and the default one.
    """

    name: str
    summary: str
    decoder_label: str
    exact_bayes: bool
    target: tuple[float, float]
    held_out: bool = False
    #: Whether the model reads the rendered images (``Stimuli.pixels``): the runner then renders them always.
    needs_pixels: bool = False
    presets: Mapping[str, Preset]
    default_preset: str

    def preset(self, preset: str | Preset | None = None, n_subjects: int | None = None) -> Preset:
        """The size preset called ``preset`` (default: the family's), with ``n_subjects`` when given."""
        if isinstance(preset, Preset):
            pr = replace(preset, n_subjects=n_subjects or preset.n_subjects)
        else:
            name = self.default_preset if preset is None else preset
            check_name("Preset", name, list(self.presets), f"the presets of simulator family {self.name}")
            pr = replace(self.presets[name], n_subjects=n_subjects or self.presets[name].n_subjects)
        pr.validate()
        return pr

    def default_params(self) -> Any:
        """The family's forward-model parameters (an object with ``to_dict()``)."""
        return None

    @abstractmethod
    def build(self, training: Stimuli, seed: int, params: Any = None) -> FamilyModel:
        """Draw the population's model from ``seed``; ``training`` holds the training images (for fixed
        standardisation constants), ``params`` overrides :meth:`default_params`."""

    def describe(self, params: Any = None) -> dict:
        """JSON-able record of the family (``simulation.json``'s ``family`` entry)."""
        p = params if params is not None else self.default_params()
        return {"name": self.name, "summary": self.summary, "held_out": self.held_out,
                "known_model": {"label": self.decoder_label, "exact_bayes": self.exact_bayes},
                "target_top1": list(self.target), "default_preset": self.default_preset,
                "params": p.to_dict() if p is not None else None}
