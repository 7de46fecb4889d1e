"""Cross-subject benchmark (issue #18): plain leave-one-subject-out vs subject-aware training, per held-out subject,
seeds 0-2, with the transductive calibrations in their own column.

Families (``docs/families.md``):

* ``cross-subject`` at its default size (4 subjects that differ in scalp patterns, gains and latency; 1000
  training concepts x 1 image x 4 repetitions, 100 test concepts x 10 repetitions): where subject-aware training
  must beat plain LOSO;
* ``linear-erp`` and ``ar1-noise`` with 3 subjects at the same size (their own small subject differences; the
  second with AR(1) sensor noise): where subject-aware training must not lose.

Recipes (FitConfig, ``protocol="loso"``: one fresh model per held-out subject, trained on the other subjects,
tested on the held-out one's averaged test trials, 100-way): a small common base (``BASE``: EEGProject, the 17
occipito-parietal channels, 0.05-0.5 s, repetition-averaged training, 12 epochs, batch 128, AdamW 1e-3 cosine,
selection on 10 % held-out training concepts), and on top of it each subject-aware option alone and together:
per-subject alignment (``align``: Euclidean, centring, both; from each subject's unlabelled training split, the
held-out subject's too, never its test EEG), the training-only router with per-subject heads, the coarse MMD stage
and the subject MMD term. Each held-out subject's test embeddings are also scored after every transductive calibration
(:mod:`eegvision.evaluation.calibration`), reported in a separate column and never mixed with the inductive
numbers.

    python benchmarks/sim_cross_subject.py                                # make bench: small presets, seed 0, 2 epochs
    python benchmarks/sim_cross_subject.py --size default --recipes loso,centre,centre-euclidean,centre-subject-aware \
        --linear-erp-recipes loso,centre,centre-euclidean,centre-subject-aware              # the measured run
    python benchmarks/sim_cross_subject.py --size default --families ar1-noise --linear-erp-recipes loso,centre
    python benchmarks/sim_cross_subject.py --size default --seeds 0 --recipes align,heads,mmd --families cross-subject

Writes ``benchmarks/results/sim_cross_subject.json`` (every cell: family, seed, recipe, held-out subject, 100-way
top-1/top-5, the calibrated top-1s, wall and CPU seconds) and ``sim_cross_subject.md`` (the tables).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
BASE = {"encoder": "eegproject", "protocol": "loso", "channels": "occipito-parietal", "window": [0.05, 0.5],
        "average_train": True, "epochs": 12, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.01,
        "schedule": "cosine", "val_fraction": 0.1, "eval_methods": ["exact"], "eval_ks": [10, 100],
        "features_normalized": True, "progress": False}
RECIPES = {
    "loso": {},
    "align": {"align": "euclidean"},
    "centre": {"align": "centre"},
    "centre-euclidean": {"align": "centre-euclidean"},
    "heads": {"subject_router": "heads"},
    "mmd": {"mmd_epochs": 3, "subject_mmd_weight": 1.0},
    "subject-aware": {"align": "euclidean", "subject_router": "heads", "mmd_epochs": 3, "subject_mmd_weight": 1.0},
    "centre-subject-aware": {"align": "centre", "subject_router": "heads", "mmd_epochs": 3, "subject_mmd_weight": 1.0},
    "centre-heads": {"align": "centre", "subject_router": "heads"},
    "centre-mmd": {"align": "centre", "mmd_epochs": 3, "subject_mmd_weight": 1.0},
}
CALIBRATIONS = ("centre", "whiten", "procrustes", "score")


def simulate(family: str, seed: int, out: Path, size: str = "default") -> Path:
    from eegvision.sim.families import get_family
    from eegvision.sim.families.runner import simulate_family

    if (out / "simulation.json").is_file():
        return out
    fam = get_family(family)
    preset = fam.preset(None if size == "default" else size)
    if family != "cross-subject":
        xs = get_family("cross-subject").preset(None if size == "default" else size)
        preset = dataclasses.replace(preset, name="cross-subject-size", n_subjects=3,
                                     **{f: getattr(xs, f) for f in ("n_train_concepts", "n_train_images",
                                                                    "train_reps", "n_test_concepts", "test_reps")})
    simulate_family(fam, out, preset=preset, seed=seed, images=True, overwrite=True)
    return out


def run_recipe(name: str, data: Path, seed: int, work: Path, epochs: int | None = None) -> list[dict]:
    """Train the LOSO folds of recipe ``name`` on ``data``; one cell per held-out subject."""
    import torch

    from eegvision.data.sources import open_data
    from eegvision.evaluation.embeddings import evaluate_embeddings
    from eegvision.features.files import load_features
    from eegvision.sim.generalization.cells import cpu_seconds
    from eegvision.training.config import FitConfig
    from eegvision.training.fitting import fit

    subjects = list(open_data(str(data)).subjects)
    feats = load_features(data / "sim_features_test.pt").image
    sizes = {"eval_ks": [10, len(feats)], **({"epochs": epochs} if epochs else {})}
    cfg = FitConfig.from_dict({**BASE, **RECIPES[name], **sizes, "data": str(data), "subjects": subjects, "seed": seed,
                               "features_train": str(data / "sim_features_train.pt"),
                               "features_test": str(data / "sim_features_test.pt")})
    run_dir = work / f"run-{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    t0, c0 = time.perf_counter(), cpu_seconds()
    torch.set_num_threads(1)
    res = fit(cfg, run_dir)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    cells = []
    for subject, emb in sorted(res.run.test_embeddings().items()):
        n = len(feats)
        rows = evaluate_embeddings(emb, feats, ks=[10, n], methods=["exact"], calibrations=CALIBRATIONS)
        ind = {r["k"]: r for r in rows if not r["transductive"]}
        run_row = [r for r in res.rows if r["subject"] == subject and r["method"] == "exact" and r["k"] == n][0]
        assert abs(run_row["top1"] - ind[n]["top1"]) < 1e-9, (run_row, ind[n])
        cells.append({"recipe": name, "held_out": subject, "top1": ind[n]["top1"], "top5": ind[n]["top5"],
                      "top1_10way": ind[10]["top1"],
                      "transductive": {r["calibration"]: {"top1": r["top1"], "top5": r["top5"]}
                                       for r in rows if r["transductive"] and r["k"] == n},
                      "transductive_10way": {r["calibration"]: r["top1"] for r in rows
                                             if r["transductive"] and r["k"] == 10},
                      "selected_epoch": res.run.unit_for_subject(subject).read_selection()["selected_epoch"]})
    for c in cells:
        c["fold_wall_s"], c["fold_cpu_s"] = round(wall / len(cells), 2), round(cpu / len(cells), 2)
    shutil.rmtree(run_dir, ignore_errors=True)
    return cells


def summarise(cells: list[dict], families: list[str], recipes: list[str], seeds: list[int]) -> dict:
    """Mean ± std over seeds of the mean over held-out subjects; per subject mean ± std over seeds; the same for
    each calibration (transductive, separate); paired difference of each recipe with plain LOSO."""
    out: dict = {}
    for fam in families:
        out[fam] = {}
        for rec in recipes:
            mine = [c for c in cells if c["family"] == fam and c["recipe"] == rec]
            if not mine:
                continue
            subs = sorted({c["held_out"] for c in mine})

            def per_seed(key):
                return [float(np.mean([key(c) for c in mine if c["seed"] == s])) for s in seeds
                        if any(c["seed"] == s for c in mine)]

            entry = {"inductive": {}, "transductive": {}, "per_subject": {}}
            vals = per_seed(lambda c: c["top1"])
            v10 = per_seed(lambda c: c["top1_10way"])
            entry["inductive"] = {"top1_mean": float(np.mean(vals)), "top1_std": _std(vals), "per_seed": vals,
                                  "top1_10way_mean": float(np.mean(v10)), "top1_10way_std": _std(v10)}
            for cal in CALIBRATIONS:
                v = per_seed(lambda c, cal=cal: c["transductive"][cal]["top1"])
                w = per_seed(lambda c, cal=cal: c["transductive_10way"][cal])
                entry["transductive"][cal] = {"top1_mean": float(np.mean(v)), "top1_std": _std(v),
                                              "top1_10way_mean": float(np.mean(w)), "top1_10way_std": _std(w)}
            for s in subs:
                v = [c["top1"] for c in mine if c["held_out"] == s]
                w = [c["top1_10way"] for c in mine if c["held_out"] == s]
                entry["per_subject"][s] = {"top1_mean": float(np.mean(v)), "top1_std": _std(v), "per_seed": v,
                                           "top1_10way_mean": float(np.mean(w)), "top1_10way_std": _std(w)}
            base = [c for c in cells if c["family"] == fam and c["recipe"] == "loso"]
            if rec != "loso" and base:
                pairs = [(c["top1"], b["top1"]) for c in mine for b in base
                         if (b["seed"], b["held_out"]) == (c["seed"], c["held_out"])]
                d = np.array([a - b for a, b in pairs])
                d10 = np.array([c["top1_10way"] - b["top1_10way"] for c in mine for b in base
                                if (b["seed"], b["held_out"]) == (c["seed"], c["held_out"])])
                entry["vs_loso"] = {"mean_diff": float(d.mean()), "n_folds": len(d), "n_better": int((d > 0).sum()),
                                    "n_worse": int((d < 0).sum()), "mean_diff_10way": float(d10.mean()),
                                    "n_better_10way": int((d10 > 0).sum()), "n_worse_10way": int((d10 < 0).sum())}
            entry["cost"] = {"wall_s": float(sum(c["fold_wall_s"] for c in mine)),
                             "cpu_s": float(sum(c["fold_cpu_s"] for c in mine))}
            out[fam][rec] = entry
    return out


def _std(v) -> float | None:
    return float(np.std(v, ddof=1)) if len(v) > 1 else None


def fmt(m, s) -> str:
    return f"{m:.3f}" if s is None else f"{m:.3f} ± {s:.3f}"


def markdown(summary: dict, seeds: list[int]) -> str:
    """Two tables per family: inductive (with per-held-out-subject columns) and, separately, transductive."""
    lines = []
    for fam, recs in summary.items():
        subs = sorted({s for e in recs.values() for s in e["per_subject"]})
        n_seeds = max(len(e["inductive"]["per_seed"]) for e in recs.values())
        lines += [f"### `{fam}` — inductive (LOSO: the held-out subject's test EEG is decoded, never fitted to; "
                  f"mean ± std over {n_seeds} seed(s) of the mean over held-out "
                  "subjects; per held-out subject: mean ± std over seeds; chance: 0.010 at 100-way, 0.100 at "
                  "10-way)", "",
                  "| recipe | held-out subject's EEG used | 100-way top-1 | 10-way top-1 | "
                  + " | ".join(f"{s} (100-way)" for s in subs)
                  + " | vs plain LOSO, 100-way (mean diff; folds better/worse) | vs plain LOSO, 10-way | CPU s |",
                  "|---|---|---|---|" + "---|" * len(subs) + "---|---|---|"]
        for rec, e in recs.items():
            vs = e.get("vs_loso")
            vs_txt = f"{vs['mean_diff']:+.3f}; {vs['n_better']}/{vs['n_worse']} of {vs['n_folds']}" if vs else "—"
            vs10 = (f"{vs['mean_diff_10way']:+.3f}; {vs['n_better_10way']}/{vs['n_worse_10way']} of "
                    f"{vs['n_folds']}") if vs else "—"
            ind = e["inductive"]
            uses = ("its training split, unlabelled (alignment)" if RECIPES.get(rec, {}).get("align")
                    else "none")
            lines.append(f"| {rec} | {uses} | {fmt(ind['top1_mean'], ind['top1_std'])} | "
                         f"{fmt(ind['top1_10way_mean'], ind['top1_10way_std'])} | "
                         + " | ".join(fmt(e['per_subject'][s]['top1_mean'], e['per_subject'][s]['top1_std'])
                                      for s in subs) + f" | {vs_txt} | {vs10} | {e['cost']['cpu_s']:.0f} |")
        lines += ["", f"### `{fam}` — transductive (calibrated test embeddings of the held-out subject, top-1 "
                  "100-way / 10-way; NOT comparable with the inductive table)", "",
                  "| recipe | " + " | ".join(CALIBRATIONS) + " |", "|---|" + "---|" * len(CALIBRATIONS)]
        for rec, e in recs.items():
            lines.append(f"| {rec} | " + " | ".join(
                f"{fmt(e['transductive'][c]['top1_mean'], e['transductive'][c]['top1_std'])} / "
                f"{fmt(e['transductive'][c]['top1_10way_mean'], e['transductive'][c]['top1_10way_std'])}"
                for c in CALIBRATIONS) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="cross-subject,linear-erp")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--recipes", default="all")
    p.add_argument("--workdir", default="/tmp/eegvision-cross-subject")
    p.add_argument("--size", default="small", choices=("small", "default"),
                   help="small (make bench: the families' reduced presets, 2 epochs) or default (the measured run)")
    p.add_argument("--out", default=None, help="default: results/sim_cross_subject.json (--size default) or "
                   "results/sim_cross_subject_small.json")
    p.add_argument("--linear-erp-recipes", default="loso,subject-aware",
                   help="recipes run on linear-erp (the does-not-lose check)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    families = args.families.split(",")
    if args.size == "small" and args.seeds == "0,1,2":
        args.seeds = "0"
    seeds = [int(s) for s in args.seeds.split(",")]
    recipes = list(RECIPES) if args.recipes == "all" else args.recipes.split(",")
    out = Path(args.out or RESULTS / f"sim_cross_subject{'' if args.size == 'default' else '_small'}.json")
    done = json.loads(out.read_text()) if out.is_file() else {"cells": []}
    cells = done["cells"]
    have = {(c["family"], c["seed"], c["recipe"]) for c in cells}
    work = Path(args.workdir)
    t_all = time.perf_counter()
    for fam in families:
        fam_recipes = recipes if fam == "cross-subject" else [r for r in args.linear_erp_recipes.split(",")]
        for seed in seeds:
            todo = [r for r in fam_recipes if (fam, seed, r) not in have]
            if not todo:
                continue
            t0 = time.perf_counter()
            data = simulate(fam, seed, work / f"{fam}-{seed}{'' if args.size == 'default' else '-small'}", args.size)
            print(f"[{time.strftime('%H:%M:%S')}] simulated {fam} seed {seed} ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
            for rec in todo:
                new = run_recipe(rec, data, seed, work, epochs=2 if args.size == "small" else None)
                for c in new:
                    c.update(family=fam, seed=seed)
                cells += new
                have.add((fam, seed, rec))
                print(f"[{time.strftime('%H:%M:%S')}] {fam} seed {seed} {rec}: top1 (10-way) "
                      + ", ".join(f"{c['held_out']} {c['top1']:.3f} ({c['top1_10way']:.3f}) score "
                                  f"{c['transductive']['score']['top1']:.3f}" for c in new), file=sys.stderr,
                      flush=True)
                _write(out, cells, families, recipes, seeds)
    _write(out, cells, families, recipes, seeds)
    print(f"total {time.perf_counter() - t_all:.0f} s", file=sys.stderr)


def _write(out: Path, cells: list[dict], families: list[str], recipes: list[str], seeds: list[int]) -> None:
    from eegvision.utils import write_text_atomic

    fams = sorted({c["family"] for c in cells}, key=lambda f: (f != "cross-subject", f))
    recs = [r for r in RECIPES if any(c["recipe"] == r for c in cells)]
    summary = summarise(cells, fams, recs, sorted({c["seed"] for c in cells}))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = None
    record = {"what": "cross-subject benchmark (issue #18); see benchmarks/sim_cross_subject.py",
              "base_recipe": BASE, "recipes": RECIPES, "calibrations": list(CALIBRATIONS),
              "machine": {"platform": platform.platform(), "python": platform.python_version(), "threads": 1},
              "commit": commit, "summary": summary, "cells": cells}
    write_text_atomic(out, json.dumps(record, indent=1) + "\n")
    write_text_atomic(out.with_suffix(".md"), markdown(summary, sorted({c["seed"] for c in cells})))


if __name__ == "__main__":
    main()
