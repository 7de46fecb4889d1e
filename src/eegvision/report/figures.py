"""Matplotlib figures of the report, each written as a PNG (Agg backend, no display needed).

Every function takes plain data (lists, dicts, arrays) read from the result files, draws one figure
and returns the path it wrote, so the figures can be remade from a finished run without the models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["kway_bars", "training_curves", "image_grid", "retrieval_gallery", "topomap", "save"]

_DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG at ``path`` (folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    _plt().close(fig)
    return path


def kway_bars(rows: Sequence[Mapping], path: str | Path, ceiling: Mapping | None = None,
              ridge: Mapping | None = None) -> Path:
    """Exact k-way accuracy (image retrieval and text classification) per k, one bar group per k.

    Bars are the mean over subjects, dots the subjects; the dashed line under each group is chance
    (``1/k`` for top-1, ``min(1, 5/k)`` for top-5). At the largest k, the simulator's Bayes ceiling
    (★) and the ridge baseline (◆) are drawn when given (``{"top1": .., "top5": ..}``), right of the last
    group; the legend sits below the axes, where it covers no mark.
    """
    return save(kway_figure(rows, ceiling, ridge), path)


def kway_figure(rows: Sequence[Mapping], ceiling: Mapping | None = None, ridge: Mapping | None = None):
    """The figure of :func:`kway_bars` (a matplotlib ``Figure``, not saved)."""
    plt = _plt()
    rows = [r for r in rows if r.get("method") == "exact"]
    ks = sorted({int(r["k"]) for r in rows})
    mods = [m for m in ("image", "text") if any(r["modality"] == m for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    width = 0.8 / max(1, len(mods))
    colours = {"image": "#3b6fb6", "text": "#e08a2c"}
    x = np.arange(len(ks))
    for ax, top in zip(axes, ("top1", "top5")):
        for j, m in enumerate(mods):
            vals = [[r[top] for r in rows if r["modality"] == m and int(r["k"]) == k] for k in ks]
            means = [float(np.mean(v)) if v else np.nan for v in vals]
            pos = x - 0.4 + width * (j + 0.5)
            ax.bar(pos, means, width * 0.9, color=colours[m], label=f"{m} (mean)")
            for p, v in zip(pos, vals):
                ax.scatter([p] * len(v), v, s=10, color="black", zorder=3)
        chance = [1.0 / k if top == "top1" else min(1.0, 5.0 / k) for k in ks]
        for xi, c in zip(x, chance):
            ax.hlines(c, xi - 0.45, xi + 0.45, colors="grey", linestyles="dashed", zorder=4)
        last = x[-1] + 0.4 + 0.15
        if ceiling and ceiling.get(top) is not None:
            ax.scatter([last], [ceiling[top]], marker="*", s=140, color="#2a9d55", zorder=5,
                       label=f"Bayes ceiling ({ks[-1]}-way)")
        if ridge and ridge.get(top) is not None:
            ax.scatter([last], [ridge[top]], marker="D", s=40, color="#8c3bb6", zorder=5,
                       label=f"ridge ({ks[-1]}-way)")
        ax.set_xticks(x, [f"{k}-way" for k in ks])
        ax.set_xlim(-0.6, last + 0.35)
        ax.set_ylim(0, 1.06)
        ax.set_title(f"{top.replace('top', 'top-')} accuracy (dashed: chance)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def training_curves(histories: Mapping[str, Sequence[Mapping]], path: str | Path) -> Path:
    """Train/validation loss and validation top-1 per epoch, one line per subject."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    for sub, hist in histories.items():
        ep = [h["epoch"] for h in hist]
        line, = a.plot(ep, [h.get("train_loss") for h in hist], label=f"{sub} train")
        a.plot(ep, [h.get("val_loss") for h in hist], "--", color=line.get_color(), label=f"{sub} validation")
        b.plot(ep, [h.get("val_top1") for h in hist], color=line.get_color(), label=sub)
    a.set(xlabel="epoch", ylabel="InfoNCE loss", title="loss")
    b.set(xlabel="epoch", ylabel="top-1", title="validation top-1 (held-out training concepts)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def _load_rgb(path: str | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def image_grid(rows: Sequence[Sequence[str | Path | None]], path: str | Path, row_labels: Sequence[str],
               col_labels: Sequence[str], cell: float = 1.3) -> Path:
    """A grid of images (``rows[i][j]`` a file or None for an empty cell) with row and column labels."""
    plt = _plt()
    n_r, n_c = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_r, n_c, figsize=(cell * n_c, cell * n_r + 0.3), squeeze=False)
    for i, r in enumerate(rows):
        for j in range(n_c):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(r) and r[j] is not None:
                ax.imshow(_load_rgb(r[j]))
            else:
                ax.axis("off")
            if i == 0 and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=9, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return save(fig, path)


def retrieval_gallery(gt_paths: Sequence[str | Path], ranked: np.ndarray, path: str | Path,
                      labels: Sequence[str], n_show: int = 3) -> Path:
    """Ground truth next to the test images the EEG embedding ranked first (green frame: correct).

    ``ranked[i]`` are the candidate indices ordered by similarity for query ``i`` (only the first
    ``n_show`` are drawn); ``gt_paths[j]`` is the image of candidate ``j`` and query ``i``'s truth is ``i``.
    """
    plt = _plt()
    n = len(ranked)
    fig, axes = plt.subplots(n, n_show + 1, figsize=(1.25 * (n_show + 1), 1.25 * n + 0.3), squeeze=False)
    for i in range(n):
        cells = [i] + [int(j) for j in ranked[i][:n_show]]
        for c, idx in enumerate(cells):
            ax = axes[i, c]
            ax.imshow(_load_rgb(gt_paths[idx]))
            ax.set_xticks([])
            ax.set_yticks([])
            if c > 0:
                colour = "#2a9d55" if idx == i else "#c0392b"
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(3)
            if i == 0:
                ax.set_title("seen" if c == 0 else f"rank {c}", fontsize=8)
        axes[i, 0].set_ylabel(labels[i], fontsize=9, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return save(fig, path)


def topomap(values: np.ndarray, ch_names: Sequence[str], path: str | Path, title: str = "channel importance",
            sfreq: float = 250.0) -> Path:
    """Scalp map of one value per channel (MNE ``plot_topomap``, standard 10-05 montage positions)."""
    import mne

    plt = _plt()
    info = mne.create_info(list(ch_names), sfreq, "eeg")
    # MNE 1.13 renamed the 10-05 template (standard_1005 is deprecated); older MNE has only the old name
    name = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"
    info.set_montage(mne.channels.make_standard_montage(name), on_missing="ignore")
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    im, _ = mne.viz.plot_topomap(np.asarray(values, dtype=float), info, axes=ax, show=False, cmap="viridis")
    fig.colorbar(im, ax=ax, shrink=0.7)
    ax.set_title(title, fontsize=9)
    return save(fig, path)
