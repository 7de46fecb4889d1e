"""Writers for the real on-disk layouts: THINGS-EEG2 pickles (preprocessed and raw), image folders,
ATM-style feature files, captions and THINGS-MEG-style ``-epo.fif``.

The pickles are byte-for-byte what ``pickle.dump(dict_of_numpy_arrays, f, protocol=4)`` writes
(the tests check this), but the big array is streamed in chunks so that a full-size subject
(8.3 GB) is written in constant memory: :func:`write_streamed_pickle` pickles a stand-in whose
raw-bytes payload is pulled from an iterator of chunks at the point where numpy's own reduce
would have written ``arr.tobytes()``.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from struct import pack

import numpy as np

from eegvision.utils import atomic_path

#: 300 sample times of a preprocessed THINGS-EEG2 epoch before the baseline is dropped (−0.2 … 0.996 s).
PREPROCESSED_TIMES = np.arange(-50, 250, dtype=np.float64) / 250.0


class _StreamedArray:
    """Placeholder for an ndarray whose bytes come from ``chunks`` (C order) while pickling."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, chunks: Iterable[np.ndarray]) -> None:
        self.shape, self.dtype, self.chunks = tuple(shape), np.dtype(dtype), chunks


class _ChunkBytes:
    def __init__(self, nbytes: int, chunks: Iterator[bytes]) -> None:
        self.nbytes, self.chunks = nbytes, chunks


class _StreamingPickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pure-Python pickler that writes ``_StreamedArray`` exactly as numpy would write the array."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def reducer_override(self, obj):  # noqa: D401 - pickle hook
        if isinstance(obj, _StreamedArray):
            func, args, state = np.zeros((0,), obj.dtype).__reduce_ex__(self.proto)
            nbytes = int(np.prod(obj.shape)) * obj.dtype.itemsize
            payload = _ChunkBytes(nbytes, _as_bytes(obj.chunks, obj.shape, obj.dtype))
            return func, args, (state[0], obj.shape, state[2], False, payload)
        return NotImplemented

    def _save_chunk_bytes(self, obj: _ChunkBytes) -> None:
        n = obj.nbytes
        if n < self.framer._FRAME_SIZE_TARGET:       # small: exactly what save_bytes does
            self.save_bytes(b"".join(obj.chunks))
            return
        header = (pickle.BINBYTES8 + pack("<Q", n)) if n > 0xFFFFFFFF else (pickle.BINBYTES + pack("<I", n))
        first = next(obj.chunks, b"")
        self.framer.write_large_bytes(header, first)
        written = len(first)
        for chunk in obj.chunks:
            self.framer.file_write(chunk)
            written += len(chunk)
        if written != n:
            raise ValueError(f"Streamed array: expected {n} bytes from the chunks, got {written}.")
        self.memoize(obj)

    dispatch[_ChunkBytes] = _save_chunk_bytes


def _as_bytes(chunks: Iterable[np.ndarray], shape: tuple[int, ...], dtype: np.dtype) -> Iterator[bytes]:
    for chunk in chunks:
        chunk = np.ascontiguousarray(chunk, dtype=dtype)
        if chunk.shape[1:] != tuple(shape[1:]):
            raise ValueError(f"Chunk of shape {chunk.shape} does not fit an array of shape {shape}.")
        yield chunk.data.cast("B") if chunk.size else b""


def write_streamed_pickle(
    path: str | Path, items: dict, key: str, shape: Sequence[int], dtype: np.dtype | str,
    chunks: Iterable[np.ndarray], protocol: int = 4,
) -> Path:
    """Atomically write ``pickle.dump({**items, key: array}, protocol)`` with ``array`` streamed.

    ``items`` gives the dict entries in order; ``items[key]`` is a placeholder that marks where the
    array goes (its value is ignored). ``chunks`` yields consecutive slices along axis 0 whose
    concatenation has ``shape``; the file is byte-identical to pickling the whole array.
    """
    if key not in items:
        raise ValueError(f"{key!r} must be one of the items' keys to fix its position; got {list(items)}.")
    d = {k: (_StreamedArray(tuple(shape), np.dtype(dtype), chunks) if k == key else v) for k, v in items.items()}
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        buf = io.BufferedWriter(f, buffer_size=1 << 20) if not isinstance(f, io.BufferedWriter) else f
        _StreamingPickler(buf, protocol=protocol).dump(d)
        buf.flush()
    return path


def write_preprocessed_eeg(
    path: str | Path, shape: Sequence[int], chunks: Iterable[np.ndarray], ch_names: Sequence[str],
    times: np.ndarray = PREPROCESSED_TIMES,
) -> Path:
    """``preprocessed_eeg_{training,test}.npy``: dict ``preprocessed_eeg_data`` float64 (cond, rep, chan,
    time), ``ch_names`` (list) and ``times`` (300 entries, the first 50 from the dropped baseline)."""
    items = {"preprocessed_eeg_data": None, "ch_names": list(ch_names), "times": np.asarray(times, np.float64)}
    return write_streamed_pickle(path, items, "preprocessed_eeg_data", shape, np.float64, chunks)


def write_raw_eeg(path: str | Path, data: np.ndarray, ch_names: Sequence[str], ch_types: Sequence[str],
                  sfreq: float) -> Path:
    """``raw_eeg_{training,test}.npy``: dict ``raw_eeg_data`` (channels incl. stim, samples) float64,
    ``ch_names``, ``ch_types`` and ``sfreq`` (pickle protocol 4)."""
    if data.shape[0] != len(ch_names) or len(ch_names) != len(ch_types):
        raise ValueError(f"Raw data has {data.shape[0]} rows for {len(ch_names)} names / {len(ch_types)} types.")
    items = {"raw_eeg_data": None, "ch_names": list(ch_names), "ch_types": list(ch_types), "sfreq": sfreq}
    step = max(1, (1 << 24) // max(1, data.shape[1] * 8))
    chunks = (data[i:i + step] for i in range(0, data.shape[0], step))
    return write_streamed_pickle(path, items, "raw_eeg_data", data.shape, np.float64, chunks)


def write_images(root: str | Path, folders: Sequence[str], files: Sequence[Sequence[str]],
                 render, quality: int = 90, description: str = "images") -> list[Path]:
    """Write ``root/folder/file.jpg`` for each image; ``render(i)`` returns image ``i``'s uint8 RGB array.

    Images are numbered in folder order then file order, i.e. the sorted order readers use.
    """
    from PIL import Image

    from eegvision.progress import track

    root = Path(root)
    jobs = [(root / folder / name) for folder, names in zip(folders, files) for name in names]
    for i, target in enumerate(track(jobs, description=description)):
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".jpg") as tmp:
            Image.fromarray(render(i)).save(tmp, format="JPEG", quality=quality)
    return jobs


def write_features(path: str | Path, img_features: np.ndarray, text_features: np.ndarray) -> Path:
    """ATM-style cache ``{'img_features': (n_images, D), 'text_features': (n_concepts, D)}`` (float32
    tensors; loadable with ``torch.load(..., weights_only=True)``)."""
    import torch

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"img_features": torch.from_numpy(np.ascontiguousarray(img_features, np.float32)),
                    "text_features": torch.from_numpy(np.ascontiguousarray(text_features, np.float32))}, tmp)
    return Path(path)


def write_tsv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """A small tab-separated table (tabs/newlines inside values are replaced by spaces)."""
    def clean(v) -> str:
        return str(v).replace("\t", " ").replace("\n", " ")

    lines = ["\t".join(header)] + ["\t".join(clean(v) for v in row) for row in rows]
    with atomic_path(path, suffix=".tsv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)


def write_meg_epochs(path: str | Path, data: np.ndarray, events: np.ndarray, ch_names: Sequence[str],
                     sfreq: float, tmin: float) -> Path:
    """THINGS-MEG-style ``preprocessed_P1-epo.fif``: ``mne.EpochsArray`` of MEG magnetometer channels
    (data in tesla), ``events`` ``(n, 3)`` with the image codes (catch trials 999999)."""
    import mne

    info = mne.create_info(list(ch_names), sfreq, ch_types="mag")
    codes = np.unique(events[:, 2])
    epochs = mne.EpochsArray(data, info, events=events, tmin=tmin,
                             event_id={str(int(c)): int(c) for c in codes}, verbose="error")
    with atomic_path(path, suffix="-epo.fif") as tmp:
        epochs.save(tmp, overwrite=True, verbose="error")
    return Path(path)
