"""STConv: learned spatial filters, one temporal convolution, then an MLP projector.

``(B, C, T) -> Conv1d(C, F, 1)`` (spatial filters: F virtual channels, each a weighted sum of the
sensors) ``-> Conv1d(F, F, kernel, stride)`` (temporal filters of ``kernel_s`` seconds every
``stride_s`` seconds, mixing the virtual channels) ``-> GELU -> flatten -> Dropout -> Linear(hidden)
-> GELU -> Dropout -> Linear(n_outputs)``.

The factorisation (space first, then time) has far fewer free parameters than a linear map of the
whole epoch (EEGProject: ``C*T*n_outputs``), and the MLP can represent interactions between
components — a later response whose meaning depends on an earlier one, as in the simulator's
gain-modulated code (:mod:`eegvision.sim.forward`). No pooling or squaring, so the sign
and timing of evoked responses are kept. Kernel and stride are given in seconds and converted with
``sfreq``, so the same settings serve 250 Hz EEG and 200 Hz MEG. Subject ids are accepted and ignored.

This encoder is eegvision's own (not from a paper); its numbers on the simulator are in
``benchmarks/results/sim_encoders.json``; on real THINGS-EEG2 it has not been measured here.
"""

from __future__ import annotations

import torch
from torch import nn

from eegvision.models.encoders.base import EEGEncoder


class STConvEncoder(EEGEncoder):
    """Spatial filters → temporal convolution → MLP.

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (no subject conditioning).
    n_filters : int
        Spatial filters, and temporal filters per time step (32).
    kernel_s, stride_s : float
        Temporal kernel length and stride in seconds (0.1 s and 0.02 s: 25 and 5 samples at 250 Hz).
    hidden : int
        Width of the MLP's hidden layer (512).
    dropout : float
        Dropout before each MLP layer (0.3).
    """

    name = "stconv"
    head_modules = ("head",)
    encoder_modules = ("spatial", "temporal")

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, n_filters: int = 32, kernel_s: float = 0.1, stride_s: float = 0.02,
                 hidden: int = 512, dropout: float = 0.3):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        kernel = max(1, round(kernel_s * sfreq))
        stride = max(1, round(stride_s * sfreq))
        if kernel > n_times:
            raise ValueError(f"STConv's temporal kernel ({kernel_s} s = {kernel} samples at {sfreq:g} Hz) is longer "
                             f"than the epoch ({n_times} samples); use a shorter kernel_s.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        n_steps = (n_times - kernel) // stride + 1
        self.spatial = nn.Conv1d(n_chans, n_filters, 1)
        self.temporal = nn.Conv1d(n_filters, n_filters, kernel, stride=stride)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(n_filters * n_steps, hidden), nn.GELU(),
            nn.Dropout(dropout), nn.Linear(hidden, n_outputs),
        )
        self._set_config(n_filters=n_filters, kernel_s=kernel_s, stride_s=stride_s, hidden=hidden, dropout=dropout)

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        return self.head(nn.functional.gelu(self.temporal(self.spatial(x))))
