"""A 2-D map (t-SNE) of test EEG embeddings coloured by high-level category.

Labels, in order of preference: labels given by the caller (one per test image, e.g. the shape of each
simulated concept, :func:`eegvision.sim.labels.test_concept_shapes`); a ``labels_file`` TSV (column
``label``, one row per test image in test order, or columns ``concept`` and ``label``); for THINGS-EEG2 test
sets (200 concepts) the 27 THINGS categories (:mod:`eegvision.analysis.categories`). Writes ``tsne.csv`` (x, y, label per test image)
and ``tsne.png``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EmbeddingMap", "embedding_map", "labels_for_data", "tsne_for_run"]


@dataclass
class EmbeddingMap:
    """2-D coordinates of the embeddings with their labels; ``silhouette`` of the labels in the map."""

    coords: np.ndarray
    labels: list[str]
    silhouette: float
    csv: Path
    figure: Path


def labels_for_data(data: str | os.PathLike | None, n: int, labels_file: str | os.PathLike | None = None) -> list[str]:
    """Category label of each of the ``n`` test images (see the module docstring)."""
    import pandas as pd

    labels = labels_file
    if labels:
        table = pd.read_csv(labels, sep="\t", dtype=str, keep_default_na=False)
        if "label" not in table.columns:
            raise ValueError(f"{labels} needs a 'label' column (and optionally 'concept'); it has "
                             f"{list(table.columns)}.")
        if "concept" in table.columns and data is not None:
            from eegvision.data.sources import open_data

            names = open_data(data).concepts("test")
            mapping = dict(zip(table["concept"], table["label"]))
            return [mapping.get(c, "unlabelled") for c in names]
        if len(table) != n:
            raise ValueError(f"{labels} has {len(table)} rows but there are {n} test images; give one row per "
                             "test image (test order) or 'concept' and 'label' columns.")
        return table["label"].tolist()
    if n == 200:
        from eegvision.analysis.categories import test_categories

        return test_categories()["category"].tolist()
    return ["unlabelled"] * n


def embedding_map(embeddings: Any, labels: list[str], out: str | os.PathLike, *, seed: int = 0,
                  perplexity: float | None = None, title: str = "") -> EmbeddingMap:
    """t-SNE (sklearn, cosine metric, PCA init, seeded) of ``embeddings`` with a scatter coloured by label."""
    import pandas as pd
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score

    from eegvision.analysis._plot import figure, save
    from eegvision.utils import atomic_path

    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n < 5 or len(labels) != n:
        raise ValueError(f"t-SNE needs >= 5 embeddings and one label each; got {n} and {len(labels)} labels.")
    perp = perplexity or float(min(30.0, max(2.0, (n - 1) / 3.0)))
    coords = TSNE(n_components=2, perplexity=perp, metric="cosine", init="pca", random_state=seed).fit_transform(x)
    uniq = sorted(set(labels))
    sil = float(silhouette_score(x, labels, metric="cosine")) if 1 < len(uniq) < n else float("nan")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, fig_path = out / "tsne.csv", out / "tsne.png"
    with atomic_path(csv_path, suffix=".csv") as tmp:
        pd.DataFrame({"item": np.arange(n), "x": coords[:, 0], "y": coords[:, 1], "label": labels}).to_csv(
            tmp, index=False)
    fig, ax = figure(7.0, 5.0)
    import matplotlib

    cmap = matplotlib.colormaps["tab20" if len(uniq) > 10 else "tab10"]
    lab = np.asarray(labels)
    for i, u in enumerate(uniq):
        m = lab == u
        ax.scatter(coords[m, 0], coords[m, 1], s=14, color=cmap(i % cmap.N), label=f"{u} ({m.sum()})")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(f"{title} t-SNE of test embeddings (silhouette {sil:.2f} in embedding space)")
    ax.legend(fontsize=6, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    save(fig, fig_path)
    return EmbeddingMap(coords, list(labels), sil, csv_path, fig_path)


def tsne_for_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, subject: str | None = None,
                 unit: str | None = None, labels: list[str] | None = None,
                 labels_file: str | os.PathLike | None = None, data: str | None = None,
                 seed: int = 0) -> EmbeddingMap:
    """t-SNE of a run's stored test embeddings, coloured by ``labels`` (one per test image) or, without them,
    by the categories of :func:`labels_for_data`."""
    from eegvision.analysis.importance import run_test_embeddings
    from eegvision.training.rundir import RunFolder

    emb, _, subject = run_test_embeddings(run_dir, subject=subject, unit=unit)
    if data is None:
        data = RunFolder.open(run_dir).fit_config().data or None
    if labels is None:
        labels = labels_for_data(data, len(emb), labels_file)
    elif len(labels) != len(emb):
        raise ValueError(f"{len(labels)} labels were given for {len(emb)} test embeddings; give one per test image.")
    return embedding_map(emb, labels, out, seed=seed, title=f"{subject}:")
