"""The :class:`Preset` record of ``eegvision fit --preset`` and the check of what a preset still requires.

A preset is data: the :class:`~eegvision.training.config.FitConfig` fields it sets (``overrides``), and, for the
methods whose recipe needs more than eegvision's trainer offers, the rest written down so that nothing is silently
dropped: the image targets to extract (``targets``), the protocol of the paper (``protocol``) and the training
options that do not exist yet (``requires``). The presets themselves live in :mod:`.presets` and
:mod:`.presets_published`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from eegvision.training.config import FitConfig

__all__ = ["Preset", "input_flag", "unmet_requirements"]


@dataclass(frozen=True)
class Preset:
    """A named configuration and the published result it targets.

    Attributes
    ----------
    name, description : str
    features : str
        The image features the row used, in words (extract or import them yourself; ``targets`` has the same as data).
    reference : dict
        Published 200-way numbers as fractions (``top1``, ``top5``, and their ``_std`` over subjects) of the preset's
        own protocol (within-subject or leave-one-subject-out, ``overrides["protocol"]``).
    source : str
        Where the number is written down (paper table and our reference notes).
    overrides : dict
        :class:`FitConfig` fields set by the preset (only fields that exist).
    targets : dict
        What the image-feature extraction must produce, for ``eegvision features`` to read: ``library``, ``backbone``,
        ``pretrained``, ``layers`` (``["final"]`` or block indices), ``pooling``, ``normalize``, ``dim`` and
        ``prior`` (``None`` or a dict: the image degradation applied before encoding and its parameters). Empty for
        the older presets, whose ``features`` text says it.
    requires : dict
        Training options the paper's recipe needs beyond ``overrides``, ``{option: settings}``, each keyed by the
        :class:`FitConfig` field that expresses it (or will: e.g. ``{"target_mode": "learned", "subject_router":
        "gate", "projector": {...}}``), its value one that field accepts (descriptions go in comments and
        ``notes``). ``fit --preset`` refuses a preset with unmet requirements (:func:`unmet_requirements`) unless
        asked for a partial run. A requirement counts as met once :class:`FitConfig` has a field of that name that
        accepts the settings; it is then passed on as that field.
    protocol : dict
        The paper's protocol knobs, for the record and the listing: ``channels`` (region name of
        :data:`eegvision.readers.channels.REGIONS` or ``"all"``), ``n_channels``, ``average_train``,
        ``average_test``, ``selection`` (the paper's model-selection rule, in words; eegvision always selects on
        held-out training concepts), ``seeds``, ``preprocessing``.
    notes : tuple of str
        Where the preset differs from the paper and what is not public.
    inputs : dict
        :class:`FitConfig` fields that hold files only the user can make (e.g. ``blur_levels``: the feature files
        of the blurred images), ``{field: how to make them}``; :func:`~eegvision.training.presets.preset_config`
        refuses the preset until each is given.
    """

    name: str
    description: str
    features: str
    reference: dict[str, float]
    source: str
    overrides: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    requires: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)


def unmet_requirements(preset: Preset) -> dict[str, str]:
    """``{option: why}`` for each of ``preset.requires`` that :class:`FitConfig` cannot express yet (empty: none).

    A requirement is met when :class:`FitConfig` has a field of that name and accepts the preset's settings for it
    together with the preset's ``overrides`` and its other requirements that are fields (they are passed on
    together, e.g. a dropout of ``target_mode="learned"`` with that mode). When the fields are refused only
    together, each of them is reported with the joint refusal.
    """
    names = {f.name for f in dataclasses.fields(FitConfig)}
    unmet = {option: "not an eegvision training option yet" for option in preset.requires if option not in names}
    fields = {k: v for k, v in preset.requires.items() if k in names}
    try:
        FitConfig(**{**preset.overrides, **fields})
        return unmet
    except (TypeError, ValueError) as exc:
        joint = exc
    for option, settings in fields.items():
        try:
            FitConfig(**{**preset.overrides, option: settings})
        except (TypeError, ValueError) as exc:
            unmet[option] = f"FitConfig does not accept {settings!r} for it ({exc})"
    if not any(option in unmet for option in fields):
        for option, settings in fields.items():
            unmet[option] = f"FitConfig does not accept {settings!r} for it with the other requirements ({joint})"
    return unmet


def input_flag(name: str) -> str:
    """The ``eegvision fit`` option that gives :attr:`Preset.inputs` field ``name`` (``targets``: ``--target``)."""
    return {"targets": "--target"}.get(name, "--" + name.replace("_", "-"))
