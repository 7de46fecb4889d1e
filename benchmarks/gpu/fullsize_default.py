"""The default ``eegvision fit`` on a full-size simulated THINGS-EEG2 subject, on a GPU (issue #16, item 4).

Simulates one subject at THINGS-EEG2's size (``--preset things``: 1654 training concepts x 10 images x 4
repetitions, 200 test concepts; 63 channels x 250 samples at 250 Hz; with images, so the concept table is the
simulation's), then runs ``fit`` with nothing but data, subject, features and output folder — the default recipe,
whatever ``FitConfig``'s defaults are at this commit — on CUDA, and writes
``benchmarks/results/gpu_fullsize_default.json``: seconds per epoch, total fit time, 200-way top-1/top-5 of the
selected epoch, the simulation's known-model decoder and ridge baselines, peak GPU memory, the device and commit.

It is not part of ``make bench`` (which runs ``benchmarks/*.py`` on any machine): without a CUDA device it stops
with a message, because a CPU run of this size says nothing about the GPU path. Run it where a GPU is at hand::

    .venv/bin/python benchmarks/gpu/fullsize_default.py --workdir /tmp/fullsize [--epochs N] [--keep]

No committed JSON means: not verified on a GPU yet (the README says so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import peak_rss_mb, write_result  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="simulation and run folder (about 6 GB)")
    p.add_argument("--family", default="eegvision", help="simulator family (default: eegvision)")
    p.add_argument("--preset", default="things", help="size preset (default: things, THINGS-EEG2's size)")
    p.add_argument("--epochs", type=int, default=None, help="override the default number of epochs (needs "
                   "--encoder: the default encoder 'auto' trains fixed candidate recipes)")
    p.add_argument("--encoder", default=None, help="an encoder instead of the default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the simulation and the run")
    p.add_argument("--allow-cpu", action="store_true", help="run without CUDA (for testing this script only; "
                   "writes gpu_fullsize_default_cpucheck.json)")
    args = p.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("No CUDA device: this benchmark measures the GPU path and writes nothing on CPU (pass --allow-cpu "
              "to test the script itself).", file=sys.stderr)
        return 2

    from eegvision.sim import simulate
    from eegvision.training import FitConfig, fit

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sim_dir, run_dir = work / "sim", work / "run"
    for d in (sim_dir, run_dir):
        if d.exists():
            shutil.rmtree(d)
    t0 = time.perf_counter()
    sim = simulate(sim_dir, family=args.family, preset=args.preset, seed=args.seed, images=True)
    sim_s = time.perf_counter() - t0

    fields = {"data": str(sim_dir), "subjects": ["sub-01"], "features_train": str(sim_dir / "sim_features_train.pt"),
              "features_test": str(sim_dir / "sim_features_test.pt"), "features_normalized": True}
    if args.encoder is not None:
        fields["encoder"] = args.encoder
    if args.epochs is not None:
        fields["epochs"] = args.epochs
    cfg = FitConfig(**fields)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = fit(cfg, run_dir)
    fit_s = time.perf_counter() - t0
    unit = result.run.unit()
    auto = unit.read_auto() if unit.auto_path.is_file() else None
    # the neural candidate's epochs (encoder auto) or the run's own
    history = (unit.candidate_folder("stconv") if auto else unit).read_history()
    summary = result.summary
    gt = json.loads((sim_dir / "simulation.json").read_text())["ground_truth"]
    values = {
        "family": args.family, "preset": args.preset, "seed": args.seed,
        "recipe": "FitConfig defaults (data, subject, features, out only)", "fit_config": cfg.to_dict(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "n_train_conditions": int(sim.preset.n_train_concepts * sim.preset.n_train_images),
        "epochs_run": len(history), "fit_s": round(fit_s, 1),
        "s_per_epoch": round(fit_s / max(1, len(history)), 2), "simulate_s": round(sim_s, 1),
        "top1_200way": summary.get("top1"), "top5_200way": summary.get("top5"),
        "known_model_top1": (gt.get("known_model") or gt.get("bayes_ceiling") or {}).get("top1"),
        "ridge_top1": (gt.get("ridge") or {}).get("top1"),
        "whitened_ridge_top1": (gt.get("whitened_ridge") or {}).get("top1"),
        "peak_gpu_mem_mb": (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                            if torch.cuda.is_available() else None),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "auto_winner": auto["winner"] if auto else None,
        "auto_val_top1_ridge": auto["val_top1"]["ridge"] if auto else None,
        "auto_val_top1_stconv": auto["val_top1"]["stconv"] if auto else None,
    }
    # a --allow-cpu check never replaces the GPU result
    write_result("gpu_fullsize_default" if torch.cuda.is_available() else "gpu_fullsize_default_cpucheck", values)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
