"""Ridge: a linear map from the time-binned, standardised epoch to the embedding, fitted in closed form.

``(B, C, T) -> [W x: the channel whitening of EEGEncoder, optional] -> bin means of decim samples (T' = T // decim;
a ragged tail is dropped) -> flatten (C*T', channel-major) -> (z - feature_mean) / feature_scale -> Linear(C*T',
n_outputs)``.

The preprocessing is fixed (buffers, saved with the weights); the one ``nn.Linear`` holds the ridge solution
(its bias includes the target mean). ``eegvision fit --encoder ridge`` solves it in closed form
(:mod:`eegvision.training.closed_form`: penalty by K-fold cross-validation over held-out training concepts,
optionally reduced-rank and MVNN-whitened); being an ``nn.Module`` it can then be fine-tuned by gradient like any
encoder, or serve as the linear first layer or head of a neural one. Subject ids are accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from eegvision.checks import check_choice, check_finite, check_int, check_shape
from eegvision.models.encoders.base import EEGEncoder

#: Cross-validation scores the penalty can be chosen on (see :mod:`eegvision.training.closed_form`).
SCORINGS = ("top1", "r2", "pairwise")
#: Default time resolution after binning (Hz): ``decim=None`` bins ``round(sfreq / 25)`` samples.
TARGET_HZ = 25.0


def default_decim(sfreq: float) -> int:
    """Samples per time bin for about 25 Hz after binning (10 at 250 Hz, 8 at 200 Hz, 40 at 1000 Hz)."""
    return max(1, int(round(float(sfreq) / TARGET_HZ)))


class LinearEncoder(EEGEncoder):
    """Ridge regression (closed form; penalty by cross-validation over held-out concepts) on the binned epoch.

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (no subject conditioning).
    decim : int, optional
        Samples averaged per time bin (default: about 25 Hz, :func:`default_decim`; 1 keeps every sample).
    whiten : bool
        Fit on MVNN-whitened channels (the noise whitening of :class:`EEGEncoder`, estimated from the training
        repetitions' residuals; the same as ``FitConfig.whiten="mvnn"``).
    rank : int, optional
        Reduced-rank ridge: the ridge solution's fitted values projected onto their top ``rank`` principal
        directions (classic reduced-rank regression); default None (full rank).
    alphas : list of float, optional
        Absolute penalties on the standardised design, as scikit-learn's ``RidgeCV``; default: the mean
        eigenvalue of the design's Gram matrix (``max(rows, features)``) times ``10**[-3, -2.5, ..., 3]``.
    cv : int
        Folds of the grouped (by concept) cross-validation that chooses the penalty.
    scoring : {"top1", "r2", "pairwise"}
        What the penalty maximises over the held-out folds: retrieval top-1 among the held-out images (ties
        broken by the mean cosine of the true pairs), scikit-learn's R² (mean over output dimensions), or the
        pairwise accuracy among the held-out images (every rank counts; steadier than top-1 near chance).

    Notes
    -----
    ``scoring="top1"`` is the default because retrieval is what the encoder is for and how every other encoder
    is selected (``val_top1``): retrieval ranks by the direction of the prediction, while R² weighs every output
    dimension's squared error, and the many CLIP dimensions the EEG does not predict favour shrinking the
    prediction towards the target mean. At low SNR R² then picks a large penalty and retrieval falls to chance
    (``benchmarks/results/ridge_fullsize_small.json``, whitened: 200-way test top-1 0.11 with top-1 scoring,
    0.005 with R²); with strong signal both choose the same penalty (``ridge_fullsize.json``). ``scoring="r2"``
    makes the fit equal scikit-learn's ``RidgeCV`` (``GroupKFold`` by concept) on the same design.
    """

    name = "ridge"
    closed_form = True
    head_modules = ("linear",)

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, decim: int | None = None, whiten: bool = False, rank: int | None = None,
                 alphas: Sequence[float] | None = None, cv: int = 5, scoring: str = "top1"):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        decim = default_decim(self.sfreq) if decim is None else decim
        check_int("decim", decim, minimum=1, hint="It is the number of samples averaged per time bin.")
        if decim > n_times:
            raise ValueError(f"decim={decim} samples per time bin is longer than the epoch ({n_times} samples); "
                             f"give at most {n_times}.")
        check_choice("whiten", whiten, (False, True))
        if rank is not None:
            check_int("rank", rank, minimum=1, hint="It is the rank of reduced-rank ridge; None for full rank.")
            if rank > n_outputs:
                raise ValueError(f"rank={rank} exceeds the embedding size n_outputs={n_outputs}; give at most "
                                 f"{n_outputs}, or None for full rank.")
        if alphas is not None:
            values = np.asarray(alphas, dtype=np.float64).reshape(-1) if not isinstance(alphas, str) else None
            if values is None or not len(values) or not np.all(np.isfinite(values)) or np.any(values <= 0):
                raise ValueError(f"alphas must be a non-empty list of positive penalties (e.g. [1, 10, 100]); "
                                 f"got {alphas!r}.")
            alphas = [float(a) for a in values]
        check_int("cv", cv, minimum=2, hint="It is the number of cross-validation folds.")
        check_choice("scoring", scoring, SCORINGS)
        self.decim, self.whiten, self.rank, self.alphas, self.cv, self.scoring = decim, whiten, rank, alphas, cv, scoring
        self.n_bins = n_times // decim
        n_features = n_chans * self.n_bins
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_scale", torch.ones(n_features))
        self.linear = nn.Linear(n_features, n_outputs)
        if whiten:  # identity until fitted; the fitted matrix is saved with the weights
            self.set_whitening(torch.eye(n_chans), "mvnn")
        self._set_config(decim=decim, whiten=whiten, rank=rank, alphas=alphas, cv=cv, scoring=scoring)

    @property
    def n_features(self) -> int:
        """Inputs of the linear map: ``n_chans * (n_times // decim)``."""
        return self.linear.in_features

    def bin_times(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T) -> (B, C * T // decim)``: bin means over time, flattened channel-major."""
        t = self.n_bins * self.decim
        return x[..., :t].reshape(x.shape[0], self.n_chans, self.n_bins, self.decim).mean(-1).flatten(1)

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        return self.linear((self.bin_times(x) - self.feature_mean) / self.feature_scale)

    def set_solution(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> None:
        """Load a closed-form solution: ``embedding = ((binned x - mean) / scale) @ coef + intercept``.

        ``mean``, ``scale`` are ``(n_features,)``, ``coef`` ``(n_features, n_outputs)`` and ``intercept``
        ``(n_outputs,)`` (float64 arrays are stored as float32).
        """
        p, d = self.n_features, self.n_outputs
        for name, value, shape in (("mean", mean, (p,)), ("scale", scale, (p,)), ("coef", coef, (p, d)),
                                   ("intercept", intercept, (d,))):
            check_shape(f"The ridge solution's {name}", np.asarray(value), shape)
            check_finite(f"The ridge solution's {name}", np.asarray(value))
        if np.any(np.asarray(scale) <= 0):
            raise ValueError("The ridge solution's scale must be positive (a per-feature standard deviation).")
        with torch.no_grad():
            self.feature_mean.copy_(torch.as_tensor(np.asarray(mean), dtype=torch.float32))
            self.feature_scale.copy_(torch.as_tensor(np.asarray(scale), dtype=torch.float32))
            self.linear.weight.copy_(torch.as_tensor(np.asarray(coef).T, dtype=torch.float32))
            self.linear.bias.copy_(torch.as_tensor(np.asarray(intercept), dtype=torch.float32))
