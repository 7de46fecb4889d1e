"""Repetition mixing: each training sample is a fresh random average of one condition's repetitions.

Training on single trials shows the model the noise of every repetition; training on their mean
(``average=True``) gives cleaner inputs but only one sample per condition, which large encoders
memorise within a few epochs. :class:`RepetitionMix` sits between the two: a sample is the convex
combination :math:`\\sum_r w_r x_r` of a condition's repetitions with weights
:math:`w \\sim \\mathrm{Dirichlet}(1, \\dots, 1)`, redrawn for every batch. Its expected value is the
repetition mean and it never repeats, so it acts as a data augmentation that keeps the signal and
varies the noise (in the spirit of trial-averaging augmentation in EEG decoding).

Weights are a deterministic function of the seed and the batch's sample indices (not of a hidden
RNG state), so a resumed run draws the same weights as an uninterrupted one.
"""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["RepetitionMix"]


class RepetitionMix:
    """Samples are conditions of a single-trial dataset; each read mixes its repetitions.

    Parameters
    ----------
    trials
        An :class:`~eegvision.data.dataset.EEGDataset` of single trials (``average=False``).
    seed
        Seed of the mixing weights.
    concentration
        Dirichlet concentration (1: uniform over the simplex; large: close to the plain mean).

    Notes
    -----
    ``len()`` is the number of (subject, condition) pairs; :meth:`get_batch` returns the keys of
    :meth:`EEGDataset.get_batch` with ``repetition = -1``. Other attributes (``n_chans``,
    ``n_times``, ``sfreq``, ...) are those of ``trials``.
    """

    def __init__(self, trials: Any, seed: int = 0, concentration: float = 1.0) -> None:
        if getattr(trials, "average", False) or getattr(trials, "group_size", None):
            raise ValueError("RepetitionMix needs a single-trial dataset (average=False, no group_size); got "
                             f"{trials!r}.")
        if concentration <= 0:
            raise ValueError(f"concentration must be > 0; got {concentration}.")
        self.trials, self.seed, self.concentration = trials, int(seed), float(concentration)
        key = trials.subject_index.astype(np.int64) * (int(trials.condition_index.max()) + 1) \
            + trials.condition_index.astype(np.int64)
        order = np.argsort(key, kind="stable")
        uniq, start, counts = np.unique(key[order], return_index=True, return_counts=True)
        self._rows = [order[s:s + c] for s, c in zip(start, counts)]     # trial indices of each group
        first = order[start]
        self.subject_index = trials.subject_index[first]
        self.condition_index = trials.condition_index[first]
        self.concepts = trials.concepts[first]
        self.repetition_index = np.full(len(first), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._rows)

    def __getattr__(self, name: str) -> Any:
        if name == "trials":
            raise AttributeError(name)
        return getattr(self.trials, name)

    def __repr__(self) -> str:
        return f"RepetitionMix({len(self)} conditions of {self.trials!r}, seed={self.seed})"

    def weights(self, indices: np.ndarray) -> list[np.ndarray]:
        """The mixing weights of each requested sample (a deterministic function of seed and batch)."""
        digest = zlib.crc32(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
        rng = np.random.default_rng([self.seed, 0x313C, digest])
        return [rng.dirichlet(np.full(len(self._rows[i]), self.concentration)).astype(np.float32)
                for i in indices]

    def get_batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(indices, torch.Tensor):
            indices = indices.detach().cpu().numpy()
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices out of range for {len(self)} conditions: min {int(idx.min())}, "
                             f"max {int(idx.max())}.")
        rows = [self._rows[i] for i in idx]
        flat = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        eeg = self.trials.fetch(flat)["eeg"]
        out = np.empty((len(idx), *eeg.shape[1:]), dtype=np.float32)
        pos = 0
        for j, w in enumerate(self.weights(idx)):
            out[j] = np.tensordot(w, eeg[pos:pos + len(w)], axes=1)
            pos += len(w)
        batch = {
            "eeg": torch.from_numpy(out),
            "subject": torch.from_numpy(np.ascontiguousarray(self.trials._model_id[self.subject_index[idx]])),
            "condition": torch.from_numpy(self.condition_index[idx].copy()),
            "concept": torch.from_numpy(self.concepts[idx].copy()),
            "image": torch.from_numpy(self.condition_index[idx].copy()),
            "repetition": torch.from_numpy(self.repetition_index[idx].copy()),
        }
        if self.trials.dtype != torch.float32:
            batch["eeg"] = batch["eeg"].to(self.trials.dtype)
        return batch

    def __getitem__(self, index: int | Sequence[int] | np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(index, (int, np.integer)):
            return {k: v[0] for k, v in self.get_batch(np.array([int(index)])).items()}
        return self.get_batch(index)
