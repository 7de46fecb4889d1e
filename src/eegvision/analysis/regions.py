"""Where is the image decodable? Accuracy per scalp region (and all channels).

>>> res = region_analysis("store/", "sub-01", "out/regions")      # doctest: +SKIP
>>> res.ranking                                                     # doctest: +SKIP
['occipito-parietal', 'parietal', ...]

Each region (:data:`eegvision.readers.channels.REGIONS`: frontal, temporal, central, parietal, occipital,
the occipito-parietal 17) gets its own closed-form ridge decoder over the whole epoch (or
``window``). Regions differ in channel count (3 occipital vs 22 frontal); the table records it.
Writes ``regions.csv`` and ``regions.png``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegvision.analysis._fit import TrialData, bin_samples_for, decode
from eegvision.analysis.windows import load_pair

__all__ = ["RegionAnalysis", "region_analysis"]


@dataclass
class RegionAnalysis:
    """Result of :func:`region_analysis`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per region: ``region``, ``n_chans``, ``channels``, ``top1``, ``top5``, ``chance_top1``,
        ``chance_top5``, ``alpha``; sorted as given (``all`` last).
    ranking : list of str
        Regions (without ``all``) from best to worst top-1 (ties broken by top-5).
    csv, figure : Path
    """

    table: Any
    ranking: list[str]
    csv: Path
    figure: Path


def region_analysis(data: str | os.PathLike, subject: str, out: str | os.PathLike, *,
                    regions: Sequence[str] | None = None, window: tuple[float, float] | None = None,
                    bin_ms: float = 20.0, features_train: str | None = None, features_test: str | None = None,
                    pair: tuple[TrialData, TrialData] | None = None) -> RegionAnalysis:
    """Decoding accuracy from each region's channels, and from all channels.

    Parameters
    ----------
    data : path
        A store, THINGS-EEG2 or simulator folder.
    subject : str
    out : path
        Output folder; gets ``regions.csv`` and ``regions.png``.
    regions : list of str, optional
        Region presets or comma lists of channels; default all presets of ``REGIONS``.
    window : (tmin, tmax), optional
        Time window in seconds (default the whole epoch).
    bin_ms : float
        Time-bin width of the ridge features.
    pair : (TrialData, TrialData), optional
        Already loaded training/test trials.
    """
    import pandas as pd

    from eegvision.data.dataset import time_window_slice
    from eegvision.progress import track
    from eegvision.readers.channels import REGIONS, resolve_channels
    from eegvision.utils import atomic_path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = pair if pair is not None else load_pair(data, subject, features_train=features_train,
                                                          features_test=features_test, cache_dir=out / "features")
    sl = time_window_slice(train.times, window, train.sfreq)
    bs = bin_samples_for(bin_ms, train.sfreq)
    names = list(regions) if regions else list(REGIONS)
    rows = []
    n = len(test.features)
    for name in track(names + ["all"], description="regions"):
        try:
            chans = resolve_channels(name, train.ch_names)
        except ValueError:
            if name in REGIONS:  # a preset without channels in this recording: record and skip
                rows.append({"region": name, "n_chans": 0, "channels": "", "top1": np.nan, "top5": np.nan})
                continue
            raise
        res = decode(train, test, sl.start, sl.stop, channels=chans, bin_samples=bs)
        rows.append({"region": name, "n_chans": len(chans), "channels": " ".join(train.ch_names[i] for i in chans),
                     "top1": res.top1, "top5": res.top5, "alpha": res.alpha})
    table = pd.DataFrame(rows)
    table.insert(0, "subject", subject)
    table["chance_top1"] = 1.0 / n
    table["chance_top5"] = min(1.0, 5.0 / n)
    table["n_candidates"] = n
    table["tmin"] = float(train.times[sl.start])
    table["tmax"] = float(train.times[sl.stop - 1] + 1.0 / train.sfreq)
    ranked = table[(table["region"] != "all") & table["top1"].notna()]
    ranking = ranked.sort_values(["top1", "top5"], ascending=False, kind="stable")["region"].tolist()
    csv_path, fig_path = out / "regions.csv", out / "regions.png"
    with atomic_path(csv_path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    _plot(table, fig_path, subject)
    return RegionAnalysis(table, ranking, csv_path, fig_path)


def _plot(table: Any, path: Path, subject: str) -> Path:
    from eegvision.analysis._plot import figure, save

    fig, ax = figure(6.4, 3.6)
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["top1"].fillna(0) * 100, 0.4, label="top-1", color="C0")
    ax.bar(x + 0.2, table["top5"].fillna(0) * 100, 0.4, label="top-5", color="C1")
    ax.axhline(float(table["chance_top1"].iloc[0]) * 100, color="C0", ls="--", lw=1, label="chance top-1")
    ax.axhline(float(table["chance_top5"].iloc[0]) * 100, color="C1", ls=":", lw=1, label="chance top-5")
    ax.set_xticks(x, [f"{r}\n({c} ch)" for r, c in zip(table["region"], table["n_chans"])], fontsize=7)
    ax.set_ylabel(f"{int(table['n_candidates'].iloc[0])}-way accuracy (%)")
    ax.set_title(f"{subject}: accuracy by region")
    ax.legend(fontsize=8, frameon=False)
    return save(fig, path)
