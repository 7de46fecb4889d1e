"""Final-layer vs multi-layer vs fused targets (issue #17) on every simulator family, from the benchmark's cells.

Reads the cells ``benchmarks/sim_generalization.py`` cached for the recipes ``ridge-clip-final`` (the ridge
encoder towards the world CLIP's final image embedding of the simulation's images), ``ridge-clip-layers`` (towards
the fused target of that embedding and the CLIP image tower's three block outputs) and
``ridge-clip-layers-pixels`` (the same plus pixel-level features), and compares each multi-target recipe with the
final-layer one per test image: mean over seeds of the 200-way top-1 difference and its 95 % paired bootstrap CI
(test images resampled within each seed, seeds averaged; 10 000 replicates, seed 0). ``known_model`` and
``whitened_ridge`` are listed for scale. The held-out family ``nonlinear`` is reported apart and never averaged.

Run the cells first::

    python benchmarks/sim_generalization.py --recipes known_model,ridge,whitened_ridge,ridge-clip-final,\\
        ridge-clip-layers,ridge-clip-layers-pixels
    python benchmarks/multi_target.py            # writes benchmarks/results/multi_target.{json,md}
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import RESULTS, write_result  # noqa: E402

FINAL = "ridge-clip-final"
MULTI = ("ridge-clip-layers", "ridge-clip-layers-pixels")
CONTEXT = ("known_model", "whitened_ridge")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--n-boot", type=int, default=10_000)
    p.add_argument("--cache", default=str(RESULTS / "sim_generalization" / "cache"))
    args = p.parse_args(argv)
    import numpy as np

    from eegvision.evaluation.stats import paired_item_bootstrap
    from eegvision.sim.families import list_families
    from eegvision.sim.generalization import CellCache, get_recipes
    from eegvision.sim.generalization.harness import data_description
    from eegvision.sim.generalization.recipes import json_hash

    seeds = [int(s) for s in args.seeds.split(",")]
    families = [f.name for f in list_families()]
    held_out = {f.name for f in list_families() if f.held_out}
    recipes = get_recipes([*CONTEXT, FINAL, *MULTI])
    store = CellCache(Path(args.cache))
    cells = {}
    for f in families:
        for s in seeds:
            dhash = json_hash(data_description(f, "default", s))
            for r in recipes:
                c = store.load(f, s, r, dhash)
                if c is not None:
                    cells[(f, s, r.name)] = c
    out: dict = {"seeds": seeds, "families": families, "held_out": sorted(held_out),
                 "recipes": [r.name for r in recipes], "reference": FINAL,
                 **{f"recipe.{r.name}.description": r.description for r in recipes},
                 "method.paired_ci": f"percentile bootstrap over test images within each seed, seeds averaged, "
                                     f"{args.n_boot} replicates, seed 0, 95 %",
                 "units": "top1: fraction of sub-01's 200 test images ranked first (200-way, chance 0.005)"}
    missing = []
    for f in families:
        for r in recipes:
            got = [s for s in seeds if (f, s, r.name) in cells]
            missing += [f"{f}/seed{s}/{r.name}" for s in seeds if s not in got]
            if got:
                out[f"{f}.{r.name}.top1_mean"] = round(float(np.mean([cells[(f, s, r.name)]["top1"] for s in got])), 4)
                out[f"{f}.{r.name}.top1_by_seed"] = [cells[(f, s, r.name)]["top1"] for s in got]
        for m in MULTI:
            both = [s for s in seeds if (f, s, m) in cells and (f, s, FINAL) in cells]
            if not both:
                continue
            res = paired_item_bootstrap([np.asarray(cells[(f, s, m)]["ranks"]) < 1 for s in both],
                                        [np.asarray(cells[(f, s, FINAL)]["ranks"]) < 1 for s in both],
                                        n_boot=args.n_boot, seed=0)
            out[f"{f}.{m}.top1_diff_vs_final"] = round(res["mean_diff"], 4)
            out[f"{f}.{m}.ci95_vs_final"] = [round(res["ci_low"], 4), round(res["ci_high"], 4)]
            out[f"{f}.{m}.n_seeds_paired"] = len(both)
    dev = [f for f in families if f not in held_out]
    for r in recipes:
        vals = [out.get(f"{f}.{r.name}.top1_mean") for f in dev]
        if all(v is not None for v in vals):
            out[f"development_families_mean.{r.name}.top1_mean"] = round(float(np.mean(vals)), 4)
    out["missing_cells"] = missing
    write_result("multi_target", out, echo=False)
    md = _markdown(out, families, held_out, [r.name for r in recipes])
    (RESULTS / "multi_target.md").write_text(md)
    print(md)
    print(f"wrote {RESULTS / 'multi_target.json'} and .md; missing cells: {len(missing)}", file=sys.stderr)
    return out


def _markdown(out: dict, families: list[str], held_out: set[str], names: list[str]) -> str:
    def top(f, r):
        v = out.get(f"{f}.{r}.top1_mean")
        return "—" if v is None else f"{v:.3f}"

    def diff(f, m):
        v = out.get(f"{f}.{m}.top1_diff_vs_final")
        if v is None:
            return "—"
        lo, hi = out[f"{f}.{m}.ci95_vs_final"]
        return f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    head = "| family | " + " | ".join(f"`{n}`" for n in names) + " | " + " | ".join(
        f"`{m}` − final [95 % CI]" for m in MULTI) + " |"
    lines = ["# multi_target", "", f"200-way top-1, sub-01, mean over seeds {out['seeds']}; differences paired per "
             "test image with `ridge-clip-final` (generated by `benchmarks/multi_target.py`).", "", head,
             "|" + "---|" * (1 + len(names) + len(MULTI))]
    for f in [f for f in families if f not in held_out] + [f for f in families if f in held_out]:
        label = f"*held out:* `{f}`" if f in held_out else f"`{f}`"
        lines.append(f"| {label} | " + " | ".join(top(f, n) for n in names) + " | "
                     + " | ".join(diff(f, m) for m in MULTI) + " |")
    lines.append("| **mean of the development families** | " + " | ".join(
        top("development_families_mean", n) for n in names) + " | " + " | ".join("" for _ in MULTI) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
