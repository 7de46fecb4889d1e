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

from eegvision.data.epochs_reader import STORE_UNITS, LazyEpochsArray, data_picks, group_repetitions, time_slice
from eegvision.utils import close_matches

__all__ = ["CATCH_CODE", "convert_things_meg", "find_things_meg_files", "read_image_concept_index",
           "read_image_paths", "split_things_meg_events"]

#: Event code of THINGS-MEG catch trials.
CATCH_CODE = 999999
_FILE_RE = re.compile(r"^preprocessed_P(\d+)-epo\.fif$")


def find_things_meg_files(src: str | os.PathLike, subjects: Sequence[str | int] | None = None) -> dict[str, Path]:
    """``{"sub-01": SRC/preprocessed_P1-epo.fif, ...}`` (searched recursively below ``src``)."""
    from eegvision.data.store import normalize_subject

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
    for s in subjects:
        text = str(s).strip()
        name = f"sub-{int(text[1:]):02d}" if re.fullmatch(r"[Pp]\d+", text) else normalize_subject(text)
        if name not in found:
            hint = close_matches(name, list(found))
            raise ValueError(f"Subject {s!r} not found in {src} (available: {', '.join(found)})"
                             + (f"; did you mean {', '.join(hint)}?" if hint else "."))
        out[name] = found[name]
    return out


def _read_column(path: Path, what: str) -> list[str]:
    """First field of every non-empty line (the THINGS metadata CSVs are one value per line)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
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


def convert_things_meg(
    src: str | os.PathLike,
    store: str | os.PathLike,
    concept_index_csv: str | os.PathLike | None = None,
    image_paths_csv: str | os.PathLike | None = None,
    subjects: Sequence[str | int] | None = None,
    dtype: str = "float16",
    *,
    images: str | os.PathLike | None = None,
    test_repetitions: int = 12,
    units: dict[str, str] | None = STORE_UNITS,
    overwrite: bool = False,
) -> Path:
    """Convert THINGS-MEG ``preprocessed_P{N}-epo.fif`` files into an eegvision store.

    Parameters
    ----------
    src : path-like
        Folder holding (at any depth) ``preprocessed_P1-epo.fif`` ... ``preprocessed_P4-epo.fif``.
    store : path-like
        Output store folder.
    concept_index_csv : path-like, optional
        THINGS ``Metadata/Concept-specific/image_concept_index.csv``; looked up under ``src`` if omitted.
    image_paths_csv : path-like, optional
        THINGS ``Metadata/Image-specific/image_paths.csv`` (concept names and image paths); looked up
        under ``src`` if omitted, optional.
    subjects : sequence, optional
        ``"sub-01"``, ``"P1"`` or ``1`` ...; all by default.
    dtype : {"float16", "float32"}
        Store dtype.
    images : path-like, optional
        THINGS root that ``image_paths.csv`` entries are relative to (the folder holding ``images/``).
    test_repetitions : int
        Repetition count that identifies test images (12).
    units : dict, optional
        Stored units per channel type (fT for THINGS-MEG's axial gradiometers, typed ``mag``); ``None``
        keeps teslas (needs ``dtype="float32"``: float16 cannot hold 1e-13).
    overwrite : bool
        Replace a store with other settings.

    Returns
    -------
    Path
        The store folder.
    """
    import mne

    from eegvision.data.store import StoreWriter

    src = Path(src)
    files = find_things_meg_files(src, subjects)

    def locate(given, name: str, required: bool) -> Path | None:
        if given is not None:
            return Path(given)
        hits = sorted(src.rglob(name))
        if hits:
            return hits[0]
        if required:
            raise FileNotFoundError(
                f"THINGS {name} not given and not found under {src}. It is in the THINGS metadata "
                f"(osf.io/jum2f, Metadata/Concept-specific/{name}); pass --concept-index PATH."
            )
        return None

    concept_csv = locate(concept_index_csv, "image_concept_index.csv", True)
    paths_csv = locate(image_paths_csv, "image_paths.csv", False)
    concept_of_image = read_image_concept_index(concept_csv)
    image_paths = read_image_paths(paths_csv) if paths_csv is not None else None
    if image_paths is not None and len(image_paths) != len(concept_of_image):
        raise ValueError(f"{paths_csv} lists {len(image_paths)} images but {concept_csv} {len(concept_of_image)}; "
                         "both must come from the same THINGS release.")
    extra_sources = [p for p in (concept_csv, paths_csv) if p is not None]
    root = Path(images).expanduser().absolute() if images is not None else None

    writer = None
    try:
        for sub, fif in files.items():
            epochs = mne.read_epochs(fif, preload=False, verbose=False)
            picks = data_picks(epochs.info)
            window = time_slice(epochs.times, 0.0, 1.0)
            if writer is None:
                writer = StoreWriter(
                    store, dataset="things-meg", ch_names=[epochs.ch_names[i] for i in picks],
                    sfreq=float(epochs.info["sfreq"]), times=epochs.times[window], dtype=dtype,
                    ch_types=epochs.get_channel_types(picks=picks),
                    images={"training": str(root) if root else None, "test": str(root) if root else None},
                    overwrite=overwrite,
                ).__enter__()
            codes = epochs.events[:, 2].astype(np.int64)
            is_test, is_train = split_things_meg_events(codes, concept_of_image, test_repetitions, str(fif))
            for split, mask in (("training", is_train), ("test", is_test)):
                rows = np.flatnonzero(mask)
                cond_codes, cond_of_row = np.unique(codes[rows], return_inverse=True)
                kept, slots = group_repetitions(cond_of_row, len(cond_codes), None, f"{sub} {split}",
                                                [str(c) for c in cond_codes])
                cond_codes = cond_codes[kept]
                things_concept = concept_of_image[cond_codes - 1]
                uniq = np.unique(things_concept)
                concept_index = np.searchsorted(uniq, things_concept)
                meta = pd.DataFrame({
                    "concept_index": concept_index,
                    "concept": _concept_names(things_concept, image_paths, cond_codes),
                    "image_index": pd.Series(concept_index).groupby(concept_index).cumcount().to_numpy(),
                    "image_path": ([str(root / image_paths[c - 1]) if root else image_paths[c - 1] for c in cond_codes]
                                   if image_paths is not None else [""] * len(cond_codes)),
                    "event_code": cond_codes,
                    "things_concept_index": things_concept,
                })
                lazy = LazyEpochsArray(epochs, rows[slots], picks, window, units=units)
                writer.add(subject=sub, split=split, data=lazy,
                           metadata=meta, sources=[fif, *extra_sources])
    except BaseException as exc:
        if writer is not None:
            writer.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if writer is not None:
        writer.__exit__(None, None, None)
    return Path(store)
