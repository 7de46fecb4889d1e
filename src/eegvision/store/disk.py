"""Read an eegvision store: :func:`open_store` gives a :class:`DiskStore` (memory-mapped arrays, tables).

A directory is a store only once ``manifest.json`` exists (:class:`~eegvision.store.writer.StoreWriter`
writes it last).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eegvision.checks import check_name
from eegvision.readers.subjects import normalize_subject
from eegvision.store.base import FORMAT_VERSION, MANIFEST_NAME, Store, temporary_files

__all__ = ["DiskStore", "open_store"]


class DiskStore(Store):
    """An eegvision store on disk (use :func:`open_store`)."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.dataset = manifest["dataset"]
        self.ch_names = list(manifest["ch_names"])
        self.ch_types = list(manifest["ch_types"]) if manifest.get("ch_types") else None
        self.sfreq = float(manifest["sfreq"])
        self.times = np.asarray(manifest["times"], dtype=np.float64)
        self.dtype = np.dtype(manifest["dtype"])
        self.prompt_template = manifest.get("prompt_template")
        self._meta_cache: dict[tuple[str, str], pd.DataFrame] = {}

    def __repr__(self) -> str:
        return (f"DiskStore({str(self.path)!r}, dataset={self.dataset!r}, subjects={len(self.subjects)}, "
                f"n_chans={self.n_chans}, n_times={self.n_times}, dtype={self.dtype})")

    @property
    def subjects(self) -> list[str]:
        return sorted(self.manifest["subjects"])

    def splits(self, subject: str) -> list[str]:
        subject = check_name("Subject", normalize_subject(subject), self.subjects, f"store {self.path}")
        return sorted(self.manifest["subjects"][subject])

    def _file(self, subject: str, split: str, ext: str) -> Path:
        path = self.path / subject / f"{split}.{ext}"
        if not path.is_file():
            raise FileNotFoundError(
                f"Store {self.path} lists {subject}/{split} but {path} is missing; the store is damaged. "
                "Convert again into a new folder."
            )
        return path

    def array(self, subject: str, split: str) -> np.ndarray:
        subject = self._check(subject, split)
        arr = np.load(self._file(subject, split, "npy"), mmap_mode="r")
        expected = tuple(self.manifest["subjects"][subject][split]["shape"])
        if arr.shape != expected:
            raise ValueError(f"{self.path}/{subject}/{split}.npy has shape {arr.shape}, the manifest says "
                             f"{expected}; the store is damaged. Convert again into a new folder.")
        return arr

    def metadata(self, subject: str, split: str) -> pd.DataFrame:
        subject = self._check(subject, split)
        key = (subject, split)
        if key not in self._meta_cache:
            frame = pd.read_csv(self._file(subject, split, "tsv"), sep="\t", keep_default_na=False,
                                dtype={"concept": str, "image_path": str, "subject": str, "split": str})
            for col in ("condition", "repetition", "concept_index", "image_index"):
                frame[col] = frame[col].astype(np.int64)
            self._meta_cache[key] = frame
        return self._meta_cache[key].copy()

    def _first_with(self, split: str) -> str:
        all_splits = sorted({s for sub in self.manifest["subjects"].values() for s in sub})
        check_name("Split", split, all_splits, f"store {self.path}")
        return next(sub for sub in self.subjects if split in self.manifest["subjects"][sub])

    def concepts(self, split: str) -> list[str]:
        stored = self.manifest.get("concepts", {}).get(split)
        if stored is not None:
            return list(stored)
        return _concepts_from_metadata(self.metadata(self._first_with(split), split))

    def images(self, split: str) -> list[str] | None:
        meta = self.metadata(self._first_with(split), split)
        first = meta[meta["repetition"] == 0].sort_values("condition")
        paths = first["image_path"].tolist()
        return paths if any(paths) else None

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(format_version=self.manifest.get("format_version"),
                   eegvision_version=self.manifest.get("eegvision_version"),
                   dtype=str(self.dtype), images=self.manifest.get("images", {}),
                   prompt_template=self.prompt_template,
                   size_mb=round(sum(f.stat().st_size for f in self.path.glob("sub-*/*")
                                     if f.is_file() and not f.name.startswith(".")) / 1e6, 1))
        leftovers = temporary_files(self.path)
        out.update(temporary_files=[f.relative_to(self.path).as_posix() for f in leftovers],
                   temporary_mb=round(sum(f.stat().st_size for f in leftovers) / 1e6, 1))
        return out


def _concepts_from_metadata(meta: pd.DataFrame) -> list[str]:
    pairs = meta[["concept_index", "concept"]].drop_duplicates()
    if pairs["concept_index"].duplicated().any():
        bad = pairs[pairs["concept_index"].duplicated(keep=False)].head(4).to_dict("records")
        raise ValueError(f"Metadata gives several concept names to one concept_index: {bad}.")
    if len(pairs) and pairs["concept_index"].min() < 0:
        raise ValueError("Metadata has a negative concept_index.")
    n = int(pairs["concept_index"].max()) + 1 if len(pairs) else 0
    names = [""] * n
    for idx, name in zip(pairs["concept_index"].tolist(), pairs["concept"].tolist()):
        names[idx] = name
    return names


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST_NAME).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path / MANIFEST_NAME} is not valid JSON ({exc}); the store is damaged.") from None
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses store format_version {version!r}; this eegvision reads format {FORMAT_VERSION} "
            "and older. Upgrade eegvision or convert the data again."
        )
    return manifest


def open_store(path: str | os.PathLike) -> DiskStore:
    """Open an eegvision store for reading (arrays are memory-mapped, nothing is loaded).

    Parameters
    ----------
    path : str or PathLike
        The store folder (the one holding ``manifest.json``).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist or holds no ``manifest.json`` (e.g. an interrupted conversion).
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"Store {path} does not exist. Create one with `eegvision convert things-eeg2 SRC {path}`."
        )
    if not (path / MANIFEST_NAME).is_file():
        leftovers = temporary_files(path)
        if leftovers:
            size = sum(f.stat().st_size for f in leftovers) / 1e6
            raise FileNotFoundError(
                f"{path} is an interrupted eegvision store: its conversion stopped before writing {MANIFEST_NAME} "
                f"and left {len(leftovers)} hidden temporary file(s) ({size:.1f} MB). Run the same `eegvision "
                "convert` command again to finish it (it removes them first), or delete the folder.")
        hint = (" A THINGS-EEG2 download can be read in place with eegvision.data.open_things_eeg2."
                if (path / "Preprocessed_data_250Hz").is_dir() else
                " If a conversion was interrupted, run it again.")
        raise FileNotFoundError(f"{path} is not an eegvision store: it has no {MANIFEST_NAME}.{hint}")
    return DiskStore(path, _read_manifest(path))


# ---------------------------------------------------------------------------------------------
# Writing


