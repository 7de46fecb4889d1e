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

The pickles are parsed by :mod:`eegvision.readers.safe_pickle` (no code is ever executed) and the EEG
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

import numpy as np
import pandas as pd

from eegvision.checks import check_choice, check_dtype, check_shape
from eegvision.readers.channels import THINGS_EEG2_CHANNELS
from eegvision.readers.images import (
    ImageSet,
    concept_from_folder,
)
from eegvision.readers.pickle_values import ArrayRef
from eegvision.readers.safe_pickle import parse_data_pickle

__all__ = [
    "PREPROCESSED_DIR",
    "SPLITS",
    "PreprocessedFile",
    "images_per_concept",
    "open_preprocessed",
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
    check_shape(f"{path}: 'preprocessed_eeg_data'", ref, ("conditions", "repetitions", "channels", "times"),
                hint="The published files hold (16540, 4, 63, 250) for training and (200, 80, 63, 250) for test.")
    check_dtype(f"{path}: 'preprocessed_eeg_data'", ref, "f", hint="The published files hold float64.")
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
    check_choice("THINGS-EEG2 split", split, SPLITS)
    rows = _table("training_concepts.tsv" if split == "training" else "test_images.tsv")
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
