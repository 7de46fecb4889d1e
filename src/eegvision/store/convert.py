"""Convert data as users hold it into an eegvision store: THINGS-EEG2 pickles, THINGS-MEG epochs, any MNE epochs.

Each converter validates every input first (nothing is written before all sources opened), then streams
the arrays through :class:`~eegvision.store.writer.StoreWriter`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from eegvision.checks import check_file
from eegvision.readers.channels import THINGS_EEG2_CHANNELS
from eegvision.readers.epochs import (
    STORE_UNITS,
    LazyEpochsArray,
    _check_metadata,
    _conditions,
    data_picks,
    group_repetitions,
    read_metadata_table,
    time_slice,
)
from eegvision.readers.images import (
    DEFAULT_PROMPT_TEMPLATE,
)
from eegvision.readers.things_eeg2 import SPLITS, things_eeg2_metadata
from eegvision.readers.things_meg import (
    _concept_names,
    find_things_meg_files,
    read_image_concept_index,
    read_image_paths,
    split_things_meg_events,
)
from eegvision.store.things_folder import open_things_eeg2
from eegvision.store.writer import StoreWriter

__all__ = ["convert_epochs", "convert_things_eeg2", "convert_things_meg"]

logger = logging.getLogger(__name__)


def convert_things_eeg2(
    src: str | os.PathLike,
    store: str | os.PathLike,
    images: str | os.PathLike | None = None,
    subjects: Sequence[str | int] | None = None,
    dtype: str = "float16",
    overwrite: bool = False,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    chunk_mb: float = 64,
    *,
    with_images: bool = True,
    expected_channels: tuple[str, ...] | None = THINGS_EEG2_CHANNELS,
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
    images : str or PathLike, optional
        The folder holding ``training_images/`` and ``test_images/``; by default ``src``'s, when they exist.
    subjects : sequence of str or int, optional
        Subjects to convert (all by default).
    dtype : {"float16", "float32"}
        Storage type.
    overwrite : bool
        Replace a store with different settings at ``store``.
    prompt_template : str
        Recorded in the manifest for text features.
    chunk_mb : float
        Size of the chunks streamed at a time.
    with_images : bool
        False to store no image paths (concept names then come from eegvision's THINGS tables).
    expected_channels : tuple of str or None
        Channel names every file must hold (the 63 THINGS-EEG2 channels by default); None accepts any set
        shared by all files, e.g. the 271 sensors of the simulator's ``meg`` family.

    Returns
    -------
    Path
        The store folder.
    """
    source = open_things_eeg2(src, images=images, subjects=subjects, prompt_template=prompt_template,
                              with_images=with_images, expected_channels=expected_channels)
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

    from eegvision.store.writer import StoreWriter

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


def convert_epochs(
    fif: str | os.PathLike,
    metadata: str | os.PathLike | pd.DataFrame,
    store: str | os.PathLike,
    subject: str = "sub-01",
    min_reps: int | None = None,
    dtype: str = "float16",
    tmin: float | None = None,
    tmax: float | None = None,
    images: str | os.PathLike | None = None,
    dataset: str = "epochs",
    prompt_template: str | None = None,
    units: dict[str, str] | None = STORE_UNITS,
    overwrite: bool = False,
) -> Path:
    """Convert an MNE epochs file and a per-epoch metadata table into an eegvision store.

    Parameters
    ----------
    fif : path-like
        An MNE epochs file (``*-epo.fif``), read lazily.
    metadata : path-like or DataFrame
        One row per epoch (epoch order) with ``image_path``, ``concept``, ``split`` and optionally
        ``subject`` and ``image_id`` (see the module docs).
    store : path-like
        Output store folder.
    subject : str
        Subject name when the table has no ``subject`` column.
    min_reps : int, optional
        Accept unequal repetition counts (see :func:`group_repetitions`).
    dtype : {"float16", "float32"}
        Store dtype.
    tmin, tmax : float, optional
        Keep only this window (s, inclusive); the whole epoch by default.
    images : path-like, optional
        Folder the ``image_path`` values are relative to; recorded in the store, and relative paths
        are stored joined onto it.
    dataset : str
        Dataset name recorded in the manifest.
    prompt_template : str, optional
        Text prompt template recorded in the manifest.
    units : dict, optional
        MNE ``get_data(units=...)`` per channel type; :data:`STORE_UNITS` (µV, fT, fT/cm) by default,
        ``None`` keeps the file's SI values.
    overwrite : bool
        Replace a store with other settings.

    Returns
    -------
    Path
        The store folder.
    """
    import mne

    from eegvision.readers.subjects import normalize_subject
    from eegvision.store.writer import StoreWriter

    fif = check_file(fif, "Epochs file", "Give an MNE epochs file (*-epo.fif).")
    epochs = mne.read_epochs(fif, preload=False, verbose=False)
    if isinstance(metadata, pd.DataFrame):
        table, table_name, sources = metadata.astype(str), "metadata table", [fif]
    else:
        table, table_name = read_metadata_table(metadata), str(metadata)
        sources = [fif, Path(metadata)]
    table = _check_metadata(table, len(epochs), table_name)
    subjects = (table["subject"].map(normalize_subject) if "subject" in table.columns
                else pd.Series([normalize_subject(subject)] * len(table)))
    picks = data_picks(epochs.info)
    window = time_slice(epochs.times, tmin, tmax)
    ch_names = [epochs.ch_names[i] for i in picks]
    if images is not None:
        root = Path(images).expanduser().absolute()
        table["image_path"] = [p if Path(p).is_absolute() else str(root / p) for p in table["image_path"]]
    roots = {s: (str(images) if images is not None else None) for s in SPLITS if (table["split"] == s).any()}
    with StoreWriter(store, dataset=dataset, ch_names=ch_names, sfreq=float(epochs.info["sfreq"]),
                     times=epochs.times[window], dtype=dtype, ch_types=epochs.get_channel_types(picks=picks),
                     images=roots, prompt_template=prompt_template, overwrite=overwrite) as writer:
        for sub in sorted(subjects.unique()):
            for split in SPLITS:
                rows = np.flatnonzero(((subjects == sub) & (table["split"] == split)).to_numpy())
                if len(rows) == 0:
                    continue
                part = table.iloc[rows]
                conds, cond_of_row = _conditions(part)
                labels = conds["image_id" if "image_id" in conds.columns else "image_path"].tolist()
                kept, slots = group_repetitions(cond_of_row, len(conds), min_reps, f"{sub} {split}", labels)
                conds = conds.iloc[kept].reset_index(drop=True)
                # keep concept_index dense over the concepts that remain
                names = sorted(conds["concept"].unique())
                conds["concept_index"] = pd.Index(names).get_indexer(conds["concept"])
                conds["image_index"] = conds.groupby("concept_index").cumcount()
                lazy = LazyEpochsArray(epochs, rows[slots], picks, window, units=units)
                writer.add(subject=sub, split=split, data=lazy,
                           metadata=conds, sources=sources)
    return Path(store)
