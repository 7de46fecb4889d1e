"""Training stages (``FitConfig.stages``): consecutive blocks of epochs, each with its own learning rate, subject-MMD
weight (fixed or decaying linearly) and frozen parameter groups.

SVTL (arXiv 2609.36971, ``anchors.md`` §7) trains in two stages: 20 epochs at lr 1e-4 on the contrastive loss plus
an MMD between source subjects whose weight decays linearly from 0.9 to 0.5 over the stage, then 30 epochs at lr
5e-5 on the contrastive loss alone with the projection layers frozen. As data::

    [{"epochs": 20, "lr": 1e-4, "subject_mmd_weight": [0.9, 0.5]},
     {"epochs": 30, "lr": 5e-5, "subject_mmd_weight": 0.0, "freeze": ["projector"]}]

(``"projector"``, a group of stages only, is the pair of projections of ``FitConfig.projector``: the EEG side's
Linear after the encoder and the image side's output layer — the :class:`~eegvision.models.image_projector.
ImageProjector`'s Linear, or the multi-view target's ``head``; the other groups are those of
:mod:`eegvision.training.freeze`: ``encoder``, ``attention``, ``subject``, ``head`` or ``all-but-head``.)

A stage is a dict with keys

``epochs`` (int >= 1, required)
    its length; the run's ``epochs`` is the sum over the stages.
``lr`` (float > 0, required)
    the optimiser's learning rate during the stage (set at the start of each of its epochs; AdamW's moments carry
    over from stage to stage).
``subject_mmd_weight`` (optional)
    a number, or ``[start, end]``: epoch ``k`` (0-based) of an ``n``-epoch stage uses
    ``start + (end - start) * k / (n - 1)`` (``start`` when ``n == 1``), so the first epoch has ``start`` and the
    last ``end``; the weight is constant within an epoch. Absent: ``FitConfig.subject_mmd_weight``.
``freeze`` (optional)
    parameter groups of the encoder frozen during the stage (no gradient, no weight decay, their submodules in
    eval mode), and ``"projector"`` (above); they train again in a later stage that does not name them.

Everything follows from the epoch index, so a run resumed from a checkpoint in the middle of a stage continues
exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eegvision.checks import check_int, check_names, check_positive

__all__ = ["STAGE_KEYS", "EpochPlan", "parse_stages", "stage_schedule"]

#: The keys a stage dict may hold.
STAGE_KEYS = ("epochs", "lr", "subject_mmd_weight", "freeze")
#: The freeze group of stages that names the projections of ``FitConfig.projector`` (module docstring).
PROJECTOR_GROUP = "projector"

_EXAMPLE = ('[{"epochs": 20, "lr": 1e-4, "subject_mmd_weight": [0.9, 0.5]}, {"epochs": 30, "lr": 5e-5, '
            '"freeze": ["encoder"]}]')


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch trains with: its stage (0-based), learning rate, subject-MMD weight and frozen groups."""

    stage: int
    lr: float
    subject_mmd_weight: float
    freeze: tuple[str, ...] = ()


def _mmd_weight(value: Any, where: str) -> float | list[float]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{where} subject_mmd_weight is a number or [start, end] (linear over the stage's "
                             f"epochs); got {list(value)!r}.")
        return [float(check_positive(f"{where} subject_mmd_weight", v, allow_zero=True)) for v in value]
    return float(check_positive(f"{where} subject_mmd_weight", value, allow_zero=True))


def parse_stages(stages: Any) -> list[dict[str, Any]]:
    """The stages in their normal form (the keys given, with ints, floats and lists); ``ValueError`` naming the
    stage and key otherwise. ``[]`` (or ``None``): no stages."""
    from eegvision.training.freeze import parse_freeze

    if stages is None:
        return []
    if isinstance(stages, (str, bytes, dict)) or not isinstance(stages, Sequence):
        raise ValueError(f"stages is a list of stage dicts such as {_EXAMPLE}; got {stages!r}.")
    out = []
    for i, stage in enumerate(stages):
        where = f"Stage {i + 1}"
        if not isinstance(stage, dict):
            raise ValueError(f"{where} is {stage!r}; each stage is a dict such as {_EXAMPLE}.")
        check_names(f"{where} key", list(stage), STAGE_KEYS, "the keys of a stage")
        for key in ("epochs", "lr"):
            if key not in stage:
                raise ValueError(f"{where} has no {key!r}; every stage gives its epochs and lr, e.g. {_EXAMPLE}.")
        norm: dict[str, Any] = {"epochs": check_int(f"{where} epochs", stage["epochs"], minimum=1),
                                "lr": float(check_positive(f"{where} lr", stage["lr"]))}
        if "subject_mmd_weight" in stage:
            norm["subject_mmd_weight"] = _mmd_weight(stage["subject_mmd_weight"], where)
        if "freeze" in stage:
            groups = [stage["freeze"]] if isinstance(stage["freeze"], str) else list(stage["freeze"])
            projector = [PROJECTOR_GROUP] if PROJECTOR_GROUP in groups else []
            norm["freeze"] = parse_freeze([g for g in groups if g != PROJECTOR_GROUP]) + projector
        out.append(norm)
    return out


def stage_schedule(stages: Sequence[dict[str, Any]], subject_mmd_weight: float = 0.0) -> list[EpochPlan]:
    """One :class:`EpochPlan` per epoch of the (normalised) ``stages``; a stage without its own
    ``subject_mmd_weight`` takes ``subject_mmd_weight`` (``FitConfig.subject_mmd_weight``)."""
    plan = []
    for i, stage in enumerate(parse_stages(list(stages))):
        n = stage["epochs"]
        w = stage.get("subject_mmd_weight", float(subject_mmd_weight))
        start, end = (w if isinstance(w, list) else (w, w))
        for k in range(n):
            weight = start if n == 1 else start + (end - start) * k / (n - 1)
            plan.append(EpochPlan(i, stage["lr"], float(weight), tuple(stage.get("freeze", ()))))
    return plan


def check_stages_config(config: Any) -> None:
    """``FitConfig.validate``'s part for ``stages``: normalise them, set ``epochs`` and ``lr`` from them when left at
    their defaults, refuse values that contradict them and options they cannot be combined with."""
    config.stages = parse_stages(config.stages)
    if not config.stages:
        return
    if config.projector is None and any(PROJECTOR_GROUP in s.get("freeze", ()) for s in config.stages):
        raise ValueError("A stage freezes 'projector' but the run has no projector; add --projector-dim D (e.g. "
                         "512) or drop 'projector' from the stage's freeze list.")
    total = sum(s["epochs"] for s in config.stages)
    for name, value, default in (("epochs", total, 40), ("lr", config.stages[0]["lr"], 3e-4)):
        given = getattr(config, name)
        if given == default:
            setattr(config, name, value)
        elif given != value:
            what = "the sum of the stages' epochs" if name == "epochs" else "the first stage's lr"
            raise ValueError(f"{name}={given!r} contradicts the stages: with stages, {name} is {what} ({value!r}). "
                             f"Leave --{name} out, or give {value!r}.")
    if config.schedule != "none":
        raise ValueError(f"schedule={config.schedule!r} and stages both set the learning rate; with stages each "
                         "stage's lr holds for its epochs. Drop --schedule or --stages.")
