"""A map-style torch dataset over an eegvision store that reads whole batches from memory maps.

The store keeps one 4-D array per subject and split, ``(condition, repetition, channel, time)``
(see ``docs/design.md``). :class:`EEGDataset` never copies those arrays: it keeps a few integer
index arrays (one entry per sample) and, for each batch, reads the requested trials straight
from the memory maps with one fancy-indexing call per subject (or one slice per contiguous
block), converts them to float32 and returns tensors. There are no per-item Python objects in
the hot path, so a batch of 1024 single trials costs one ``numpy`` gather, whatever its order.

A sample is

* a single trial ``(subject, condition, repetition)`` (``average=False``), or
* the mean over all repetitions of a condition (``average=True``; the usual test protocol,
  200 conditions x 80 repetitions -> 200 rows), or
* the mean over a group of ``k`` consecutive repetitions (``group_size=k``).

Averages are computed per batch, in float32, in chunks of bounded size: a subject's array is
never materialised.

Example
-------
>>> ds = EEGDataset(store, ["sub-01"], "training", channels="occipito-parietal")  # doctest: +SKIP
>>> batch = ds.get_batch(np.arange(8))                                              # doctest: +SKIP
>>> batch["eeg"].shape                                                              # doctest: +SKIP
torch.Size([8, 17, 250])
>>> for batch in ds.loader(batch_size=1024, seed=0):                                # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from eegvision.checks import check_list, check_names
from eegvision.readers.channels import resolve_channels

#: Upper bound on the raw (store dtype) bytes gathered at once when averaging repetitions.
_CHUNK_BYTES = 64 * 1024 * 1024


class StoreLike(Protocol):
    """The read interface shared by ``open_store`` and ``open_things_eeg2`` (docs/design.md)."""

    @property
    def subjects(self) -> Sequence[str]: ...
    @property
    def ch_names(self) -> Sequence[str]: ...
    @property
    def sfreq(self) -> float: ...
    @property
    def times(self) -> np.ndarray: ...
    def splits(self, subject: str) -> Sequence[str]: ...
    def array(self, subject: str, split: str) -> np.ndarray: ...
    def metadata(self, subject: str, split: str) -> Any: ...


# --------------------------------------------------------------------------------------------
# Argument parsing shared with eegvision.data.interop
# --------------------------------------------------------------------------------------------


def time_window_slice(times: Sequence[float], window: tuple[float | None, float | None] | None,
                      sfreq: float | None = None) -> slice:
    """Samples of ``times`` inside ``window = (tmin, tmax)`` seconds, as a slice.

    The start is inclusive and the end exclusive, so ``(0.0, 1.0)`` on 250 Hz samples at
    ``0.000 ... 0.996`` s keeps all 250 samples and ``(0.0, 0.5)`` keeps the first 125.
    ``None`` (or ``None`` for one bound) means "from the first" / "to the last" sample.

    Raises
    ------
    ValueError
        If a bound lies outside the recording or the window holds no sample; the message gives
        the valid range.
    """
    times = np.asarray(times, dtype=np.float64)
    n = len(times)
    if window is None:
        return slice(0, n)
    if isinstance(window, (str, bytes)) or len(window) != 2:
        raise ValueError(f"window must be a pair (tmin, tmax) in seconds; got {window!r}.")
    if sfreq is None:
        sfreq = 1.0 / float(np.median(np.diff(times))) if n > 1 else 1.0
    step = 1.0 / float(sfreq)
    tol = 1e-3 * step  # absorbs float noise in stored times such as 0.30000000000000004
    lo, hi = float(times[0]), float(times[-1]) + step
    tmin = lo if window[0] is None else float(window[0])
    tmax = hi if window[1] is None else float(window[1])
    valid = f"valid range is [{lo:g}, {hi:g}) s ({n} samples at {float(sfreq):g} Hz)"
    if tmin < lo - tol or tmax > hi + tol:
        raise ValueError(f"Time window ({tmin:g}, {tmax:g}) s is outside the recording: {valid}.")
    start = int(np.searchsorted(times, tmin - tol, side="left"))
    stop = int(np.searchsorted(times, tmax - tol, side="left"))
    if stop <= start:
        raise ValueError(
            f"Time window ({tmin:g}, {tmax:g}) s contains no sample (start inclusive, end "
            f"exclusive); {valid}. Widen the window."
        )
    return slice(start, stop)


def parse_average(average: bool, group_size: int | None) -> int | None:
    """The repetitions averaged per sample: ``None`` for single trials, ``0`` for all, else ``k``."""
    if not isinstance(average, (bool, np.bool_)):
        raise ValueError(f"average is True (the mean over all repetitions) or False; got {average!r}. For the "
                         "means of groups of k repetitions pass group_size=k.")
    if group_size is None:
        return 0 if average else None
    if average:
        raise ValueError(f"average=True (all repetitions) and group_size={group_size} (groups of {group_size}) "
                         "contradict each other; give one of them.")
    if isinstance(group_size, (bool, np.bool_)) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"group_size is the number of repetitions averaged per sample, an integer >= 1; "
                         f"got {group_size!r}.")
    return None if int(group_size) == 1 else int(group_size)


def check_subjects(store: StoreLike, subjects: Sequence[str], split: str) -> list[str]:
    """Validate subject names and the split against ``store``; return them as a list."""
    subjects = check_list("subjects", subjects, "['sub-01', 'sub-02']")
    if not subjects:
        raise ValueError("subjects is empty; give at least one subject name, e.g. ['sub-01'].")
    if len(set(subjects)) != len(subjects):
        dup = sorted({s for s in subjects if subjects.count(s) > 1})
        raise ValueError(f"subjects lists {', '.join(dup)} more than once; give each subject once.")
    check_names("Subject", subjects, list(store.subjects), str(getattr(store, "path", "the data")))
    for s in subjects:
        splits = list(store.splits(s))
        if split not in splits:
            raise ValueError(
                f"Subject {s!r} has no split {split!r}; available splits: {', '.join(splits)}."
            )
    return subjects


def condition_concepts(metadata: Any, n_conditions: int) -> np.ndarray:
    """Concept index of every condition (``-1`` where the metadata has no row), from a table."""
    cond = np.asarray(metadata["condition"], dtype=np.int64)
    concept = np.asarray(metadata["concept_index"], dtype=np.int64)
    out = np.full(n_conditions, -1, dtype=np.int64)
    ok = (cond >= 0) & (cond < n_conditions)
    out[cond[ok]] = concept[ok]
    return out


def _as_index(spec: Any, n: int) -> np.ndarray | slice:
    """A slice when ``spec`` selects a contiguous increasing run, otherwise the index array."""
    idx = np.asarray(spec, dtype=np.int64)
    if len(idx) == n and np.array_equal(idx, np.arange(n)):
        return slice(None)
    if len(idx) and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


class EpochBatchSampler(Sampler[np.ndarray]):
    """Yields index arrays (whole batches), reshuffled per epoch from ``(seed, epoch)``.

    The order of epoch ``e`` depends only on ``seed`` and ``e``, so a run resumed at epoch
    ``e`` (after ``set_epoch(e)``) sees exactly the batches of an uninterrupted run. Each full
    pass advances the epoch by one unless :meth:`set_epoch` is called (Lightning calls it).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size!r}.")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
        self.n, self.batch_size = int(n), int(batch_size)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch`` for the next pass."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` (a permutation when shuffling, else ``arange``)."""
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        rng = np.random.default_rng([self.seed, int(epoch)])
        return rng.permutation(self.n).astype(np.int64)

    def __iter__(self) -> Iterator[np.ndarray]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = self.order(epoch)
        stop = len(self) * self.batch_size if self.drop_last else self.n
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return math.ceil(self.n / self.batch_size)


class EEGLoader(DataLoader):
    """A ``DataLoader`` whose sampler yields whole batches; adds :meth:`set_epoch`."""

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle as for epoch ``epoch`` (for resumed runs)."""
        self.sampler.set_epoch(epoch)


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


class EEGDataset(Dataset):
    """Trials (or averaged repetitions) of some subjects and one split of a store.

    Parameters
    ----------
    store : Store
        An opened store (``open_store``) or in-place reader (``open_things_eeg2``).
    subjects : sequence of str
        Subject names, e.g. ``["sub-01", "sub-02"]``. Samples are ordered subject by
        subject (in this order), then condition, then repetition.
    split : str
        ``"training"`` or ``"test"`` (any split the store holds).
    average : bool, default False
        ``False``: one sample per trial. ``True``: one sample per condition, the mean over all
        its repetitions (use this for the test split).
    group_size : int, optional
        The means of consecutive groups of ``group_size`` repetitions instead (``n_reps // k`` samples per
        condition; a remainder is dropped); exclusive with ``average=True``.
    channels : None, "all", str or sequence of str
        Channel subset: a region preset (``"occipito-parietal"``, ``"occipital"``, ...), one
        channel name or a list of names; see :func:`eegvision.readers.channels.resolve_channels`.
        Channels come out in the order given (preset order for regions).
    window : (tmin, tmax) or None
        Time window in seconds against ``store.times``; start inclusive, end exclusive.
    conditions : array of int or None
        Keep only these condition indices (e.g. the training conditions of
        :func:`eegvision.data.splits.validation_split`). Used sorted.
    subject_ids : mapping or None
        Subject name -> integer id fed to the model (default: position in ``subjects``).
        Use ``-1`` for a subject the model has not seen (shared subject token).
    dtype : torch.dtype, default torch.float32
        dtype of the ``eeg`` tensor.

    Attributes
    ----------
    n_chans, n_times, sfreq, ch_names, times
        Signal shape and axes after the channel and time selection.
    n_subjects : int
        Number of subjects in this dataset.
    concepts : numpy.ndarray
        Concept index of every sample (for label look-ups).
    subject_index, condition_index, repetition_index : numpy.ndarray
        Per-sample position in ``subjects``, condition and repetition (``-1`` when averaged over
        all repetitions; the group index with ``group_size``).

    Notes
    -----
    ``get_batch`` returns a dict of tensors: ``eeg`` (B, n_chans, n_times), and LongTensors
    ``subject`` (model ids), ``condition``, ``concept``, ``image`` (the condition index
    within the split = the row of the split's image-feature file) and ``repetition``.
    """

    def __init__(
        self,
        store: StoreLike,
        subjects: Sequence[str],
        split: str,
        *,
        average: bool = False,
        group_size: int | None = None,
        channels: str | Sequence[str] | None = None,
        window: tuple[float | None, float | None] | None = None,
        conditions: Sequence[int] | np.ndarray | None = None,
        subject_ids: Mapping[str, int] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.store = store
        self.split = str(split)
        self.subjects = check_subjects(store, subjects, self.split)
        self.dtype = dtype
        self._k = parse_average(average, group_size)

        if subject_ids is None:
            subject_ids = {s: i for i, s in enumerate(self.subjects)}
        missing = [s for s in self.subjects if s not in subject_ids]
        if missing:
            raise ValueError(
                f"subject_ids has no id for {missing}; give an integer for every subject "
                f"(got keys {sorted(subject_ids)})."
            )
        self.subject_ids = {s: int(subject_ids[s]) for s in self.subjects}
        self._model_id = np.array([self.subject_ids[s] for s in self.subjects], dtype=np.int64)

        all_names = list(store.ch_names)
        chans = resolve_channels(channels, all_names)
        self.ch_names = [all_names[i] for i in chans]
        self._chan_sel = _as_index(chans, len(all_names))
        self.sfreq = float(store.sfreq)
        all_times = np.asarray(store.times, dtype=np.float64)
        self._time_sel = time_window_slice(all_times, window, self.sfreq)
        self.times = all_times[self._time_sel]
        self.n_chans, self.n_times = len(self.ch_names), len(self.times)
        self.n_subjects = len(self.subjects)

        self._arrays: dict[int, np.ndarray] = {}
        self._layout: list[tuple[int, int]] = []  # per subject: (groups per condition, reps/group)
        subj, cond, grp, rep, concept = [], [], [], [], []
        cond_request = None if conditions is None else np.unique(np.asarray(conditions, np.int64))
        if cond_request is not None and len(cond_request) == 0:
            raise ValueError("conditions is empty; pass None for all conditions.")
        for s_pos, name in enumerate(self.subjects):
            arr = self._array(s_pos)
            if arr.ndim != 4 or arr.shape[2] != len(all_names) or arr.shape[3] != len(all_times):
                raise ValueError(
                    f"{name}/{self.split}: expected an array (condition, repetition, "
                    f"{len(all_names)} channels, {len(all_times)} times); got shape {arr.shape}."
                )
            n_cond, n_rep = int(arr.shape[0]), int(arr.shape[1])
            if self._k is None:
                groups, k = n_rep, 1
            elif self._k == 0:
                groups, k = 1, n_rep
            else:
                if self._k > n_rep:
                    raise ValueError(
                        f"group_size={self._k} but {name}/{self.split} has only {n_rep} repetitions "
                        f"per condition; use average=True or group_size <= {n_rep}."
                    )
                groups, k = n_rep // self._k, self._k
            self._layout.append((groups, k))
            if cond_request is None:
                conds = np.arange(n_cond, dtype=np.int64)
            else:
                bad = cond_request[(cond_request < 0) | (cond_request >= n_cond)]
                if len(bad):
                    raise ValueError(
                        f"conditions {bad[:5].tolist()} are out of range for {name}/{self.split}, "
                        f"which has conditions 0..{n_cond - 1}."
                    )
                conds = cond_request
            cc = condition_concepts(store.metadata(name, self.split), n_cond)
            subj.append(np.full(len(conds) * groups, s_pos, dtype=np.int64))
            cond.append(np.repeat(conds, groups))
            g = np.tile(np.arange(groups, dtype=np.int64), len(conds))
            grp.append(g)
            rep.append(np.full_like(g, -1) if self._k == 0 else g)
            concept.append(np.repeat(cc[conds], groups))
        self.subject_index = np.concatenate(subj)
        self.condition_index = np.concatenate(cond)
        self.repetition_index = np.concatenate(rep)
        self.concepts = np.concatenate(concept)
        self._group = np.concatenate(grp)
        for a in (self.subject_index, self.condition_index, self.repetition_index, self.concepts):
            a.setflags(write=False)

    # ---------------------------------------------------------------- properties and pickling
    @property
    def average(self) -> bool:
        """Whether each sample is the mean over all repetitions of its condition."""
        return self._k == 0

    @property
    def group_size(self) -> int | None:
        """Repetitions averaged per sample in groups (None: single trials or all repetitions)."""
        return self._k or None

    def __len__(self) -> int:
        return len(self.subject_index)

    def __repr__(self) -> str:
        avg = {None: "single trials", 0: "averaged"}.get(self._k, f"averaged by {self._k}")
        return (f"EEGDataset({len(self)} samples, {self.split}, {avg}, "
                f"{self.n_subjects} subject(s), "
                f"{self.n_chans} ch x {self.n_times} samples @ {self.sfreq:g} Hz)")

    def __getstate__(self) -> dict:
        # Memory maps would be pickled as full copies (spawn workers); reopen them instead.
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state

    def _array(self, s_pos: int) -> np.ndarray:
        arr = self._arrays.get(s_pos)
        if arr is None:
            arr = self.store.array(self.subjects[s_pos], self.split)
            self._arrays[s_pos] = arr
        return arr

    # ---------------------------------------------------------------- reading
    def _read_subject(self, s_pos: int, cond: np.ndarray, grp: np.ndarray,
                      out: np.ndarray) -> None:
        """Fill ``out`` (m, n_chans, n_times) float32 with samples ``(cond, grp)``, sorted."""
        arr = self._array(s_pos)
        groups, k = self._layout[s_pos]
        n_cond, n_rep, n_ch_all, n_t_all = arr.shape
        ts, cs = self._time_sel, self._chan_sel
        if groups * k == n_rep and arr.flags.c_contiguous:
            flat = arr.reshape(n_cond * groups, k, n_ch_all, n_t_all)  # a view, no copy
            keys = cond * groups + grp
        else:  # remainder repetitions dropped, or a strided array: gather without reshaping
            flat, keys, offsets = arr, None, np.arange(k, dtype=np.int64)

        per_item = k * n_ch_all * n_t_all * arr.dtype.itemsize
        chunk = max(1, _CHUNK_BYTES // per_item) if k > 1 else len(cond)
        for a in range(0, len(cond), chunk):
            b = min(a + chunk, len(cond))
            if keys is None:
                reps = grp[a:b, None] * k + offsets  # (m, k) repetition indices
                blocks = [(slice(a, b), flat[cond[a:b, None], reps, :, ts])]
            else:
                kk = keys[a:b]
                breaks = np.flatnonzero(np.diff(kk) != 1) + 1
                if len(breaks) + 1 <= max(1, (b - a) // 16):  # few contiguous runs: slice them
                    starts = np.r_[0, breaks]
                    stops = np.r_[breaks, b - a]
                    blocks = [(slice(a + s, a + e), flat[kk[s]:kk[e - 1] + 1, :, :, ts])
                              for s, e in zip(starts.tolist(), stops.tolist())]
                else:
                    blocks = [(slice(a, b), flat[kk, :, :, ts])]
            for dst, raw in blocks:
                if not (isinstance(cs, slice) and cs == slice(None)):
                    raw = raw[:, :, cs]
                if k == 1:
                    out[dst] = raw[:, 0]
                else:
                    np.mean(raw, axis=1, dtype=np.float32, out=out[dst])

    def fetch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Like :meth:`get_batch`, but numpy arrays (``eeg`` float32, labels int64)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"indices out of range for a dataset of {n} samples: "
                             f"min {int(idx.min())}, max {int(idx.max())}.")
        idx = np.where(idx < 0, idx + n, idx)
        sub, cond, grp = self.subject_index[idx], self.condition_index[idx], self._group[idx]
        eeg = np.empty((len(idx), self.n_chans, self.n_times), dtype=np.float32)
        if len(idx):
            order = np.lexsort((grp, cond, sub))  # subject, then memmap order
            sub_sorted = sub[order]
            cuts = np.flatnonzero(np.diff(sub_sorted)) + 1
            for part in np.split(order, cuts):
                s_pos = int(sub[part[0]])
                buf = np.empty((len(part), self.n_chans, self.n_times), dtype=np.float32)
                self._read_subject(s_pos, cond[part], grp[part], buf)
                eeg[part] = buf  # restore the requested order
        return {
            "eeg": eeg,
            "subject": self._model_id[sub],
            "condition": cond,
            "concept": self.concepts[idx],
            "image": cond.copy(),
            "repetition": self.repetition_index[idx],
        }

    def get_batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor
                  ) -> dict[str, torch.Tensor]:
        """Samples ``indices`` as a dict of tensors, in the requested order.

        Returns
        -------
        dict
            ``eeg`` (B, n_chans, n_times) tensor of ``dtype``; LongTensors ``subject`` (model
            ids), ``condition``, ``concept``, ``image`` (condition index within the split) and
            ``repetition`` (``-1`` when averaged over all repetitions).
        """
        if isinstance(indices, torch.Tensor):
            indices = indices.detach().cpu().numpy()
        out = self.fetch(indices)
        # copies only read-only arrays (broadcast or memory-mapped): torch cannot hold them
        batch = {key: torch.from_numpy(np.ascontiguousarray(v) if np.asarray(v).flags.writeable else np.array(v))
                 for key, v in out.items()}
        if self.dtype != torch.float32:
            batch["eeg"] = batch["eeg"].to(self.dtype)
        return batch

    def __getitem__(self, index: int | Sequence[int] | np.ndarray | torch.Tensor
                    ) -> dict[str, torch.Tensor]:
        """One sample (``eeg`` of shape (n_chans, n_times), scalar labels), or a batch."""
        if isinstance(index, (int, np.integer)) or (
            isinstance(index, (np.ndarray, torch.Tensor)) and index.ndim == 0
        ):
            batch = self.get_batch(np.array([int(index)]))
            return {key: v[0] for key, v in batch.items()}
        return self.get_batch(index)

    def iter_conditions(self, max_bytes: int = _CHUNK_BYTES) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Every repetition of this dataset's conditions, in blocks of whole conditions of one subject.

        Yields ``(subject_position, conditions, eeg)`` with ``eeg`` float32 ``(m, n_reps, n_chans, n_times)``
        (channel and time selection applied; all the store's repetitions, whatever ``average``/``group_size``
        say) for the sorted ``conditions`` ``(m,)``, subject by subject, in sample order. Each block reads about
        ``max_bytes`` of the store through one slice of its memory map, whose pages then leave the process
        (:func:`eegvision.utils.release_mapped_pages`), so streaming a whole split keeps the resident memory
        near one block.
        """
        from eegvision.utils import release_mapped_pages

        for s_pos in range(self.n_subjects):
            arr = self._array(s_pos)
            mine = self.subject_index == s_pos
            conds = np.unique(self.condition_index[mine])
            per_cond = max(1, int(np.prod(arr.shape[1:])) * arr.dtype.itemsize)
            step = max(1, int(max_bytes) // per_cond)
            for a in range(0, len(conds), step):
                part = conds[a:a + step]
                lo, hi = int(part[0]), int(part[-1]) + 1
                span = arr[lo:hi]  # one slice of the memory map (a view)
                raw = span if hi - lo == len(part) else span[part - lo]
                raw = raw[:, :, :, self._time_sel]
                if not (isinstance(self._chan_sel, slice) and self._chan_sel == slice(None)):
                    raw = raw[:, :, self._chan_sel]
                block = np.array(raw, dtype=np.float32)  # a copy: the pages can go
                release_mapped_pages(span)
                yield s_pos, part, block

    # ---------------------------------------------------------------- loading
    def loader(self, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
               num_workers: int = 0, **kwargs: Any) -> EEGLoader:
        """A DataLoader that fetches whole batches through :meth:`get_batch`.

        The sampler yields index arrays and the loader runs with ``batch_size=None``, so each
        worker call reads one batch with a single gather per subject. The order of epoch ``e``
        is a function of ``(seed, e)`` only; call ``loader.set_epoch(e)`` when resuming.

        Parameters
        ----------
        batch_size : int
            Samples per batch.
        shuffle : bool
            Reshuffle every epoch (seeded); otherwise sequential order.
        seed : int
            Seed of the shuffling.
        drop_last : bool
            Drop the last, incomplete batch.
        num_workers : int
            DataLoader worker processes.
        **kwargs
            Passed to :class:`torch.utils.data.DataLoader` (``pin_memory``,
            ``persistent_workers``, ``prefetch_factor``, ...).
        """
        sampler = EpochBatchSampler(len(self), batch_size, shuffle=shuffle, seed=seed,
                                    drop_last=drop_last)
        return EEGLoader(self, sampler=sampler, batch_size=None, num_workers=num_workers, **kwargs)
