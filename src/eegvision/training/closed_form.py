"""Fit a closed-form encoder (``ridge``) into a unit folder, as :func:`~eegvision.training.unit.fit_unit` does for
gradient-trained ones.

What a closed-form unit fits on
-------------------------------
* **Rows**: one per training condition (and training subject), the mean of all its repetitions — what
  ``average_train=True`` means for gradient training, and used whatever ``average_train`` says. Ridge on the
  single trials of a condition with one shared target equals ridge on their mean plus a penalty
  :math:`\\operatorname{tr}(W^\\top S_{noise} W)` shaped by the within-condition scatter, at ``n_reps`` times the
  cost; the penalty's strength is cross-validated directly instead.
* **Penalty**: K-fold cross-validation (``cv`` folds of scikit-learn's ``GroupKFold``) grouped by concept over
  *all* training conditions, the concepts of the usual validation split included: every fold holds out whole
  concepts, as the test does, so no separate validation split is needed
  (:func:`eegvision.evaluation.ridge_cv.ridge_cv`; kernel form when a fold's training rows are fewer than the
  features, streamed per-fold sufficient statistics otherwise). The model is then refitted on all rows.
* **Whitening** (``whiten`` option or ``FitConfig.whiten="mvnn"``): the MVNN matrix of the training conditions'
  residuals (:mod:`eegvision.training.whitening`), estimated once from the same single pass over the store and
  used in every fold (the residuals around condition means carry noise, not the stimulus).

The store is read once, in blocks of whole conditions (:meth:`~eegvision.data.dataset.EEGDataset.iter_conditions`,
each block's memory-mapped pages released after use); only the reduced design (rows × channels × time bins,
float32) is held in memory. The unit folder gets what a trained unit has — ``config.json``, ``encoder/``, test
embeddings, ``metrics.json``, a one-row ``history.csv`` (epoch 0: training and cross-validated MSE, CV top-1/top-5)
and ``selection.json`` (the chosen penalty, the grid, every CV score, the form) — so ``evaluate``, ``embed``,
``prior``, ``reconstruct`` and ``report`` read it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from eegvision.evaluation.linear import decimate_mean
from eegvision.evaluation.ridge_cv import ridge_cv
from eegvision.progress import track
from eegvision.training.config import FitConfig
from eegvision.training.rundir import UnitFolder
from eegvision.training.unit import (
    aligned_store,
    make_encoder,
    make_test_datasets,
    save_and_evaluate,
    write_unit_config,
)
from eegvision.training.whitening import NoiseCovariance

__all__ = ["fit_closed_form_unit", "read_design", "ridge_init", "solve_linear"]

#: Store bytes per block read (its float32/float64 work arrays are a few times that).
BLOCK_BYTES = 8 * 1024 * 1024
#: Rows standardised (and whitened) per step of the in-memory design.
ROW_CHUNK = 2048


def read_design(train: Any, decim: int, whiten: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The design of a closed-form fit from one pass over the store.

    Parameters
    ----------
    train : EEGDataset
        The averaged training dataset (one sample per subject × condition); its samples fix the row order.
    decim : int
        Samples per time bin.
    whiten : bool
        Also estimate the MVNN whitening matrix from the same blocks and apply it to the design.

    Returns
    -------
    (x, w)
        ``x`` float32 ``(rows, n_chans * n_bins)`` (channel-major, whitened when asked; not standardised) and the
        whitening matrix ``w`` ``(C, C)`` or None.
    """
    n_bins = train.n_times // decim
    x = np.empty((len(train), train.n_chans, n_bins), dtype=np.float32)
    acc = NoiseCovariance(train.subjects) if whiten else None
    row = 0
    for s_pos, _, block in track(train.iter_conditions(BLOCK_BYTES), description="reading the training EEG"):
        if acc is not None:
            acc.add(s_pos, block)
        x[row:row + len(block)] = decimate_mean(block.mean(1), decim)
        row += len(block)
    if row != len(x):  # pragma: no cover - the dataset's own bookkeeping
        raise RuntimeError(f"Read {row} training conditions, expected {len(x)}.")
    w = None
    if acc is not None:
        w = acc.whitener(train.ch_names)
        w32 = w.astype(np.float32)
        for a in range(0, len(x), ROW_CHUNK):
            x[a:a + ROW_CHUNK] = np.matmul(w32, x[a:a + ROW_CHUNK])  # W commutes with averaging and binning
    return x.reshape(len(x), -1), w


def standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise ``x`` (rows, features) in place, per feature (population std; a constant feature keeps
    scale 1, as scikit-learn's ``StandardScaler``); returns ``(mean, scale)`` in float64."""
    n = len(x)
    mean = np.zeros(x.shape[1])
    for a in range(0, n, ROW_CHUNK):
        mean += x[a:a + ROW_CHUNK].sum(0, dtype=np.float64)
    mean /= n
    var = np.zeros(x.shape[1])
    for a in range(0, n, ROW_CHUNK):
        var += ((x[a:a + ROW_CHUNK] - mean) ** 2).sum(0)
    scale = np.sqrt(var / n)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    for a in range(0, n, ROW_CHUNK):
        x[a:a + ROW_CHUNK] = (x[a:a + ROW_CHUNK] - mean) / scale
    return mean, scale


def linear_design(config: FitConfig, store: Any, unit: dict, n_outputs: int, conditions: Any = None,
                  options: dict[str, Any] | None = None, data: dict[str, Any] | None = None
                  ) -> tuple[Any, np.ndarray, tuple[np.ndarray, np.ndarray], Any, Any, float]:
    """The closed-form encoder of ``config`` (``ridge`` unless ``options`` name another's options), not yet
    solved, and its standardised design on the unit's training subjects (one row per training condition and
    subject, the mean of its repetitions; restricted to ``conditions`` when given).

    Returns ``(encoder, x, (mean, scale) of the standardisation applied to x in place, whitener or None, the
    averaged training dataset, seconds spent reading)``; :func:`solve_linear` then sets the encoder's solution.
    """
    from eegvision.data.dataset import EEGDataset

    start = time.perf_counter()
    train_ids = {s: i for i, s in enumerate(unit["train_subjects"])}
    train = EEGDataset(store, unit["train_subjects"], "training", average=True, subject_ids=train_ids,
                       channels=config.channels, window=config.window, conditions=conditions)
    data = {**(data or {}), "train": train, "subject_ids": train_ids}
    opts = dict(options or {})
    if config.whiten:
        opts["whiten"] = True
    if options is None:
        encoder = make_encoder(config, data, n_outputs, **opts)
    else:
        from eegvision.models import create_encoder

        encoder = create_encoder("ridge", n_chans=train.n_chans, n_times=train.n_times, n_outputs=n_outputs,
                                 sfreq=train.sfreq, n_subjects=max(1, len(train_ids)), **opts)
    x, w = read_design(train, encoder.decim, encoder.whiten)
    mean_scale = standardize(x)
    return encoder, x, mean_scale, w, train, time.perf_counter() - start


def solve_linear(config: FitConfig, store: Any, unit: dict, train_feats: Any, conditions: Any = None,
                 options: dict[str, Any] | None = None, data: dict[str, Any] | None = None) -> tuple[Any, Any, Any, float]:
    """The closed-form encoder of ``config`` (``ridge`` unless ``options`` name another's options) solved on the
    unit's training subjects, restricted to ``conditions`` when given (e.g. a neural fit's fitting conditions,
    so that its validation concepts stay unseen).

    Returns ``(encoder, ridge_cv result, the averaged training dataset, seconds spent reading)``.
    """
    encoder, x, (mean, scale), w, train, read_s = linear_design(config, store, unit, train_feats.dim, conditions,
                                                                options, data)
    y = train_feats.image.numpy()[train.condition_index].astype(np.float64)
    res = ridge_cv(x, y, train.concepts, encoder.alphas, n_splits=encoder.cv, scoring=encoder.scoring,
                   rank=encoder.rank, chunk_rows=ROW_CHUNK)
    del x
    encoder.set_solution(mean, scale, res.coef, res.intercept)
    if w is not None:
        encoder.set_whitening(w, "mvnn")
    return encoder, res, train, read_s


def fit_closed_form_unit(config: FitConfig, store: Any, unit: dict, folder: UnitFolder, train_feats: Any,
                         test_feats: Any, *, resume: bool = False, primary: bool = True,
                         callbacks: Sequence[Any] = ()) -> list[dict]:
    """Solve ``config.encoder`` for ``unit`` and write the unit folder (see the module docstring).

    ``resume`` and ``callbacks`` are accepted for symmetry with :func:`~eegvision.training.unit.fit_unit` (a
    closed-form fit is recomputed — same inputs, same result — and has no trainer). With ``config.align`` the
    store is aligned first, as for trained units. Returns the result rows (empty on non-primary processes).
    """
    if not primary:
        return []
    start = time.perf_counter()
    folder.path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    store = aligned_store(config, store, unit, folder)
    train_ids = {s: i for i, s in enumerate(unit["train_subjects"])}
    data = {"test": make_test_datasets(config, store, unit, train_ids), "subject_ids": train_ids}
    encoder, res, data["train"], read_s = solve_linear(config, store, unit, train_feats, data=data)
    w = encoder.whitener if encoder.whiten else None
    fit_s = time.perf_counter() - start

    write_unit_config(config, unit, folder, data, train_feats, test_feats, encoder=encoder, data_extra={
        "rows": "one per training condition and subject: the mean of its repetitions",
        "n_features": res.n_features, "form": res.form, "whiten": "mvnn" if w is not None else None})
    rows = save_and_evaluate(config, folder, encoder, data, test_feats)
    best = res.best
    folder.write_history([{"epoch": 0, "train_loss": res.train_mse, "val_loss": best["mse"],
                           "val_top1": best["top1"], "val_top5": best["top5"], "lr": None, "temperature": None}],
                         ["epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "temperature"])
    folder.write_selection({
        "selected_epoch": 0, "selection": f"cv_{res.scoring}", "best_val": best[res.scoring],
        "alpha": res.alpha, "alphas": res.alphas, "at_grid_edge": res.at_grid_edge, "scoring": res.scoring,
        "cv_folds": res.n_splits, "cv_groups": "concept", "cv_fold_sizes": res.fold_sizes,
        "cv_scores": res.scores, "cv_fold_scores": res.fold_scores, "form": res.form, "n_rows": res.n_rows,
        "n_features": res.n_features, "rank": res.rank, "decim": encoder.decim,
        "whiten": "mvnn" if w is not None else None, "train_mse": res.train_mse, "fit_s": round(fit_s, 3),
        "read_s": round(read_s, 3), "solve_s": round(fit_s - read_s, 3),
        "note": "history columns: train_loss and val_loss are mean squared errors (summed over outputs) of the "
                "refitted model and of the cross-validation at the chosen penalty",
    })
    return rows


def ridge_init(config: FitConfig, train_feats: Any) -> Any:
    """The ``wrap`` of :func:`~eegvision.training.unit.fit_unit` for ``FitConfig.ridge_init``: the ridge solution
    of the unit's *fitting* conditions (its validation concepts left out; whitened when ``config.whiten``) plus
    the fresh encoder, as a :class:`~eegvision.models.encoders.residual.ResidualEncoder` whose gate starts at 0,
    so training starts from the ridge solution."""
    from eegvision.models.encoders.residual import ResidualEncoder

    def wrap(encoder: Any, *, store: Any, unit: dict, data: dict[str, Any]) -> Any:
        linear, _, _, _ = solve_linear(config, store, unit, train_feats, conditions=data["split"].train_conditions,
                                       options=dict(config.ridge_options))
        return ResidualEncoder.around(linear, encoder)

    return wrap
