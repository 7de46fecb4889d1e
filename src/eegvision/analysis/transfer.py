"""Transfer: accuracy against the number of fine-tuning trials, per subject, with the zero-shot baseline.

``transfer_curve(parent, data, subjects, n_trials=[0, 10, 50, 200, None], out=DIR)`` fine-tunes the
parent run on each subject with each trial budget (``0`` = zero-shot, ``None`` = all trials; see
:func:`eegvision.training.finetune.finetune`), and writes::

    DIR/runs/<subject>/n-<N|all>/      one fine-tuned run each (evaluate/load like any run)
    DIR/transfer_curve.csv             one row per subject x budget: top-1/top-5 (k-way, exact) and 2-way
    DIR/transfer_summary.csv           per budget: mean, sd, sem, median, min, max over subjects, chance
    DIR/transfer_curve.png             left: accuracy vs trials (subjects thin, mean ± sem thick, chance);
                                       right: per-subject distribution per budget (box + points, as the
                                       ATM authors plot per-subject accuracies)
    DIR/transfer.json                  settings

Finished runs with the same settings are reused, so an interrupted curve continues where it stopped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eegvision.checks import check_list, show
from eegvision.training.rundir import RunFolder

__all__ = ["transfer_curve", "summarize_transfer", "plot_transfer", "run_accuracy", "parse_budgets"]


def parse_budgets(items: Sequence[Any]) -> list[int | None]:
    """``["0", "10", 50, "all"]`` -> ``[0, 10, 50, None]`` (``"all"``/``"none"``/``None`` = every trial)."""
    items = check_list("trial budgets", items, "[0, 10, 50, 'all']")
    out: list[int | None] = []
    for t in items:
        if t is None or str(t).lower() in ("all", "none", ""):
            out.append(None)
            continue
        try:
            v = int(t)
        except (TypeError, ValueError):
            raise ValueError(f"Trial budgets are integers >= 0 or 'all'; got {show(t)} in "
                             f"{', '.join(map(str, items))}.") from None
        if v < 0:
            raise ValueError(f"Trial budgets must be >= 0; got {v}.")
        out.append(v)
    if not out:
        raise ValueError("No trial budget given; pass e.g. 0,10,50,all.")
    return out


def run_accuracy(run_dir: str | os.PathLike, k: int | None = None) -> dict[str, float]:
    """Top-1/top-5 (image, exact method) at ``k`` (default: the largest evaluated k) and 2-way top-1."""
    run = RunFolder.open(run_dir)
    rows = [r for r in run.read_metrics() if r.get("modality") == "image" and r.get("method") == "exact"]
    if not rows:
        raise ValueError(f"{run.metrics_path} has no exact image rows; evaluate the run with method 'exact'.")
    ks = sorted({int(r["k"]) for r in rows})
    k = ks[-1] if k is None else int(k)
    at = [r for r in rows if int(r["k"]) == k]
    if not at:
        raise ValueError(f"{run_dir} was evaluated at k in {ks}, not {k}.")
    two = [r for r in rows if int(r["k"]) == 2]
    return {"k": k, "top1": float(at[0]["top1"]), "top5": float(at[0].get("top5") or np.nan),
            "top1_2way": float(two[0]["top1"]) if two else np.nan, "chance_top1": 1.0 / k}


def _budget_name(n: int | None) -> str:
    return "all" if n is None else str(int(n))


def transfer_curve(
    parent: str | os.PathLike | None,
    data: str | os.PathLike,
    subjects: Sequence[str],
    n_trials: Sequence[int | None] = (0, 10, 50, 200, None),
    out: str | os.PathLike = "transfer",
    *,
    k: int | None = None,
    plot: bool = True,
    **finetune_options: Any,
) -> pd.DataFrame:
    """Fine-tune ``parent`` on every subject with every trial budget and tabulate test accuracy.

    Parameters
    ----------
    parent : path or None
        Trained run (``None`` with ``init=...`` in ``finetune_options``).
    data : path
        The new data (new subjects or paradigm).
    subjects : sequence of str
        Subjects of ``data``; each gets its own curve (the per-subject distribution).
    n_trials : sequence of int or None
        Budgets; ``0`` is the zero-shot baseline, ``None`` all trials (see :func:`parse_budgets`).
    out : path
        Output folder (see the module docstring).
    k : int, optional
        k of the k-way accuracy tabulated (default: the largest evaluated, i.e. all test images).
    plot : bool
        Write ``transfer_curve.png``.
    **finetune_options
        Fields of :class:`~eegvision.training.config.FinetuneConfig` other than ``data``, ``subject`` and
        ``n_trials`` (``freeze``, ``epochs``, ``lr``, ``seed`` ...), for every run.

    Returns
    -------
    pandas.DataFrame
        One row per subject x budget (also ``transfer_curve.csv``).
    """
    from eegvision.progress import track
    from eegvision.training.finetune import FinetuneConfig, finetune
    from eegvision.utils import atomic_path, write_text_atomic

    budgets = parse_budgets(n_trials)
    subjects = check_list("subjects", subjects, "['sub-01', 'sub-02']")
    if not subjects:
        raise ValueError("No subject given; pass --subjects sub-01,sub-02.")
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    settings = {"parent": None if parent is None else str(parent), "data": str(data), "subjects": subjects,
                "n_trials": [_budget_name(n) for n in budgets], "k": k,
                "finetune": {key: (str(v) if isinstance(v, Path) else v) for key, v in finetune_options.items()}}
    rows = []
    jobs = [(s, n) for s in subjects for n in budgets]
    for subject, n in track(jobs, description="transfer curve"):
        run = out / "runs" / subject / f"n-{_budget_name(n)}"
        if not _finished(run, n, finetune_options):
            if run.exists():
                import shutil

                shutil.rmtree(run)  # an interrupted or different earlier attempt: start it again
            finetune(parent, FinetuneConfig(data=str(data), subject=subject, n_trials=n, **finetune_options), run)
        record = RunFolder.open(run).unit().read_finetune_record()
        rows.append({"subject": subject, "n_trials_requested": _budget_name(n), "n_trials": record["n_trials"],
                     "freeze": record["freeze"], "seed": record["seed"], **run_accuracy(run, k),
                     "run": str(run.relative_to(out))})
    table = pd.DataFrame(rows)
    with atomic_path(out / "transfer_curve.csv") as tmp:
        table.to_csv(tmp, index=False)
    summary = summarize_transfer(table)
    with atomic_path(out / "transfer_summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    write_text_atomic(out / "transfer.json", json.dumps(settings, indent=2, default=str) + "\n")
    if plot:
        plot_transfer(table, out / "transfer_curve.png")
    return table


def _finished(run: Path, n: int | None, options: dict) -> bool:
    folder = RunFolder(run)
    if not (folder.exists() and folder.has_metrics()):
        return False
    unit = folder.unit()
    if not unit.finetune_record_path.is_file():
        return False
    rec = unit.read_finetune_record()
    same = rec.get("n_trials_requested") == n
    for key in ("freeze", "seed", "lr", "subject_token"):
        if key in options and rec.get(key) != options[key]:
            same = False
    return same


def summarize_transfer(table: pd.DataFrame, column: str = "top1") -> pd.DataFrame:
    """Per budget: number of subjects, mean, sd, sem, median, min, max of ``column``, and chance."""
    g = table.groupby("n_trials_requested", sort=False)[column]
    summary = pd.DataFrame({
        "n_subjects": g.count(), "mean": g.mean(), "sd": g.std(ddof=1), "median": g.median(),
        "min": g.min(), "max": g.max(),
    }).reset_index()
    summary["sem"] = summary["sd"] / np.sqrt(summary["n_subjects"])
    summary["n_trials_mean"] = table.groupby("n_trials_requested", sort=False)["n_trials"].mean().to_numpy()
    summary["chance"] = table.groupby("n_trials_requested", sort=False)["chance_top1"].first().to_numpy()
    summary.insert(1, "metric", column)
    return summary


def plot_transfer(table: pd.DataFrame, path: str | os.PathLike, column: str = "top1") -> Path:
    """Accuracy against fine-tuning trials (per subject + mean ± sem) and the per-subject distribution."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from eegvision.utils import atomic_path

    order = list(dict.fromkeys(table["n_trials_requested"]))
    x_of = {b: float(table.loc[table["n_trials_requested"] == b, "n_trials"].mean()) for b in order}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.2, 1]})
    for subject, sub in table.groupby("subject", sort=False):
        sub = sub.set_index("n_trials_requested").loc[order]
        ax.plot([x_of[b] for b in order], sub[column], color="0.6", lw=0.8, marker=".", alpha=0.8)
    s = summarize_transfer(table, column).set_index("n_trials_requested").loc[order]
    xs = [x_of[b] for b in order]
    ax.errorbar(xs, s["mean"], yerr=s["sem"].fillna(0), color="C0", lw=2, marker="o", capsize=3,
                label=f"mean ± sem ({table['subject'].nunique()} subjects)")
    chance = float(table["chance_top1"].iloc[0])
    ax.axhline(chance, color="k", ls="--", lw=1, label=f"chance ({chance:.3g})")
    ax.set_xscale("symlog", linthresh=max(1.0, min([x for x in xs if x > 0], default=1.0)))
    ax.set_xlabel("fine-tuning trials (0 = zero-shot)")
    k = int(table["k"].iloc[0])
    ax.set_ylabel(f"{k}-way {column.replace('top', 'top-')}")
    ax.set_title("accuracy vs fine-tuning trials")
    ax.legend(frameon=False, fontsize=8)
    data = [table.loc[table["n_trials_requested"] == b, column].to_numpy() for b in order]
    bx.boxplot(data, widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, vals in enumerate(data):
        bx.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(vals)), vals, s=14, color="C1", zorder=3)
    bx.set_xticks(range(1, len(order) + 1), [str(b) for b in order])
    bx.axhline(chance, color="k", ls="--", lw=1)
    bx.set_xlabel("fine-tuning trials")
    bx.set_title("per-subject accuracy")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path
