"""Small helpers shared across eegvision: seeding, devices, hashing, relative paths, atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
import threading
from collections.abc import Iterator
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


def sha256_file(path: str | os.PathLike, cancel: threading.Event | None = None, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks into one reused buffer (constant memory).

    Parameters
    ----------
    path : str or PathLike
        The file.
    cancel : threading.Event, optional
        Stop reading once it is set (for hashing in a worker thread that the caller may abandon);
        the digest returned then covers only part of the file and must be discarded.
    chunk : int
        Bytes read at a time.
    """
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while cancel is None or not cancel.is_set():
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
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


def relative_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` as text (both resolved), or ``path`` unchanged when it lies outside."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


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


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` with string ``metadata`` to a ``.safetensors`` file, atomically and byte-reproducibly.

    ``safetensors`` writes its header from a hash map, so the order of the metadata (and of the tensor entries)
    in the file changes from one process to the next; here the header is rewritten with its keys sorted, so that
    identical tensors and metadata always give identical bytes. The file reads back with ``safetensors`` as usual.
    """
    import json

    from safetensors.torch import save

    raw = save({k: v.contiguous() for k, v in tensors.items()}, metadata=dict(metadata or {}))
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        tmp.write_bytes(len(header).to_bytes(8, "little") + header + raw[8 + n:])
    return path


def release_mapped_pages(block: np.ndarray) -> None:
    """Drop the pages of a memory-mapped block from this process (they stay in the page cache).

    Streaming a memory-mapped 8 GB file would otherwise leave every touched page resident and
    count towards the process's RSS.
    """
    import mmap

    mm = getattr(block, "_mmap", None)
    if mm is None or not hasattr(mmap, "MADV_DONTNEED") or not block.flags.c_contiguous:
        return
    try:
        base = np.frombuffer(mm, dtype=np.uint8)
        start = block.ctypes.data - base.ctypes.data
        size = len(base)
        del base
        page = mmap.PAGESIZE
        lo = max(0, (start // page) * page)
        hi = min(size, start + block.nbytes)
        if hi > lo:
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
    except (ValueError, OSError, TypeError):  # pragma: no cover - best effort only
        pass
