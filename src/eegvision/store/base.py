"""The store interface: :class:`Store` (what every data source offers), names and constants of the layout.

Layout (see ``docs/design.md``)::

    STORE/manifest.json          format_version, eegvision_version, dataset, dtype, sfreq, ch_names,
                                 ch_types, times, subjects: {sub: {split: {shape, sources}}}, images,
                                 prompt_template (and, per split, the concept names)
    STORE/sub-XX/training.npy    (n_conditions, n_repetitions, n_chans, n_times), float16 by default
    STORE/sub-XX/training.tsv    one row per condition x repetition (condition-major)
    STORE/sub-XX/test.npy/.tsv   the same for the test split
"""

from __future__ import annotations

import abc
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eegvision.checks import check_name
from eegvision.readers.subjects import normalize_subject
from eegvision.store.concepts import ConceptTable
from eegvision.utils import sha256_file

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "METADATA_COLUMNS", "Store", "source_entry", "temporary_files"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: Columns of the per-file metadata tables, in order (extra columns may follow).
METADATA_COLUMNS = ("subject", "split", "condition", "repetition", "concept_index", "concept",
                    "image_index", "image_path")
_COMMIT_MARKER = ".eegvision-commit"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TMP_RE = re.compile(r"^\.(manifest\.json|[A-Za-z0-9_.-]+\.(npy|tsv))\..*\.tmp$")
_DTYPES = ("float16", "float32", "float64")




def temporary_files(root: str | os.PathLike) -> list[Path]:
    """The files an interrupted conversion left in the store folder ``root``: hidden temporaries of data files
    and of the manifest (``.training.npy.*.tmp``), and the marker of an interrupted commit. Sorted; ``[]`` when
    none (or when ``root`` is not a folder). A new run of the conversion into ``root`` removes them.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    folders = [root, *sorted(p for p in root.glob("sub-*") if p.is_dir())]
    return sorted(f for d in folders for f in d.iterdir()
                  if f.is_file() and (_TMP_RE.match(f.name) or (d == root and f.name == _COMMIT_MARKER)))


def source_entry(path: str | os.PathLike, sha256: str | None = None) -> dict[str, Any]:
    """``{"path", "size", "sha256"}`` describing a source file (hashing it unless given)."""
    path = Path(path).resolve()
    if sha256 is None:
        sha256 = sha256_file(path)
    return {"path": str(path), "size": path.stat().st_size, "sha256": sha256}


# ---------------------------------------------------------------------------------------------
# Reading


class Store(abc.ABC):
    """The read interface shared by the on-disk store and in-place dataset readers.

    Attributes
    ----------
    dataset : str
        Dataset name (``"things-eeg2"``, ``"things-meg"``, ...).
    ch_names : list of str
        Channel names, in array order.
    sfreq : float
        Sampling frequency in Hz.
    times : numpy.ndarray
        Time of each sample in seconds (``n_times`` entries).
    """

    dataset: str
    ch_names: list[str]
    sfreq: float
    times: np.ndarray
    ch_types: list[str] | None = None

    @property
    @abc.abstractmethod
    def subjects(self) -> list[str]:
        """Subject names, sorted."""

    @abc.abstractmethod
    def splits(self, subject: str) -> list[str]:
        """Splits available for ``subject`` (``"training"``, ``"test"``, ...)."""

    @abc.abstractmethod
    def array(self, subject: str, split: str) -> np.ndarray:
        """Read-only memory-mapped 4-D array ``(condition, repetition, channel, time)``."""

    @abc.abstractmethod
    def metadata(self, subject: str, split: str) -> pd.DataFrame:
        """One row per condition x repetition (condition-major); see :data:`METADATA_COLUMNS`."""

    @abc.abstractmethod
    def concepts(self, split: str) -> list[str]:
        """Concept names of ``split``; entry ``j`` is the concept with ``concept_index == j``."""

    @abc.abstractmethod
    def images(self, split: str) -> list[str] | None:
        """Image path of each condition of ``split`` in condition order, or None without images."""

    def concept_table(self, split: str) -> ConceptTable:
        """The :class:`~eegvision.store.concepts.ConceptTable` of ``split``: 0-based ``concept_index`` and names,
        in condition order with each condition's image when every condition is its own concept (the test sets),
        else in concept order."""
        subject = next((s for s in self.subjects if split in self.splits(s)), None)
        if subject is None:
            all_splits = sorted({sp for s in self.subjects for sp in self.splits(s)})
            check_name("Split", split, all_splits, str(getattr(self, "path", self.dataset)))
        meta = self.metadata(subject, split)
        first = meta[meta["repetition"] == 0].sort_values("condition")
        images = first["image_path"].tolist() if "image_path" in first.columns else None
        return ConceptTable.from_conditions(first["concept_index"].to_numpy(), self.concepts(split), images, split)

    @property
    def n_chans(self) -> int:
        return len(self.ch_names)

    @property
    def n_times(self) -> int:
        return len(self.times)

    def _check(self, subject: str, split: str | None = None) -> str:
        subject = check_name("Subject", normalize_subject(subject), self.subjects,
                             str(getattr(self, "path", self.dataset)))
        if split is not None:
            check_name("Split", split, self.splits(subject), subject)
        return subject

    def info(self) -> dict[str, Any]:
        """A JSON-able summary: dataset, subjects with split shapes, dtype, sfreq, channels, times."""
        shapes: dict[str, dict[str, list[int]]] = {}
        dtypes = set()
        for sub in self.subjects:
            shapes[sub] = {}
            for split in self.splits(sub):
                arr = self.array(sub, split)
                shapes[sub][split] = list(arr.shape)
                dtypes.add(str(arr.dtype))
        return {
            "path": str(getattr(self, "path", "")),
            "dataset": self.dataset,
            "subjects": shapes,
            "dtype": ", ".join(sorted(dtypes)),
            "sfreq": float(self.sfreq),
            "n_chans": self.n_chans,
            "n_times": self.n_times,
            "tmin": float(self.times[0]) if self.n_times else None,
            "tmax": float(self.times[-1]) if self.n_times else None,
            "ch_names": list(self.ch_names),
        }
