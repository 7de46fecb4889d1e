"""THINGS-EEG2 preprocessed data, read safely and in place.

The published files ``Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_{training,test}.npy`` are
pickled dicts, not ``.npy`` arrays::

    preprocessed_eeg_data   float64 (conditions, repetitions, 63, 250): training (16540, 4, ...),
                            test (200, 80, ...)
    ch_names                63 channel names
    times                   300 entries, -0.2 ... 0.996 s

``times`` is *not* cropped: the preprocessing epoched -0.2..1.0 s, resampled to 250 Hz (300
samples) and then dropped the 50 pre-stimulus samples from the data only. So the data's 250
samples are ``times[50:]`` (0.000 ... 0.996 s). :func:`open_preprocessed` drops the
``len(times) - n_times`` leading entries in general.

The pickles are parsed by :mod:`eegvision.data.safe_pickle` (no code is ever executed) and the EEG
array is memory-mapped where it lies in the file, so opening a subject costs no memory.

Condition order: training condition ``c`` shows image ``c % n`` of concept ``c // n`` with ``n``
images per concept (THINGS-EEG2: 1654 concepts x 10 images); test condition ``c`` shows the single
image of concept ``c`` (200 concepts). Both follow the sorted THINGS image folders. ``n`` is
inferred (:func:`images_per_concept`): from the image folders when given (every folder must hold the
same number), else from the published conditions ÷ the shipped concept table (16540 / 1654 = 10), so
smaller THINGS-layout datasets such as eegvision's simulations read correctly.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eegvision.data.channels import THINGS_EEG2_CHANNELS
from eegvision.data.images import DEFAULT_PROMPT_TEMPLATE, ImageSet, concept_from_folder, scan_image_folder
from eegvision.data.safe_pickle import ArrayRef, parse_data_pickle
from eegvision.data.store import Store, StoreWriter, _unknown, normalize_subject

__all__ = [
    "PREPROCESSED_DIR",
    "SPLITS",
    "PreprocessedFile",
    "ThingsEEG2Folder",
    "convert_things_eeg2",
    "images_per_concept",
    "open_preprocessed",
    "open_things_eeg2",
    "things_eeg2_concepts",
    "things_eeg2_metadata",
]

logger = logging.getLogger(__name__)

PREPROCESSED_DIR = "Preprocessed_data_250Hz"
SPLITS = ("training", "test")
FILE_NAME = "preprocessed_eeg_{split}.npy"
#: Images per training concept of the published dataset (16540 conditions / 1654 concepts); other
#: datasets in this layout are inferred from their image folders (see :func:`images_per_concept`).
IMAGES_PER_TRAINING_CONCEPT = 10
#: Sizes of the published dataset (used in messages; smaller files, e.g. simulations, are accepted).
PUBLISHED_CONDITIONS = {"training": 16540, "test": 200}
DEFAULT_SFREQ = 250.0
REQUIRED_KEYS = ("preprocessed_eeg_data", "ch_names", "times")


# ---------------------------------------------------------------------------------------------
# One file


@dataclass
class PreprocessedFile:
    """One THINGS-EEG2 preprocessed pickle, opened in place.

    Attributes
    ----------
    path : Path
        The pickle.
    data : numpy.ndarray
        Read-only memory map ``(conditions, repetitions, channels, times)`` over the file.
    ch_names : list of str
        Channel names.
    times : numpy.ndarray
        ``n_times`` sample times in seconds (the stored ``times`` minus its leading baseline
        entries).
    sfreq : float
        Sampling frequency in Hz.
    n_dropped_times : int
        How many leading ``times`` entries had no data (50 in the published files).
    array : ArrayRef
        Where the array lives in the file (dtype, shape, byte offset).
    """

    path: Path
    data: np.ndarray = field(repr=False)
    ch_names: list[str]
    times: np.ndarray = field(repr=False)
    sfreq: float
    n_dropped_times: int
    array: ArrayRef = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def n_conditions(self) -> int:
        return self.shape[0]

    @property
    def n_repetitions(self) -> int:
        return self.shape[1]


def _channel_difference(found: list[str], expected: tuple[str, ...]) -> str:
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if extra:
        parts.append(f"unexpected {', '.join(extra)}")
    if not parts:
        pos = next(i for i, (a, b) in enumerate(zip(found, expected)) if a != b)
        parts.append(f"same names in another order (position {pos} holds {found[pos]!r} where "
                     f"{expected[pos]!r} is expected)")
    return "; ".join(parts)


def open_preprocessed(
    path: str | os.PathLike,
    expected_channels: tuple[str, ...] | None = THINGS_EEG2_CHANNELS,
) -> PreprocessedFile:
    """Open a THINGS-EEG2 ``preprocessed_eeg_*.npy`` pickle without executing or loading it.

    Parameters
    ----------
    path : str or PathLike
        The file.
    expected_channels : tuple of str or None
        Channel names (in order) the file must hold; the 63 THINGS-EEG2 channels by default,
        None to accept any.

    Returns
    -------
    PreprocessedFile
        With ``data`` memory-mapped in place (nothing read but the pickle's small header).

    Raises
    ------
    UnsafePickleError
        The file asks to run code (message names the callable and the file).
    TruncatedFileError
        The file is incomplete.
    ValueError
        Missing keys, an array that is not 4-D floating point, channel names that differ from the
        expected ones (named in the message), or ``times`` shorter than the data.
    """
    path = Path(path)
    content = parse_data_pickle(path)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a pickled dict with keys {', '.join(REQUIRED_KEYS)}; "
                         f"found a {type(content).__name__}.")
    missing = [k for k in REQUIRED_KEYS if k not in content]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(map(repr, missing))}; found "
                         f"{', '.join(map(repr, content)) or 'no keys'}. Is this a THINGS-EEG2 preprocessed file?")
    ref = content["preprocessed_eeg_data"]
    if isinstance(ref, np.ndarray):  # small protocol-2 arrays are decoded while parsing
        data = ref
        data.flags.writeable = False
        ref = ArrayRef(path, data.dtype, data.shape, "C", -1, data.nbytes, "decoded")
    elif isinstance(ref, ArrayRef):
        data = None
    else:
        raise ValueError(f"{path}: 'preprocessed_eeg_data' is a {type(ref).__name__}, not a numpy array.")
    if len(ref.shape) != 4:
        raise ValueError(
            f"{path}: 'preprocessed_eeg_data' has shape {ref.shape}; expected 4-D (conditions, repetitions, "
            "channels, times), e.g. (16540, 4, 63, 250) for training or (200, 80, 63, 250) for test."
        )
    if ref.dtype.kind != "f":
        raise ValueError(f"{path}: 'preprocessed_eeg_data' has dtype {ref.dtype}; expected floating point "
                         "(float64 in the published files).")
    ch_names = content["ch_names"]
    if isinstance(ch_names, ArrayRef):
        ch_names = ch_names.read().tolist()
    elif isinstance(ch_names, np.ndarray):
        ch_names = ch_names.tolist()
    if not isinstance(ch_names, (list, tuple)) or not all(isinstance(c, str) for c in ch_names):
        raise ValueError(f"{path}: 'ch_names' must be a list of strings; got {type(ch_names).__name__}.")
    ch_names = list(ch_names)
    n_cond, n_rep, n_chans, n_times = ref.shape
    if len(ch_names) != n_chans:
        raise ValueError(f"{path}: {len(ch_names)} channel names for {n_chans} channels in the data.")
    if expected_channels is not None and tuple(ch_names) != tuple(expected_channels):
        raise ValueError(
            f"{path}: channel names differ from the {len(expected_channels)} THINGS-EEG2 channels: "
            f"{_channel_difference(ch_names, tuple(expected_channels))}."
        )
    times = content["times"]
    times = times.read() if isinstance(times, ArrayRef) else times
    times = np.asarray(times, dtype=np.float64).ravel()
    if len(times) < n_times:
        raise ValueError(f"{path}: 'times' has {len(times)} entries for {n_times} samples in the data.")
    # The stored times include the baseline samples that were dropped from the data.
    dropped = len(times) - n_times
    times = times[dropped:].copy()
    sfreq = content.get("sfreq")
    if isinstance(sfreq, (int, float, np.number)) and not isinstance(sfreq, bool) and float(sfreq) > 0:
        sfreq = float(sfreq)
    elif len(times) >= 2 and np.all(np.diff(times) > 0):
        sfreq = float(np.round(1.0 / np.median(np.diff(times)), 6))
    else:
        sfreq = DEFAULT_SFREQ
    if data is None:
        data = ref.memmap()
    return PreprocessedFile(path=path, data=data, ch_names=ch_names, times=times, sfreq=sfreq,
                            n_dropped_times=dropped, array=ref)


# ---------------------------------------------------------------------------------------------
# Concept tables shipped with eegvision


@lru_cache(maxsize=None)
def _table(name: str) -> tuple[dict[str, str], ...]:
    text = resources.files("eegvision.resources.things").joinpath(name).read_text(encoding="utf-8")
    return tuple(csv.DictReader(text.splitlines(), delimiter="\t"))


def things_eeg2_concepts(split: str) -> list[str]:
    """Concept names in THINGS-EEG2 order, from the tables shipped with eegvision.

    ``"training"``: 1654 concepts (``training_concepts.tsv``); ``"test"``: 200 concepts
    (``test_images.tsv``). Names are the image folder names after the first ``_``, as ATM uses them.
    """
    if split == "training":
        rows = _table("training_concepts.tsv")
    elif split == "test":
        rows = _table("test_images.tsv")
    else:
        raise ValueError(f"THINGS-EEG2 split must be 'training' or 'test'; got {split!r}.")
    return [concept_from_folder(r["folder"]) for r in rows]


def images_per_concept(split: str, n_conditions: int, images: ImageSet | None = None, where: str = "") -> int:
    """Images per concept of ``split``: how condition ``c`` maps to concept ``c // n``, image ``c % n``.

    ``"test"`` is always 1. For ``"training"``: with image folders, the number of images per folder
    (which must be the same in every folder, and folders x images must equal ``n_conditions``);
    without, the published dataset's conditions divided by the concepts of the shipped THINGS
    table (16540 / 1654 = 10).

    Raises
    ------
    ValueError
        The image folders do not hold the same number of images each, or do not match ``n_conditions``.
    """
    if split != "training":
        return 1
    if images is None:
        n_table = len(things_eeg2_concepts("training"))
        return PUBLISHED_CONDITIONS["training"] // n_table
    counts = images.counts
    per = int(counts[0]) if len(counts) else 0
    if len(counts) == 0 or per == 0 or np.any(counts != per) or per * len(counts) != n_conditions:
        published = PUBLISHED_CONDITIONS[split]
        shown = ""
        if len(counts) and np.any(counts != per):
            if n_conditions % len(counts) == 0:
                common, label = n_conditions // len(counts), "the EEG needs"
            else:
                values, freq = np.unique(counts, return_counts=True)
                common, label = int(values[np.argmax(freq)]), "most hold"
            bad = np.flatnonzero(counts != common)
            shown = (f" Folders do not all hold the same number of images ({label} {common}); these differ: "
                     + ", ".join(f"{images.folders[i]} ({counts[i]})" for i in bad[:5]) + ".")
        raise ValueError(
            f"{where or split}: found {len(images)} images in {len(images.folders)} concept folders under {images.root}, "
            f"but the EEG has {n_conditions} {split} conditions; training condition c shows image c % n of "
            f"concept c // n, so every concept folder must hold the same number n of images and folders x n must "
            f"equal the conditions (the full THINGS-EEG2 {split} set is {published // IMAGES_PER_TRAINING_CONCEPT}"
            f" x {IMAGES_PER_TRAINING_CONCEPT}).{shown} Check that --images points at the folder holding "
            f"{split}_images/ and that no image is missing."
        )
    return per


def _condition_concepts(split: str, n_conditions: int, per: int = 1) -> tuple[np.ndarray, np.ndarray]:
    cond = np.arange(n_conditions, dtype=np.int64)
    if split == "training":
        return cond // per, cond % per
    return cond, np.zeros(n_conditions, dtype=np.int64)


def _check_images(images: ImageSet, split: str, n_conditions: int, where: str) -> int:
    """Validate the image folders against the EEG; return images per concept."""
    if split == "training":
        return images_per_concept(split, n_conditions, images, where=where)
    per = 1
    n_concepts = n_conditions
    if len(images) != n_conditions or len(images.folders) != n_concepts:
        published = PUBLISHED_CONDITIONS[split]
        raise ValueError(
            f"{where}: found {len(images)} images in {len(images.folders)} concept folders under {images.root}, "
            f"but the EEG has {n_conditions} {split} conditions, which needs {n_concepts} folders with {per} "
            f"image(s) each (the full THINGS-EEG2 {split} set is {published // per} x {per}). Check that "
            f"--images points at the folder holding {split}_images/ and that no image is missing."
        )
    counts = images.counts
    bad = np.flatnonzero(counts != per)
    if bad.size:
        shown = ", ".join(f"{images.folders[i]} ({counts[i]})" for i in bad[:5])
        raise ValueError(f"{where}: every {split} concept folder must hold {per} image(s); these do not: {shown}.")
    return per


def things_eeg2_metadata(
    subject: str, split: str, n_conditions: int, images: ImageSet | None = None
) -> pd.DataFrame:
    """Per-condition metadata of a THINGS-EEG2 file (``StoreWriter.add`` expands it over repetitions).

    Columns: ``condition``, ``concept_index``, ``concept``, ``image_index``, ``image_path``
    (empty without images).
    """
    if images is not None:
        per = _check_images(images, split, n_conditions, f"{subject} {split}")
    else:
        per = images_per_concept(split, n_conditions)
    concept_index, image_index = _condition_concepts(split, n_conditions, per)
    if images is not None:
        names = images.concepts
        paths = [str(p) for p in images.paths]
    else:
        names = things_eeg2_concepts(split)
        if n_conditions and concept_index[-1] >= len(names):
            raise ValueError(
                f"{subject} {split}: {n_conditions} conditions need {concept_index[-1] + 1} concepts but THINGS-EEG2 "
                f"has {len(names)} {split} concepts; pass the image folders (--images) to name them."
            )
        paths = [""] * n_conditions
    return pd.DataFrame({
        "condition": np.arange(n_conditions, dtype=np.int64),
        "concept_index": concept_index,
        "concept": [names[i] for i in concept_index],
        "image_index": image_index,
        "image_path": paths,
    })


# ---------------------------------------------------------------------------------------------
# The whole download, in place


class ThingsEEG2Folder(Store):
    """A THINGS-EEG2 download read in place (use :func:`open_things_eeg2`).

    Arrays are memory maps over the original pickles (float64, read-only); nothing is copied.
    """

    dataset = "things-eeg2"

    def __init__(self, root: Path, files: dict[str, dict[str, Path]], image_roots: dict[str, Path | None],
                 prompt_template: str) -> None:
        self.root = root
        self.path = root
        self._files = files
        self.image_roots = image_roots
        self.prompt_template = prompt_template
        self._open: dict[tuple[str, str], PreprocessedFile] = {}
        self._imagesets: dict[str, ImageSet] = {}
        first = self.file(*next((s, sp) for s in self.subjects for sp in self.splits(s)))
        self.ch_names = first.ch_names
        self.times = first.times
        self.sfreq = first.sfreq
        self.ch_types = ["eeg"] * len(self.ch_names)

    def __repr__(self) -> str:
        return f"ThingsEEG2Folder({str(self.root)!r}, subjects={self.subjects})"

    @property
    def subjects(self) -> list[str]:
        return sorted(self._files)

    def splits(self, subject: str) -> list[str]:
        subject = normalize_subject(subject)
        if subject not in self._files:
            raise _unknown("Subject", subject, self.subjects, f"{self.root / PREPROCESSED_DIR}")
        return [s for s in SPLITS if s in self._files[subject]]

    def file(self, subject: str, split: str) -> PreprocessedFile:
        """The opened (validated, memory-mapped) pickle of ``subject``/``split``."""
        subject = self._check(subject, split)
        key = (subject, split)
        if key not in self._open:
            pf = open_preprocessed(self._files[subject][split])
            if self._open:
                ref = next(iter(self._open.values()))
                if pf.ch_names != ref.ch_names or pf.times.shape != ref.times.shape \
                        or not np.allclose(pf.times, ref.times) or pf.sfreq != ref.sfreq:
                    raise ValueError(f"{pf.path}: channels, times or sfreq differ from {ref.path}; all files of "
                                     "a dataset must share them.")
            self._open[key] = pf
        return self._open[key]

    def array(self, subject: str, split: str) -> np.ndarray:
        return self.file(subject, split).data

    def image_set(self, split: str) -> ImageSet | None:
        root = self.image_roots.get(split)
        if root is None:
            return None
        if split not in self._imagesets:
            self._imagesets[split] = scan_image_folder(root)
        return self._imagesets[split]

    def metadata(self, subject: str, split: str) -> pd.DataFrame:
        subject = self._check(subject, split)
        pf = self.file(subject, split)
        per_condition = things_eeg2_metadata(subject, split, pf.n_conditions, self.image_set(split))
        n_rep = pf.n_repetitions
        meta = per_condition.loc[per_condition.index.repeat(n_rep)].reset_index(drop=True)
        meta.insert(0, "subject", subject)
        meta.insert(1, "split", split)
        meta.insert(3, "repetition", np.tile(np.arange(n_rep, dtype=np.int64), pf.n_conditions))
        return meta

    def _n_conditions(self, split: str) -> int:
        for sub in self.subjects:
            if split in self._files[sub]:
                return self.file(sub, split).n_conditions
        raise ValueError(f"No subject in {self.root} has a {split} file.")

    def concepts(self, split: str) -> list[str]:
        n_cond = self._n_conditions(split)
        images = self.image_set(split)
        per = (_check_images(images, split, n_cond, f"{self.root} {split}") if images is not None
               else images_per_concept(split, n_cond))
        n_concepts = int(_condition_concepts(split, n_cond, per)[0][-1]) + 1 if n_cond else 0
        names = images.concepts if images is not None else things_eeg2_concepts(split)
        return list(names[:n_concepts])

    def images(self, split: str) -> list[str] | None:
        images = self.image_set(split)
        if images is None:
            return None
        _check_images(images, split, self._n_conditions(split), f"{self.root} {split}")
        return [str(p) for p in images.paths]


def _find_preprocessed_root(folder: Path) -> Path:
    if (folder / PREPROCESSED_DIR).is_dir():
        return folder / PREPROCESSED_DIR
    if any(folder.glob(f"sub-*/{FILE_NAME.format(split='*')}")):
        return folder  # the user pointed at Preprocessed_data_250Hz itself
    raise FileNotFoundError(
        f"{folder} holds no {PREPROCESSED_DIR}/sub-XX/preprocessed_eeg_{{training,test}}.npy. Point at the "
        f"folder that contains {PREPROCESSED_DIR}/ (as downloaded from OSF or Hugging Face)."
    )


def open_things_eeg2(
    folder: str | os.PathLike,
    images: str | os.PathLike | dict[str, Any] | bool | None = None,
    subjects: list[str] | str | None = None,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
) -> ThingsEEG2Folder:
    """Read a THINGS-EEG2 download in place, with the same interface as an eegvision store.

    Parameters
    ----------
    folder : str or PathLike
        The folder holding ``Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_{training,test}.npy``
        (or that folder itself).
    images : path, dict, bool or None
        Where the images are: a folder holding ``training_images/`` and ``test_images/``; a dict
        ``{"training": root, "test": root}``; None to use ``folder/{training,test}_images`` when they
        exist; False for no images (concept names then come from eegvision's THINGS tables).
    subjects : list of str, str or None
        Subjects to expose (``["sub-01", "sub-02"]``, ``"sub-01,sub-02"`` or ``[1, 2]``); all by default.
    prompt_template : str
        Text prompt template (kept for conversion and feature extraction).

    Raises
    ------
    FileNotFoundError
        No preprocessed files, or an image folder that does not exist.
    ValueError
        A requested subject does not exist (close names are suggested).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"THINGS-EEG2 folder {folder} does not exist.")
    pre = _find_preprocessed_root(folder)
    files: dict[str, dict[str, Path]] = {}
    for sub_dir in sorted(p for p in pre.glob("sub-*") if p.is_dir()):
        found = {s: sub_dir / FILE_NAME.format(split=s) for s in SPLITS
                 if (sub_dir / FILE_NAME.format(split=s)).is_file()}
        if found:
            files[sub_dir.name] = found
    if not files:
        raise FileNotFoundError(f"{pre} holds no sub-XX/preprocessed_eeg_{{training,test}}.npy files.")
    if subjects is not None:
        wanted = [s for s in subjects.split(",")] if isinstance(subjects, str) else list(subjects)
        wanted = [normalize_subject(s) for s in wanted if str(s).strip()]
        for s in wanted:
            if s not in files:
                raise _unknown("Subject", s, sorted(files), str(pre))
        files = {s: files[s] for s in wanted}
    image_roots: dict[str, Path | None] = {}
    if isinstance(images, dict):
        image_roots = {s: (Path(images[s]).expanduser() if images.get(s) else None) for s in SPLITS}
    elif images is False:
        image_roots = {s: None for s in SPLITS}
    else:
        base = folder if images is None or images is True else Path(images).expanduser()
        if images not in (None, True) and not base.is_dir():
            raise FileNotFoundError(f"Image folder {base} does not exist.")
        for s in SPLITS:
            cand = base / f"{s}_images"
            image_roots[s] = cand if cand.is_dir() else None
        if images not in (None, True) and not any(image_roots.values()):
            raise FileNotFoundError(
                f"{base} holds neither training_images/ nor test_images/; point --images at the folder that "
                "contains them."
            )
    for s, root in image_roots.items():
        if root is not None and not root.is_dir():
            raise FileNotFoundError(f"{s} image folder {root} does not exist.")
    return ThingsEEG2Folder(folder, files, image_roots, prompt_template)


# ---------------------------------------------------------------------------------------------
# Conversion


def convert_things_eeg2(
    src: str | os.PathLike,
    store: str | os.PathLike,
    images: str | os.PathLike | dict[str, Any] | bool | None = None,
    subjects: list[str] | str | None = None,
    dtype: str = "float16",
    overwrite: bool = False,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    chunk_mb: float = 64,
) -> Path:
    """Convert a THINGS-EEG2 download into an eegvision store, streaming with constant memory.

    Every selected file is opened and validated first (safe parser, nothing executed), then each
    subject/split is streamed in chunks of conditions from the memory-mapped pickle into
    ``STORE/sub-XX/{split}.npy`` (``dtype``) with its metadata table. Entries already converted
    from identical sources (size + sha256) with the same settings are skipped.

    Parameters
    ----------
    src : str or PathLike
        Folder holding ``Preprocessed_data_250Hz/``.
    store : str or PathLike
        Output store folder (new, empty, or a store written with the same settings).
    images : path, dict, bool or None
        See :func:`open_things_eeg2`; by default ``src/{training,test}_images``.
    subjects : list of str, str or None
        Subjects to convert (all by default).
    dtype : {"float16", "float32"}
        Storage type.
    overwrite : bool
        Replace a store with different settings at ``store``.
    prompt_template : str
        Recorded in the manifest for text features.
    chunk_mb : float
        Size of the chunks streamed at a time.

    Returns
    -------
    Path
        The store folder.
    """
    source = open_things_eeg2(src, images=images, subjects=subjects, prompt_template=prompt_template)
    todo = [(sub, split) for sub in source.subjects for split in source.splits(sub)]
    opened = {key: source.file(*key) for key in todo}  # validate everything before writing anything
    metas = {key: things_eeg2_metadata(key[0], key[1], opened[key].n_conditions, source.image_set(key[1]))
             for key in todo}
    with StoreWriter(
        store, dataset="things-eeg2", ch_names=source.ch_names, sfreq=source.sfreq, times=source.times,
        dtype=dtype, ch_types=source.ch_types, images={s: source.image_roots.get(s) for s in SPLITS},
        prompt_template=prompt_template, overwrite=overwrite, chunk_mb=chunk_mb,
    ) as writer:
        for key in todo:
            pf = opened[key]
            if writer.is_current(key[0], key[1], [pf.path]):
                logger.info("%s %s is up to date in %s (same source, same settings): skipped.", *key, store)
                continue
            writer.add(key[0], key[1], pf.data, metas[key], sources=[pf.path])
    return Path(store)
