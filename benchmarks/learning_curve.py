"""Learning curve on the ``linear-erp`` family: how far learned linear decoders are from the known-model decoder
as the number of training images grows.

Issue #16 asks the default decoder to reach 0.8 x the known-model decoder's 200-way top-1 averaged over the
simulator families. The known-model decoder knows every parameter of the forward model; a learned decoder must
estimate them from the training images (2000 in the benchmark's default size). This measures, for
``linear-erp`` seed 0 (sub-01, 4 training repetitions, 20 test repetitions) and 250, 400 (the benchmark's size)
and 800 training concepts x 5 images (1250, 2000 and 4000 images; ``--concepts 1654,3308`` adds 8270 and 16540
images, THINGS-EEG2's training-set size, at about 4 and 8 times the 800-concept cost, which was 24 min of
simulation on a loaded 2-core machine):

* the known-model decoder (flat in the size: it learns nothing),
* ridge and whitened ridge (what ``simulate`` records, penalty on held-out training concepts),
* encoding-model identification (:func:`eegvision.evaluation.encoding.encoding_identification`, features -> EEG),

so the gap that more data closes and the gap it does not are visible. Each size is cached in
``benchmarks/results/learning_curve/SIZE.json`` (delete a file to recompute it); the summary is
``benchmarks/results/learning_curve.json``.

    python benchmarks/learning_curve.py                      # the cached sizes; a new size is simulated
    python benchmarks/learning_curve.py --concepts 250,400   # some sizes
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write_result  # noqa: E402

CACHE = RESULTS / "learning_curve"
FAMILY, SEED, IMAGES = "linear-erp", 0, 5


def _one_size(n_concepts: int, workdir: Path) -> dict:
    from dataclasses import replace

    import torch

    from eegvision.evaluation.encoding import encoding_identification
    from eegvision.evaluation.linear import decimate_mean
    from eegvision.sim.families import get_family
    from eegvision.sim.families.runner import BASELINE_RATE, simulate_family

    preset = replace(get_family(FAMILY).presets["default"], name=f"curve-{n_concepts}", n_subjects=1,
                     n_train_concepts=n_concepts, n_train_images=IMAGES)
    out = workdir / f"{FAMILY}-{n_concepts}"
    t0 = time.perf_counter()
    res = simulate_family(FAMILY, out, preset=preset, seed=SEED, images=False, overwrite=True)
    sim_s = time.perf_counter() - t0
    means = {}
    for split in ("training", "test"):
        with open(out / "Preprocessed_data_250Hz" / "sub-01" / f"preprocessed_eeg_{split}.npy", "rb") as f:
            eeg = pickle.load(f)["preprocessed_eeg_data"]
        decim = max(1, int(round(250.0 / BASELINE_RATE)))
        means[split] = decimate_mean(eeg.mean(1).astype(np.float32), decim)
        del eeg
    feats = {s: torch.load(out / f"sim_features_{k}.pt", weights_only=False)["img_features"].numpy()
             for s, k in (("training", "train"), ("test", "test"))}
    groups = np.repeat(np.arange(n_concepts), IMAGES)
    t1 = time.perf_counter()
    enc = encoding_identification(means["training"].reshape(len(groups), -1), feats["training"],
                                  means["test"].reshape(200, -1), feats["test"], groups, seed=SEED)
    enc_s = time.perf_counter() - t1
    shutil.rmtree(out, ignore_errors=True)
    return {"n_train_concepts": n_concepts, "n_train_images": n_concepts * IMAGES,
            "known_model_top1": res.known_model["top1"], "ridge_top1": res.ridge["top1"],
            "whitened_ridge_top1": res.whitened_ridge["top1"], "encoding_top1": enc["top1"],
            "encoding_alpha": enc["alpha"], "simulate_s": round(sim_s, 1), "encoding_s": round(enc_s, 1)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concepts", default="250,400,800", help="comma list of training concept counts")
    p.add_argument("--workdir", default=None, help="where simulations go (deleted after each size)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.concepts.split(",") if s.strip()]
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="eegvision-curve-"))
    rows = []
    for n in sizes:
        path = CACHE / f"{n}.json"
        if path.is_file():
            rows.append(json.loads(path.read_text()))
            continue
        print(f"[learning curve] {FAMILY} seed {SEED}: {n} concepts x {IMAGES} images", file=sys.stderr, flush=True)
        row = _one_size(n, work)
        path.write_text(json.dumps(row, indent=1) + "\n")
        rows.append(row)
    values = {"family": FAMILY, "seed": SEED, "subject": "sub-01", "images_per_concept": IMAGES,
              "metric": "200-way top-1 on the test set (20 repetitions averaged)"}
    for r in sorted(rows, key=lambda r: r["n_train_images"]):
        n = r["n_train_images"]
        for key in ("known_model_top1", "ridge_top1", "whitened_ridge_top1", "encoding_top1"):
            values[f"{key}_at_{n}_images"] = r[key]
        values[f"encoding_over_known_at_{n}_images_ratio"] = round(r["encoding_top1"] / r["known_model_top1"], 4)
    write_result("learning_curve", values)
    return values


if __name__ == "__main__":
    main()
