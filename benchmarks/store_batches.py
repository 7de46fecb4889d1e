"""Benchmark: random batches of 1024 single trials read from a store's memory map.

Builds a float16 store of one subject (small: 1654 x 4 trials, 208 MB; full: 16540 x 4, 2.1 GB),
then, in a child process under ``/usr/bin/time -v``, reads random batches of 1024 trials
(``arr[cond, rep]`` fancy indexing with indices sorted inside each batch, converted to float32,
the model-input dtype) and reports batches/s, trials/s and peak RSS. The first pass reads from
disk; ``warm_*`` repeats the same number of batches with the store in the page cache.

Note: peak RSS counts the store pages the memory map touched (page cache shared with the OS,
released under memory pressure), so with random access it approaches the store size.

    python benchmarks/store_batches.py [--size small|full] [--batches 100]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result  # noqa: E402

SIZES = {"small": 1654, "full": 16540}
N_REP, N_CHANS, N_TIMES, BATCH = 4, 63, 250, 1024

CHILD = r"""
import json, sys, time
import numpy as np
from eegvision.store.disk import open_store
store, n_batches, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
arr = open_store(store).array("sub-01", "training")
n_cond, n_rep = arr.shape[:2]
rng = np.random.default_rng(seed)
out = {}
for phase in ("cold", "warm"):
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    checksum = 0.0
    for _ in range(n_batches):
        flat = np.sort(rng.choice(n_cond * n_rep, size=1024, replace=False))
        batch = arr[flat // n_rep, flat % n_rep].astype(np.float32)
        checksum += float(batch[:, 0, 0].sum())
    out[phase] = time.perf_counter() - t0
print(json.dumps(out))
"""


def _build_store(work: Path, n_cond: int) -> Path:
    import pandas as pd

    from eegvision.readers.channels import THINGS_EEG2_CHANNELS
    from eegvision.store.writer import StoreWriter

    raw = work / "source.f32"
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(raw.with_suffix(".npy"), mode="w+", dtype=np.float32,
                                   shape=(n_cond, N_REP, N_CHANS, N_TIMES))
    for start in range(0, n_cond, 512):
        mm[start:start + 512] = rng.standard_normal(mm[start:start + 512].shape, dtype=np.float32)
    mm.flush()
    del mm
    src = np.load(raw.with_suffix(".npy"), mmap_mode="r")
    meta = pd.DataFrame({"concept_index": np.arange(n_cond) // 10, "concept": [f"c{i // 10}" for i in range(n_cond)]})
    store = work / "store"
    os.environ.setdefault("EEGVISION_PROGRESS", "0")
    with StoreWriter(store, dataset="bench", ch_names=THINGS_EEG2_CHANNELS, sfreq=250.0,
                     times=np.arange(N_TIMES) / 250.0) as w:
        w.add("sub-01", "training", src, meta)
    del src
    raw.with_suffix(".npy").unlink()
    npy = store / "sub-01" / "training.npy"
    with open(npy, "rb") as f:  # start cold
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    n_cond = SIZES[args.size]
    need = n_cond * N_REP * N_CHANS * N_TIMES * 6  # float32 source + float16 store
    base = Path(args.workdir or tempfile.gettempdir())
    if shutil.disk_usage(base).free < 1.2 * need:
        sys.exit(f"Not enough free disk in {base} ({need / 1e9:.1f} GB needed).")
    work = Path(tempfile.mkdtemp(prefix="eegvision-bench-batches-", dir=base))
    try:
        store = _build_store(work, n_cond)
        cmd = [sys.executable, "-c", CHILD, str(store), str(args.batches), "0"]
        timer = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
        proc = subprocess.run(([timer, "-v"] if timer else []) + cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        times = json.loads(proc.stdout.strip().splitlines()[-1])
        if timer:
            peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
        else:
            import resource

            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        n = args.batches
        write_result(f"store_batches{'' if args.size == 'full' else '_small'}", {
            "size": args.size,
            "store_shape": [n_cond, N_REP, N_CHANS, N_TIMES],
            "store_mb": round((store / "sub-01" / "training.npy").stat().st_size / 1e6, 1),
            "batch_size": BATCH,
            "n_batches": n,
            "batches_per_s": round(n / times["cold"], 2),
            "trials_per_s": round(n * BATCH / times["cold"]),
            "warm_batches_per_s": round(n / times["warm"], 2),
            "warm_trials_per_s": round(n * BATCH / times["warm"]),
            "peak_rss_mb": round(peak_kb / 1024, 1),
            "peak_rss_includes_mapped_store_pages": True,
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
