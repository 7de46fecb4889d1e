r"""Per-subject Euclidean alignment (EA) of EEG/MEG channels for cross-subject protocols.

Euclidean alignment (He & Wu, *IEEE TBME* 2020) makes every subject's data look alike to a decoder by
whitening each subject with its own mean spatial covariance. For subject :math:`s` with trials
:math:`X_i \in \mathbb R^{C \times T}` (each channel centred over time within the trial),

.. math::  \bar R_s = \frac1n \sum_{i=1}^{n} \frac{X_i X_i^\top}{T}, \qquad \tilde X_i = \bar R_s^{-1/2} X_i ,

so that the aligned trials' mean covariance is the identity for every subject. It uses no labels.

Which trials
------------
:math:`\bar R_s` is computed from the subject's **training-split** trials (all conditions and repetitions;
no labels), never from its test split: a held-out subject of a leave-one-subject-out fold is aligned with
its own calibration recording, not with the test EEG being decoded (that would make the protocol
transductive). A run records every matrix it used (:class:`~eegvision.training.rundir.UnitFolder`), and
embedding new data of a recorded subject reuses its matrix.

How it is applied
-----------------
:class:`AlignedStore` wraps any store (:class:`~eegvision.data.dataset.StoreLike`) and returns, for each
subject, a read-only array view whose blocks are multiplied by that subject's matrix on the channel axis as
they are read (the memory-mapped file is never copied or changed), so every reader of the store — the
dataset, its averaging, channel subsets and time windows — sees aligned data. Channel selection happens
after the alignment (the matrix mixes all recorded channels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eegvision.checks import check_choice
from eegvision.preprocess.mvnn import inverse_sqrt
from eegvision.progress import track

__all__ = ["ALIGNMENTS", "AlignedStore", "ChannelMixedArray", "alignment_matrices", "euclidean_reference"]

#: The alignment methods a run may name (``FitConfig.align``).
ALIGNMENTS = ("euclidean",)

_CHUNK_BYTES = 64 * 2**20


def euclidean_reference(epochs: np.ndarray, chunk_bytes: int = _CHUNK_BYTES) -> np.ndarray:
    """Mean spatial covariance :math:`\\bar R` ``(C, C)`` float64 of every trial of ``epochs``
    ``(n_conditions, n_repetitions, C, T)`` (an array or a memory map, read in chunks; each trial centred
    per channel over time)."""
    shape = np.shape(epochs)
    if len(shape) != 4:
        raise ValueError(f"Euclidean alignment needs epochs (conditions, repetitions, channels, times); got "
                         f"shape {shape}.")
    n_cond, n_rep, n_chans, n_times = shape
    if n_cond * n_rep == 0 or n_times < 2:
        raise ValueError(f"Euclidean alignment needs trials with >= 2 samples; got shape {shape}.")
    per_cond = n_rep * n_chans * n_times * 8
    step = max(1, chunk_bytes // max(per_cond, 1))
    total = np.zeros((n_chans, n_chans))
    for start in range(0, n_cond, step):
        x = np.asarray(epochs[start:start + step], dtype=np.float64).reshape(-1, n_chans, n_times)
        x = x - x.mean(-1, keepdims=True)
        total += np.einsum("nct,ndt->cd", x, x) / n_times
    return total / (n_cond * n_rep)


def alignment_matrices(store: Any, subjects: Sequence[str], method: str = "euclidean",
                       split: str = "training") -> dict[str, np.ndarray]:
    """``{subject: R^{-1/2}}`` from each subject's ``split`` trials (see the module docstring)."""
    check_choice("Alignment", method, ALIGNMENTS)
    out = {}
    for subject in track(list(subjects), description=f"{method} alignment"):
        ref = euclidean_reference(store.array(subject, split))
        try:
            out[subject] = inverse_sqrt(ref, list(store.ch_names))
        except ValueError as err:
            raise ValueError(f"Cannot align {subject}: {err}") from None
    return out


class ChannelMixedArray:
    """A read-only 4-D ``(conditions, repetitions, channels, times)`` array whose blocks come out multiplied
    by ``matrix`` on the channel axis: ``out[..., :, :] = matrix @ base[..., :, :]``.

    Indexing must keep the channel axis whole (``base[i, j, :, t]``); it returns float32 (float64 when
    ``base`` is float64). It is not C-contiguous (readers gather from it instead of reshaping it).
    """

    class _Flags:
        c_contiguous = False
        writeable = False

    flags = _Flags()

    def __init__(self, base: Any, matrix: np.ndarray) -> None:
        if len(base.shape) != 4:
            raise ValueError(f"Expected (conditions, repetitions, channels, times); got shape {base.shape}.")
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape != (base.shape[2], base.shape[2]):
            raise ValueError(f"The alignment matrix is {matrix.shape} but the data have {base.shape[2]} channels; "
                             "it must be (channels, channels).")
        self.base = base
        self.dtype = np.dtype(np.float64 if base.dtype == np.float64 else np.float32)
        self.matrix = matrix.astype(self.dtype)
        self.shape = tuple(base.shape)
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 2 and not (isinstance(key[2], slice) and key[2] == slice(None)):
            raise IndexError("ChannelMixedArray: index the channel axis with ':' (channels are selected after "
                             f"the alignment mixes them); got {key[2]!r}.")
        block = np.asarray(self.base[key], dtype=self.dtype)
        if block.ndim < 2 or block.shape[-2] != self.shape[2]:
            raise IndexError(f"ChannelMixedArray: the index {key!r} does not keep (channels, times) as the last "
                             "two axes.")
        return np.matmul(self.matrix, block)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class AlignedStore:
    """A store whose ``array(subject, split)`` is multiplied by the subject's alignment matrix (module
    docstring); everything else is the wrapped store's. Subjects without a matrix are refused."""

    def __init__(self, store: Any, matrices: Mapping[str, np.ndarray]) -> None:
        self._store = store
        self.matrices = {str(k): np.asarray(v, dtype=np.float64) for k, v in matrices.items()}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_store":
            raise AttributeError(name)
        return getattr(self._store, name)

    def array(self, subject: str, split: str) -> ChannelMixedArray:
        if subject not in self.matrices:
            raise KeyError(f"No alignment matrix for {subject!r} (aligned: {', '.join(sorted(self.matrices))}); "
                           "compute one with eegvision.data.alignment.alignment_matrices.")
        return ChannelMixedArray(self._store.array(subject, split), self.matrices[subject])
