"""Any MNE ``-epo.fif`` plus a metadata table → an eegvision store.

For users whose paradigm is not THINGS: one row of metadata per epoch (CSV or TSV) with

* ``image_path`` – the image shown (its identity, unless ``image_id`` is given),
* ``concept`` – its concept / category name (used for text prompts),
* ``split`` – ``training`` or ``test``,
* optional ``subject`` (``sub-01``, ``1``, ...; otherwise the ``subject`` argument) and ``image_id``.

Epochs are grouped into **conditions = unique images**, ordered by concept, then image path (then
``image_id``), so the order does not depend on the presentation order. **Repetitions** are the
epochs of one image, in recording order. A 4-D store needs the same number of repetitions for every
condition of a split: unequal counts are an error that lists them, unless ``min_reps`` is given;
then images with fewer than ``min_reps`` epochs are dropped and every kept image keeps its first
*k* epochs, *k* being the smallest count left (a warning says how many images and epochs were
dropped). Nothing is padded.

Values are stored in µV (EEG) and fT (magnetometers) or fT/cm (gradiometers) rather than MNE's volts
and teslas, whose magnitudes (1e-5, 1e-13) float16 cannot represent (``units=None`` keeps SI, for
data that are already scaled, e.g. z-scored). Epoch data are read lazily (``preload=False``) in
chunks of conditions, straight into the store writer, so memory stays bounded for recordings of
any size.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from eegvision.checks import check_choice, check_file, check_names

__all__ = ["LazyEpochsArray", "data_picks", "group_repetitions", "read_metadata_table",
           "time_slice", "STORE_UNITS"]

SPLITS = ("training", "test")
#: Units the store holds (MNE keeps SI: volts and teslas, far below float16's smallest normal number).
STORE_UNITS = {"eeg": "uV", "seeg": "uV", "ecog": "uV", "dbs": "uV", "eog": "uV", "mag": "fT", "grad": "fT/cm"}
REQUIRED_COLUMNS = ("image_path", "concept", "split")


def group_repetitions(
    condition: np.ndarray,
    n_conditions: int,
    min_reps: int | None = None,
    what: str = "split",
    labels: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Arrange epochs into a ``(condition, repetition)`` grid of epoch indices.

    Parameters
    ----------
    condition : ndarray of int, (n_epochs,)
        Condition of each epoch (``0 .. n_conditions-1``); ``-1`` marks epochs to ignore.
    n_conditions : int
    min_reps : int, optional
        Allow unequal counts: drop conditions with fewer epochs, truncate the others to the
        smallest remaining count. Without it, unequal counts raise ``ValueError``.
    what : str
        Name of the group for messages (e.g. ``"sub-01 training"``).
    labels : sequence of str, optional
        Condition names used in messages.

    Returns
    -------
    kept : ndarray of int
        The conditions kept, ascending.
    slots : ndarray of int, (len(kept), n_reps)
        Epoch indices; row *i* lists the epochs of condition ``kept[i]`` in recording order.
    """
    condition = np.asarray(condition, dtype=np.int64)
    valid = np.flatnonzero(condition >= 0)
    counts = np.bincount(condition[valid], minlength=n_conditions)
    if n_conditions == 0 or counts.max(initial=0) == 0:
        raise ValueError(f"{what}: no epochs.")
    name = (lambda c: repr(labels[c])) if labels is not None else (lambda c: f"condition {c}")
    if min_reps is None:
        if counts.min() != counts.max():
            vals, freq = np.unique(counts, return_counts=True)
            low = int(np.argmin(counts))
            dist = ", ".join(f"{f} with {v}" for v, f in zip(vals, freq))
            raise ValueError(
                f"{what}: conditions (unique images) have unequal numbers of epochs ({dist}; e.g. {name(low)} has "
                f"{counts[low]}). A store needs equal repetitions per condition: pass --min-reps N (min_reps=N) to "
                f"drop images with fewer than N epochs and keep the first k of the others, k being the "
                f"smallest count left (e.g. --min-reps {int(vals[0])} keeps every image with {int(vals[0])} "
                "repetitions each)."
            )
        kept = np.arange(n_conditions)
        n_rep = int(counts[0])
    else:
        if min_reps < 1:
            raise ValueError(f"min_reps must be at least 1; got {min_reps}.")
        kept = np.flatnonzero(counts >= min_reps)
        if len(kept) == 0:
            raise ValueError(
                f"{what}: no condition has {min_reps} or more epochs (most: {int(counts.max())}); lower --min-reps."
            )
        n_rep = int(counts[kept].min())
        dropped = n_conditions - len(kept)
        extra = int(counts[kept].sum() - n_rep * len(kept)) + int(counts[counts < min_reps].sum())
        if dropped or extra:
            warnings.warn(
                f"{what}: kept {len(kept)} of {n_conditions} conditions with {n_rep} repetitions each; dropped "
                f"{dropped} condition(s) with fewer than {min_reps} epochs and {extra} epoch(s) in all.",
                stacklevel=2,
            )
    order = valid[np.argsort(condition[valid], kind="stable")]  # grouped by condition, recording order
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots = order[starts[kept][:, None] + np.arange(n_rep)[None, :]]
    return kept, slots


def data_picks(info: Any) -> np.ndarray:
    """Indices of the data channels (EEG, MEG without reference sensors, sEEG, ECoG, DBS, fNIRS),
    bad channels included (their status is the user's call; the channel list is stored)."""
    import mne

    picks = mne.pick_types(info, meg=True, eeg=True, seeg=True, ecog=True, dbs=True, fnirs=True, ref_meg=False,
                           exclude=[])
    if len(picks) == 0:
        shown = ", ".join(info["ch_names"][:6])
        raise ValueError(f"No EEG/MEG data channels among {info['nchan']} channels ({shown}, ...).")
    return picks


class LazyEpochsArray:
    """A 4-D ``(condition, repetition, channel, time)`` view of MNE epochs, read on slicing.

    ``arr[a:b]`` reads only the epochs of conditions ``a..b-1`` (in file order) with
    ``epochs.get_data(item=...)``; :class:`eegvision.store.disk.StoreWriter` streams it chunk by
    chunk, so the whole array never exists in memory.
    """

    def __init__(self, epochs: Any, slots: np.ndarray, picks: np.ndarray, time_slice: slice,
                 dtype: Any = np.float32, units: dict[str, str] | None = None) -> None:
        self.epochs = epochs
        self.units = units
        self.slots = np.asarray(slots, dtype=np.int64)
        self.picks = np.asarray(picks)
        self.time_slice = time_slice
        n_times = len(range(*time_slice.indices(len(epochs.times))))
        self.shape = (self.slots.shape[0], self.slots.shape[1], len(self.picks), n_times)
        self.dtype = np.dtype(dtype)
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, slice):
            key = slice(int(key), int(key) + 1) if np.isscalar(key) else key
            if not isinstance(key, slice):
                raise TypeError("LazyEpochsArray supports slices of conditions only.")
        sub = self.slots[key]
        flat = sub.ravel()
        order = np.argsort(flat, kind="stable")  # read in file order
        out = np.empty((len(flat), *self.shape[2:]), dtype=self.dtype)
        if len(flat):
            data = self.epochs.get_data(item=flat[order], picks=self.picks, units=self.units)[..., self.time_slice]
            out[order] = data
        return out.reshape(sub.shape[0], sub.shape[1], *self.shape[2:])


def time_slice(times: np.ndarray, tmin: float | None, tmax: float | None) -> slice:
    """Samples with ``tmin <= t <= tmax`` (both inclusive, like ``Epochs.crop``)."""
    times = np.asarray(times)
    half = 0.5 * float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    lo = 0 if tmin is None else int(np.searchsorted(times, tmin - half))
    hi = len(times) if tmax is None else int(np.searchsorted(times, tmax + half))
    if hi <= lo:
        raise ValueError(f"The window {tmin}..{tmax} s holds no sample of epochs spanning "
                         f"{times[0]:.3f}..{times[-1]:.3f} s.")
    if (tmin is not None and tmin < times[0] - half) or (tmax is not None and tmax > times[-1] + half):
        raise ValueError(f"The window {tmin}..{tmax} s reaches outside the epochs ({times[0]:.3f}..{times[-1]:.3f} s).")
    return slice(lo, hi)


def read_metadata_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV/TSV metadata table (separator from the extension, else sniffed), all as text."""
    path = check_file(path, "Metadata table", "Give a CSV/TSV with one row per epoch (image_path, concept, split).")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ("," if path.suffix.lower() == ".csv" else None)
    frame = pd.read_csv(path, sep=sep, engine="python" if sep is None else "c", dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _check_metadata(meta: pd.DataFrame, n_epochs: int, source: str) -> pd.DataFrame:
    check_names("Column", REQUIRED_COLUMNS, [str(c) for c in meta.columns], source,
                hint="Needed: image_path, concept, split (training/test); optional: subject, image_id.")
    if len(meta) != n_epochs:
        raise ValueError(
            f"{source} has {len(meta)} rows but the epochs file holds {n_epochs} epochs; give exactly one row per "
            "epoch, in epoch order (after any dropped epochs)."
        )
    split = meta["split"].str.strip()
    for value in sorted(set(split) - set(SPLITS)):
        first = int(np.flatnonzero((split == value).to_numpy())[0])
        check_choice(f"{source}, line {first + 2}: split", value, SPLITS)  # line 1 is the header
    empty = meta.index[(meta["image_path"].str.strip() == "") | (meta["concept"].str.strip() == "")]
    if len(empty):
        raise ValueError(f"{source}: row(s) {', '.join(str(i + 2) for i in empty[:5])} have an empty image_path or "
                         "concept (line numbers count the header as line 1).")
    out = meta.copy()
    out["split"] = split
    return out


def _conditions(meta: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Unique images of one group, sorted by concept then path (then id); condition per epoch."""
    key = "image_id" if "image_id" in meta.columns else "image_path"
    cols = ["concept", "image_path"] + (["image_id"] if key == "image_id" else [])
    images = meta[cols].drop_duplicates()
    if images[key].duplicated().any():
        dup = images[images[key].duplicated(keep=False)].head(4).to_dict("records")
        raise ValueError(f"The same {key} appears with different concept/image_path: {dup}.")
    images = images.sort_values(cols, kind="stable").reset_index(drop=True)
    cond = pd.Index(images[key]).get_indexer(meta[key])
    concepts = sorted(images["concept"].unique())
    images["concept_index"] = pd.Index(concepts).get_indexer(images["concept"])
    images["image_index"] = images.groupby("concept_index").cumcount()
    return images, cond


