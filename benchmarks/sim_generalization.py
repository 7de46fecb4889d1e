"""Generalisation across simulator families: every recipe on every family, 3 seeds, paired with whitened ridge.

For each simulator family (``docs/families.md``; the held-out ``nonlinear`` reported separately, never averaged
with the others), each seed (the simulation's world and trial seed; also the training seed of fit recipes) and
each recipe (:mod:`eegvision.sim.generalization.recipes`: ``known_model``, ``ridge``, ``whitened_ridge`` and
FitConfig recipes such as ``stconv-sim-demo``), this scores 200-way top-1/top-5 on sub-01's test set, keeps every
test image's rank (for pairing) and the training time, and compares each recipe with whitened ridge: mean over
seeds and a 95 % paired bootstrap CI of the top-1 difference (test images resampled within each seed, the same
images for both recipes, seeds averaged; 10 000 replicates, seed 0).

Resumable: each (family, seed, recipe) cell is cached as JSON under ``benchmarks/results/sim_generalization/
cache/<family>/seed<k>/<recipe>.json`` with its recipe's config and hash (a changed recipe is recomputed);
simulations are made in ``--workdir`` and deleted once a (family, seed) is done unless ``--keep-data``. Stop and
run again to continue. Progress on stderr; the tables on stdout; ``benchmarks/results/sim_generalization.json``
(flat keys, units) and ``.md`` (the tables) are written at the end.

Usage::

    python benchmarks/sim_generalization.py --recipes known_model,ridge,whitened_ridge   # ~45 min CPU, 2 cores
    python benchmarks/sim_generalization.py --families linear-erp --seeds 0 --recipes stconv-sim-demo
    python benchmarks/sim_generalization.py --preset small --recipes known_model,ridge,whitened_ridge  # smoke
    python benchmarks/sim_generalization.py --report-only        # summarise the cache (all recipes), compute nothing
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("EEGVISION_PROGRESS", "0")

from _common import RESULTS, machine, peak_rss_mb, write_result  # noqa: E402

ROOT = RESULTS.resolve().parent.parent      # the repository


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--families", default="all", help="comma list of simulator families, or all")
    p.add_argument("--seeds", default="0,1,2", help="comma list of simulation seeds")
    p.add_argument("--recipes", default="all", help="comma list of recipes (see --list-recipes), or all")
    p.add_argument("--preset", default="default", choices=["default", "small"],
                   help="each family's default size, or its reduced one (smoke runs)")
    p.add_argument("--workdir", default=None, help="simulations and run folders (default: a folder in the "
                   "system's temporary directory, outside the repository)")
    p.add_argument("--keep-data", action="store_true", help="keep each simulation after its cells are done")
    p.add_argument("--cache", default=None, help="cell cache (default: benchmarks/results/<name>/cache)")
    p.add_argument("--name", default=None, help="result name (default: sim_generalization, _small for --preset "
                   "small)")
    p.add_argument("--report-only", action="store_true", help="summarise the cached cells, compute nothing")
    p.add_argument("--stop-on-error", action="store_true", help="stop at the first failing cell")
    p.add_argument("--n-boot", type=int, default=10_000, help="bootstrap replicates of the paired CI")
    p.add_argument("--level", type=float, default=0.95, help="two-sided level of the paired CI")
    p.add_argument("--list-recipes", action="store_true", help="print the recipes and exit")
    return p


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    from eegvision.checks import check_positive
    from eegvision.sim.families import list_families
    from eegvision.sim.generalization import (
        CellCache,
        get_recipes,
        markdown_tables,
        run_benchmark,
        summarize,
    )
    from eegvision.sim.generalization.harness import data_description
    from eegvision.sim.generalization.recipes import REFERENCE, json_hash

    if args.list_recipes:
        for r in get_recipes():
            print(f"{r.name:22s} {r.kind:12s} {r.description}")
        return {}
    check_positive("--n-boot", args.n_boot)
    # "all": the single-subject families; several-subject ones (cross-subject) are benchmarked across subjects by
    # benchmarks/sim_cross_subject.py, not by within-subject cells of sub-01
    families = ([f.name for f in list_families() if f.presets[f.default_preset].n_subjects == 1]
                if args.families == "all" else _split(args.families))
    recipes = get_recipes(None if args.recipes == "all" else _split(args.recipes))
    try:
        seeds = [int(s) for s in _split(args.seeds)]
    except ValueError:
        raise SystemExit(f"--seeds takes integers separated by commas, e.g. 0,1,2; got {args.seeds!r}.") from None
    if not seeds:
        raise SystemExit("--seeds is empty; give e.g. 0,1,2.")
    name = args.name or ("sim_generalization" if args.preset == "default" else "sim_generalization_small")
    cache = (Path(args.cache) if args.cache else RESULTS / name / "cache").resolve()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir()) / f"eegvision-{name}"
    t0 = time.perf_counter()
    if args.report_only:
        from eegvision.sim.generalization import BenchmarkRun

        store, run = CellCache(cache), BenchmarkRun()
        for f in families:
            for s in seeds:
                dhash = json_hash(data_description(f, args.preset, s))
                run.cells += [c for r in recipes if (c := store.load(f, s, r, dhash)) is not None]
                if (rec := store.simulation(f, s, dhash)) is not None:
                    run.simulations.append(rec)
    else:
        print(f"workdir {workdir}, cache {cache}", file=sys.stderr)
        run = run_benchmark(families, seeds, recipes, workdir, cache, size=args.preset, keep_data=args.keep_data,
                            keep_going=not args.stop_on_error, context={"machine": machine()})
    names = [r.name for r in recipes]
    summary = summarize(run.cells, families, names, seeds, run.simulations, n_boot=args.n_boot, level=args.level)
    tables = markdown_tables(summary, families, names, seeds, level=args.level)
    from eegvision.sim.generalization.summary import UNITS

    result = {
        "size": args.preset, "subject": "sub-01", "families": families, "seeds": seeds, "recipes": names,
        "reference_recipe": REFERENCE, "units": UNITS,
        **{f"recipe.{r.name}.description": r.description for r in recipes},
        **{f"recipe.{r.name}.config_hash": r.config_hash for r in recipes},
        "method.paired_ci": (f"percentile bootstrap, {args.n_boot} replicates, seed 0, two-sided level "
                             f"{args.level}: each replicate resamples every seed's test images with replacement "
                             f"(the same images for both recipes) and averages the per-seed top-1 differences "
                             f"with {REFERENCE} over seeds; conditional on the seeds' worlds and trainings"),
        "method.ci_level": args.level, "method.n_boot": args.n_boot, "method.bootstrap_seed": 0,
        "method.held_out": "the held-out family is summarised alone and never enters development_families_mean",
        **summary,
        "failures": run.failures,
        "this_invocation.cells_computed": run.computed, "this_invocation.simulations": run.simulated,
        "this_invocation.wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "cache": str(cache.relative_to(ROOT)) if cache.is_relative_to(ROOT) else str(cache),
    }
    write_result(name, result, echo=False)
    md = (f"# {name}\n\nGenerated by `benchmarks/sim_generalization.py` ({args.preset} sizes; cells in "
          f"`{result['cache']}`). Missing cells: {len(summary['missing_cells'])} "
          f"(listed in `{name}.json` under `missing_cells`).\n\n{tables}")
    (RESULTS / f"{name}.md").write_text(md)
    print(tables)
    if run.failures:
        print(f"{len(run.failures)} cell(s) failed (see 'failures' in {name}.json):", file=sys.stderr)
        for f in run.failures:
            print(f"  {f['family']}/seed{f['seed']}/{f['recipe']}: {f['error']}", file=sys.stderr)
    print(f"wrote {RESULTS / (name + '.json')} and .md", file=sys.stderr)
    return json.loads(json.dumps(result))


if __name__ == "__main__":
    main()
