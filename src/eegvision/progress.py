"""Progress bars for long library work (rich), silent when disabled.

Library code wraps long loops in :func:`track`; the CLI shows them, and tests or batch
jobs can silence them with ``EEGVISION_PROGRESS=0`` or :func:`set_enabled`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_enabled: bool | None = None


def set_enabled(flag: bool) -> None:
    """Turn progress bars on or off for this process."""
    global _enabled
    _enabled = flag


def enabled() -> bool:
    if _enabled is not None:
        return _enabled
    return os.environ.get("EEGVISION_PROGRESS", "1") not in ("0", "false", "no")


def track(iterable: Iterable[T], description: str = "working", total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar (on stderr) when enabled, plainly otherwise."""
    if not enabled():
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        for item in iterable:
            yield item
            bar.advance(task)
