"""Final-layer vs multi-layer vs fused targets (issue #17) on every simulator family, from the benchmark's cells.

Reads the cells ``benchmarks/sim_generalization.py`` cached for the recipes ``ridge-clip-final`` (the ridge
encoder towards the world CLIP's final image embedding of the simulation's images), ``ridge-clip-layers`` (towards
the fused target of that embedding and the CLIP image tower's three block outputs) and
``ridge-clip-layers-pixels`` (the same plus pixel-level features), and compares each multi-target recipe with the
final-layer one per test image: mean over seeds of the 200-way top-1 difference and its 95 % paired bootstrap CI
(test images resampled within each seed, seeds averaged; 10 000 replicates, seed 0). ``known_model`` and
``whitened_ridge`` are listed for scale. The held-out family ``nonlinear`` is reported apart and never averaged.

Because 200-way top-1 of these targets is near chance on most families, every comparison is also made on the
**pairwise accuracy** of each test image, ``1 - rank / (n - 1)`` (the fraction of the other 199 candidates ranked
below the true one, ties against: the 2-way accuracy averaged over all distractors; chance 0.5), from the same
per-image ranks, with the same paired bootstrap.

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

#: (final-layer recipe, its multi-target recipes): the penalty chosen by cross-validated top-1, then by R^2
GROUPS = (("ridge-clip-final", ("ridge-clip-layers", "ridge-clip-layers-pixels")),
          ("ridge-clip-final-r2", ("ridge-clip-layers-r2", "ridge-clip-layers-pixels-r2")),
          ("ridge-clip-final-pw", ("ridge-clip-fused-cv", "ridge-clip-vae-fused-cv")))
#: The recipes whose fused-target weights are chosen per subject (``target_weights="cv"``): their choices are listed.
CV_WEIGHTS = ("ridge-clip-fused-cv", "ridge-clip-vae-fused-cv")
FINAL = GROUPS[0][0]
CONTEXT = ("known_model", "whitened_ridge", "ridge-pixels")


def _pairwise(ranks):
    import numpy as np

    r = np.asarray(ranks, dtype=np.float64)
    return 1.0 - r / (len(r) - 1)


def _top1(ranks):
    import numpy as np

    return (np.asarray(ranks) < 1).astype(np.float64)


METRICS = {"top1": _top1, "pairwise": _pairwise}


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
    # the single-subject families (cross-subject is benchmarked across subjects by sim_cross_subject.py)
    single = [f for f in list_families() if f.presets[f.default_preset].n_subjects == 1]
    families = [f.name for f in single]
    held_out = {f.name for f in single if f.held_out}
    recipes = get_recipes([*CONTEXT, *[n for final, multi in GROUPS for n in (final, *multi)]])
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
                 "recipes": [r.name for r in recipes],
                 "reference": {m: final for final, multi in GROUPS for m in multi},
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
                for q in ("top1", "pairwise"):
                    vals = [float(np.mean(METRICS[q](cells[(f, s, r.name)]["ranks"]))) for s in got]
                    out[f"{f}.{r.name}.{q}_mean"] = round(float(np.mean(vals)), 4)
                    out[f"{f}.{r.name}.{q}_by_seed"] = [round(v, 4) for v in vals]
        for final, multi in GROUPS:
            for m in multi:
                both = [s for s in seeds if (f, s, m) in cells and (f, s, final) in cells]
                if not both:
                    continue
                for q in ("top1", "pairwise"):
                    res = paired_item_bootstrap([METRICS[q](cells[(f, s, m)]["ranks"]) for s in both],
                                                [METRICS[q](cells[(f, s, final)]["ranks"]) for s in both],
                                                n_boot=args.n_boot, seed=0)
                    out[f"{f}.{m}.{q}_diff_vs_final"] = round(res["mean_diff"], 4)
                    out[f"{f}.{m}.{q}_ci95_vs_final"] = [round(res["ci_low"], 4), round(res["ci_high"], 4)]
                out[f"{f}.{m}.final"] = final
                out[f"{f}.{m}.n_seeds_paired"] = len(both)
    dev = [f for f in families if f not in held_out]
    for final, multi in GROUPS:  # pooled over the development families: (family, seed) blocks of test images
        for m in multi:
            pairs = [(f, s) for f in dev for s in seeds if (f, s, m) in cells and (f, s, final) in cells]
            if len(pairs) != len(dev) * len(seeds):
                continue
            for q in ("top1", "pairwise"):
                res = paired_item_bootstrap([METRICS[q](cells[(f, s, m)]["ranks"]) for f, s in pairs],
                                            [METRICS[q](cells[(f, s, final)]["ranks"]) for f, s in pairs],
                                            n_boot=args.n_boot, seed=0)
                out[f"development_families_mean.{m}.{q}_diff_vs_final"] = round(res["mean_diff"], 4)
                out[f"development_families_mean.{m}.{q}_ci95_vs_final"] = [round(res["ci_low"], 4),
                                                                            round(res["ci_high"], 4)]
    for rec in CV_WEIGHTS:  # the weights target_weights="cv" chose, per seed (primary first)
        for f in families:
            for s in seeds:
                tw = cells.get((f, s, rec), {}).get("extra", {}).get("target_weights")
                if tw:
                    out[f"{f}.{rec}.seed{s}.weights"] = tw["weights"]
                    out[f"{f}.{rec}.seed{s}.cv_pairwise"] = round(tw["pairwise"], 4)
                    out[f"{f}.{rec}.seed{s}.cv_pairwise_primary_only"] = round(tw["primary_only"]["pairwise"], 4)
                    out[f"{rec}.targets"] = ["final"] + [t.split("/")[-1].split(".")[0] for t in tw["targets"][1:]]
    for r in recipes:
        for q in ("top1", "pairwise"):
            vals = [out.get(f"{f}.{r.name}.{q}_mean") for f in dev]
            if all(v is not None for v in vals):
                out[f"development_families_mean.{r.name}.{q}_mean"] = round(float(np.mean(vals)), 4)
    out["missing_cells"] = missing
    write_result("multi_target", out, echo=False)
    md = _markdown(out, families, held_out)
    (RESULTS / "multi_target.md").write_text(md)
    print(md)
    print(f"wrote {RESULTS / 'multi_target.json'} and .md; missing cells: {len(missing)}", file=sys.stderr)
    return out


def _markdown(out: dict, families: list[str], held_out: set[str]) -> str:
    order = [f for f in families if f not in held_out] + [f for f in families if f in held_out]
    lines = ["# multi_target", "", f"sub-01, 200 test images, mean over seeds {out['seeds']} (generated by "
             "`benchmarks/multi_target.py`). Differences are paired per test image with the final-layer recipe of "
             "the same penalty rule; 95 % paired bootstrap CIs in brackets.", ""]
    for q, title in (("top1", "200-way top-1 (chance 0.005)"),
                     ("pairwise", "pairwise accuracy, 1 - rank/199 (chance 0.5)")):
        def val(f, r, q=q):
            v = out.get(f"{f}.{r}.{q}_mean")
            return "—" if v is None else f"{v:.3f}"

        def diff(f, m, q=q):
            v = out.get(f"{f}.{m}.{q}_diff_vs_final")
            if v is None:
                return "—"
            lo, hi = out[f"{f}.{m}.{q}_ci95_vs_final"]
            return f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]"

        lines += [f"**{title}**", "", "| family | " + " | ".join(f"`{n}`" for n in CONTEXT) + " |"
                  + "".join(f" `{final}` | " + " | ".join(f"`{m}` − final" for m in multi) + " |"
                            for final, multi in GROUPS),
                  "|" + "---|" * (1 + len(CONTEXT) + sum(1 + len(m) for _, m in GROUPS))]
        for f in order + ["development_families_mean"]:
            label = ("**mean of the development families**" if f == "development_families_mean" else
                     f"*held out:* `{f}`" if f in held_out else f"`{f}`")
            row = [val(f, n) for n in CONTEXT]
            for final, multi in GROUPS:
                row.append(val(f, final))
                row += [diff(f, m) if f != "development_families_mean" or f"{f}.{m}.{q}_diff_vs_final" in out else
                        (lambda a, b: "—" if "—" in (a, b) else f"{float(b) - float(a):+.3f}")(val(f, final), val(f, m))
                        for m in multi]
            lines.append(f"| {label} | " + " | ".join(row) + " |")
        lines.append("")
    for rec in CV_WEIGHTS:
        names = out.get(f"{rec}.targets")
        if not names:
            continue
        lines += [f"**Weights `{rec}` chose** (per seed; targets {', '.join(names)}; cross-validated pairwise "
                  "accuracy of the choice vs the final layer alone)", "", "| family | seed 0 | seed 1 | seed 2 |",
                  "|---|---|---|---|"]
        for f in order:
            cols = []
            for s in out["seeds"]:
                w = out.get(f"{f}.{rec}.seed{s}.weights")
                cols.append("—" if w is None else "/".join(f"{x:g}" for x in w) + " ({:.3f} vs {:.3f})".format(
                    out[f"{f}.{rec}.seed{s}.cv_pairwise"], out[f"{f}.{rec}.seed{s}.cv_pairwise_primary_only"]))
            lines.append(f"| `{f}` | " + " | ".join(cols) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
