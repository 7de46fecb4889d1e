"""The "MLP" Projector baseline of ATM (``contrast_retrieval.py``): mixer-style MLP, L2-normalised.

Input ``(B, C, T)``; every stage mixes the time axis, then the channel axis (MLP-Mixer style)::

    input   LN(T), Linear(T -> 1024), GELU, Drop | LN(C), Linear(C -> 64), GELU, Drop   (B, 64, 1024)
    2 x     LN(1024), Linear(1024 -> 1024), GELU, Drop | LN(64), Linear(64 -> 64), GELU, Drop
    output  LN(1024), Linear(1024 -> n_outputs), GELU, Drop | LN(64), Linear(64 -> 1), GELU, Drop
    flatten, L2-normalise                                                        (B, n_outputs)

Module indices match the reference (index 4 and 9 of each stage are the transposes), so the
count is 3,425,460 at 63 x 250 with ``mode="reference"`` (its ``logit_scale``, init log(1/0.01)).
Subject ids are accepted and ignored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eegvision.checks import check_choice
from eegvision.models.encoders.base import EEGEncoder


class _Transpose(nn.Module):
    """Swap the last two axes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def _mixer_stage(c_in: int, c_out: int, l_in: int, l_out: int, dropout: float) -> nn.Sequential:
    # x: (B, C, L) -> mix L -> transpose -> mix C -> transpose -> (B, c_out, l_out)
    return nn.Sequential(
        nn.LayerNorm(l_in), nn.Linear(l_in, l_out), nn.GELU(), nn.Dropout(dropout), _Transpose(),
        nn.LayerNorm(c_in), nn.Linear(c_in, c_out), nn.GELU(), nn.Dropout(dropout), _Transpose(),
    )


class ProjectorEncoder(EEGEncoder):
    """ATM's MLP Projector baseline.

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (no subject conditioning).
    mode : {"fixed", "reference"}
        ``"reference"`` keeps the reference's learnable ``logit_scale`` (init log(1/0.01)).
    hidden_chans, hidden_times : int
        Hidden sizes of the channel (64) and time (1024) axes.
    n_hidden_layers : int
        Number of mixer blocks between input and output stages (2).
    dropout : float
        Dropout everywhere (0.25).
    normalize : bool
        L2-normalise the output (True, as in the reference).
    """

    name = "projector"
    head_modules = ("output_layer",)
    encoder_modules = ("input_layer", "blocks")

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, mode: str = "fixed", hidden_chans: int = 64,
                 hidden_times: int = 1024, n_hidden_layers: int = 2, dropout: float = 0.25,
                 normalize: bool = True):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        check_choice("mode", mode, ("fixed", "reference"))
        hc, hl = hidden_chans, hidden_times
        self.input_layer = _mixer_stage(n_chans, hc, n_times, hl, dropout)
        self.blocks = nn.Sequential(*[_mixer_stage(hc, hc, hl, hl, dropout) for _ in range(n_hidden_layers)])
        self.output_layer = _mixer_stage(hc, 1, hl, n_outputs, dropout)
        self.normalize = normalize
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.01))) if mode == "reference" else None
        self._set_config(mode=mode, hidden_chans=hc, hidden_times=hl, n_hidden_layers=n_hidden_layers,
                         dropout=dropout, normalize=normalize)

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        out = self.output_layer(self.blocks(self.input_layer(x))).flatten(1)  # (B, n_outputs)
        return F.normalize(out, dim=-1) if self.normalize else out
