"""Several encoders x subjects x seeds into one results table, a summary and paired comparisons."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from eegvision.training.config import FitConfig

__all__ = ["benchmark"]


def benchmark(base: FitConfig, encoders: list[str], seeds: list[int], out: str | os.PathLike, *,
              metric_k: int | None = None) -> dict[str, Path]:
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
        Output directory: ``runs/<encoder>-seed<seed>/`` (resumed if present with the same
        config, reused if finished), ``results.{csv,json}`` (all rows), ``summary.csv``
        (mean ± std over subjects and seeds, bootstrap CI, test against chance) and
        ``comparisons.csv`` (paired tests between every pair of encoders, matched on subject
        and seed, exact image retrieval).
    metric_k : int, optional
        Restrict comparisons to one k (default: every k).

    Returns
    -------
    dict
        Paths of the written files.
    """
    from eegvision.evaluation.results import read_results, write_results
    from eegvision.evaluation.stats import format_summary, paired_comparison, summarize
    from eegvision.training.fit import fit

    if not encoders or not seeds:
        raise ValueError("benchmark needs at least one encoder and one seed (--encoders a,b --seeds 0,1).")
    out = Path(out)
    rows: list[dict] = []
    for encoder, seed in itertools.product(encoders, seeds):
        cfg = base.replace(encoder=encoder, seed=int(seed))
        run_dir = out / "runs" / f"{encoder}-seed{seed}"
        if (run_dir / "metrics.json").is_file() and _same_config(run_dir, cfg):
            rows += read_results(run_dir / "metrics.json")
            continue
        fit(cfg, run_dir, resume=(run_dir / "config.json").is_file())
        rows += read_results(run_dir / "metrics.json")
    paths = {"results_csv": write_results(rows, out / "results.csv"),
             "results_json": write_results(rows, out / "results.json")}
    summary = summarize(rows)
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(format_summary(summary).to_markdown(index=False) + "\n"
                                    if _has_tabulate() else format_summary(summary).to_string(index=False) + "\n")
    paths["summary"] = out / "summary.csv"
    comps = []
    sel = [r for r in rows if r.get("modality") == "image" and r.get("method") == "exact"
           and (metric_k is None or r.get("k") == metric_k)]
    for a, b in itertools.combinations(encoders, 2):
        for metric in ("top1", "top5"):
            comps.append(paired_comparison(sel, a, b, metric=metric))
    if comps:
        import pandas as pd

        pd.concat(comps, ignore_index=True).to_csv(out / "comparisons.csv", index=False)
        paths["comparisons"] = out / "comparisons.csv"
    return paths


def _same_config(run_dir: Path, cfg: FitConfig) -> bool:
    try:
        old = FitConfig.from_dict(json.loads((run_dir / "config.json").read_text())["fit"])
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
