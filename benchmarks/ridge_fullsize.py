"""Benchmark: a closed-form ``ridge`` fit of one full-size THINGS-EEG2 subject — peak memory and time.

Writes a synthetic float16 store of THINGS-EEG2's size (``--size full``) through the store writer, streamed from a
lazily generated source (nothing of its size is ever held in memory): 16540 training images (1654 concepts × 10)
× 4 repetitions × 63 channels × 250 samples (2.1 GB), 200 test images × 80 repetitions (0.5 GB), and
L2-normalised 1024-d image features. The EEG is a 16-d latent of each image (its concept's plus its own) through a fixed smooth
channel × time pattern, plus spatially correlated noise (a fixed channel mixing of white noise, so MVNN whitening
has something to undo); the features are the same latent through a fixed random map.

Then, in a fresh child process each, ``eegvision.training.fit`` with ``encoder="ridge"`` (defaults: 25 Hz bins,
5-fold grouped CV over the 13-penalty grid, top-1 scoring) with and without ``whiten="mvnn"`` (keys ``_whiten``,
``_plain``), and whitened with the penalty chosen on R² instead (``_whiten_r2``), and records the
child's peak RSS (``ru_maxrss``, MB; it includes the memory-mapped store pages resident at the time), its RSS
after the imports, the wall time of ``fit`` (check of the inputs, one pass over the store, CV, refit, test
embeddings, evaluation), the closed-form part alone (``fit_s`` of ``selection.json``), rows, features, form
(kernel or primal), the chosen penalty and the 200-way test top-1. Target: peak RSS < 4 GB.

    PYTHONPATH=src python benchmarks/ridge_fullsize.py [--size small|full] [--workdir /tmp] [--keep]

``--size small`` (the default, for ``make bench``) writes ``results/ridge_fullsize_small.json`` from 165 training
concepts; ``--size full`` writes ``results/ridge_fullsize.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result  # noqa: E402

N_CONCEPTS, PER_CONCEPT, N_REP, N_TEST, N_TEST_REP = 1654, 10, 4, 200, 80
N_CHANS, N_TIMES, SFREQ, LATENT, DIM = 63, 250, 250.0, 16, 1024
TARGET_MB = 4096
SIZES = {"small": 165, "full": 1654}
#: Amplitude of the evoked pattern against unit-variance white noise mixed across channels.
SIGNAL = 0.003

CHILD = r"""
import json, resource, sys, time
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.rundir import RunFolder
after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
store, out, whiten, scoring = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
t0 = time.perf_counter()
res = fit(FitConfig(data=store, subjects=["sub-01"], encoder="ridge", whiten=None if whiten == "none" else whiten,
                    encoder_options={"scoring": scoring}, eval_methods=["exact"]), out)
wall = time.perf_counter() - t0
sel = RunFolder.open(out).unit().read_selection()
i = sel["alphas"].index(sel["alpha"])
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_after_imports_mb": after_imports, "top1": res.summary["top1"], "top5": res.summary["top5"],
                  "fit_s": sel["fit_s"], "form": sel["form"], "n_rows": sel["n_rows"], "n_features": sel["n_features"],
                  "alpha": sel["alpha"], "at_grid_edge": sel["at_grid_edge"], "cv_top1": sel["cv_scores"]["top1"][i],
                  "cv_r2": sel["cv_scores"]["r2"][i],
                  "decim": sel["decim"], "read_s": sel["read_s"], "solve_s": sel["solve_s"]}))
"""


class SyntheticEEG:
    """A lazily generated ``(conditions, repetitions, 63, 250)`` float32 source: slices are computed on demand
    (deterministically per slice start), so the store writer streams it without it ever existing whole."""

    def __init__(self, latent: np.ndarray, n_rep: int, pattern: np.ndarray, mixing: np.ndarray, seed: int) -> None:
        self.latent, self.pattern, self.mixing, self.seed = latent, pattern, mixing, seed
        self.shape = (len(latent), n_rep, N_CHANS, N_TIMES)
        self.dtype = np.dtype(np.float32)
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, step = key.indices(self.shape[0])
        if step != 1:
            raise IndexError("SyntheticEEG supports contiguous slices only")
        rng = np.random.default_rng([self.seed, start])
        m = stop - start
        clean = (self.latent[start:stop] @ self.pattern).reshape(m, 1, N_CHANS, N_TIMES)
        noise = rng.standard_normal((m, self.shape[1], N_CHANS, N_TIMES), dtype=np.float32)
        return (np.matmul(self.mixing, noise) + clean).astype(np.float32)


def build_store(root: Path, seed: int = 0) -> tuple[Path, float]:
    """Write the synthetic store and its feature files under ``root``; returns (store, seconds)."""
    import pandas as pd
    import torch

    from eegvision.features.files import save_features
    from eegvision.readers.channels import THINGS_EEG2_CHANNELS
    from eegvision.store.disk import open_store
    from eegvision.store.writer import StoreWriter

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    concept = rng.standard_normal((N_CONCEPTS, LATENT))
    train_latent = np.repeat(concept, PER_CONCEPT, 0) + 0.7 * rng.standard_normal((N_CONCEPTS * PER_CONCEPT, LATENT))
    test_latent = rng.standard_normal((N_TEST, LATENT)) * np.sqrt(1 + 0.49)
    t = np.arange(N_TIMES) / SFREQ
    bumps = np.stack([np.exp(-0.5 * ((t - c) / 0.05) ** 2) for c in rng.uniform(0.08, 0.6, LATENT)])  # (L, T)
    topo = rng.standard_normal((LATENT, N_CHANS))
    pattern = (SIGNAL * topo[:, :, None] * bumps[:, None, :]).reshape(LATENT, -1).astype(np.float32)
    mixing = (np.eye(N_CHANS) + 0.9 * rng.standard_normal((N_CHANS, N_CHANS)) / np.sqrt(N_CHANS)).astype(np.float32)
    to_features = rng.standard_normal((LATENT, DIM))
    store = root / "store"
    concepts = [f"concept{i:04d}" for i in range(N_CONCEPTS)]
    train_meta = pd.DataFrame({"concept_index": np.repeat(np.arange(N_CONCEPTS), PER_CONCEPT),
                               "concept": np.repeat(concepts, PER_CONCEPT)})
    test_meta = pd.DataFrame({"concept_index": np.arange(N_TEST), "concept": [f"test{i:03d}" for i in range(N_TEST)]})
    os.environ.setdefault("EEGVISION_PROGRESS", "0")
    with StoreWriter(store, dataset="synthetic-things-eeg2", ch_names=THINGS_EEG2_CHANNELS, sfreq=SFREQ,
                     times=t) as w:
        w.add("sub-01", "training", SyntheticEEG(train_latent, N_REP, pattern, mixing, seed + 1), train_meta)
        w.add("sub-01", "test", SyntheticEEG(test_latent, N_TEST_REP, pattern, mixing, seed + 2), test_meta)
    opened = open_store(store)
    for split, latent, store_split in (("train", train_latent, "training"), ("test", test_latent, "test")):
        feats = latent @ to_features + 0.5 * rng.standard_normal((len(latent), DIM))
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        save_features(store / "features" / f"{split}.safetensors", torch.from_numpy(feats.astype(np.float32)),
                      normalized=True, model="synthetic", pretrained="none", layer="final", transform="none",
                      split=split, concepts=opened.concept_table(store_split))
    return store, time.perf_counter() - t0


def run_fit(store: Path, out: Path, whiten: str, scoring: str) -> dict:
    env = {**os.environ, "EEGVISION_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(store), str(out), whiten, scoring], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        sys.exit(proc.stderr[-4000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    global N_CONCEPTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="Folder for the temporary store (about 2.7 GB).")
    parser.add_argument("--keep", action="store_true", help="Keep the store and runs.")
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="full: 1654 training concepts (THINGS-EEG2); small: 165 (a smoke test, the default).")
    args = parser.parse_args()
    N_CONCEPTS = SIZES[args.size]
    base = Path(args.workdir or tempfile.gettempdir())
    need = (N_CONCEPTS * PER_CONCEPT * N_REP + N_TEST * N_TEST_REP) * N_CHANS * N_TIMES * 2
    if shutil.disk_usage(base).free < 1.3 * need:
        sys.exit(f"Not enough free disk in {base} ({need / 1e9:.1f} GB needed).")
    work = Path(tempfile.mkdtemp(prefix="eegvision-bench-ridge-", dir=base))
    try:
        store, write_s = build_store(work)
        store_gb = sum(f.stat().st_size for f in (store / "sub-01").glob("*.npy")) / 1e9
        values: dict = {"store_shape_training": [N_CONCEPTS * PER_CONCEPT, N_REP, N_CHANS, N_TIMES],
                        "store_shape_test": [N_TEST, N_TEST_REP, N_CHANS, N_TIMES], "store_dtype": "float16",
                        "store_gb": round(store_gb, 2), "write_store_s": round(write_s, 1), "feature_dim": DIM,
                        "target_peak_rss_mb": TARGET_MB}
        runs = (("mvnn", "top1", "whiten"), ("none", "top1", "plain"), ("mvnn", "r2", "whiten_r2"))
        for whiten, scoring, tag in runs:
            res = run_fit(store, work / f"run-{tag}", whiten, scoring)
            values.update({f"peak_rss_mb_{tag}": round(res["peak_rss_mb"], 1),
                           f"rss_after_imports_mb_{tag}": round(res["rss_after_imports_mb"], 1),
                           f"fit_wall_s_{tag}": round(res["wall_s"], 1), f"fit_s_{tag}": round(res["fit_s"], 1),
                           f"read_store_s_{tag}": round(res["read_s"], 1), f"solve_s_{tag}": round(res["solve_s"], 1),
                           f"alpha_{tag}": res["alpha"], f"alpha_at_grid_edge_{tag}": res["at_grid_edge"],
                           f"cv_top1_{tag}": round(res["cv_top1"], 4), f"cv_r2_{tag}": round(res["cv_r2"], 4),
                           f"test_top1_200way_{tag}": round(res["top1"], 4),
                           f"test_top5_200way_{tag}": round(res["top5"], 4)})
            values.update({"n_rows": res["n_rows"], "n_features": res["n_features"], "form": res["form"],
                           "decim": res["decim"]})
        values["under_target"] = max(values[f"peak_rss_mb_{tag}"] for _, _, tag in runs) < TARGET_MB
        values["peak_rss_includes_mapped_store_pages"] = True
        name = "ridge_fullsize" if args.size == "full" else "ridge_fullsize_small"
        write_result(name, {"size": args.size, **values})
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
