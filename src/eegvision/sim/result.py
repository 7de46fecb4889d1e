"""What a simulation wrote and what its data allow (:class:`SimulationResult`), for every simulator family."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eegvision.sim.embedding import RandomFeatureMap
from eegvision.sim.presets import Preset
from eegvision.sim.scene import World

__all__ = ["SimulationResult"]


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote and what the data allow.

    ``ceiling`` is the known-model decoder's score (for the ``eegvision`` family, its Bayes decoder under a
    Gaussian approximation; for the component-ERP families, exact Bayes); ``known_model`` is the same dict
    with its ``label``. ``ridge`` and ``whitened_ridge`` are the linear baselines
    (:mod:`eegvision.evaluation.linear`); ``whitened_ridge`` is empty when training conditions have a single
    repetition.
    """

    root: Path
    preset: Preset
    seed: int
    paradigm: str
    subjects: list[str]
    ceiling: dict
    ridge: dict
    chance_top1: float
    wall_s: float
    paths: dict[str, list[str]] = field(default_factory=dict)
    world: World | None = field(default=None, repr=False)
    feature_map: RandomFeatureMap | None = field(default=None, repr=False)
    model: object | None = field(default=None, repr=False)
    family: str = "eegvision"
    known_model: dict = field(default_factory=dict)
    whitened_ridge: dict = field(default_factory=dict)
