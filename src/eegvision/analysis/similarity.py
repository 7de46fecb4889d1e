"""Representational similarity analysis between EEG embeddings and image features.

Each modality gets a representational dissimilarity matrix (RDM, ``1 - cosine``) over the test
images (concepts, for THINGS-EEG2); the statistic is the Spearman correlation of their upper
triangles and the p-value comes from a seeded Mantel permutation test (rows and columns of one RDM
permuted together), ``p = (1 + #{rho_perm >= rho}) / (1 + n_perm)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RSAResult", "rdm", "rsa", "rsa_analysis", "rsa_for_run"]


@dataclass
class RSAResult:
    """Spearman rho between two RDMs, its permutation p-value and null distribution summary."""

    rho: float
    p_value: float
    n_permutations: int
    null_mean: float
    null_std: float
    rdm_eeg: np.ndarray
    rdm_image: np.ndarray
    csv: Path | None = None
    figure: Path | None = None


def rdm(x: Any) -> np.ndarray:
    """``1 - cosine similarity`` between the rows of ``x`` (n, d) -> (n, n)."""
    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return 1.0 - x @ x.T


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v).astype(np.float64)


def rsa(a: Any, b: Any, *, n_permutations: int = 1000, seed: int = 0, chunk: int = 100) -> RSAResult:
    """RSA between embeddings ``a`` and ``b`` (row i of both = item i).

    Parameters
    ----------
    a, b : array (n, d_a), (n, d_b)
        E.g. EEG embeddings and image features of the same test images.
    n_permutations : int
        Mantel permutations for the p-value (0: no test, ``p = nan``).
    seed : int
        Seed of the permutations.
    """
    ra, rb = rdm(a), rdm(b)
    n = len(ra)
    if n < 3 or len(rb) != n:
        raise ValueError(f"RSA needs the same n >= 3 items in both inputs; got {len(ra)} and {len(rb)} rows.")
    iu = np.triu_indices(n, 1)
    # Spearman = Pearson of ranks; ranking commutes with permuting the items, so rank once.
    rank_a = np.zeros((n, n))
    rank_a[iu] = _ranks(ra[iu])
    rank_a = rank_a + rank_a.T
    zb = _ranks(rb[iu])
    zb = (zb - zb.mean()) / zb.std()

    def corr(va: np.ndarray) -> np.ndarray:
        va = va - va.mean(-1, keepdims=True)
        return (va * zb).mean(-1) / va.std(-1)

    rho = float(corr(rank_a[iu]))
    null = np.empty(0)
    if n_permutations > 0:
        rng = np.random.default_rng(seed)
        perms = np.stack([rng.permutation(n) for _ in range(n_permutations)])
        parts = []
        for s in range(0, n_permutations, chunk):
            p = perms[s:s + chunk]
            parts.append(corr(rank_a[p[:, iu[0]], p[:, iu[1]]]))
        null = np.concatenate(parts)
    p_value = float((1 + np.sum(null >= rho - 1e-12)) / (1 + len(null))) if len(null) else float("nan")
    return RSAResult(rho, p_value, int(n_permutations), float(null.mean()) if len(null) else float("nan"),
                     float(null.std()) if len(null) else float("nan"), ra, rb)


def rsa_analysis(eeg: Any, image: Any, out: str | os.PathLike, *, n_permutations: int = 1000, seed: int = 0,
                 title: str = "") -> RSAResult:
    """:func:`rsa` plus ``rsa.csv`` (one row) and ``rsa.png`` (both RDMs) in ``out``."""
    import pandas as pd

    from eegvision.analysis._plot import figure, save
    from eegvision.utils import atomic_path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = rsa(eeg, image, n_permutations=n_permutations, seed=seed)
    res.csv, res.figure = out / "rsa.csv", out / "rsa.png"
    table = pd.DataFrame([{"rho": res.rho, "p_value": res.p_value, "n_permutations": res.n_permutations,
                           "null_mean": res.null_mean, "null_std": res.null_std, "n_items": len(res.rdm_eeg),
                           "seed": seed, "rdm": "1 - cosine", "statistic": "spearman"}])
    with atomic_path(res.csv, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    fig, axes = figure(9.0, 4.2, ncols=2)
    for ax, m, name in zip(axes, (res.rdm_eeg, res.rdm_image), ("EEG embeddings", "image features")):
        im = ax.imshow(m, cmap="viridis", interpolation="nearest")
        ax.set_title(f"RDM: {name}")
        ax.set_xlabel("test image")
        fig.colorbar(im, ax=ax, shrink=0.8, label="1 - cosine")
    fig.suptitle(f"{title}  Spearman rho = {res.rho:.3f}, p = {res.p_value:.3g} ({res.n_permutations} perm.)")
    save(fig, res.figure)
    return res


def rsa_for_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, subject: str | None = None,
                unit: str | None = None, features_test: str | None = None, n_permutations: int = 1000,
                seed: int = 0) -> RSAResult:
    """RSA of a trained run's stored test embeddings against its test image features."""
    from eegvision.analysis.importance import run_test_embeddings

    emb, feats, subject = run_test_embeddings(run_dir, subject=subject, unit=unit, features_test=features_test)
    return rsa_analysis(emb, feats, out, n_permutations=n_permutations, seed=seed, title=f"{subject}:")
