"""The fast decoder shared by the analyses: closed-form ridge from binned EEG to image features.

Time and space analyses need dozens of fits, so they use a linear decoder with an exact
solution instead of training a network per window:

1. each sample (repetition-averaged EEG of one image) is restricted to a channel subset and a
   time window, and the window is cut into bins of about ``bin_ms`` whose means are the features
   (``np.add.reduceat``; 20 ms bins turn a 100 ms window of 63 channels into 315 features);
2. features are z-scored with training statistics, targets (image features) are centred;
3. ridge regression is solved from one eigendecomposition of the smaller Gram matrix
   (``X^T X`` or ``X X^T``), which gives the solution for every ridge penalty at once; the
   penalty is chosen by generalised cross-validation (GCV) on the training set;
4. test predictions are compared with the test image features by cosine similarity and scored
   with the exact all-way k-way accuracy (:func:`eegvision.evaluation.kway.kway_exact`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Decoded", "RidgeFit", "TrialData", "bin_window", "decode", "fit_ridge", "load_trials",
           "resolve_features", "retrieval_accuracy"]

#: Ridge penalties tried, relative to the mean eigenvalue of the Gram matrix.
ALPHA_GRID = np.logspace(-4, 3, 15)


@dataclass
class TrialData:
    """Repetition-averaged EEG of one subject and split with its image features.

    Attributes
    ----------
    eeg : ndarray (n_images, n_chans, n_times) float32
    features : ndarray (n_images, dim) float32
        Row i is the image of ``eeg[i]``.
    ch_names : list of str
    times : ndarray (n_times,) seconds
    sfreq : float
    concepts : ndarray (n_images,) int
        Concept index of each row (``-1`` when unknown).
    """

    eeg: np.ndarray
    features: np.ndarray
    ch_names: list[str]
    times: np.ndarray
    sfreq: float
    concepts: np.ndarray


@dataclass
class RidgeFit:
    """A fitted ridge map ``features = ((x - mean) / std) @ weights + offset``."""

    weights: np.ndarray
    offset: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    alpha: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted targets for rows of ``x`` (n, p)."""
        return ((x - self.mean) / self.std) @ self.weights + self.offset


@dataclass
class Decoded:
    """Accuracy of one fit: exact ``n_candidates``-way top-1/top-5 on the test split."""

    top1: float
    top5: float
    n_candidates: int
    n_features: int
    alpha: float


# ------------------------------------------------------------------------------------- data
def resolve_features(data: str | Path, split: str, given: str | Path | None, cache_dir: Path) -> np.ndarray:
    """Image features of ``split`` (``"train"``/``"test"``) as float32, L2-normalised rows.

    ``given`` may be an eegvision ``.safetensors`` file or an ATM-style ``.pt`` (imported, normalised,
    into ``cache_dir``). Without it: ``DATA/features/{split}.safetensors``, else the simulator's
    ``DATA/sim_features_{split}.pt``.
    """
    from eegvision.features.files import import_atm_features, load_features

    data = Path(data)
    candidates = [Path(given).expanduser()] if given else [
        data / "features" / f"{split}.safetensors", data / f"sim_features_{split}.pt"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"No {split} image features: looked for {', '.join(map(str, candidates))}. Pass "
            f"--features-{split} FILE or extract them with `eegvision features` into DATA/features/.")
    if path.suffix.lower() in (".pt", ".pth"):
        target = Path(cache_dir) / f"{path.stem}.normalized.safetensors"
        if not target.is_file() or target.stat().st_mtime < path.stat().st_mtime:
            target.parent.mkdir(parents=True, exist_ok=True)
            import_atm_features(path, target, normalize=True)
        path = target
    feats = load_features(path).image.numpy().astype(np.float32)
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


def load_trials(store: Any, subject: str, split: str, features: np.ndarray, *,
                channels: str | Sequence[str] | None = None, batch_size: int = 512) -> TrialData:
    """Read one subject's ``split`` averaged over repetitions (all times), in batches.

    Memory: ``n_images x n_chans x n_times x 4`` bytes (THINGS-EEG2 training: about 1 GB).
    """
    from eegvision.data.dataset import EEGDataset

    ds = EEGDataset(store, [subject], split, average=True, channels=channels)
    if len(features) != len(ds):
        raise ValueError(f"The {split} feature file has {len(features)} rows but {subject}/{split} has "
                         f"{len(ds)} conditions; give the feature file of this split (row i = condition i).")
    eeg = np.empty((len(ds), ds.n_chans, ds.n_times), dtype=np.float32)
    for start in range(0, len(ds), batch_size):
        idx = np.arange(start, min(len(ds), start + batch_size))
        eeg[idx] = ds.fetch(idx)["eeg"]
    feats = features[ds.condition_index]
    return TrialData(eeg, feats, list(ds.ch_names), np.asarray(ds.times), float(ds.sfreq), ds.concepts.copy())


def bin_window(eeg: np.ndarray, start: int, stop: int, bin_samples: int,
               channels: Sequence[int] | None = None) -> np.ndarray:
    """Flattened features ``(n, n_sel_chans * n_bins)``: means of ~``bin_samples``-sample bins.

    The window ``[start, stop)`` is split into ``ceil((stop - start) / bin_samples)`` bins of
    (almost) equal size, so every sample counts once, whatever the window length.
    """
    if stop <= start:
        raise ValueError(f"Empty window: samples [{start}, {stop}).")
    x = eeg if channels is None else eeg[:, np.asarray(channels, dtype=np.int64)]
    x = x[:, :, start:stop]
    n_bins = max(1, int(np.ceil((stop - start) / max(1, bin_samples))))
    edges = np.unique(np.linspace(0, stop - start, n_bins + 1).round().astype(np.int64))
    sums = np.add.reduceat(x, edges[:-1], axis=2, dtype=np.float32)
    widths = np.diff(edges).astype(np.float32)
    return (sums / widths).reshape(len(x), -1)


# ------------------------------------------------------------------------------------- ridge
class _RidgePath:
    """Ridge solutions for every penalty from one eigendecomposition of the smaller Gram matrix."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        self.n, self.p = x.shape
        self.mean = x.mean(0)
        std = x.std(0)
        std[std < 1e-8] = 1.0
        self.std = std
        xs = (x - self.mean) / std
        self.y_mean = y.mean(0)
        yc = y - self.y_mean
        self.total = float((yc ** 2).sum())
        if self.p <= self.n:  # primal: X^T X = V diag(lam) V^T
            lam, v = np.linalg.eigh((xs.T @ xs).astype(np.float64))
            self.c = v.T @ (xs.T.astype(np.float64) @ yc)          # V^T X^T y = sqrt(lam) U^T y
            self.basis = v                                          # weights = V diag(1/(lam+a)) c
        else:                 # dual: X X^T = U diag(lam) U^T
            lam, u = np.linalg.eigh((xs @ xs.T).astype(np.float64))
            self.c = u.T @ yc                                       # U^T y
            self.basis = xs.T.astype(np.float64) @ u                # weights = X^T U diag(1/(lam+a)) U^T y
        self.lam = np.clip(lam, 0.0, None)
        self.keep = self.lam > self.lam.max() * 1e-10
        self.scale = float(self.lam.mean()) if self.lam.mean() > 0 else 1.0

    def weights(self, alpha: float) -> np.ndarray:
        inv = np.where(self.keep, 1.0 / (self.lam + alpha), 0.0)
        return self.basis @ (inv[:, None] * self.c)

    def gcv(self, alphas: np.ndarray) -> np.ndarray:
        """Generalised cross-validation error of each penalty."""
        lam = np.where(self.keep, self.lam, 0.0)
        if self.p <= self.n:
            c2 = np.where(self.keep, (self.c ** 2).sum(1) / np.where(self.keep, lam, 1.0), 0.0)
        else:
            c2 = np.where(self.keep, (self.c ** 2).sum(1), 0.0)
        shrink = lam[None, :] / (lam[None, :] + alphas[:, None])
        resid = self.total - c2.sum() + (((1 - shrink) ** 2) * c2[None, :]).sum(1)
        return resid / np.maximum(1 - shrink.sum(1) / self.n, 1e-6) ** 2

    def fit(self, alpha: float) -> RidgeFit:
        return RidgeFit(self.weights(alpha).astype(np.float32), self.y_mean.astype(np.float32), self.mean,
                        self.std, float(alpha))


def _rank_score(pred: np.ndarray, feats: np.ndarray) -> float:
    """Mean fraction of candidates scored below the true one (exact 2-way accuracy); smooth in the fit."""
    pn = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1e-12)
    s = pn @ feats.T
    true = np.diag(s)[:, None]
    return float(((s < true).sum(1) / max(1, len(s) - 1)).mean())


def fit_ridge(x: np.ndarray, y: np.ndarray, alphas: Sequence[float] | None = None, *,
              groups: np.ndarray | None = None, select: str = "val", val_fraction: float = 0.2,
              seed: int = 0) -> RidgeFit:
    """Ridge regression ``x -> y`` with the penalty chosen on held-out data.

    Parameters
    ----------
    x : ndarray (n, p)
    y : ndarray (n, d)
        L2-normalised image features (rows).
    alphas : sequence of float, optional
        Penalties relative to the mean eigenvalue of the Gram matrix (default :data:`ALPHA_GRID`).
    groups : ndarray (n,), optional
        Concept of each row: the validation split holds out whole concepts (zero-shot, as the test).
    select : {"val", "gcv"}
        ``"val"``: the penalty with the best retrieval (2-way accuracy) on ``val_fraction`` of the
        concepts, then refit on everything; ``"gcv"``: generalised cross-validation of the squared error.
    seed : int
        Seed of the validation split.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    grid_rel = np.asarray(ALPHA_GRID if alphas is None else alphas, dtype=np.float64)
    if select not in ("val", "gcv"):
        raise ValueError(f"select must be 'val' or 'gcv'; got {select!r}.")
    full = _RidgePath(x, y)
    if select == "gcv" or len(x) < 10:
        grid = grid_rel * full.scale
        return full.fit(float(grid[int(np.argmin(full.gcv(grid)))]))
    groups = np.arange(len(x)) if groups is None else np.asarray(groups)
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    n_val = max(2, int(round(val_fraction * len(uniq))))
    val_groups = rng.choice(uniq, size=min(n_val, len(uniq) - 1), replace=False)
    val = np.isin(groups, val_groups)
    part = _RidgePath(x[~val], y[~val])
    xv = (x[val] - part.mean) / part.std
    scores = [_rank_score(xv @ part.weights(a * part.scale) + part.y_mean, y[val]) for a in grid_rel]
    best = float(grid_rel[int(np.argmax(scores))])
    return full.fit(best * full.scale)


def retrieval_accuracy(pred: np.ndarray, features: np.ndarray, tops: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Exact all-way top-t accuracy of predictions against candidate features (row i is the truth)."""
    from eegvision.evaluation.kway import cosine_similarity, kway_exact

    n = len(features)
    tops = tuple(t for t in tops if t <= n) or (1,)
    acc = kway_exact(cosine_similarity(pred, features), ks=[n], tops=tops)
    return {t: acc.get(n, t) for t in tops}


def decode(train: TrialData, test: TrialData, start: int, stop: int, *, channels: Sequence[int] | None = None,
           bin_samples: int = 5, select: str = "val") -> Decoded:
    """Fit ridge on ``train`` restricted to samples ``[start, stop)`` and ``channels``; score on ``test``."""
    xtr = bin_window(train.eeg, start, stop, bin_samples, channels)
    xte = bin_window(test.eeg, start, stop, bin_samples, channels)
    model = fit_ridge(xtr, train.features, groups=train.concepts, select=select)
    acc = retrieval_accuracy(model.predict(xte), test.features)
    return Decoded(acc[1], acc.get(5, 1.0), len(test.features), xtr.shape[1], model.alpha)


def bin_samples_for(bin_ms: float, sfreq: float) -> int:
    """Samples per bin for ``bin_ms`` milliseconds (at least one)."""
    if bin_ms <= 0:
        raise ValueError(f"bin_ms must be > 0 (milliseconds per feature bin); got {bin_ms}.")
    return max(1, int(round(bin_ms * sfreq / 1000.0)))
