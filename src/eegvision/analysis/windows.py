"""When is the image decodable? Accuracy in sliding windows and in growing windows ``[0, t]``.

>>> res = time_analysis("store/", "sub-01", "out/time")          # doctest: +SKIP
>>> res.best_window, res.table                                    # doctest: +SKIP

Each window gets its own decoder (the closed-form ridge of :mod:`eegvision.analysis._fit`, or a
trained encoder with ``encoder=...``), fitted on the training images and scored with the exact
all-test-way top-1/top-5 on the test images. Writes ``time_sliding.csv`` / ``time_sliding.png``
(or ``time_growing.*``) into ``out``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegvision.analysis._fit import (
    TrialData,
    bin_samples_for,
    decode,
    load_trials,
    resolve_features,
)

__all__ = ["TimeAnalysis", "load_pair", "plan_windows", "time_analysis", "time_windows"]


@dataclass
class TimeAnalysis:
    """Result of :func:`time_analysis`.

    Attributes
    ----------
    mode : {"sliding", "growing"}
    table : pandas.DataFrame
        One row per window: ``tmin``, ``tmax``, ``tcenter`` (s), ``top1``, ``top5``, ``chance_top1``,
        ``chance_top5``, ``n_features``, ``alpha`` (ridge penalty) or ``encoder``.
    best_window : (float, float)
        ``(tmin, tmax)`` of the window with the highest top-1.
    best_top1 : float
    csv, figure : Path
    """

    mode: str
    table: Any
    best_window: tuple[float, float]
    best_top1: float
    csv: Path
    figure: Path
    params: dict = field(default_factory=dict)


def plan_windows(times: np.ndarray, sfreq: float, window_ms: float, step_ms: float,
                 growing: bool = False) -> list[tuple[int, int]]:
    """Sample ranges ``[start, stop)`` of the windows.

    Sliding: windows of ``window_ms`` every ``step_ms`` from the first sample, the last one ending
    at or before the end of the epoch. Growing: ``[t0, t]`` with ``t0`` = 0 s (or the first sample
    when the epoch starts after 0) and ``t`` = ``t0 + step, t0 + 2 step, ...`` up to the end.
    """
    times = np.asarray(times, dtype=np.float64)
    n = len(times)
    if window_ms <= 0 or step_ms <= 0:
        raise ValueError(f"window_ms and step_ms must be > 0; got {window_ms} and {step_ms}.")
    step = step_ms / 1000.0
    tol = 0.25 / sfreq
    if growing:
        t0 = 0.0 if times[0] <= 0.0 <= times[-1] else float(times[0])
        start = int(np.searchsorted(times, t0 - tol))
        ends = t0 + step * np.arange(1, int(np.floor((times[-1] + 1 / sfreq - t0) / step + 1e-9)) + 1)
        out = [(start, int(np.searchsorted(times, e - tol))) for e in ends]
    else:
        width = int(round(window_ms * sfreq / 1000.0))
        if width < 1 or width > n:
            raise ValueError(f"window_ms={window_ms} gives {width} samples at {sfreq:g} Hz; the epoch has {n} "
                             f"samples ({times[0]:g} to {times[-1]:g} s). Choose a window inside the epoch.")
        starts = times[0] + step * np.arange(int(np.floor((times[-1] - times[0]) / step + 1e-9)) + 1)
        out = []
        for s in starts:
            i = int(np.searchsorted(times, s - tol))
            if i + width <= n:
                out.append((i, i + width))
    out = [w for w in dict.fromkeys(out) if w[1] > w[0]]  # unique, non-empty, in order
    if not out:
        raise ValueError(f"No window fits: window_ms={window_ms}, step_ms={step_ms} on an epoch of "
                         f"{times[0]:g} to {times[-1]:g} s.")
    return out


def load_pair(data: str | os.PathLike, subject: str, *, features_train: str | None = None,
              features_test: str | None = None, cache_dir: Path | None = None,
              store: Any = None) -> tuple[TrialData, TrialData]:
    """Training and test trials (averaged repetitions, all channels and times) with their features."""
    from eegvision.data.sources import open_data

    store = open_data(data) if store is None else store
    cache = Path(cache_dir) if cache_dir is not None else Path(data) / "features"
    ftr = resolve_features(data, "train", features_train, cache)
    fte = resolve_features(data, "test", features_test, cache)
    return load_trials(store, subject, "training", ftr), load_trials(store, subject, "test", fte)


def time_windows(train: TrialData, test: TrialData, windows: Sequence[tuple[int, int]], *,
                 channels: Sequence[int] | None = None, bin_ms: float = 20.0) -> list[dict]:
    """Ridge decoding in each window of ``windows`` (sample ranges); one row dict per window."""
    from eegvision.progress import track

    bs = bin_samples_for(bin_ms, train.sfreq)
    n = len(test.features)
    rows = []
    step = 1.0 / train.sfreq
    for start, stop in track(list(windows), description="windows"):
        res = decode(train, test, start, stop, channels=channels, bin_samples=bs)
        tmin, tmax = float(train.times[start]), float(train.times[stop - 1] + step)
        rows.append({"tmin": tmin, "tmax": tmax, "tcenter": (tmin + tmax) / 2, "top1": res.top1, "top5": res.top5,
                     "chance_top1": 1.0 / n, "chance_top5": min(1.0, 5.0 / n), "n_candidates": n,
                     "n_features": res.n_features, "alpha": res.alpha})
    return rows


def _encoder_windows(data: str | os.PathLike, subject: str, windows_s: list[tuple[float, float]], *, encoder: str,
                     epochs: int, out: Path, features_train: str | None, features_test: str | None,
                     seed: int, n_test: int, channels: Any = None) -> list[dict]:
    """Train ``encoder`` per window through :func:`eegvision.training.fitting.fit` (slow, optional path)."""
    from eegvision.training import FitConfig, fit

    rows = []
    for i, (tmin, tmax) in enumerate(windows_s):
        cfg = FitConfig(data=str(data), subjects=[subject], encoder=encoder, epochs=epochs, window=[tmin, tmax],
                        channels=channels, features_train=features_train, features_test=features_test,
                        features_normalized=True if any(str(f or "").endswith(".pt") for f in
                                                        (features_train, features_test)) else None,
                        seed=seed, eval_methods=["exact"], eval_ks=[n_test], eval_tops=[1, 5])
        res = fit(cfg, out / "runs" / f"w{i:03d}_{int(round(tmin * 1000))}-{int(round(tmax * 1000))}ms",
                  resume=True)
        top1, top5 = _pick_acc(res.rows, n_test)
        rows.append({"tmin": tmin, "tmax": tmax, "tcenter": (tmin + tmax) / 2, "top1": top1, "top5": top5,
                     "chance_top1": 1.0 / n_test, "chance_top5": min(1.0, 5.0 / n_test), "n_candidates": n_test,
                     "encoder": encoder, "epochs": epochs})
    return rows


def _pick_acc(rows: list[dict], k: int) -> tuple[float, float]:
    """Exact image-retrieval ``k``-way (top-1, top-5) from evaluation result rows."""
    for r in rows:
        if int(r.get("k", -1)) == k and r.get("modality") == "image" and r.get("method") == "exact":
            return float(r["top1"]), float(r.get("top5", float("nan")))
    raise ValueError(f"The evaluation has no exact {k}-way image-retrieval row.")


def time_analysis(data: str | os.PathLike, subject: str, out: str | os.PathLike, *, window_ms: float = 100.0,
                  step_ms: float = 50.0, growing: bool = False, bin_ms: float = 20.0,
                  channels: str | Sequence[str] | None = None, features_train: str | None = None,
                  features_test: str | None = None, encoder: str | None = None, epochs: int = 10,
                  seed: int = 0, pair: tuple[TrialData, TrialData] | None = None) -> TimeAnalysis:
    """Decoding accuracy over time: sliding windows (default) or growing windows ``[0, t]``.

    Parameters
    ----------
    data : path
        A store or THINGS-EEG2 folder (also a simulator output folder).
    subject : str
        e.g. ``"sub-01"``.
    out : path
        Output folder (created). Gets ``time_{sliding,growing}.csv`` and ``.png``.
    window_ms, step_ms : float
        Sliding window length and step in milliseconds (growing: ``step_ms`` is the increment of ``t``).
    growing : bool
        Growing windows ``[0, t]`` instead of sliding ones.
    bin_ms : float
        Width of the time bins whose means are the ridge features.
    channels : region name or channel names, optional
        Restrict to a channel subset (see :func:`eegvision.readers.channels.resolve_channels`).
    features_train, features_test : path, optional
        Image-feature files; default ``DATA/features/{train,test}.safetensors`` (or the simulator's ``.pt``).
    encoder : str, optional
        Train this encoder per window (:func:`eegvision.training.fitting.fit`, ``epochs`` epochs) instead of ridge.
    seed : int
        Seed of the encoder training (the ridge path is deterministic).
    pair : (TrialData, TrialData), optional
        Already loaded training/test trials (skips reading ``data``).
    """
    import pandas as pd

    from eegvision.readers.channels import resolve_channels

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mode = "growing" if growing else "sliding"
    train, test = pair if pair is not None else load_pair(data, subject, features_train=features_train,
                                                          features_test=features_test, cache_dir=out / "features")
    windows = plan_windows(train.times, train.sfreq, window_ms, step_ms, growing=growing)
    if encoder:
        step = 1.0 / train.sfreq
        win_s = [(float(train.times[a]), float(train.times[b - 1] + step)) for a, b in windows]
        rows = _encoder_windows(data, subject, win_s, encoder=encoder, epochs=epochs, out=out,
                                features_train=features_train, features_test=features_test, seed=seed,
                                n_test=len(test.features), channels=channels)
    else:
        chans = None if channels is None else resolve_channels(channels, train.ch_names)
        rows = time_windows(train, test, windows, channels=chans, bin_ms=bin_ms)
    table = pd.DataFrame(rows)
    table.insert(0, "subject", subject)
    table.insert(1, "mode", mode)
    best = int(table["top1"].to_numpy().argmax())
    csv_path = out / f"time_{mode}.csv"
    fig_path = out / f"time_{mode}.png"
    from eegvision.utils import atomic_path

    with atomic_path(csv_path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    plot_time(table, fig_path, mode=mode, title=f"{subject}: {mode} windows"
              + (f" ({window_ms:g} ms)" if not growing else ""))
    params = {"window_ms": window_ms, "step_ms": step_ms, "bin_ms": bin_ms, "channels": channels,
              "decoder": encoder or "ridge"}
    return TimeAnalysis(mode, table, (float(table["tmin"][best]), float(table["tmax"][best])),
                        float(table["top1"][best]), csv_path, fig_path, params)


def plot_time(table: Any, path: Path, *, mode: str = "sliding", title: str = "") -> Path:
    """Top-1/top-5 against window centre (sliding) or window end (growing), with chance lines."""
    from eegvision.analysis._plot import figure, save

    x = table["tcenter" if mode == "sliding" else "tmax"].to_numpy() * 1000
    fig, ax = figure(6.4, 3.6)
    ax.plot(x, table["top1"] * 100, "o-", color="C0", label="top-1")
    ax.plot(x, table["top5"] * 100, "s-", color="C1", label="top-5", alpha=0.8)
    ax.axhline(float(table["chance_top1"].iloc[0]) * 100, color="C0", ls="--", lw=1, label="chance top-1")
    ax.axhline(float(table["chance_top5"].iloc[0]) * 100, color="C1", ls=":", lw=1, label="chance top-5")
    ax.set_xlabel("window centre (ms)" if mode == "sliding" else "window end t, window [0, t] (ms)")
    ax.set_ylabel(f"{int(table['n_candidates'].iloc[0])}-way accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    return save(fig, path)
