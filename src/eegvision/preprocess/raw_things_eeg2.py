"""THINGS-EEG2 raw recordings → the published 250 Hz preprocessing, with MNE.

Input: ``RAW_ROOT/sub-XX/ses-0S/raw_eeg_{training,test}.npy``, pickled dicts with ``raw_eeg_data``
(channels incl. ``stim`` x samples at 1000 Hz), ``ch_names``, ``ch_types`` and ``sfreq``. They are
read with :mod:`eegvision.readers.safe_pickle` (nothing in the file is ever executed) and the signal is
memory-mapped in place.

Steps (per session, one session in memory at a time; ATM's ``EEG-preprocessing``, adapted from
Gifford et al. 2022); 1-5 are :mod:`eegvision.preprocess.raw_sessions`, 6-8 this module:

1. ``mne.io.RawArray``; events from the ``stim`` channel (``mne.find_events``).
2. The 63 channels in THINGS order (:data:`eegvision.readers.channels.THINGS_EEG2_CHANNELS`).
3. Target trials (event code 99999) are dropped.
4. ``mne.Epochs`` from -0.2 to 1.0 s with ``baseline=(None, 0)`` at 1000 Hz, then
   ``epochs.resample(250)`` (300 samples, -0.200 ... 0.996 s).
5. Sorted by image condition (event code) with ``n_reps`` randomly chosen repetitions per condition
   (20 per test and 2 per training condition and session on the real data), and cropped to
   0 ... 0.996 s (250 samples).
6. MVNN: per session, the Ledoit-Wolf channel covariance of every (time x channel) epoch, averaged
   over repetitions then conditions; both partitions are whitened with its inverse square root
   (:mod:`eegvision.preprocess.mvnn`).
7. Sessions merged: test conditions concatenate the repetitions of all sessions (4 x 20 = 80);
   training condition *c* concatenates the repetitions of the sessions that showed it (2 x 2 = 4);
   repetitions are then shuffled.
8. Written as ``OUT/sub-XX/preprocessed_eeg_{training,test}.npy`` (pickle protocol 4, float64, the
   same dict as THINGS-EEG2's ``Preprocessed_data_250Hz``: ``preprocessed_eeg_data``, ``ch_names``,
   and ``times`` with the 300 epoch times although the data hold the last 250, as the real files
   do) and/or straight into an eegvision store.

No band-pass, notch or re-referencing is applied (none is in the reference either; "0.1-100 Hz" in
the ATM paper is the acquisition filter).

Where eegvision differs from the reference (ATM ``EEG-preprocessing``)
--------------------------------------------------------------------
* **Repetition sampling.** The reference calls ``sklearn.utils.shuffle(idx, random_state=seed,
  n_samples=max_rep)`` with the *same* seed for every condition, so every condition draws the
  same positions among its occurrences, and the merge applies one repetition permutation to all
  conditions (output repetition *r* comes from the same session for every condition). eegvision
  draws from a ``numpy.random.Generator`` seeded with ``(seed, session, partition)`` (selection)
  and ``(seed, partition)`` (merge shuffle), i.e. an independent draw per condition. Same
  distribution, no shared pattern across conditions; numbers differ from the reference's files.
* **Repetitions per session** are the smallest count found among the session's conditions
  (the reference hard-codes 20 / 2, which is what the real data hold); a warning names unequal
  counts. Across sessions, a condition with more repetitions than the smallest total is subsampled
  (seeded), with a warning; this only happens when ``sessions`` leaves some out.
* **Ledoit-Wolf** is the public closed form (identical to ``sklearn.covariance.ledoit_wolf``)
  computed for a batch of epochs at once, applied exactly as the reference's private
  ``sklearn.discriminant_analysis._cov(X, "auto")`` does (standardise, shrink, rescale); the tests
  check equality with both.
* **Inverse square root** via ``numpy.linalg.eigh`` (exactly symmetric and real) instead of
  ``scipy.linalg.fractional_matrix_power``; a non-positive-definite covariance is an error that
  names the channel responsible instead of a complex-valued result.
* **Memory.** The reference preloads every epoch of a session at 1000 Hz (about 10 GB for a training
  session) and pickles the merged 8.3 GB array through another in-memory copy. eegvision reads
  epochs lazily in chunks (baseline and resampling act per epoch, so the result is identical), keeps
  intermediate arrays in memory-mapped temporary files beside the output, and streams the pickles
  (:func:`write_eeg_pickle`, byte-identical to ``pickle.dump(..., protocol=4)``).
* Missing channels, a missing ``stim`` channel, missing session files and events too close to the
  recording edges (silently dropped by MNE in the reference) are reported.

Where the reference differs from Gifford et al.'s original THINGS-EEG2 code
--------------------------------------------------------------------------
* ``mvnn_covariance``: the original averages the training and test covariances (``"both"``); the
  reference uses the training partition only (``"train"``, eegvision's default, since it keeps the
  test recordings out of every estimate fitted for the training data).
* The original's released data are -0.2 ... 0.8 s at 100 Hz on 17 occipito-parietal channels; the
  reference epochs to 1.0 s, resamples to 250 Hz, keeps all 63 channels and crops the baseline off
  before MVNN (so the noise covariance is estimated on 0 ... 1 s).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import struct
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eegvision.checks import check_choice
from eegvision.preprocess.mvnn import inverse_sqrt, mvnn_covariance, whiten
from eegvision.preprocess.raw_sessions import (
    _PARTITION_ID,
    DEFAULT_SEED,
    PARTITIONS,
    SessionEpochs,
    _seed_rng,
    epoch_session,
    find_raw_files,
    load_raw_recording,
)
from eegvision.readers.channels import THINGS_EEG2_CHANNELS
from eegvision.utils import atomic_path

__all__ = ["merge_sessions", "preprocess_things_eeg2", "write_eeg_pickle"]


# ----------------------------------------------------------------------------------------------
# Across sessions


def merge_sessions(
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = DEFAULT_SEED,
    partition: str = "training",
    out_path: str | os.PathLike | None = None,
    chunk: int = 64,
    source: str = "subject",
) -> tuple[np.ndarray, np.ndarray]:
    """Merge sessions: each condition gets the repetitions of every session that showed it.

    Parameters
    ----------
    parts : sequence of (codes, data)
        Per session, condition codes (sorted) and data ``(cond, rep, chan, time)``.
    seed, partition : int, str
        Seed the per-condition shuffle of the repetition axis.
    out_path : path-like, optional
        Write the merged array to this ``.npy`` file (memory-mapped).

    Returns
    -------
    (codes, merged)
        Sorted union of codes and ``(n_codes, n_reps, chan, time)``; repetitions of a condition
        are concatenated in session order, then permuted with an independent random draw per
        condition. When totals differ, every condition keeps the smallest total (random subset).
    """
    codes = np.unique(np.concatenate([np.asarray(c) for c, _ in parts]))
    totals = np.zeros(len(codes), dtype=np.int64)
    rows = []
    for c, d in parts:
        c = np.asarray(c)
        pos = np.searchsorted(codes, c)
        totals[pos] += d.shape[1]
        rows.append(pos)
    n_out, max_total = int(totals.min()), int(totals.max())
    if n_out != max_total:
        vals, freq = np.unique(totals, return_counts=True)
        warnings.warn(
            f"{source} {partition}: conditions have unequal repetition totals across sessions "
            f"({', '.join(f'{f} with {v}' for v, f in zip(vals, freq))}); keeping {n_out} of each "
            "(random subset). Process all sessions to keep every repetition.",
            stacklevel=2,
        )
    tail = parts[0][1].shape[2:]
    shape = (len(codes), n_out, *tail)
    merged = (np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float64, shape=shape)
              if out_path is not None else np.empty(shape, dtype=np.float64))
    rng = _seed_rng(seed, _PARTITION_ID.get(partition, 2), 1)
    for start in range(0, len(codes), chunk):
        stop = min(start + chunk, len(codes))
        k = stop - start
        buf = np.zeros((k, max_total, *tail), dtype=np.float64)
        fill = np.zeros(k, dtype=np.int64)
        for (c, d), pos in zip(parts, rows):
            lo, hi = np.searchsorted(pos, [start, stop])  # this session's conditions in the chunk
            if lo == hi:
                continue
            local = pos[lo:hi] - start
            n_rep = d.shape[1]
            r_idx = fill[local][:, None] + np.arange(n_rep)
            buf[local[:, None], r_idx] = np.asarray(d[lo:hi], dtype=np.float64)
            fill[local] += n_rep
        keys = rng.random((k, max_total))
        keys[np.arange(max_total)[None, :] >= fill[:, None]] = np.inf
        pick = np.argsort(keys, axis=1, kind="stable")[:, :n_out]
        merged[start:stop] = buf[np.arange(k)[:, None], pick]
    return codes, merged


# ----------------------------------------------------------------------------------------------
# Output: THINGS-EEG2 pickles, streamed

_STAND_IN = bytes(range(256)) * 512  # 128 KiB: above pickle's 64 KiB framing threshold


def _bytes_header(n: int) -> bytes:
    """The opcode + length the C pickler writes before a bytes payload of ``n`` >= 256 bytes."""
    if n > 0xFFFFFFFF:
        return pickle.BINBYTES8 + struct.pack("<Q", n)
    return pickle.BINBYTES + struct.pack("<I", n)


def write_eeg_pickle(
    path: str | os.PathLike,
    data: np.ndarray,
    ch_names: Sequence[str],
    times: np.ndarray,
    key: str = "preprocessed_eeg_data",
) -> None:
    """Write ``{key: data, "ch_names": [...], "times": times}`` exactly as ``pickle.dump(protocol=4)``.

    ``pickle.dump`` serialises an array through ``ndarray.tobytes()``, i.e. a second in-memory copy
    (8.3 GB more for a THINGS-EEG2 training file). This writer produces the same bytes but streams
    the array buffer in chunks from memory or a memory-mapped file: it pickles the dict with a
    128 KiB stand-in for the array bytes (protocol 4 writes payloads of 64 KiB or more outside its
    frames, as ``BINBYTES``/``BINBYTES8`` + length + bytes), then writes the part before the
    stand-in, the real length header, the array and the part after. Written under a temporary
    name and renamed when complete.

    Parameters
    ----------
    path : path-like
        Target file (THINGS-EEG2 names it ``preprocessed_eeg_{training,test}.npy``).
    data : ndarray
        The array (``numpy.memmap`` welcome); stored C-ordered with its dtype.
    ch_names : sequence of str
    times : ndarray
        Stored as given (THINGS-EEG2 stores the 300 epoch times, including the baseline).
    key : str
        Dictionary key of the data array.
    """
    if not data.flags.c_contiguous:
        data = np.ascontiguousarray(data)
    obj = {key: data, "ch_names": [str(c) for c in ch_names], "times": np.asarray(times)}
    with atomic_path(path) as tmp:
        if data.nbytes < 2 * len(_STAND_IN) or data.ndim == 0:
            obj[key] = np.array(data)
            with open(tmp, "wb") as f:
                pickle.dump(obj, f, protocol=4)
            return

        class _Pickler(pickle.Pickler):
            def reducer_override(self, value):  # noqa: ANN001 - pickle API
                if value is data:
                    func, args, state = np.empty(0, dtype=data.dtype).__reduce__()
                    return func, args, (state[0], data.shape, state[2], False, _STAND_IN)
                return NotImplemented

        buf = io.BytesIO()
        _Pickler(buf, protocol=4).dump(obj)
        stream = buf.getvalue()
        header = _bytes_header(len(_STAND_IN))
        pos = stream.find(header + _STAND_IN)
        if pos < 0:  # pragma: no cover - guard against a future pickle layout
            raise RuntimeError("Unexpected pickle layout while streaming the array; please report this.")
        rows = max(1, (64 << 20) // max(1, data[0].nbytes))
        with open(tmp, "wb") as f:
            f.write(stream[:pos])
            f.write(_bytes_header(data.nbytes))
            for start in range(0, data.shape[0], rows):
                f.write(memoryview(np.ascontiguousarray(data[start : start + rows])).cast("B"))
            f.write(stream[pos + len(header) + len(_STAND_IN) :])


# ----------------------------------------------------------------------------------------------
# Driver


def _preprocess_subject(
    subject: str,
    files: dict[int, dict[str, Path]],
    work: Path,
    *,
    sfreq: float,
    mvnn: str,
    seed: int,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray, int]:
    """Steps 1-7 for one subject; merged arrays are memmaps inside ``work``."""
    per_partition: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {p: [] for p in PARTITIONS}
    times = crop_start = None
    for ses, paths in files.items():
        session: dict[str, SessionEpochs] = {}
        for part in PARTITIONS:
            rec = load_raw_recording(paths[part])
            session[part] = epoch_session(
                rec, session=ses, partition=part, sfreq=sfreq, seed=seed,
                out_path=work / f"{subject}_ses-{ses:02d}_{part}.npy", source=f"{subject} ses-{ses:02d} {part}",
            )
            del rec
            if times is None:
                times, crop_start = session[part].times, session[part].crop_start
            elif len(session[part].times) != len(times) or not np.allclose(session[part].times, times):
                raise ValueError(f"{paths[part]}: epoch times differ from the first file (different sfreq?).")
        cov = mvnn_covariance({p: s.data for p, s in session.items()}, use=mvnn)
        w = inverse_sqrt(cov, list(THINGS_EEG2_CHANNELS))
        for part in PARTITIONS:
            whiten(session[part].data, w)
            session[part].data.flush() if hasattr(session[part].data, "flush") else None
            per_partition[part].append((session[part].codes, session[part].data))
    merged = {}
    for part in PARTITIONS:
        merged[part] = merge_sessions(
            per_partition[part], seed=seed, partition=part, out_path=work / f"{subject}_{part}.npy", source=subject,
        )
    return merged, times, crop_start


def preprocess_things_eeg2(
    raw_root: str | os.PathLike,
    out: str | os.PathLike,
    subjects: Sequence[str | int] | None = None,
    sessions: Sequence[str | int] | None = None,
    sfreq: float = 250,
    mvnn_covariance: str = "train",
    seed: int = DEFAULT_SEED,
    to_store: bool = False,
    *,
    dtype: str = "float16",
    images: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Preprocess raw THINGS-EEG2 recordings like the published pipeline (see the module docs).

    Parameters
    ----------
    raw_root : path-like
        Folder with ``sub-XX/ses-0S/raw_eeg_{training,test}.npy`` (or the folder holding ``Raw_data/``).
    out : path-like
        With ``to_store=False``: a folder that receives ``sub-XX/preprocessed_eeg_{training,test}.npy``
        (the THINGS-EEG2 ``Preprocessed_data_250Hz`` layout; point eegvision or ATM's loaders at it).
        With ``to_store=True``: an eegvision store directory.
    subjects : sequence, optional
        ``["sub-01", ...]`` or numbers; all subjects by default.
    sessions : sequence, optional
        Session numbers to use (all by default). The pickle layout needs every training condition,
        so leaving sessions out only works with ``to_store=True``.
    sfreq : float
        Target sampling rate (250 Hz in the reference).
    mvnn_covariance : {"train", "both"}
        Noise covariance from the training partition (reference, default) or the mean of training
        and test (Gifford et al.'s original).
    seed : int
        Seed of the repetition choice and shuffle (the reference's 20200220 by default).
    to_store : bool
        Write an eegvision store instead of pickles.
    dtype : {"float16", "float32"}
        Store dtype (pickles are always float64 like the originals).
    images : path-like, optional
        With ``to_store``: the folder holding ``training_images/`` and ``test_images/``; recorded
        in the store with each condition's image path (counts are checked against the EEG).
    overwrite : bool
        Replace existing output files / store.

    Returns
    -------
    Path
        ``out``.
    """
    check_choice("mvnn_covariance", mvnn_covariance, ("train", "both"))
    files = find_raw_files(raw_root, subjects, sessions)
    out = Path(out)
    if not to_store:
        for sub in files:
            for part in ("training", "test"):
                target = out / sub / f"preprocessed_eeg_{part}.npy"
                if target.exists() and not overwrite:
                    raise FileExistsError(f"{target} exists; pass --overwrite to replace it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    ch_names = list(THINGS_EEG2_CHANNELS)
    with contextlib.ExitStack() as stack:
        writer = None
        for sub in files:
            with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".eegvision-preprocess-{sub}-") as tmp:
                merged, times, crop_start = _preprocess_subject(
                    sub, files[sub], Path(tmp), sfreq=float(sfreq), mvnn=mvnn_covariance, seed=seed,
                )
                if not to_store:
                    for part in ("training", "test"):
                        codes, data = merged[part]
                        if not np.array_equal(codes, np.arange(1, len(codes) + 1)):
                            raise ValueError(
                                f"{sub} {part}: the sessions processed cover {len(codes)} conditions but not "
                                f"1..{codes.max()} contiguously, so condition i of a THINGS-EEG2 file would not "
                                "be image i. Process all sessions, or write a store (--store), whose metadata "
                                "records each condition's image."
                            )
                        write_eeg_pickle(out / sub / f"preprocessed_eeg_{part}.npy", data, ch_names, times)
                else:
                    if writer is None:  # the epoch times are known once the first session is epoched
                        writer = stack.enter_context(_open_store(
                            out, ch_names=ch_names, sfreq=float(sfreq), times=times[crop_start:], dtype=dtype,
                            overwrite=overwrite, images=Path(images) if images is not None else None,
                        ))
                    sources = [p for ses in files[sub].values() for p in ses.values()]
                    for part in ("training", "test"):
                        codes, data = merged[part]
                        writer.add(subject=sub, split=part, data=data,
                                   metadata=_things_eeg2_metadata(sub, part, codes, images), sources=sources)
                del merged, data
    return out


# ----------------------------------------------------------------------------------------------
# Store output


def _open_store(path: Path, *, ch_names: list[str], sfreq: float, times: np.ndarray, dtype: str,
                overwrite: bool, images: Path | None = None):
    from eegvision.store.writer import StoreWriter

    roots = {"training": None, "test": None}
    if images is not None:
        roots = {part: Path(images) / f"{part}_images" for part in roots}
    return StoreWriter(path, dataset="things-eeg2", ch_names=ch_names, sfreq=sfreq, times=times, dtype=dtype,
                       ch_types=["eeg"] * len(ch_names), images=roots, overwrite=overwrite)


def _things_eeg2_metadata(subject: str, part: str, codes: np.ndarray, images: str | os.PathLike | None = None):
    """Per-condition metadata for conditions given by event code (1-based THINGS-EEG2 image number).

    Uses :func:`eegvision.readers.things_eeg2.things_eeg2_metadata` for images ``1..max(codes)`` (concept
    names from the image folders, else eegvision's THINGS tables) and keeps the rows of ``codes``.
    """
    from eegvision.readers.things_eeg2 import things_eeg2_metadata

    codes = np.asarray(codes, dtype=np.int64)
    image_set = None
    if images is not None:
        from eegvision.readers.images import scan_image_folder

        image_set = scan_image_folder(Path(images) / f"{part}_images")
    full = things_eeg2_metadata(subject, part, int(codes.max()), image_set)
    meta = full.iloc[codes - 1].reset_index(drop=True).drop(columns=["condition"])
    meta["event_code"] = codes
    return meta
