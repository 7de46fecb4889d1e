"""Matplotlib helpers for the analysis figures (Agg backend, atomic PNG writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def figure(width: float = 6.4, height: float = 4.0, ncols: int = 1) -> tuple[Any, Any]:
    """A figure and its axes on the non-interactive Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def save(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG atomically; returns the path."""
    from eegvision.utils import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path
