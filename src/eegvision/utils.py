"""Small helpers shared across eegvision: seeding, devices, atomic writes, hashing, hints."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import random
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) with one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    import torch

    torch.manual_seed(seed)


def default_device(device: str | None = None) -> str:
    """``device`` if given, else ``"cuda"`` when available, else ``"cpu"``."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def close_matches(name: str, choices: Sequence[str], n: int = 3) -> list[str]:
    """Up to ``n`` entries of ``choices`` that look like ``name`` (for "did you mean" hints)."""
    return difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched,
    so an interrupted write never leaves a half-written file under the final name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
