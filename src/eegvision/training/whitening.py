"""Noise whitening for any encoder (``FitConfig.whiten="mvnn"``): the MVNN matrix from the fitting data only.

MVNN (multivariate noise normalisation, as the THINGS-EEG2 pipeline and :mod:`eegvision.preprocess.mvnn` do it)
multiplies the channel axis of every epoch by :math:`W = \\hat\\Sigma^{-1/2}`. Here :math:`\\hat\\Sigma` is the
noise covariance of the *fitting* training conditions only — never validation, test or any later data: each
training epoch's residual around its condition mean is a (time × channel) observation matrix, its Ledoit–Wolf
covariance is averaged over the epochs and scaled by ``R/(R-1)``
(:class:`eegvision.evaluation.linear.ResidualCovariance`). With several training subjects (``joint``, ``loso``)
the subjects' covariances are averaged (one :math:`W` per unit; per-subject whitening is not done here).

The matrix is stored in the encoder (:meth:`eegvision.models.encoders.base.EEGEncoder.set_whitening`), which
applies it in ``forward``, so training, validation, test and any later ``embed`` of new data are whitened alike,
and the run's ``encoder/`` carries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eegvision.evaluation.linear import ResidualCovariance
from eegvision.preprocess.mvnn import inverse_sqrt

__all__ = ["NoiseCovariance", "noise_whitener"]

#: Store bytes read per block while estimating the covariance (its float64 work arrays are ~8x that).
BLOCK_BYTES = 16 * 1024 * 1024


class NoiseCovariance:
    """Per-subject MVNN covariance accumulators fed with blocks of whole conditions (all their repetitions).

    Parameters
    ----------
    subjects : list of str
        The subjects, in the order of the ``subject_position`` passed to :meth:`add` (for messages).
    """

    def __init__(self, subjects: Sequence[str]) -> None:
        self.subjects = list(subjects)
        self._acc = [ResidualCovariance() for _ in self.subjects]

    def add(self, subject_position: int, block: np.ndarray) -> None:
        """Add ``block`` ``(conditions, repetitions, channels, times)`` of subject ``subject_position``."""
        if block.shape[1] < 2:
            raise ValueError(
                f"MVNN whitening (--whiten mvnn) estimates the noise from the spread of each training condition's "
                f"repetitions around their mean, but {self.subjects[subject_position]}'s training split has "
                f"{block.shape[1]} repetition per condition. Drop --whiten, or use data with repeated "
                "presentations.")
        self._acc[subject_position].add(block)

    def covariance(self) -> np.ndarray:
        """The mean over subjects of their residual covariances ``(C, C)``."""
        return np.mean([acc.covariance for acc in self._acc], axis=0)

    def whitener(self, ch_names: Sequence[str] | None = None) -> np.ndarray:
        """``covariance() ** -1/2`` (symmetric; an error names the channel when it is not positive definite)."""
        return inverse_sqrt(self.covariance(), list(ch_names) if ch_names is not None else None)


def noise_whitener(store: Any, subjects: Sequence[str], conditions: np.ndarray | None = None, *,
                   channels: Any = None, window: Any = None) -> np.ndarray:
    """The MVNN whitening matrix ``(C, C)`` of the training split's ``conditions`` (default: all) of ``subjects``.

    ``channels`` and ``window`` select the encoder's input as in :class:`~eegvision.data.dataset.EEGDataset`; the
    store is read in blocks of whole conditions (memory stays near one block).
    """
    from eegvision.data.dataset import EEGDataset

    ds = EEGDataset(store, list(subjects), "training", conditions=conditions, channels=channels, window=window)
    acc = NoiseCovariance(ds.subjects)
    for s_pos, _, block in ds.iter_conditions(BLOCK_BYTES):
        acc.add(s_pos, block)
    return acc.whitener(ds.ch_names)
