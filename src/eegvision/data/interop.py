"""Export a store to MNE (``mne.EpochsArray``) and braindecode (``BaseConcatDataset``).

Units
-----
Values are passed through unchanged. The THINGS-EEG2 preprocessed data are MVNN-whitened and
therefore *unitless*: MNE treats EEG as volts, so amplitude scales in MNE plots (µV) are
meaningless for them; pass ``scalings`` explicitly when plotting. Stores converted from raw
recordings or ``-epo.fif`` files keep the units of their source.

Events and metadata
-------------------
Each epoch's event code is its condition index within the split, and ``event_id`` names it
``"<concept>/<condition>"`` (e.g. ``"aardvark/00003"``), so MNE's tag selection works:
``epochs["aardvark"]`` selects every aardvark image. ``epochs.metadata`` holds the store's
metadata columns (subject, split, condition, repetition, concept_index, concept, image_index,
image_path), with ``repetition = -1`` for averaged epochs.

braindecode
-----------
:func:`to_braindecode` returns one windows dataset per subject (description: subject, split)
whose target is the concept index by default. With ``lazy=True`` (default) each dataset is a
:class:`StoreWindowsDataset`, a ``braindecode.datasets.WindowsDataset`` that reads trials from
the store's memory maps on demand (its ``windows`` Epochs are built only if accessed); with
``lazy=False`` it is a plain ``WindowsDataset`` over an in-memory ``EpochsArray``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from eegvision.data.dataset import EEGDataset, StoreLike

_CTF = re.compile(r"^M[LRZ][A-Z]{1,2}\d{2}")
_NEUROMAG = re.compile(r"^MEG ?(\d{3,4})$")
_BRAINDECODE_COLUMNS = ("target", "i_window_in_trial", "i_start_in_trial", "i_stop_in_trial")


def infer_ch_types(ch_names: Sequence[str]) -> list[str]:
    """MNE channel types from names: CTF (``MLC11``) -> ``mag``; Neuromag ``MEG xxx1`` -> ``mag``,
    ``MEG xxx2/3`` -> ``grad``; ``STI``/``TRIG`` -> ``stim``; anything else -> ``eeg``."""
    types = []
    for name in ch_names:
        m = _NEUROMAG.match(name)
        if _CTF.match(name):
            types.append("mag")
        elif m:
            types.append("mag" if m.group(1).endswith("1") else "grad")
        elif name.upper().startswith(("STI", "TRIG")):
            types.append("stim")
        else:
            types.append("eeg")
    return types


def standard_montage():
    """The MNE 10-20 template: ``colin27_1020`` when this MNE has it, else ``standard_1020``."""
    import mne

    try:
        return mne.channels.make_standard_montage("colin27_1020")
    except ValueError:
        return mne.channels.make_standard_montage("standard_1020")


def make_info(store: StoreLike, ch_names: Sequence[str] | None = None, montage: bool = True):
    """``mne.Info`` for ``ch_names`` of ``store`` (types from ``store.ch_types`` or inferred).

    EEG channels found in :func:`standard_montage` get its positions; MEG channels get none
    (sensor geometry is not stored).
    """
    import mne

    all_names = list(store.ch_names)
    ch_names = all_names if ch_names is None else list(ch_names)
    stored = getattr(store, "ch_types", None)
    all_types = list(stored) if stored else infer_ch_types(all_names)
    if len(all_types) != len(all_names):
        raise ValueError(
            f"The store lists {len(all_types)} channel types for {len(all_names)} channels; "
            "its manifest is inconsistent."
        )
    type_of = dict(zip(all_names, all_types))
    info = mne.create_info(ch_names, float(store.sfreq), [type_of[n] for n in ch_names])
    eeg = [n for n in ch_names if type_of[n] == "eeg"]
    if montage and eeg:
        pos = standard_montage().get_positions()
        lower = {n.lower(): n for n in pos["ch_pos"]}
        ch_pos = {n: pos["ch_pos"][lower[n.lower()]] for n in eeg if n.lower() in lower}
        if ch_pos:  # only EEG channels get positions; others (misc, MEG) are left alone
            mon = mne.channels.make_dig_montage(
                ch_pos=ch_pos, nasion=pos["nasion"], lpa=pos["lpa"], rpa=pos["rpa"],
                coord_frame=pos["coord_frame"])
            info.set_montage(mon, on_missing="ignore")
    return info


def _sample_metadata(store: StoreLike, ds: EEGDataset, subject: str) -> pd.DataFrame:
    """One metadata row per sample of ``ds`` (store columns; ``repetition`` from ``ds``)."""
    table = store.metadata(subject, ds.split)
    columns = list(table.columns)
    per_condition = table.drop_duplicates("condition").drop(columns=["repetition"], errors="ignore")
    frame = pd.DataFrame({"condition": ds.condition_index})
    frame = frame.merge(per_condition, on="condition", how="left", sort=False)
    frame["repetition"] = ds.repetition_index
    order = [c for c in columns if c in frame.columns]
    order += [c for c in frame.columns if c not in columns]
    return frame[order].reset_index(drop=True)


def _fill(ds: EEGDataset, out: np.ndarray, chunk: int = 2048) -> None:
    from eegvision.progress import track

    starts = range(0, len(ds), chunk)
    for a in track(starts, "reading epochs", total=len(starts)):
        b = min(a + chunk, len(ds))
        out[a:b] = ds.fetch(np.arange(a, b))["eeg"]


def to_mne_epochs(
    store: StoreLike,
    subject: str,
    split: str,
    average: bool = False,
    channels: str | Sequence[str] | None = None,
    *,
    window: tuple[float | None, float | None] | None = None,
    conditions: Sequence[int] | np.ndarray | None = None,
    montage: bool = True,
):
    """One subject's split as an ``mne.EpochsArray`` (float64, in memory).

    Parameters
    ----------
    store : Store
        An opened store or in-place reader.
    subject, split : str
        Which recording, e.g. ``"sub-01"``, ``"test"``.
    average : bool
        As in :class:`~eegvision.data.dataset.EEGDataset`: ``True`` gives one epoch per
        condition (mean over repetitions).
    channels : str or sequence of str, optional
        Channel subset (region preset or names).
    window : (tmin, tmax), optional
        Time window in seconds (start inclusive, end exclusive).
    conditions : array of int, optional
        Export only these conditions.
    montage : bool
        Set the 10-20 template montage (``colin27_1020``, or ``standard_1020`` on older MNE)
        on EEG channels.

    Returns
    -------
    mne.EpochsArray
        ``tmin`` is the first kept time, events carry condition codes, ``metadata`` is attached.

    Notes
    -----
    The data are copied into memory as float64: a full THINGS-EEG2 training split of one subject
    is 66,160 x 63 x 250 x 8 B = 8.3 GB. Use ``average=True`` or ``conditions=`` for smaller
    exports, or :func:`to_braindecode` for lazy access.
    """
    ds = EEGDataset(store, [subject], split, average=average, channels=channels, window=window,
                    conditions=conditions)
    data = np.empty((len(ds), ds.n_chans, ds.n_times), dtype=np.float64)
    _fill(ds, data)
    metadata = _sample_metadata(store, ds, subject)
    return _epochs_array(store, ds, data, metadata, montage)


def _epochs_array(store: StoreLike, ds: EEGDataset, data: np.ndarray, metadata: pd.DataFrame,
                  montage: bool):
    import mne

    info = make_info(store, ds.ch_names, montage=montage)
    codes = ds.condition_index
    events = np.stack([np.arange(len(ds), dtype=np.int64) * ds.n_times,
                       np.zeros(len(ds), dtype=np.int64), codes], axis=1)
    uniq, first = np.unique(codes, return_index=True)
    if "concept" in metadata.columns:
        names = metadata["concept"].astype(str).str.replace("/", "_").to_numpy()[first]
    else:
        names = np.array(["condition"] * len(uniq))
    width = max(5, len(str(int(uniq.max())))) if len(uniq) else 5
    event_id = {f"{n}/{int(c):0{width}d}": int(c) for n, c in zip(names, uniq)}
    return mne.EpochsArray(data, info, events=events, tmin=float(ds.times[0]), event_id=event_id,
                           metadata=metadata, baseline=None, verbose=False)


def _braindecode_metadata(store: StoreLike, ds: EEGDataset, subject: str,
                          target: str) -> pd.DataFrame:
    metadata = _sample_metadata(store, ds, subject)
    if target not in metadata.columns:
        raise ValueError(f"target {target!r} is not a metadata column; choose one of "
                         f"{', '.join(map(str, metadata.columns))}.")
    start = ds._time_sel.start or 0
    metadata["target"] = metadata[target].to_numpy()
    metadata["i_window_in_trial"] = 0
    metadata["i_start_in_trial"] = start
    metadata["i_stop_in_trial"] = start + ds.n_times
    return metadata


def _make_view_class():
    from braindecode.datasets import WindowsDataset
    from braindecode.datasets.base import RecordDataset

    class StoreWindowsDataset(WindowsDataset):
        """A braindecode ``WindowsDataset`` that reads one subject's trials from a store lazily.

        ``__getitem__`` returns ``(X, y, crop_inds)`` like ``WindowsDataset``; X is float32
        (n_chans, n_times) read from the memory map. ``windows`` builds an ``mne.EpochsArray``
        (in memory) only when accessed.
        """

        def __init__(self, store: StoreLike, subject: str, split: str, *,
                     average: bool = False, channels: Any = None, window: Any = None,
                     conditions: Any = None, target: str = "concept_index",
                     transform: Any = None) -> None:
            RecordDataset.__init__(self, {"subject": subject, "split": split}, transform)
            self.store, self.subject = store, subject
            self.eeg = EEGDataset(store, [subject], split, average=average, channels=channels,
                                  window=window, conditions=conditions)
            self._windows = None
            self._zarr_data = None
            self._fast_disk = False
            self.last_target_only = True
            self.targets_from = "metadata"
            self.metadata = _braindecode_metadata(store, self.eeg, subject, target)
            self.crop_inds = self.metadata.loc[:, list(_BRAINDECODE_COLUMNS[1:])].to_numpy()
            self.y = self.metadata["target"].to_list()
            self.raw_preproc_kwargs = []
            self.window_preproc_kwargs = []

        @property
        def windows(self):
            if self._windows is None:
                data = np.empty((len(self.eeg), self.eeg.n_chans, self.eeg.n_times), np.float64)
                _fill(self.eeg, data)
                self._windows = _epochs_array(self.store, self.eeg, data, self.metadata, True)
            return self._windows

        @windows.setter
        def windows(self, value):
            self._windows = value
            self._ch_pos = None

        def _make_mne_info(self):
            return make_info(self.store, self.eeg.ch_names)

        def __getitem__(self, index: int):
            X = self.eeg.fetch(np.array([index]))["eeg"][0]
            if self.transform is not None:
                X = self.transform(X)
            crop_inds = self.crop_inds[index].tolist()
            if self.return_ch_pos:
                return X, self.y[index], crop_inds, self.ch_pos
            return X, self.y[index], crop_inds

        def __len__(self) -> int:
            return len(self.eeg)

    StoreWindowsDataset.__module__ = __name__
    StoreWindowsDataset.__qualname__ = "StoreWindowsDataset"
    return StoreWindowsDataset


def _view_class():
    cls = globals().get("StoreWindowsDataset")
    if cls is None:
        cls = globals()["StoreWindowsDataset"] = _make_view_class()
    return cls


def __getattr__(name: str):
    # StoreWindowsDataset subclasses braindecode's WindowsDataset; build it on first use so that
    # importing this module does not import braindecode (a few seconds). Pickle finds it here.
    if name == "StoreWindowsDataset":
        return _view_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_braindecode(
    store: StoreLike,
    subjects: Sequence[str],
    split: str,
    *,
    average: bool = False,
    channels: str | Sequence[str] | None = None,
    window: tuple[float | None, float | None] | None = None,
    conditions: Sequence[int] | np.ndarray | None = None,
    target: str = "concept_index",
    lazy: bool = True,
):
    """A braindecode ``BaseConcatDataset`` over ``subjects`` (one windows dataset each).

    Parameters
    ----------
    store : Store
        An opened store or in-place reader.
    subjects : sequence of str
        Subject names; each becomes one dataset with description ``{"subject", "split"}``,
        so ``concat.split("subject")`` gives per-subject folds.
    split : str
        ``"training"`` or ``"test"``.
    average, channels, window, conditions
        As in :class:`~eegvision.data.dataset.EEGDataset`.
    target : str
        Metadata column used as ``y``: ``"concept_index"`` (default), ``"condition"``, ...
    lazy : bool
        ``True``: read from the store's memory maps per item (constant memory).
        ``False``: load each subject into an in-memory ``mne.EpochsArray`` and wrap it in a
        plain ``WindowsDataset``.

    Returns
    -------
    braindecode.datasets.BaseConcatDataset
        Items are ``(X float32 (n_chans, n_times), y, [i_window, i_start, i_stop])``.
    """
    from braindecode.datasets import BaseConcatDataset, WindowsDataset

    from eegvision.data.dataset import check_subjects

    subjects = check_subjects(store, subjects, split)
    datasets = []
    for subject in subjects:
        if lazy:
            datasets.append(_view_class()(store, subject, split, average=average, channels=channels,
                                window=window, conditions=conditions, target=target))
            continue
        ds = EEGDataset(store, [subject], split, average=average, channels=channels,
                        window=window, conditions=conditions)
        metadata = _braindecode_metadata(store, ds, subject, target)
        data = np.empty((len(ds), ds.n_chans, ds.n_times), dtype=np.float64)
        _fill(ds, data)
        epochs = _epochs_array(store, ds, data, metadata, True)
        datasets.append(WindowsDataset(epochs, description={"subject": subject, "split": split}))
    return BaseConcatDataset(datasets)
