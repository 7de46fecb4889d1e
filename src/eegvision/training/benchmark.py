"""Several encoders x subjects x seeds into one results table, a summary and paired comparisons."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eegvision.training.config import FitConfig
from eegvision.training.rundir import RunFolder

__all__ = ["BenchmarkResult", "benchmark"]


@dataclass(frozen=True)
class BenchmarkResult:
    """What :func:`benchmark` returns.

    Attributes
    ----------
    out : Path
        The output folder.
    runs : dict
        ``{(encoder, seed): RunFolder}``, one run each.
    rows : list of dict
        Result rows of every run (also ``results.{csv,json}``).
    summary : pandas.DataFrame
        Mean ± std over subjects and seeds, bootstrap CI, test against chance (also ``summary.csv``).
    comparisons : pandas.DataFrame or None
        Paired tests between every pair of encoders (also ``comparisons.csv``); None with one encoder.
    files : dict
        Paths of the written files (``results_csv``, ``results_json``, ``summary``, ``comparisons``).
    """

    out: Path
    runs: dict[tuple[str, int], RunFolder]
    rows: list[dict]
    summary: Any
    comparisons: Any
    files: dict[str, Path]


def benchmark(base: FitConfig, encoders: list[str], seeds: list[int], out: str | os.PathLike, *,
              metric_k: int | None = None) -> BenchmarkResult:
    """Train ``base`` for every encoder and seed, then tabulate and compare.

    Parameters
    ----------
    base : FitConfig
        Data, subjects, protocol and training settings shared by all runs.
    encoders : list of str
        Encoder names (``eegvision.models.list_models()``).
    seeds : list of int
        One run per seed (and per encoder).
    out : path
        Output folder: ``runs/<encoder>-seed<seed>/`` (resumed if present with the same
        config, reused if finished), ``results.{csv,json}`` (all rows), ``summary.csv``
        (mean ± std over subjects and seeds, bootstrap CI, test against chance) and
        ``comparisons.csv`` (paired tests between every pair of encoders, matched on subject
        and seed, exact image retrieval).
    metric_k : int, optional
        Restrict comparisons to one k (default: every k).

    Returns
    -------
    BenchmarkResult
        The runs, rows, summary and comparison tables, and the files written.
    """
    from eegvision.evaluation.results import write_results
    from eegvision.evaluation.stats import format_summary, paired_comparison, summarize
    from eegvision.training.fitting import fit

    if not encoders or not seeds:
        raise ValueError("benchmark needs at least one encoder and one seed (--encoders a,b --seeds 0,1).")
    out = Path(out)
    rows: list[dict] = []
    runs: dict[tuple[str, int], RunFolder] = {}
    for encoder, seed in itertools.product(encoders, seeds):
        cfg = base.replace(encoder=encoder, seed=int(seed))
        run = RunFolder(out / "runs" / f"{encoder}-seed{seed}")
        if not (run.has_metrics() and _same_config(run, cfg)):
            fit(cfg, run.path, resume=run.exists())
        rows += run.read_metrics()
        runs[(encoder, int(seed))] = run
    files = {"results_csv": write_results(rows, out / "results.csv"),
             "results_json": write_results(rows, out / "results.json")}
    summary = summarize(rows)
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(format_summary(summary).to_markdown(index=False) + "\n"
                                    if _has_tabulate() else format_summary(summary).to_string(index=False) + "\n")
    files["summary"] = out / "summary.csv"
    comps = []
    sel = [r for r in rows if r.get("modality") == "image" and r.get("method") == "exact"
           and not r.get("calibration") and (metric_k is None or r.get("k") == metric_k)]
    for a, b in itertools.combinations(encoders, 2):
        for metric in ("top1", "top5"):
            comps.append(paired_comparison(sel, a, b, metric=metric))
    comparisons = None
    if comps:
        import pandas as pd

        comparisons = pd.concat(comps, ignore_index=True)
        comparisons.to_csv(out / "comparisons.csv", index=False)
        files["comparisons"] = out / "comparisons.csv"
    return BenchmarkResult(out=out, runs=runs, rows=rows, summary=summary, comparisons=comparisons, files=files)


def _same_config(run: RunFolder, cfg: FitConfig) -> bool:
    try:
        old = run.fit_config()
    except (OSError, KeyError, ValueError):
        return False
    return not old.differences(cfg, ignore=frozenset({"devices", "strategy", "accelerator", "num_workers",
                                                      "progress", "data"}))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
