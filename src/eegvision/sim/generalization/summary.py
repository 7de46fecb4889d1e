"""The benchmark's summary: per family and recipe, mean over seeds, the paired comparison with whitened ridge,
CPU budget; flat keys with units, and markdown tables.

Paired comparison (stated in the result as ``method.paired_ci``): for recipe ``r`` on family ``f``, the
difference of 200-way top-1 with whitened ridge is the mean over seeds of the per-seed difference on the same
200 test images; its confidence interval is a percentile bootstrap over test images (10 000 replicates by
default, seeded): each replicate resamples every seed's test images with replacement, the same images for both
recipes, and averages the seeds' differences with equal weights (:func:`eegvision.evaluation.stats.
paired_item_bootstrap`). It covers the sampling of test images given the seeds' worlds and trainings, not the
spread over further seeds (``top1_sd_over_seeds`` shows that). The held-out family is summarised like the
others but never enters the development families' mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eegvision.evaluation.stats import paired_item_bootstrap
from eegvision.sim.families.registry import get_family
from eegvision.sim.generalization.recipes import REFERENCE

__all__ = ["UNITS", "markdown_tables", "summarize"]

UNITS = ("top1/top5: fraction of sub-01's test images (200-way, chance 0.005; 1/n_test at reduced sizes) whose "
         "true image ranks first / in the first five; *_s: seconds (wall: elapsed; cpu: user + system of the "
         "process and its children, all threads)")
DEV = "development_families_mean"


def _correct(cell: dict) -> np.ndarray:
    return np.asarray(cell["ranks"]) < 1


def _ci_key(level: float) -> str:
    return f"ci{round(level * 100)}"


def summarize(cells: Sequence[dict], families: Sequence[str], recipes: Sequence[str], seeds: Sequence[int],
              simulations: Sequence[dict] = (), *, n_boot: int = 10_000, level: float = 0.95,
              seed: int = 0) -> dict[str, Any]:
    """Flat summary of the cells (see the module docstring); keys ``<family>.<recipe>.<quantity>``."""
    by = {(c["family"], c["seed"], c["recipe"]): c for c in cells}
    ci, ref = _ci_key(level), REFERENCE
    out: dict[str, Any] = {}
    missing = []

    def paired(keys: list[tuple[str, int]], r: str, prefix: str) -> None:
        keys = [k for k in keys if (*k, ref) in by]
        if r == ref or not keys:
            return
        res = paired_item_bootstrap([_correct(by[(*k, r)]) for k in keys], [_correct(by[(*k, ref)]) for k in keys],
                                    n_boot=n_boot, level=level, seed=seed)
        out[f"{prefix}top1_diff_mean_vs_{ref}"] = round(res["mean_diff"], 4)
        out[f"{prefix}top1_{ci}_low_vs_{ref}"] = round(res["ci_low"], 4)
        out[f"{prefix}top1_{ci}_high_vs_{ref}"] = round(res["ci_high"], 4)
        out[f"{prefix}n_paired_vs_{ref}"] = len(keys)

    for f in families:
        out[f"{f}.held_out"] = get_family(f).held_out
        sims = [s for s in simulations if s["family"] == f and s["seed"] in seeds]
        if sims:
            out[f"{f}.simulate.n_seeds"] = len(sims)
            for q in ("wall_s", "cpu_s"):
                out[f"{f}.simulate.{q}_mean"] = round(float(np.mean([s[f"simulate_{q}"] for s in sims])), 1)
        for r in recipes:
            p = f"{f}.{r}."
            got = [s for s in seeds if (f, s, r) in by]
            missing += [f"{f}/seed{s}/{r}" for s in seeds if s not in got]
            out[p + "n_seeds"] = len(got)
            if not got:
                continue
            cs = [by[(f, s, r)] for s in got]
            out[f"{f}.n_test"] = cs[0]["n_test"]
            out[p + "seeds"] = got
            out[p + "top1_by_seed"] = [c["top1"] for c in cs]
            for q in ("top1", "top5"):
                out[p + f"{q}_mean"] = round(float(np.mean([c[q] for c in cs])), 4)
            out[p + "top1_sd_over_seeds"] = round(float(np.std([c["top1"] for c in cs], ddof=1)), 4) \
                if len(cs) > 1 else None
            for q in ("train_s", "wall_s", "cpu_s"):
                out[p + f"{q}_mean"] = round(float(np.mean([c[q] for c in cs])), 1)
            out[p + "cpu_s_total"] = round(float(np.sum([c["cpu_s"] for c in cs])), 1)
            out[p + "wall_s_total"] = round(float(np.sum([c["wall_s"] for c in cs])), 1)
            paired([(f, s) for s in got], r, p)

    dev = [f for f in families if not get_family(f).held_out]
    out["development_families"] = dev
    out["held_out_families"] = [f for f in families if get_family(f).held_out]
    for r in recipes:
        keys = [(f, s) for f in dev for s in seeds]
        if not dev or any((*k, r) not in by for k in keys):
            continue
        p = f"{DEV}.{r}."
        out[p + "top1_mean"] = round(float(np.mean([out[f"{f}.{r}.top1_mean"] for f in dev])), 4)
        out[p + "top5_mean"] = round(float(np.mean([out[f"{f}.{r}.top5_mean"] for f in dev])), 4)
        known = f"{DEV}.known_model.top1_mean"
        if known in out and out[known]:
            out[p + "fraction_of_known_model"] = round(out[p + "top1_mean"] / out[known], 4)
        paired(keys, r, p)
    out["missing_cells"] = missing
    out.update(_budget(by, families, recipes, seeds, simulations))
    return out


def _budget(by: dict, families, recipes, seeds, simulations) -> dict[str, Any]:
    """Measured CPU/wall totals, and the expected total of the whole grid (missing cells estimated by the mean
    of the same recipe's measured cells on any family; simulations likewise per family)."""
    cells = list(by.values())
    sims = [s for s in simulations if s["family"] in families and s["seed"] in seeds]
    measured_cpu = sum(c["cpu_s"] for c in cells) + sum(s["simulate_cpu_s"] for s in sims)
    measured_wall = sum(c["wall_s"] for c in cells) + sum(s["simulate_wall_s"] for s in sims)
    per: dict[str, float] = {}
    unknown = []
    for r in recipes:
        known = [c["cpu_s"] for c in cells if c["recipe"] == r]
        per[r] = 0.0
        for f in families:
            for s in seeds:
                if (f, s, r) in by:
                    per[r] += by[(f, s, r)]["cpu_s"]
                elif known:
                    per[r] += float(np.mean(known))
                else:
                    unknown.append(f"{f}/seed{s}/{r}")
    per["simulate"] = 0.0
    for f in families:
        fs = [s["simulate_cpu_s"] for s in sims if s["family"] == f]
        if fs:
            per["simulate"] += float(np.mean(fs)) * len(seeds)
        else:
            unknown.append(f"{f}/simulate")
    return {"budget.measured_cpu_s_total": round(measured_cpu, 1), "budget.measured_wall_s_total": round(measured_wall, 1),
            "budget.expected_cpu_s_total_full_grid": round(sum(per.values()), 1),
            **{f"budget.expected_cpu_s.{k}": round(v, 1) for k, v in per.items()}, "budget.unestimated": unknown,
            "budget.method": ("measured: every cached cell and the last simulation of each (family, seed); expected: "
                              "measured cells plus, for each missing cell, the mean CPU of the same recipe's measured "
                              "cells (any family; a rough estimate, training cost grows with a family's size), and "
                              "one simulation per (family, seed)")}


def _secs(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _fmt(x: float | None, signed: bool = False) -> str:
    return "—" if x is None else (f"{x:+.3f}" if signed else f"{x:.3f}")


def markdown_tables(summary: dict, families: Sequence[str], recipes: Sequence[str], seeds: Sequence[int],
                    level: float = 0.95) -> str:
    """Three markdown tables: top-1 (top-5); difference with whitened ridge [CI]; CPU seconds per cell."""
    ci, ref, n = _ci_key(level), REFERENCE, len(seeds)
    dev = [f for f in families if not get_family(f).held_out]
    held = [f for f in families if get_family(f).held_out]
    rows = [(f, f"`{f}`") for f in dev] + [(DEV, f"**mean of the {len(dev)} development families**")] + \
           [(f, f"*held out:* `{f}`") for f in held]
    head = "| family | " + " | ".join(f"`{r}`" for r in recipes) + " |"
    sep = "|---|" + "---|" * len(recipes)

    def note(f: str, r: str) -> str:
        k = summary.get(f"{f}.{r}.n_seeds")
        return "" if k in (None, n) else f" ({k} seed{'s' if k != 1 else ''})"

    t1 = [head, sep]
    for f, label in rows:
        cells = []
        for r in recipes:
            m = summary.get(f"{f}.{r}.top1_mean")
            cells.append("—" if m is None else f"{m:.3f} ({summary[f'{f}.{r}.top5_mean']:.3f}){note(f, r)}")
        t1.append(f"| {label} | " + " | ".join(cells) + " |")
    others = [r for r in recipes if r != ref]
    t2 = ["| family | " + " | ".join(f"`{r}`" for r in others) + " |", "|---|" + "---|" * len(others)]
    for f, label in rows:
        cells = []
        for r in others:
            d = summary.get(f"{f}.{r}.top1_diff_mean_vs_{ref}")
            lo, hi = summary.get(f"{f}.{r}.top1_{ci}_low_vs_{ref}"), summary.get(f"{f}.{r}.top1_{ci}_high_vs_{ref}")
            cells.append("—" if d is None else f"{_fmt(d, True)} [{_fmt(lo, True)}, {_fmt(hi, True)}]{note(f, r)}")
        t2.append(f"| {label} | " + " | ".join(cells) + " |")
    t3 = ["| family | simulate | " + " | ".join(f"`{r}`" for r in recipes) + " |", "|---|---|" + "---|" * len(recipes)]
    for f, label in [(f, lab) for f, lab in rows if f != DEV]:
        sim = summary.get(f"{f}.simulate.cpu_s_mean")
        cells = [("—" if sim is None else f"{_secs(sim)} ({_secs(summary[f'{f}.simulate.wall_s_mean'])})")]
        for r in recipes:
            c = summary.get(f"{f}.{r}.cpu_s_mean")
            cells.append("—" if c is None else f"{_secs(c)} ({_secs(summary[f'{f}.{r}.wall_s_mean'])}){note(f, r)}")
        t3.append(f"| {label} | " + " | ".join(cells) + " |")
    pct = round(level * 100)
    ways = sorted({summary[f"{f}.n_test"] for f in families if f"{f}.n_test" in summary})
    way = f"{ways[0]}-way" if len(ways) == 1 else "all-way (" + "/".join(map(str, ways)) + " test images)"
    return "\n".join([
        f"{way} top-1 (top-5), sub-01, mean over seeds {', '.join(map(str, seeds))} (fewer where noted; — = not run):",
        "", *t1, "",
        f"Top-1 minus `{ref}`'s, mean over seeds [{pct} % paired bootstrap CI over test images]:", "", *t2, "",
        "CPU seconds per cell, mean over seeds (wall seconds in parentheses):", "", *t3, "",
        f"Measured so far: {summary['budget.measured_cpu_s_total'] / 3600:.2f} CPU hours "
        f"({summary['budget.measured_wall_s_total'] / 3600:.2f} h wall). All {len(families)} families x "
        f"{len(seeds)} seeds x these {len(recipes)} recipes: about "
        f"{summary['budget.expected_cpu_s_total_full_grid'] / 3600:.1f} CPU hours (missing cells estimated by the "
        "mean of the same recipe's measured cells" + _unestimated(summary) + ").", ""])


def _unestimated(summary: dict) -> str:
    """``; not counted: ...`` for the recipes with no measured cell (their cost cannot be estimated)."""
    names = sorted({u.rsplit("/", 1)[-1] for u in summary.get("budget.unestimated", [])})
    return f"; not counted, no cell measured yet: {', '.join(names)}" if names else ""
