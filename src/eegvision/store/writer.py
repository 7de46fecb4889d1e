"""Write an eegvision store: :class:`StoreWriter` (atomic, streamed in chunks, resumable).

Every data file is written under a temporary name and arrays are streamed in chunks (constant memory, even
for memory-mapped 8 GB sources); on success the files are renamed and ``manifest.json`` is written last, so
an interrupted run leaves no manifest and no file under a final name, and its leftovers are removed by the
next run. Re-running with the same sources (size + sha256) and settings does no work.
"""

from __future__ import annotations

import json
import logging
import math
import mmap
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eegvision.checks import check_choice, check_file, check_positive, check_shape
from eegvision.progress import track
from eegvision.readers.subjects import normalize_subject
from eegvision.store.base import (
    _COMMIT_MARKER,
    _DTYPES,
    _NAME_RE,
    _TMP_RE,
    FORMAT_VERSION,
    MANIFEST_NAME,
    METADATA_COLUMNS,
    source_entry,
)
from eegvision.store.disk import _concepts_from_metadata, _read_manifest
from eegvision.utils import (
    release_mapped_pages,
    sha256_file,
    temporary_file_beside,
    write_text_atomic,
)

__all__ = ["StoreWriter"]

logger = logging.getLogger(__name__)


def _file_offset(data: np.ndarray) -> tuple[str, int] | None:
    """``(file name, byte offset)`` of a C-contiguous memory-mapped array's first element, else None."""
    mm = getattr(data, "_mmap", None)
    filename = getattr(data, "filename", None)
    if mm is None or not filename or not data.flags.c_contiguous or not isinstance(data, np.memmap):
        return None
    try:
        base = np.frombuffer(mm, dtype=np.uint8)
        start_in_map = data.ctypes.data - base.ctypes.data
        del base
    except (ValueError, TypeError):  # pragma: no cover
        return None
    map_start = data.offset - data.offset % mmap.ALLOCATIONGRANULARITY
    return filename, map_start + start_in_map


def _iter_chunks(data: np.ndarray, n_rows: int, rows: int):
    """Yield ``(start, block)`` over the first axis of ``data`` in blocks of ``rows``.

    A C-contiguous memory map over a file is read with plain sequential reads into one reused
    buffer (no page faults, nothing stays resident); other arrays are sliced (memory-mapped pages
    are released after each block). Each block is only valid until the next one is produced.
    """
    located = _file_offset(data) if n_rows else None
    if located is None:
        for start in range(0, n_rows, rows):
            block = data[start:start + rows]
            yield start, np.asarray(block)
            release_mapped_pages(block)
        return
    filename, offset = located
    buf = np.empty((min(rows, n_rows), *data.shape[1:]), dtype=data.dtype)
    row_bytes = buf[0].nbytes
    with open(filename, "rb", buffering=0) as f:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), offset, n_rows * row_bytes, os.POSIX_FADV_SEQUENTIAL)
        f.seek(offset)
        for start in range(0, n_rows, rows):
            n = min(rows, n_rows - start)
            view = memoryview(buf[:n]).cast("B")
            got = 0
            while got < len(view):
                k = f.readinto(view[got:])
                if not k:
                    raise ValueError(f"{filename} ended while reading rows {start}-{start + n - 1}; "
                                     "the file is truncated.")
                got += k
            yield start, buf[:n]


class StoreWriter:
    """Write (or update) a store; use as a context manager.

    Parameters
    ----------
    path : str or PathLike
        The store folder; created if missing. It may already hold a store *with the same
        settings* (dataset, dtype, sfreq, channels, times, images, prompt template): its subjects
        are kept and up-to-date entries can be skipped (:meth:`is_current`).
    dataset : str
        Dataset name recorded in the manifest (``"things-eeg2"``, ``"things-meg"``, ...).
    ch_names : sequence of str
        Channel names (array order).
    sfreq : float
        Sampling frequency in Hz.
    times : array-like
        Sample times in seconds (``n_times`` entries).
    dtype : {"float16", "float32", "float64"}
        Storage type (float16 halves the size of float32; EEG keeps ~3 significant digits).
    ch_types : sequence of str, optional
        MNE channel types (``"eeg"``, ``"mag"``, ``"grad"``); None when not known.
    images : dict, optional
        ``{split: image root or None}`` recorded in the manifest.
    prompt_template : str
        Text prompt template recorded in the manifest.
    overwrite : bool
        Replace a store with other settings (its files are removed only when the new one is complete).
    chunk_mb : float
        Size of the source chunks streamed at a time (bounds memory use).

    Examples
    --------
    >>> with StoreWriter(out, dataset="things-eeg2", ch_names=names, sfreq=250.0, times=t) as w:
    ...     w.add(subject="sub-01", split="training", data=memmap, metadata=table, sources=[pickle_path])
    """

    def __init__(
        self,
        path: str | os.PathLike,
        dataset: str,
        ch_names: Sequence[str],
        sfreq: float,
        times: Sequence[float] | np.ndarray,
        dtype: str = "float16",
        ch_types: Sequence[str] | None = None,
        images: dict[str, str | os.PathLike | None] | None = None,
        prompt_template: str | None = None,
        overwrite: bool = False,
        chunk_mb: float = 64,
    ) -> None:
        from eegvision.readers.images import DEFAULT_PROMPT_TEMPLATE

        self.path = Path(path).expanduser().absolute()
        self.dtype = np.dtype(check_choice("Store dtype", str(dtype), _DTYPES))
        ch_names = [str(c) for c in ch_names]
        if len(set(ch_names)) != len(ch_names):
            dupes = sorted({c for c in ch_names if ch_names.count(c) > 1})
            raise ValueError(f"Channel names must be unique; repeated: {', '.join(dupes)}.")
        if ch_types is not None and len(ch_types) != len(ch_names):
            raise ValueError(f"ch_types has {len(ch_types)} entries for {len(ch_names)} channels.")
        times = check_shape("times", np.asarray(times, dtype=np.float64), (None,),
                            hint="Give one time in seconds per sample.")
        check_positive("sfreq (Hz)", sfreq)
        self.settings: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "dataset": str(dataset),
            "dtype": str(self.dtype),
            "sfreq": float(sfreq),
            "ch_names": ch_names,
            "ch_types": [str(t) for t in ch_types] if ch_types is not None else None,
            "times": [float(t) for t in times],
            "images": {str(k): (str(Path(v).expanduser().absolute()) if v else None)
                       for k, v in (images or {}).items()},
            "prompt_template": prompt_template if prompt_template is not None else DEFAULT_PROMPT_TEMPLATE,
        }
        self.overwrite = overwrite
        self.chunk_bytes = int(chunk_mb * (1 << 20))
        self._old: dict[str, Any] | None = None  # compatible existing manifest whose entries we keep
        self._replaced_manifest: dict[str, Any] | None = None  # store replaced with overwrite=True
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self._temps: list[Path] = []
        self._created_dirs: list[Path] = []
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._concepts: dict[str, list[str]] = {}
        self._entered = False

    # -- context management ---------------------------------------------------------------------
    def __enter__(self) -> StoreWriter:
        self._prepare()
        self._entered = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._commit()
        else:
            self._rollback()

    def _prepare(self) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"Store path {path} is a file; choose a folder for the store.")
        if not path.exists():
            self._mkdir(path)
            return
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            foreign = self._foreign_files()
            if foreign:
                shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise FileExistsError(
                    f"{path} already exists and holds {len(foreign)} file(s) that are not part of an eegvision "
                    f"store ({shown}). Choose a new or empty folder for the store; eegvision does not delete "
                    "files it did not write."
                )
        self._clean_leftovers()
        if manifest_path.is_file():
            old = _read_manifest(path)
            diffs = self._differences(old)
            if self.overwrite:
                self._replaced_manifest = old
            elif diffs:
                raise FileExistsError(
                    f"{path} already holds a different eegvision store ({'; '.join(diffs)}). Write to a "
                    "new folder, or pass --overwrite to replace it."
                )
            else:
                self._old = old
                self._concepts = {k: list(v) for k, v in old.get("concepts", {}).items()}
            return

    def _mkdir(self, path: Path) -> None:
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        path.mkdir(parents=True, exist_ok=True)
        self._created_dirs.extend(reversed(missing))

    def _is_leftover(self, f: Path, interrupted_commit: bool) -> bool:
        rel = f.relative_to(self.path).parts
        if rel == (_COMMIT_MARKER,) or (len(rel) in (1, 2) and _TMP_RE.match(f.name)
                                        and (len(rel) == 1 or rel[0].startswith("sub-"))):
            return True
        return interrupted_commit and len(rel) == 2 and rel[0].startswith("sub-") and f.suffix in (".npy", ".tsv")

    def _foreign_files(self) -> list[str]:
        """Files in a folder without manifest that no eegvision run left behind."""
        interrupted_commit = (self.path / _COMMIT_MARKER).exists()
        return sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*")
                      if p.is_file() and not self._is_leftover(p, interrupted_commit))

    def _clean_leftovers(self) -> None:
        """Remove temporaries of interrupted runs, and the remains of an interrupted commit."""
        path = self.path
        marker = path / _COMMIT_MARKER
        interrupted_commit = marker.exists() and not (path / MANIFEST_NAME).exists()
        removed = 0
        for sub in [path, *sorted(p for p in path.glob("sub-*") if p.is_dir())]:
            for f in sub.iterdir():
                if not f.is_file():
                    continue
                if f.name != _COMMIT_MARKER and self._is_leftover(f, interrupted_commit):
                    f.unlink()
                    removed += 1
            if sub != path and not any(sub.iterdir()):
                sub.rmdir()
        if marker.exists():
            marker.unlink()
        if removed:
            logger.info("Removed %d leftover file(s) of an interrupted run in %s.", removed, path)

    def _differences(self, old: dict[str, Any]) -> list[str]:
        new = self.settings
        diffs = []
        for key in ("format_version", "dataset", "dtype", "prompt_template"):
            if old.get(key) != new[key]:
                diffs.append(f"{key} {old.get(key)!r} there, {new[key]!r} now")
        if not math.isclose(float(old.get("sfreq", 0)), new["sfreq"], rel_tol=1e-9):
            diffs.append(f"sfreq {old.get('sfreq')} Hz there, {new['sfreq']} Hz now")
        if list(old.get("ch_names", [])) != new["ch_names"]:
            diffs.append(f"{len(old.get('ch_names', []))} channels there, {len(new['ch_names'])} now"
                         if len(old.get("ch_names", [])) != len(new["ch_names"]) else "different channel names")
        if old.get("ch_types") != new["ch_types"]:
            diffs.append("different channel types")
        old_t, new_t = np.asarray(old.get("times", [])), np.asarray(new["times"])
        if old_t.shape != new_t.shape or not np.allclose(old_t, new_t, rtol=0, atol=1e-9):
            diffs.append(f"{old_t.size} time samples there, {new_t.size} now" if old_t.shape != new_t.shape
                         else "different sample times")
        old_images = old.get("images", {})
        for split in sorted(set(old_images) | set(new["images"])):
            if split in old_images and split in new["images"] and old_images[split] != new["images"][split]:
                diffs.append(f"{split} images from {old_images[split]} there, {new['images'][split]} now")
        return diffs

    def _rollback(self) -> None:
        for tmp in self._temps:
            tmp.unlink(missing_ok=True)
        self._temps.clear()
        self._pending.clear()
        if self.path.is_dir():
            for d in self.path.glob("sub-*"):
                if d.is_dir() and not any(d.iterdir()):  # an empty subject folder holds nothing of value
                    d.rmdir()
        for d in reversed(self._created_dirs):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()

    # -- idempotence ----------------------------------------------------------------------------
    def _sha256(self, path: Path) -> str:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = sha256_file(path)
        return self._hashes[key]

    def is_current(self, subject: str, split: str, sources: Sequence[str | os.PathLike]) -> bool:
        """True when the existing store already holds ``subject``/``split`` converted from these
        exact sources (same size and sha256) with the same settings; the entry is then kept as is.
        """
        if self._old is None:
            return False
        entry = self._old.get("subjects", {}).get(subject, {}).get(split)
        if entry is None or len(entry.get("sources", [])) != len(sources):
            return False
        npy = self.path / subject / f"{split}.npy"
        tsv = self.path / subject / f"{split}.tsv"
        if not npy.is_file() or not tsv.is_file():
            return False
        expected = math.prod(entry["shape"]) * self.dtype.itemsize
        if npy.stat().st_size < expected:
            return False
        for src, old in zip(sources, entry["sources"]):
            src = Path(src)
            if not src.is_file() or src.stat().st_size != old.get("size"):
                return False
        return all(self._sha256(Path(src)) == old.get("sha256") for src, old in zip(sources, entry["sources"]))

    # -- adding data ----------------------------------------------------------------------------
    def _check_name(self, kind: str, name: str) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"{kind} name {name!r} is not valid: use letters, digits, '-', '_' or '.' "
                             "(e.g. 'sub-01', 'training').")

    def _full_metadata(self, subject: str, split: str, metadata: pd.DataFrame, n_cond: int,
                       n_rep: int) -> pd.DataFrame:
        if not isinstance(metadata, pd.DataFrame):
            raise ValueError(f"metadata must be a pandas DataFrame; got {type(metadata).__name__}.")
        missing = [c for c in ("concept_index", "concept") if c not in metadata.columns]
        if missing:
            raise ValueError(f"metadata for {subject} {split} lacks column(s) {', '.join(missing)}; "
                             f"expected {', '.join(METADATA_COLUMNS)}.")
        if len(metadata) == n_cond:  # one row per condition: expand over repetitions
            meta = metadata.loc[metadata.index.repeat(n_rep)].reset_index(drop=True)
        elif len(metadata) == n_cond * n_rep:
            meta = metadata.reset_index(drop=True).copy()
        else:
            raise ValueError(
                f"metadata for {subject} {split} has {len(metadata)} rows; expected {n_cond} (one per condition) "
                f"or {n_cond * n_rep} (conditions x repetitions) for data of shape ({n_cond}, {n_rep}, ...)."
            )
        condition = np.repeat(np.arange(n_cond, dtype=np.int64), n_rep)
        repetition = np.tile(np.arange(n_rep, dtype=np.int64), n_cond)
        for col, ref in (("condition", condition), ("repetition", repetition)):
            if col in meta.columns and len(metadata) != n_cond and not np.array_equal(meta[col].to_numpy(), ref):
                raise ValueError(f"metadata for {subject} {split}: column {col!r} is not in condition-major "
                                 "order (condition 0 repetitions 0..R-1, then condition 1, ...).")
        meta["subject"] = subject
        meta["split"] = split
        meta["condition"] = condition
        meta["repetition"] = repetition
        meta["concept_index"] = meta["concept_index"].astype(np.int64)
        meta["concept"] = meta["concept"].astype(str)
        meta["image_index"] = (meta["image_index"].astype(np.int64) if "image_index" in meta.columns
                               else np.zeros(len(meta), dtype=np.int64))
        if "image_path" in meta.columns:
            meta["image_path"] = meta["image_path"].fillna("").astype(str)
        else:
            meta["image_path"] = ""
        extra = [c for c in meta.columns if c not in METADATA_COLUMNS]
        return meta[list(METADATA_COLUMNS) + extra]

    def _temp(self, target: Path) -> Path:
        path = temporary_file_beside(target)
        self._temps.append(path)
        return path

    def add(
        self,
        subject: str,
        split: str,
        data: np.ndarray,
        metadata: pd.DataFrame,
        sources: Sequence[str | os.PathLike] = (),
    ) -> None:
        """Stream one subject/split into the store (committed when the ``with`` block ends).

        Parameters
        ----------
        subject, split : str
            E.g. ``"sub-01"`` and ``"training"``.
        data : numpy.ndarray or numpy.memmap
            ``(n_conditions, n_repetitions, n_chans, n_times)``; read in chunks of conditions,
            converted to the store dtype chunk by chunk, and, for memory maps, released from memory
            after each chunk, so memory use stays near ``chunk_mb`` whatever the size.
        metadata : pandas.DataFrame
            Per condition (``n_conditions`` rows) or per trial (condition-major) with at least
            ``concept_index`` and ``concept``; ``image_index`` and ``image_path`` are optional.
            ``subject``, ``split``, ``condition``, ``repetition`` are filled in.
        sources : sequence of path
            The files the data came from; recorded with size and sha256 (hashed while streaming).

        Raises
        ------
        ValueError
            Wrong shape or metadata, NaN/Inf values (the message names the condition), values out of
            the range of the store dtype, or concept names that disagree with earlier subjects.
        """
        if not self._entered:
            raise RuntimeError("StoreWriter.add must be called inside `with StoreWriter(...) as w:`.")
        subject = normalize_subject(subject)
        self._check_name("Subject", subject)
        self._check_name("Split", split)
        if (subject, split) in self._pending:
            raise ValueError(f"{subject} {split} was already added in this run.")
        shape = tuple(int(n) for n in np.shape(data))
        n_chans, n_times = len(self.settings["ch_names"]), len(self.settings["times"])
        if len(shape) != 4 or shape[2] != n_chans or shape[3] != n_times:
            raise ValueError(
                f"{subject} {split}: data of shape {shape}; expected 4-D (conditions, repetitions, "
                f"{n_chans} channels, {n_times} times)."
            )
        src_dtype = np.dtype(getattr(data, "dtype", np.float64))
        if src_dtype.kind not in "fiu":
            raise ValueError(f"{subject} {split}: data of dtype {src_dtype}; expected floating-point values.")
        n_cond, n_rep = shape[:2]
        meta = self._full_metadata(subject, split, metadata, n_cond, n_rep)
        concepts = _concepts_from_metadata(meta)
        known = self._concepts.get(split)
        if known is not None and known[: len(concepts)] != concepts[: len(known)]:
            first = next(i for i, (a, b) in enumerate(zip(known, concepts)) if a != b)
            raise ValueError(
                f"{subject} {split}: concept {first} is {concepts[first]!r} but earlier subjects call it "
                f"{known[first]!r}; all subjects of a split must share one concept order."
            )
        self._concepts[split] = concepts if known is None or len(concepts) > len(known) else known

        source_paths = [check_file(s, f"Source file of {subject} {split}", "Record only files that exist as sources.")
                        for s in sources]
        folder = self.path / subject
        if not folder.exists():
            self._mkdir(folder)
        npy_tmp = self._temp(folder / f"{split}.npy")
        tsv_tmp = self._temp(folder / f"{split}.tsv")

        cancel = threading.Event()
        hashes: list[Future | str] = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            for s in source_paths:
                st = s.stat()
                key = (str(s.resolve()), st.st_size, st.st_mtime_ns)
                hashes.append(self._hashes[key] if key in self._hashes else pool.submit(sha256_file, s, cancel))
            try:
                self._stream(subject, split, data, shape, npy_tmp, source_paths)
            except BaseException:
                cancel.set()
                raise
            digests = [h if isinstance(h, str) else h.result() for h in hashes]
        meta.to_csv(tsv_tmp, sep="\t", index=False)
        self._pending[(subject, split)] = {
            "shape": list(shape),
            "sources": [source_entry(s, d) for s, d in zip(source_paths, digests)],
            "_npy": npy_tmp,
            "_tsv": tsv_tmp,
        }

    def _stream(self, subject: str, split: str, data: np.ndarray, shape: tuple[int, ...], target: Path,
                sources: list[Path]) -> None:
        n_cond = shape[0]
        src_dtype = np.dtype(data.dtype)
        row_bytes = max(1, math.prod(shape[1:]) * max(src_dtype.itemsize, self.dtype.itemsize))
        rows = max(1, self.chunk_bytes // row_bytes)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        finfo = np.finfo(self.dtype)
        where = f" (from {', '.join(s.name for s in sources)})" if sources else ""
        with open(target, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header) if _header_fits_v1(header) else \
                np.lib.format.write_array_header_2_0(f, header)
            starts = range(0, n_cond, rows)
            out_buf = np.empty((min(rows, n_cond), *shape[1:]), dtype=self.dtype)
            chunks = _iter_chunks(data, n_cond, rows)
            for start, chunk in track(chunks, description=f"{subject} {split}", total=len(starts)):
                stop = start + len(chunk)
                if src_dtype.kind == "f":
                    finite = np.isfinite(chunk).reshape(stop - start, -1).all(axis=1)
                    if not finite.all():
                        bad = start + int(np.flatnonzero(~finite)[0])
                        n_bad = int((~finite).sum())
                        raise ValueError(
                            f"{subject} {split}{where}: condition {bad} holds NaN or Inf values "
                            f"({n_bad} bad condition(s) in conditions {start}-{stop - 1}). Fix or re-download "
                            "the source, or leave this subject out (--subjects)."
                        )
                out = out_buf[: stop - start]
                with np.errstate(over="ignore"):  # out-of-range values are reported just below
                    np.copyto(out, chunk, casting="unsafe")
                if self.dtype.itemsize < src_dtype.itemsize and not np.isfinite(out).all():
                    peak = float(np.abs(chunk).max())
                    bad = start + int(np.flatnonzero(~np.isfinite(out).reshape(stop - start, -1).all(1))[0])
                    raise ValueError(
                        f"{subject} {split}{where}: values up to {peak:.4g} (condition {bad}) exceed the "
                        f"{self.dtype} range (±{float(finfo.max):.6g}); use dtype='float32' (--dtype float32)."
                    )
                f.write(memoryview(out).cast("B"))
                del chunk

    # -- commit ---------------------------------------------------------------------------------
    def _commit(self) -> None:
        path = self.path
        old = self._old
        entries: dict[str, dict[str, Any]] = {}
        if old is not None:
            for sub, splits in old.get("subjects", {}).items():
                for split, entry in splits.items():
                    entries.setdefault(sub, {})[split] = entry
        replaced_files: list[Path] = []
        if self._replaced_manifest is not None:
            for sub, splits in self._replaced_manifest.get("subjects", {}).items():
                for split in splits:
                    if (sub, split) not in self._pending:
                        replaced_files += [path / sub / f"{split}.npy", path / sub / f"{split}.tsv"]
        touches_old = self._replaced_manifest is not None or any(
            split in entries.get(sub, {}) for sub, split in self._pending)
        marker = path / _COMMIT_MARKER
        manifest_path = path / MANIFEST_NAME
        if touches_old:
            # Files named in the current manifest are about to change: the folder stops being a
            # store until the new manifest is written; the marker lets the next run clean up.
            marker.write_text("commit in progress\n")
            manifest_path.unlink(missing_ok=True)
        for f in replaced_files:
            f.unlink(missing_ok=True)
            if f.parent.is_dir() and not any(f.parent.iterdir()):
                f.parent.rmdir()
        for (sub, split), entry in self._pending.items():
            os.replace(entry.pop("_npy"), path / sub / f"{split}.npy")
            os.replace(entry.pop("_tsv"), path / sub / f"{split}.tsv")
            entries.setdefault(sub, {})[split] = entry
        self._temps.clear()
        from eegvision import __version__

        images = dict(old.get("images", {})) if old is not None else {}
        images.update(self.settings["images"])
        concepts = {k: v for k, v in self._concepts.items()
                    if any(k in splits for splits in entries.values())}
        manifest = {
            **self.settings,
            "eegvision_version": __version__,
            "n_chans": len(self.settings["ch_names"]),
            "n_times": len(self.settings["times"]),
            "images": images,
            "concepts": concepts,
            "subjects": {sub: dict(sorted(entries[sub].items())) for sub in sorted(entries)},
        }
        write_text_atomic(manifest_path, json.dumps(manifest, indent=1) + "\n")
        marker.unlink(missing_ok=True)
        if self._pending:
            logger.info("Wrote %s to store %s.", ", ".join(f"{s} {p}" for s, p in self._pending), path)
        self._pending.clear()


def _header_fits_v1(header: dict[str, Any]) -> bool:
    # Format 1.0 stores the header length in 2 bytes; huge shapes/descrs need format 2.0.
    return len(repr(header)) < 60000
