r"""Per-subject alignment of EEG/MEG trials for cross-subject protocols: Euclidean alignment and centring.

Each subject :math:`s` gets its own affine map of every trial :math:`X_i \in \mathbb R^{C \times T}`,
:math:`\tilde X_i = M_s (X_i - \mu_s)`, computed from its own trials without labels
(:class:`SubjectAlignment`). Three methods (``FitConfig.align``):

``"euclidean"``
    Euclidean alignment (EA; He & Wu, *IEEE TBME* 2020): :math:`\mu_s = 0` and :math:`M_s = \bar R_s^{-1/2}`,
    the inverse square root of the subject's mean spatial covariance (each trial's channels centred over time),

    .. math::  \bar R_s = \frac1n \sum_{i=1}^{n} \frac{X_i X_i^\top}{T},

    so that the aligned trials' mean covariance is the identity for every subject.
``"centre"``
    :math:`M_s = I` and :math:`\mu_s = \frac1n \sum_i X_i`, the subject's mean trial (channels x times): every
    subject's mean evoked response is removed. The mean response is the same for every image, so it carries no
    information on what was seen, but it differs between subjects (scalp patterns, gains, latencies): a decoder
    trained on other subjects reads it as a bias that moves every embedding of a new subject the same way (the
    transductive *centring* of test embeddings, :mod:`eegvision.evaluation.calibration`, removes the same bias
    after the encoder, from the test EEG; this removes it before, from the subject's training split).
``"centre-euclidean"``
    Both: :math:`\mu_s` the mean trial and :math:`M_s` the inverse square root of the mean spatial covariance of the
    centred trials :math:`X_i - \mu_s`.

Which trials
------------
:math:`M_s` and :math:`\mu_s` are computed from the subject's **training-split** trials (all conditions and repetitions;
no labels), never from its test split: a held-out subject of a leave-one-subject-out fold is aligned with
its own calibration recording, not with the test EEG being decoded (that would make the protocol
transductive). A run records every matrix it used (:class:`~eegvision.training.rundir.UnitFolder`), and
embedding new data of a recorded subject reuses its matrix.

How it is applied
-----------------
:class:`AlignedStore` wraps any store (:class:`~eegvision.data.dataset.StoreLike`) and returns, for each
subject, a read-only array view whose blocks have the subject's mean trial subtracted and are multiplied by its
matrix on the channel axis as they are read (the memory-mapped file is never copied or changed), so every reader of the store — the
dataset, its averaging, channel subsets and time windows — sees aligned data. Channel selection happens
after the alignment (the matrix mixes all recorded channels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eegvision.checks import check_choice
from eegvision.preprocess.mvnn import inverse_sqrt
from eegvision.progress import track

__all__ = ["ALIGNMENTS", "AlignedStore", "ChannelMixedArray", "SubjectAlignment", "alignment_matrices",
           "euclidean_reference", "subject_alignments", "trial_moments"]

#: The alignment methods a run may name (``FitConfig.align``; module docstring).
ALIGNMENTS = ("euclidean", "centre", "centre-euclidean")

_CHUNK_BYTES = 64 * 2**20


def euclidean_reference(epochs: np.ndarray, chunk_bytes: int = _CHUNK_BYTES) -> np.ndarray:
    """Mean spatial covariance :math:`\\bar R` ``(C, C)`` float64 of every trial of ``epochs``
    ``(n_conditions, n_repetitions, C, T)`` (an array or a memory map, read in chunks; each trial centred
    per channel over time)."""
    n, _, scatter = trial_moments(epochs, chunk_bytes)
    return scatter / n


@dataclass(frozen=True)
class SubjectAlignment:
    """One subject's alignment :math:`\\tilde X = M (X - \\mu)`: ``matrix`` ``(C, C)`` and ``mean`` ``(C, T)`` or
    ``None`` (nothing subtracted), float64."""

    matrix: np.ndarray
    mean: np.ndarray | None = None


def trial_moments(epochs: np.ndarray, chunk_bytes: int = _CHUNK_BYTES) -> tuple[int, np.ndarray, np.ndarray]:
    """``(n, mean, scatter)`` of the trials of ``epochs`` ``(n_conditions, n_repetitions, C, T)`` in one pass
    (chunks of a memory map): the number of trials, the mean trial ``(C, T)`` and
    :math:`\\sum_i \\dot X_i \\dot X_i^\\top / T` ``(C, C)`` of the trials centred per channel over time
    (:math:`\\dot X_i`), all float64."""
    shape = np.shape(epochs)
    if len(shape) != 4:
        raise ValueError(f"Alignment needs epochs (conditions, repetitions, channels, times); got shape {shape}.")
    n_cond, n_rep, n_chans, n_times = shape
    if n_cond * n_rep == 0 or n_times < 2:
        raise ValueError(f"Alignment needs trials with >= 2 samples; got shape {shape}.")
    step = max(1, chunk_bytes // max(n_rep * n_chans * n_times * 8, 1))
    total, scatter = np.zeros((n_chans, n_times)), np.zeros((n_chans, n_chans))
    for start in range(0, n_cond, step):
        x = np.asarray(epochs[start:start + step], dtype=np.float64).reshape(-1, n_chans, n_times)
        total += x.sum(0)
        x = x - x.mean(-1, keepdims=True)
        scatter += np.einsum("nct,ndt->cd", x, x) / n_times
    n = n_cond * n_rep
    return n, total / n, scatter


def subject_alignments(store: Any, subjects: Sequence[str], method: str = "euclidean",
                       split: str = "training") -> dict[str, SubjectAlignment]:
    """``{subject: SubjectAlignment}`` of ``method`` from each subject's ``split`` trials, no labels (module
    docstring)."""
    check_choice("Alignment", method, ALIGNMENTS)
    out = {}
    for subject in track(list(subjects), description=f"{method} alignment"):
        n, mean, scatter = trial_moments(store.array(subject, split))
        if method == "centre":
            out[subject] = SubjectAlignment(np.eye(len(mean)), mean)
            continue
        ref = scatter / n
        if method == "centre-euclidean":  # the mean covariance of X_i - mean: the mean's own scatter removed
            mc = mean - mean.mean(-1, keepdims=True)
            ref = ref - mc @ mc.T / mean.shape[-1]
        try:
            matrix = inverse_sqrt(ref, list(store.ch_names))
        except ValueError as err:
            raise ValueError(f"Cannot align {subject}: {err}") from None
        out[subject] = SubjectAlignment(matrix, mean if method == "centre-euclidean" else None)
    return out


def alignment_matrices(store: Any, subjects: Sequence[str], method: str = "euclidean",
                       split: str = "training") -> dict[str, np.ndarray]:
    """``{subject: M}``: the matrices of :func:`subject_alignments` (for ``"euclidean"``, :math:`\\bar R^{-1/2}`)."""
    return {s: a.matrix for s, a in subject_alignments(store, subjects, method, split).items()}


class ChannelMixedArray:
    """A read-only 4-D ``(conditions, repetitions, channels, times)`` array whose blocks come out centred by
    ``mean`` ``(channels, times)`` (if given) and multiplied by ``matrix`` on the channel axis:
    ``out[..., :, :] = matrix @ (base[..., :, :] - mean)``.

    Indexing must keep the channel axis whole (``base[i, j, :, t]``); it returns float32 (float64 when
    ``base`` is float64). It is not C-contiguous (readers gather from it instead of reshaping it).
    """

    class _Flags:
        c_contiguous = False
        writeable = False

    flags = _Flags()

    def __init__(self, base: Any, matrix: np.ndarray, mean: np.ndarray | None = None) -> None:
        if len(base.shape) != 4:
            raise ValueError(f"Expected (conditions, repetitions, channels, times); got shape {base.shape}.")
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape != (base.shape[2], base.shape[2]):
            raise ValueError(f"The alignment matrix is {matrix.shape} but the data have {base.shape[2]} channels; "
                             "it must be (channels, channels).")
        if mean is not None and np.shape(mean) != tuple(base.shape[2:]):
            raise ValueError(f"The alignment mean is {np.shape(mean)} but the data's trials are {tuple(base.shape[2:])}; "
                             "it must be (channels, times).")
        self.base = base
        self.dtype = np.dtype(np.float64 if base.dtype == np.float64 else np.float32)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64).astype(self.dtype)
        identity = self.mean is not None and np.array_equal(matrix, np.eye(len(matrix)))  # "centre": no product
        self.matrix = None if identity else matrix.astype(self.dtype)
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
        if self.mean is not None:
            block = block - (self.mean[:, key[3]] if len(key) > 3 else self.mean)
        return block if self.matrix is None else np.matmul(self.matrix, block)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class AlignedStore:
    """A store whose ``array(subject, split)`` is aligned by the subject's :class:`SubjectAlignment` (module
    docstring; a bare ``(C, C)`` array is a matrix without a mean); everything else is the wrapped store's.
    Subjects without an alignment are refused."""

    def __init__(self, store: Any, alignments: Mapping[str, SubjectAlignment | np.ndarray]) -> None:
        self._store = store
        self.alignments = {str(k): v if isinstance(v, SubjectAlignment) else
                           SubjectAlignment(np.asarray(v, dtype=np.float64)) for k, v in alignments.items()}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_store":
            raise AttributeError(name)
        return getattr(self._store, name)

    def array(self, subject: str, split: str) -> ChannelMixedArray:
        if subject not in self.alignments:
            raise KeyError(f"No alignment matrix for {subject!r} (aligned: {', '.join(sorted(self.alignments))}); "
                           "compute one with eegvision.data.alignment.subject_alignments.")
        a = self.alignments[subject]
        return ChannelMixedArray(self._store.array(subject, split), a.matrix, a.mean)
