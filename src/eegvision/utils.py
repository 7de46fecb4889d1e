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


def new_file_mode() -> int:
    """The permission bits an ordinary new file gets under the process umask (``0o644`` for umask ``022``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temporary_file_beside(target: Path, suffix: str = ".tmp") -> Path:
    """An empty temporary file next to ``target`` (hidden name) with the permissions of an ordinary new file.

    ``tempfile.mkstemp`` creates files readable by their owner only; results renamed from it onto their final
    name would stay unreadable to colleagues on shared lab storage, so the mode is set from the umask.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.fchmod(fd, new_file_mode())
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched,
    so an interrupted write never leaves a half-written file under the final name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temporary_file_beside(target, suffix or ".tmp")
    try:
        yield tmp_path
        os.chmod(tmp_path, new_file_mode())  # some writers (safetensors) re-create the file owner-only
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
