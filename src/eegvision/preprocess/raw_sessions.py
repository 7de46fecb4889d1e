"""THINGS-EEG2 raw recordings, one session at a time: find the files, read them safely, epoch them.

Steps 1-5 of :mod:`eegvision.preprocess.raw_things_eeg2` (which merges the sessions, whitens them and
writes the result): ``RAW_ROOT/sub-XX/ses-0S/raw_eeg_{training,test}.npy`` are located
(:func:`find_raw_files`), parsed without executing anything and memory-mapped
(:func:`load_raw_recording`), and each session's partition is epoched, resampled, sorted by condition
with a seeded choice of repetitions and cropped to 0 ... 1 s (:func:`epoch_session`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegvision.checks import check_choice, check_list, check_names, check_positive
from eegvision.progress import track
from eegvision.readers.channels import THINGS_EEG2_CHANNELS

__all__ = [
    "DEFAULT_SEED",
    "PARTITIONS",
    "TARGET_CODE",
    "SessionEpochs",
    "epoch_session",
    "find_raw_files",
    "load_raw_recording",
]

#: The two partitions of THINGS-EEG2, in the order they are processed.
PARTITIONS: tuple[str, str] = ("test", "training")
#: Event code of the target (catch) trials of the THINGS-EEG2 RSVP task.
TARGET_CODE = 99999
DEFAULT_SEED = 20200220
_PARTITION_ID = {"test": 0, "training": 1}
_SUB_RE = re.compile(r"^sub-(\d+)$")
_SES_RE = re.compile(r"^ses-(\d+)$")


# ----------------------------------------------------------------------------------------------
# Files


def _subject_name(s: str | int) -> str:
    if isinstance(s, (int, np.integer)) or (isinstance(s, str) and s.isdigit()):
        return f"sub-{int(s):02d}"
    return str(s)


def _session_number(s: str | int) -> int:
    if isinstance(s, (int, np.integer)):
        return int(s)
    m = _SES_RE.match(str(s)) or re.match(r"^(\d+)$", str(s))
    if not m:
        raise ValueError(f"Session {s!r} is not a session number; use 1, 2, ... or 'ses-01'.")
    return int(m.group(1))


def find_raw_files(
    raw_root: str | os.PathLike,
    subjects: Sequence[str | int] | None = None,
    sessions: Sequence[str | int] | None = None,
) -> dict[str, dict[int, dict[str, Path]]]:
    """Locate ``RAW_ROOT/sub-XX/ses-0S/raw_eeg_{training,test}.npy``.

    ``RAW_ROOT`` may also be the folder that holds ``Raw_data/``.

    Returns
    -------
    dict
        ``{subject: {session_number: {"training": path, "test": path}}}``, sorted.
    """
    root = Path(raw_root)
    if not root.is_dir():
        raise FileNotFoundError(f"Raw THINGS-EEG2 folder not found: {root}. Pass the folder holding sub-XX/ses-0S/.")
    if not any(_SUB_RE.match(p.name) for p in root.iterdir()) and (root / "Raw_data").is_dir():
        root = root / "Raw_data"
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and _SUB_RE.match(p.name))
    if not available:
        raise FileNotFoundError(
            f"No sub-XX folders in {root}. Expected RAW_ROOT/sub-01/ses-01/raw_eeg_training.npy (THINGS-EEG2 raw)."
        )
    subjects = check_list("subjects", subjects, "['sub-01', 2]") if subjects is not None else []
    sessions = check_list("sessions", sessions, "[1, 'ses-02']") if sessions is not None else []
    wanted = check_names("Subject", [_subject_name(s) for s in subjects], available, str(root)) or available
    want_ses = sorted({_session_number(s) for s in sessions}) or None
    out: dict[str, dict[int, dict[str, Path]]] = {}
    for sub in wanted:
        ses_dirs = {int(_SES_RE.match(p.name).group(1)): p for p in (root / sub).iterdir()
                    if p.is_dir() and _SES_RE.match(p.name)}
        numbers = want_ses or sorted(ses_dirs)
        if not numbers:
            raise FileNotFoundError(f"No ses-0S folders in {root / sub}.")
        missing_ses = [n for n in numbers if n not in ses_dirs]
        if missing_ses:
            raise FileNotFoundError(
                f"{sub}: session(s) {missing_ses} not found in {root / sub} (found {sorted(ses_dirs)})."
            )
        out[sub] = {}
        for n in numbers:
            files = {part: ses_dirs[n] / f"raw_eeg_{part}.npy" for part in ("training", "test")}
            absent = [str(p) for p in files.values() if not p.is_file()]
            if absent:
                raise FileNotFoundError(
                    f"{sub} session {n}: missing {', '.join(absent)}. Every session needs both "
                    "raw_eeg_training.npy and raw_eeg_test.npy (MVNN is estimated per session)."
                )
            out[sub][n] = files
    return out


def load_raw_recording(path: str | os.PathLike) -> dict[str, Any]:
    """Read one raw THINGS-EEG2 file safely (no pickle code runs; the signal is memory-mapped).

    Returns
    -------
    dict
        ``raw_eeg_data`` (channels x samples, read-only array), ``ch_names`` (list of str),
        ``ch_types`` (list of str), ``sfreq`` (float).
    """
    from eegvision.readers.pickle_values import ArrayRef
    from eegvision.readers.safe_pickle import load_data_pickle

    path = Path(path)
    rec = load_data_pickle(path)
    if not isinstance(rec, dict):
        raise ValueError(f"{path}: expected a pickled dict (THINGS-EEG2 raw file); found {type(rec).__name__}.")
    missing = [k for k in ("raw_eeg_data", "ch_names", "sfreq") if k not in rec]
    if missing:
        raise ValueError(
            f"{path}: missing key(s) {missing}; a THINGS-EEG2 raw file holds raw_eeg_data, ch_names, "
            f"ch_types and sfreq (found {sorted(map(str, rec))})."
        )
    data = rec["raw_eeg_data"]
    data = data.memmap() if isinstance(data, ArrayRef) else np.asarray(data)
    ch_names = [str(c) for c in np.asarray(rec["ch_names"]).tolist()]
    if data.ndim != 2 or data.shape[0] != len(ch_names):
        raise ValueError(
            f"{path}: raw_eeg_data has shape {data.shape} but there are {len(ch_names)} ch_names; expected "
            "(channels, samples) with one row per channel name."
        )
    if data.dtype.kind not in "fiu":
        raise ValueError(f"{path}: raw_eeg_data has dtype {data.dtype}; expected a numeric array.")
    ch_types = rec.get("ch_types")
    if ch_types is None:
        ch_types = ["stim" if c.lower() == "stim" else "eeg" for c in ch_names]
    ch_types = [str(t) for t in np.asarray(ch_types).tolist()]
    if len(ch_types) != len(ch_names):
        raise ValueError(f"{path}: {len(ch_types)} ch_types for {len(ch_names)} channels.")
    sfreq = check_positive(f"{path}: sfreq", float(np.asarray(rec["sfreq"])))
    return {"raw_eeg_data": data, "ch_names": ch_names, "ch_types": ch_types, "sfreq": sfreq}


# ----------------------------------------------------------------------------------------------
# One session


@dataclass
class SessionEpochs:
    """One session and partition after epoching, sorting and cropping.

    Attributes
    ----------
    codes : ndarray of int, (n_conditions,)
        Event code of each condition (THINGS-EEG2: 1-based image index within the partition).
    data : ndarray, (n_conditions, n_reps, n_chans, n_times)
        Post-stimulus data (0 ... 1 s; the whole epoch with ``crop=False``), float64; may be a
        writeable ``numpy.memmap``.
    times : ndarray
        All epoch times after resampling (-0.2 ... 0.996 s, 300 entries at 250 Hz).
    crop_start : int
        Index of time 0 in ``times`` (``data`` holds ``times[crop_start:]``).
    """

    codes: np.ndarray
    data: np.ndarray
    times: np.ndarray
    crop_start: int


def _seed_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (2**63), *keys]))


def epoch_session(
    rec: dict[str, Any],
    *,
    session: int,
    partition: str,
    sfreq: float = 250.0,
    tmin: float = -0.2,
    tmax: float = 1.0,
    seed: int = DEFAULT_SEED,
    ch_names: Sequence[str] = THINGS_EEG2_CHANNELS,
    out_path: str | os.PathLike | None = None,
    chunk: int = 256,
    source: str = "recording",
    crop: bool = True,
) -> SessionEpochs:
    """Epoch, resample, sort and crop one session's partition (steps 1-5 of the module docs).

    Parameters
    ----------
    rec : dict
        As returned by :func:`load_raw_recording`.
    session, partition : int, str
        Identify the random stream for the repetition choice (``partition`` in :data:`PARTITIONS`).
    sfreq, tmin, tmax : float
        Target rate and epoch window (s); the data are cropped to ``times >= 0``.
    seed : int
        Seed of the repetition choice.
    ch_names : sequence of str
        Channels to keep, in this order.
    out_path : path-like, optional
        Write the sorted array to this ``.npy`` file (memory-mapped) instead of memory.
    chunk : int
        Epochs loaded and resampled at a time.
    source : str
        Name used in messages.
    crop : bool
        Keep only ``times >= 0`` (the pipeline's step; ``False`` keeps the baseline for inspection).
    """
    import mne

    check_choice("partition", partition, PARTITIONS)
    names = rec["ch_names"]
    lower = {n.lower(): i for i, n in enumerate(names)}
    stim = next((n for n in names if n.lower() == "stim"), None)
    if stim is None:
        raise ValueError(f"{source}: no 'stim' channel among {len(names)} channels; events cannot be found.")
    missing = [c for c in ch_names if c.lower() not in lower]
    if missing:
        raise ValueError(
            f"{source}: {len(missing)} of the {len(ch_names)} THINGS-EEG2 channels are missing: "
            f"{', '.join(missing)}. The recording has: {', '.join(n for n in names if n != stim)}."
        )
    picks = [lower[c.lower()] for c in ch_names]

    info = mne.create_info(list(names), float(rec["sfreq"]), list(rec["ch_types"]), verbose=False)
    raw = mne.io.RawArray(rec["raw_eeg_data"], info, copy="auto", verbose=False)
    events = mne.find_events(raw, stim_channel=stim, verbose=False)
    events = events[events[:, 2] != TARGET_CODE]
    if len(events) == 0:
        raise ValueError(f"{source}: no image events on the stim channel (after dropping targets {TARGET_CODE}).")
    # Epochs that do not fit in the recording would be dropped silently by MNE: drop and say so.
    first, n_samp = raw.first_samp, raw.n_times
    lo = events[:, 0] - first + int(np.round(tmin * raw.info["sfreq"]))
    hi = events[:, 0] - first + int(np.round(tmax * raw.info["sfreq"]))
    inside = (lo >= 0) & (hi < n_samp)
    if not inside.all():
        warnings.warn(
            f"{source}: {int((~inside).sum())} event(s) too close to the recording edge for a "
            f"{tmin}..{tmax} s epoch were dropped (codes {sorted(set(events[~inside, 2].tolist()))[:10]}).",
            stacklevel=2,
        )
        events = events[inside]

    codes_all = events[:, 2]
    codes, counts = np.unique(codes_all, return_counts=True)
    n_reps = int(counts.min())
    if counts.max() != n_reps:
        vals, freq = np.unique(counts, return_counts=True)
        warnings.warn(
            f"{source}: conditions have unequal repetition counts "
            f"({', '.join(f'{f} with {v}' for v, f in zip(vals, freq))}); keeping {n_reps} randomly chosen "
            "repetitions of each.",
            stacklevel=2,
        )
    # Repetition choice: a random key per event, sorted within condition; the first n_reps win.
    rng = _seed_rng(seed, int(session), _PARTITION_ID[partition], 0)
    keys = rng.random(len(codes_all))
    order = np.lexsort((keys, codes_all))
    cond_row = np.searchsorted(codes, codes_all)
    group_start = np.searchsorted(codes_all[order], codes, side="left")
    rank = np.empty(len(codes_all), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(group_start, counts)
    keep = np.flatnonzero(rank < n_reps)  # in file order: sequential reads

    epochs = mne.Epochs(raw, events, tmin=tmin, tmax=tmax, baseline=(None, 0), picks=picks,
                        preload=False, proj=False, verbose=False)
    if list(epochs.ch_names) != [names[i] for i in picks]:  # pragma: no cover - MNE ordering guard
        raise RuntimeError("MNE reordered the picked channels; please report this.")
    n_chans = len(picks)
    out = None
    times = crop_start = None
    peak = np.zeros(n_chans)
    for start in track(range(0, len(keep), chunk), f"{source}: epoching", total=-(-len(keep) // chunk)):
        idx = keep[start : start + chunk]
        ep = epochs[idx].load_data()
        if ep.info["sfreq"] != sfreq:
            ep = ep.resample(sfreq, verbose=False)
        block = ep.get_data(copy=False)
        if block.shape[0] != len(idx):  # pragma: no cover - all bounds were checked above
            raise RuntimeError(f"{source}: MNE dropped epochs unexpectedly ({ep.drop_log}).")
        if out is None:
            times = np.asarray(ep.times, dtype=np.float64)
            crop_start = int(np.searchsorted(times, -0.5 / sfreq))
            first = crop_start if crop else 0
            shape = (len(codes), n_reps, n_chans, len(times) - first)
            if out_path is not None:
                out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float64, shape=shape)
            else:
                out = np.empty(shape, dtype=np.float64)
        out[cond_row[idx], rank[idx]] = block[..., first:]
        peak = np.maximum(peak, np.abs(block[..., crop_start:]).max(axis=(0, 2)))
    if out is None:  # pragma: no cover - keep is never empty when events exist
        raise ValueError(f"{source}: no epochs to keep.")
    flat = [ch_names[i] for i in np.flatnonzero(peak == 0)]
    if flat:
        warnings.warn(
            f"{source}: channel(s) {', '.join(flat)} are flat (all zeros after baseline correction); MVNN "
            "leaves them at zero. Check the recording.",
            stacklevel=2,
        )
    return SessionEpochs(codes=codes.astype(np.int64), data=out, times=times, crop_start=crop_start)
