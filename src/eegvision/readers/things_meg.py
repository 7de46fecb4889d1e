"""THINGS-MEG (Hebart et al. 2023, OpenNeuro ds004212) preprocessed epochs → an eegvision store.

Input: ``SRC/preprocessed_P{1..4}-epo.fif`` (epochs -0.1 ... 1.3 s, 271 MEG sensors, 200 Hz, already
filtered and baseline-corrected by the dataset authors), the THINGS ``image_concept_index.csv`` (one
1-based concept index per THINGS image, 26,107 lines) and optionally THINGS ``image_paths.csv`` (one
image path per THINGS image, e.g. ``images/aardvark/aardvark_01b.jpg``). The event code of an epoch is
the 1-based THINGS image index; catch trials have code 999999.

Steps (as ATM's ``MEG-preprocessing/pre_possess.ipynb``, without materialising the 27,048 epochs):

1. ``mne.read_epochs(preload=False)``; data are pulled in chunks of epochs (``get_data(item=...)``).
2. Window 0 ... 1.0 s, both ends included: **201 samples** at 200 Hz.
3. Catch trials (999999) are dropped.
4. **Test** = the image codes that occur exactly 12 times: 200 images x 12 repetitions.
5. **Training** = every other image, minus every image whose concept is one of the test concepts
   (``image_concept_index``): 1654 concepts x 12 images x 1 repetition = 19,848 images.

Layout in the store (documented choice): test ``(200, 12, 271, 201)``; training
``(n_images, 1, 271, 201)``, conditions = images sorted by event code, i.e. THINGS image order, so the
12 images of a concept are adjacent (ATM saves the same data as ``(1654, 12, 1, 271, 201)``:
concept x image x repetition). Repetitions of a test image are in recording order. The metadata
gives each condition its concept (``concept_index`` dense over the split's concepts, plus
``things_concept_index``), its position within the concept (``image_index``), its THINGS image
path when ``image_paths.csv`` is given, and its ``event_code``.

Concept names: from ``image_paths.csv`` (the folder of each image path), else from eegvision's THINGS
tables (THINGS uniqueIDs of the 1854 concepts), else the concept index.

Values are stored in fT (MNE reads teslas, ~1e-13, which float16 would flush to zero).

Subjects: ``preprocessed_P1-epo.fif`` → ``sub-01`` ... ``P4`` → ``sub-04``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from eegvision.checks import check_file, check_list, check_name

__all__ = ["CATCH_CODE", "find_things_meg_files", "read_image_concept_index",
           "read_image_paths", "split_things_meg_events"]

#: Event code of THINGS-MEG catch trials.
CATCH_CODE = 999999
_FILE_RE = re.compile(r"^preprocessed_P(\d+)-epo\.fif$")


def find_things_meg_files(src: str | os.PathLike, subjects: Sequence[str | int] | None = None) -> dict[str, Path]:
    """``{"sub-01": SRC/preprocessed_P1-epo.fif, ...}`` (searched recursively below ``src``)."""
    from eegvision.readers.subjects import normalize_subject

    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"THINGS-MEG folder not found: {src}. Pass the folder holding preprocessed_P1-epo.fif.")
    found: dict[str, Path] = {}
    for path in sorted(src.rglob("preprocessed_P*-epo.fif")):
        m = _FILE_RE.match(path.name)
        if m:
            found.setdefault(f"sub-{int(m.group(1)):02d}", path)
    if not found:
        raise FileNotFoundError(
            f"No preprocessed_P<N>-epo.fif under {src}. THINGS-MEG's preprocessed epochs are in OpenNeuro "
            "ds004212 derivatives/preprocessed/."
        )
    if not subjects:
        return found
    out = {}
    for s in check_list("subjects", subjects, "['sub-01', 'P2', 3]"):
        text = str(s).strip()
        name = f"sub-{int(text[1:]):02d}" if re.fullmatch(r"[Pp]\d+", text) else normalize_subject(text)
        out[name] = found[check_name("Subject", name, found, str(src))]
    return out


def _read_column(path: Path, what: str) -> list[str]:
    """First field of every non-empty line (the THINGS metadata CSVs are one value per line)."""
    check_file(path, what, "It is in the THINGS metadata (osf.io/jum2f).")
    with open(path, encoding="utf-8-sig") as f:
        return [re.split(r"[,\t]", line.strip(), maxsplit=1)[0].strip().strip('"') for line in f if line.strip()]


def read_image_concept_index(path: str | os.PathLike) -> np.ndarray:
    """THINGS ``image_concept_index.csv`` → int array (entry *i* = 1-based concept of image *i+1*).

    A header line, if present, is skipped.
    """
    path = Path(path)
    values = _read_column(path, "THINGS image_concept_index.csv")
    if values and not values[0].lstrip("-").isdigit():
        values = values[1:]
    bad = [v for v in values[:100000] if not v.isdigit()]
    if bad or not values:
        raise ValueError(f"{path}: expected one positive concept index per line (THINGS image_concept_index.csv); "
                         f"found {bad[:3] if bad else 'no lines'}.")
    return np.asarray(values, dtype=np.int64)


def read_image_paths(path: str | os.PathLike) -> list[str]:
    """THINGS ``image_paths.csv`` → list of image paths (entry *i* = image *i+1*); a header is skipped."""
    values = _read_column(Path(path), "THINGS image_paths.csv")
    if values and "/" not in values[0] and "\\" not in values[0]:
        values = values[1:]
    return values


def split_things_meg_events(
    codes: np.ndarray, concept_of_image: np.ndarray, test_repetitions: int = 12, source: str = "epochs"
) -> tuple[np.ndarray, np.ndarray]:
    """Which epochs are test and which are training.

    Parameters
    ----------
    codes : ndarray of int
        Event code of every epoch (1-based THINGS image index; :data:`CATCH_CODE` for catch trials).
    concept_of_image : ndarray of int
        ``image_concept_index`` (1-based concept per image).
    test_repetitions : int
        A test image is one whose code occurs exactly this often.

    Returns
    -------
    (is_test, is_train) : boolean arrays over epochs
        Catch trials and training images of test concepts are in neither.
    """
    codes = np.asarray(codes, dtype=np.int64)
    image = codes != CATCH_CODE
    bad = np.unique(codes[image & ((codes < 1) | (codes > len(concept_of_image)))])
    if len(bad):
        raise ValueError(
            f"{source}: event code(s) {bad[:5].tolist()} are not THINGS image numbers 1..{len(concept_of_image)} "
            "(image_concept_index.csv has one line per THINGS image; is it the full 26,107-line file?)."
        )
    uniq, counts = np.unique(codes[image], return_counts=True)
    test_codes = uniq[counts == test_repetitions]
    if len(test_codes) == 0:
        raise ValueError(f"{source}: no image occurs exactly {test_repetitions} times, so there is no test set.")
    is_test = np.isin(codes, test_codes)
    test_concepts = np.unique(concept_of_image[test_codes - 1])
    concept = np.where(image, concept_of_image[np.clip(codes, 1, len(concept_of_image)) - 1], -1)
    is_train = image & ~is_test & ~np.isin(concept, test_concepts)
    return is_test, is_train


def _concept_names(things_index: np.ndarray, image_paths: list[str] | None, codes: np.ndarray) -> list[str]:
    """Concept name per condition: image path folder, else bundled THINGS tables, else the index."""
    if image_paths is not None:
        return [Path(image_paths[c - 1].replace("\\", "/")).parent.name for c in codes]
    import importlib.resources

    table: dict[int, str] = {}
    for name in ("training_concepts.tsv", "test_images.tsv"):
        with importlib.resources.files("eegvision.resources.things").joinpath(name).open("r") as f:
            t = pd.read_csv(f, sep="\t", keep_default_na=False)
        table.update(zip(t["things_index"].astype(int), t["things_uniqueID"].astype(str)))
    return [table.get(int(i), str(int(i))) for i in things_index]


