"""eegvision.utils: the one file hasher (with cancellation) and the one relative-path helper."""

from __future__ import annotations

import hashlib
import threading

from eegvision.utils import relative_path, sha256_file


def test_sha256_file_matches_hashlib_and_stops_when_cancelled(tmp_path):
    data = bytes(range(256)) * 1000 + b"tail"
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    assert sha256_file(f) == hashlib.sha256(data).hexdigest()
    assert sha256_file(f, chunk=1000) == hashlib.sha256(data).hexdigest()  # several chunks, a short last one
    cancel = threading.Event()
    cancel.set()
    assert sha256_file(f, cancel) == hashlib.sha256(b"").hexdigest()  # nothing read once cancelled


def test_relative_path(tmp_path):
    (tmp_path / "out" / "run").mkdir(parents=True)
    assert relative_path(tmp_path / "out" / "run" / "a.png", tmp_path / "out") == "run/a.png"
    assert relative_path(tmp_path / "out" / ".." / "out" / "b.csv", tmp_path / "out") == "b.csv"  # resolved
    assert relative_path("/elsewhere/c.csv", tmp_path / "out") == "/elsewhere/c.csv"
