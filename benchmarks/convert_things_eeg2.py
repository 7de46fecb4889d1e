"""Benchmark: convert one THINGS-EEG2 subject's preprocessed pickle into a float16 store.

Writes a pickle in the published format (protocol 4, numpy ``_reconstruct``, a BINBYTES8 buffer
of float64 (conditions, 4, 63, 250)) by streaming the opcodes around a buffer written in chunks,
evicts it from the page cache, then runs ``convert_things_eeg2`` in a child process under
``/usr/bin/time -v`` (which counts every resident page, including memory-mapped file pages).

    python benchmarks/convert_things_eeg2.py               # small: 400 conditions (~200 MB)
    python benchmarks/convert_things_eeg2.py --size full   # 16540 conditions (8.3 GB), ~10 GB free disk

Result: ``benchmarks/results/convert_things_eeg2[_small].json`` with ``wall_s``,
``throughput_mb_s`` (source MB per second), ``peak_rss_mb`` and a cold-cache ``disk_read_mb_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result  # noqa: E402

SIZES = {"full": 16540, "small": 400}
N_REP, N_CHANS, N_TIMES = 4, 63, 250


# -- a streaming writer for the published pickle layout ---------------------------------------
def _str(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)  # BININT


def _array_head(module: str, shape: tuple[int, ...], code: str = "f8") -> bytes:
    """Opcodes numpy's ndarray.__reduce__ produces up to (not including) the buffer."""
    return b"".join([
        _str(module), _str("_reconstruct"), b"\x93", _str("numpy"), _str("ndarray"), b"\x93",
        b"K\x00\x85", b"C\x01b", b"\x87R",              # ((0,), b'b') -> REDUCE
        b"(K\x01", b"(" + b"".join(_int(n) for n in shape) + b"t",
        _str("numpy"), _str("dtype"), b"\x93", _str(code), b"\x89\x88\x87R",
        b"(K\x03", _str("<"), b"NNN", _int(-1), _int(-1), b"K\x00tb",  # dtype state, BUILD
        b"\x89",                                        # is_fortran = False
    ])


def _bytes_op(n: int) -> bytes:
    return b"\x8e" + struct.pack("<Q", n) if n > 0xFFFFFFFF else b"B" + struct.pack("<I", n)


def write_preprocessed_pickle(path: Path, n_cond: int, seed: int = 0, chunk: int = 128) -> None:
    """Write ``{'preprocessed_eeg_data', 'ch_names', 'times'}`` as ``pickle.dump(protocol=4)`` would,
    streaming the float64 data in chunks of ``chunk`` conditions (constant memory)."""
    from eegvision.readers.channels import THINGS_EEG2_CHANNELS

    rng = np.random.default_rng(seed)
    module = "numpy._core.multiarray"
    nbytes = n_cond * N_REP * N_CHANS * N_TIMES * 8
    times = np.round(np.arange(-50, N_TIMES) / 250.0, 3)  # 300 entries: -0.2 ... 0.996 s
    with open(path, "wb") as f:
        f.write(b"\x80\x04}(" + _str("preprocessed_eeg_data"))
        f.write(_array_head(module, (n_cond, N_REP, N_CHANS, N_TIMES)) + _bytes_op(nbytes))
        for start in range(0, n_cond, chunk):
            n = min(chunk, n_cond - start)
            block = rng.standard_normal((n, N_REP, N_CHANS, N_TIMES))
            f.write(memoryview(block).cast("B"))
        f.write(b"tb")  # state tuple, BUILD
        f.write(_str("ch_names") + b"](" + b"".join(_str(c) for c in THINGS_EEG2_CHANNELS) + b"e")
        f.write(_str("times") + _array_head(module, times.shape) + _bytes_op(times.nbytes) + times.tobytes() + b"tb")
        f.write(b"u.")  # SETITEMS, STOP


def _evict(path: Path) -> None:
    """Drop a file's pages from the page cache so the next read comes from disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno()) if os.access(path, os.W_OK) else None
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _disk_read_mb_s(path: Path, limit: int = 2 << 30) -> float:
    _evict(path)
    buf = bytearray(16 << 20)
    total = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while total < limit and (n := f.readinto(buf)):
            total += n
    mb_s = total / 1e6 / (time.perf_counter() - t0)
    _evict(path)
    return mb_s


def _time_binary() -> str | None:
    return "/usr/bin/time" if Path("/usr/bin/time").exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--workdir", default=None, help="where to put the temporary pickle and store")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    args = parser.parse_args()
    n_cond = SIZES[args.size]
    src_bytes = n_cond * N_REP * N_CHANS * N_TIMES * 8
    out_bytes = src_bytes // (8 // np.dtype(args.dtype).itemsize)
    base = Path(args.workdir or tempfile.gettempdir())
    free = shutil.disk_usage(base).free
    if free < 1.15 * (src_bytes + out_bytes):
        sys.exit(f"Not enough free disk in {base}: {free / 1e9:.1f} GB free, "
                 f"{(src_bytes + out_bytes) / 1e9:.1f} GB needed. Use --workdir or --size small.")
    work = Path(tempfile.mkdtemp(prefix="eegvision-bench-convert-", dir=base))
    try:
        sub = work / "src" / "Preprocessed_data_250Hz" / "sub-01"
        sub.mkdir(parents=True)
        pkl = sub / "preprocessed_eeg_training.npy"
        t0 = time.perf_counter()
        write_preprocessed_pickle(pkl, n_cond)
        generate_s = time.perf_counter() - t0
        if args.size == "small":
            # The streamed file is a real pickle: the standard loader (on this trusted file) agrees.
            with open(pkl, "rb") as f:
                ref = pickle.load(f)["preprocessed_eeg_data"]
            assert ref.shape == (n_cond, N_REP, N_CHANS, N_TIMES)
            del ref
        disk_mb_s = _disk_read_mb_s(pkl)
        store = work / "store"
        code = (
            "from eegvision.store.convert import convert_things_eeg2;"
            f"convert_things_eeg2({str(work / 'src')!r}, {str(store)!r}, with_images=False, dtype={args.dtype!r})"
        )
        cmd = [sys.executable, "-c", code]
        timer = _time_binary()
        if timer:
            cmd = [timer, "-v", *cmd]
        env = {**os.environ, "EEGVISION_PROGRESS": "0"}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"conversion failed:\n{proc.stderr[-3000:]}")
        if timer:
            peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
            rss_source = "/usr/bin/time -v"
        else:  # fall back to the child's ru_maxrss
            import resource

            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            rss_source = "ru_maxrss (children)"
        # Check the result against the source on a few conditions.
        from eegvision.readers.things_eeg2 import open_preprocessed
        from eegvision.store.disk import open_store

        arr = open_store(store).array("sub-01", "training")
        src = open_preprocessed(pkl).data
        idx = np.random.default_rng(1).choice(n_cond, size=8, replace=False)
        err = float(np.max(np.abs(arr[idx].astype(np.float64) - src[idx])))
        manifest = json.loads((store / "manifest.json").read_text())
        write_result(f"convert_things_eeg2{'' if args.size == 'full' else '_small'}", {
            "size": args.size,
            "shape": [n_cond, N_REP, N_CHANS, N_TIMES],
            "source_mb": round(src_bytes / 1e6, 1),
            "store_mb": round((store / "sub-01" / "training.npy").stat().st_size / 1e6, 1),
            "dtype": args.dtype,
            "generate_s": round(generate_s, 1),
            "wall_s": round(wall, 2),
            "throughput_mb_s": round(src_bytes / 1e6 / wall, 1),
            "disk_read_mb_s": round(disk_mb_s, 1),
            "peak_rss_mb": round(peak_kb / 1024, 1),
            "peak_rss_target_mb": 1000,
            "peak_rss_source": rss_source,
            "max_abs_error": err,
            "includes_sha256_of_source": bool(manifest["subjects"]["sub-01"]["training"]["sources"][0]["sha256"]),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
