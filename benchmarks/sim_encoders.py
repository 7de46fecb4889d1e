"""Encoders on the simulated dataset (demo preset, default real-data-like noise) vs ceiling and ridge.

Simulates the demo preset once (no raw files), then trains each encoder within-subject on one
subject (model selection on held-out training concepts, never on test) and evaluates 200-way
zero-shot retrieval on the averaged test trials. The JSON puts each encoder's top-1/top-5 next to
the simulator's Bayes ceiling and its ridge baseline for the same subject, and the best encoder's
fraction of the ceiling (the issue's target is >= 0.8).

Usage: ``python benchmarks/sim_encoders.py [--encoders eegproject,nice,atms] [--epochs 30]``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("EEGVISION_PROGRESS", "0")

from _common import peak_rss_mb, write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="eegproject,nice,atms,braindecode:ShallowFBCSPNet")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="reuse a folder (keeps the simulation)")
    args = parser.parse_args()

    from eegvision.data.simulate import simulate
    from eegvision.training import FitConfig, fit

    work = Path(args.workdir or tempfile.mkdtemp(prefix="eegvision-sim-encoders-"))
    sim_dir = work / "sim"
    t0 = time.perf_counter()
    if (sim_dir / "simulation.json").exists():
        sim = json.loads((sim_dir / "simulation.json").read_text())
    else:
        simulate(sim_dir, preset="demo", n_subjects=1, seed=args.seed, write_raw=False)
        sim = json.loads((sim_dir / "simulation.json").read_text())
    simulate_s = time.perf_counter() - t0
    truth = sim["ground_truth"]
    result: dict = {"preset": "demo", "subject": "sub-01", "epochs": args.epochs, "simulate_wall_s": round(simulate_s, 1)}
    result.update(_ceiling_fields(truth))

    best = 0.0
    for name in [e.strip() for e in args.encoders.split(",") if e.strip()]:
        key = name.replace("braindecode:", "").lower()
        cfg = FitConfig(
            data=str(sim_dir), subjects=["sub-01"], encoder=name, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, seed=args.seed,
            features_train=str(sim_dir / "sim_features_train.pt"),
            features_test=str(sim_dir / "sim_features_test.pt"), features_normalized=True,
            eval_methods=["exact"], schedule="cosine",
        )
        t1 = time.perf_counter()
        run = fit(cfg, work / f"run-{key}")
        wall = time.perf_counter() - t1
        rows = json.loads((run / "metrics.json").read_text())
        rows = rows["rows"] if isinstance(rows, dict) else rows
        top = {(r["k"], r["modality"]): r for r in rows if r["method"] == "exact"}
        img = top[(200, "image")]
        result[f"{key}_top1"] = img["top1"]
        result[f"{key}_top5"] = img["top5"]
        result[f"{key}_train_wall_s"] = round(wall, 1)
        best = max(best, img["top1"])
        print(f"{name}: top-1 {img['top1']:.3f} top-5 {img['top5']:.3f} ({wall:.0f} s)", flush=True)
    result["best_top1"] = best
    ceiling = result.get("bayes_ceiling_top1")
    if ceiling:
        result["best_fraction_of_ceiling"] = round(best / ceiling, 3)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_result("sim_encoders", result)


def _ceiling_fields(truth: dict) -> dict:
    """sub-01's Bayes ceiling and ridge baseline from ``simulation.json["ground_truth"]`` (flat keys)."""
    sub = truth["subjects"][0]
    return {"bayes_ceiling_top1": sub["ceiling"]["top1"], "bayes_ceiling_top5": sub["ceiling"]["top5"],
            "ridge_top1": sub["ridge"]["top1"], "ridge_top5": sub["ridge"]["top5"],
            "chance_top1": truth["chance_top1"], "chance_top5": truth["chance_top5"]}


if __name__ == "__main__":
    main()
