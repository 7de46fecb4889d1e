"""What a demo run produced: one :class:`StageRecord` per stage and the :class:`DemoResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoResult", "Skip", "StageRecord"]


@dataclass
class StageRecord:
    """What happened in one stage: ``status`` is ``"ran"``, ``"skipped"`` or ``"failed"``."""

    name: str
    status: str
    wall_s: float = 0.0
    reason: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    cpu_s: float = 0.0  # CPU seconds of this process (all threads) during the stage


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    out : Path
        The demo folder.
    report : Path or None
        ``OUT/report/index.html`` (None if the report stage failed).
    headline : dict
        200-way (or, on the tiny preset, all-way) image retrieval: ``top1``, ``top5`` (mean over subjects),
        ``ceiling_top1/top5`` (Bayes), ``ridge_top1/top5``, ``chance_top1/top5``, ``k``.
    stages : list of StageRecord
    summary_path : Path
        ``OUT/demo.json`` (everything the report shows).
    """

    out: Path
    report: Path | None
    headline: dict[str, float]
    stages: list[StageRecord]
    summary_path: Path

    def stage(self, name: str) -> StageRecord:
        return next(s for s in self.stages if s.name == name)


class Skip(Exception):
    """Raised inside a stage to record it as skipped, with the reason as message."""
