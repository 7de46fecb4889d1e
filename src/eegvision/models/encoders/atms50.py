"""ATMS_50: the temporal-attention ATM-S of the 2024 code (``Alljoined/EEG_Image_decode`` at ``3dd2d62``).

Before the channel-token ("iTransformer") ATM-S of the authors' current code, the ATM code base
shipped an encoder that attends over *time* (the same block is ATM-E's first stage, ``atm.md`` §2.3)::

    permute to (T, B, C), add a sinusoidal table over the time index    (T, B, C)
    one torch TransformerEncoderLayer(d_model=C, nhead=1), post-norm     (T, B, C)
    permute back, Linear(T -> T) (``subject_wise_linear[0]``)           (B, C, T)
    TSConv (temporal conv, pool, spatial conv)                           (B, 40 * n_steps)
    projector Linear + residual MLP + LayerNorm                          (B, n_outputs)

The fork's class is ``ATMS_50`` (``Retrieval/ATM_S_insubject_retrieval.py``; the same layout is
``ATM_S_reconstruction_scale_0_1000`` in its ``Generation/``). This module reproduces it, quirks
included, so that its state dicts load strictly: the layer handed to ``nn.TransformerEncoder`` stays
registered as ``attention_model.encoder_layer`` although only its deep copy
(``attention_model.transformer_encoder.layers.0``) runs, so 276,539 of the 553,078 attention
parameters are dead; every sample goes through ``subject_wise_linear[0]`` whatever its subject;
``logit_scale`` (init log(1/0.07)) is kept raw. At 63 x 250 it has 3,246,741 parameters.
Subject ids are accepted and ignored.
"""

from __future__ import annotations

import torch
from torch import nn

from eegvision.models.encoders.atms import LOGIT_SCALE_INIT
from eegvision.models.encoders.base import EEGEncoder
from eegvision.models.encoders.layers import (
    ProjectionHead,
    sinusoid_table,
    tsconv_encoder,
    tsconv_out_features,
)


class _TemporalPositions(nn.Module):
    """The fork's ``PositionalEncoding``: a ``(max_len, C)`` sine/cosine table added over time."""

    def __init__(self, dim: int, max_len: int = 5000):
        super().__init__()
        self.register_buffer("pe", sinusoid_table(max_len, dim))

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        """``src`` (T, B, C) plus the first T rows of the table."""
        if src.shape[0] > self.pe.shape[0]:
            raise ValueError(f"The positional table has {self.pe.shape[0]} rows but the input has {src.shape[0]} "
                             "time samples; build the encoder with a larger max_len.")
        return src + self.pe[: src.shape[0]].unsqueeze(1)


class _EEGAttention(nn.Module):
    """Temporal self-attention over ``(B, C, T)`` EEG: tokens are time samples of width C."""

    def __init__(self, n_chans: int, n_heads: int, dim_feedforward: int, dropout: float, max_len: int):
        super().__init__()
        self.pos_encoder = _TemporalPositions(n_chans, max_len)
        self.encoder_layer = nn.TransformerEncoderLayer(d_model=n_chans, nhead=n_heads,
                                                        dim_feedforward=dim_feedforward, dropout=dropout)
        # nn.TransformerEncoder deep-copies the layer: the registered original above is never run
        self.transformer_encoder = nn.TransformerEncoder(self.encoder_layer, num_layers=1,
                                                         enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        src = self.pos_encoder(x.permute(2, 0, 1))  # (T, B, C)
        return self.transformer_encoder(src).permute(1, 2, 0)  # (B, C, T)


class ATMS50Encoder(EEGEncoder):
    """The fork's temporal-attention ATM-S (``ATMS_50``), reference layout only.

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (see :class:`~eegvision.models.encoders.base.EEGEncoder`); the attention
        width is ``n_chans`` and the spatial convolution spans all channels.
    n_subject_linears : int
        Number of ``Linear(T, T)`` modules in ``subject_wise_linear`` (the fork's ``num_subjects``,
        1); only the first is used.
    n_heads, dim_feedforward, attention_dropout : int, int, float
        The torch ``TransformerEncoderLayer`` settings (1 head, 2048, 0.1: torch's defaults, as in the fork).
    max_len : int
        Rows of the positional table (5000, kept in the state dict).
    n_filters, tsconv_dropout, proj_dropout
        TSConv filters (40) and dropouts (0.5, 0.5).
    """

    name = "atms50"
    head_modules = ("proj_eeg",)
    encoder_modules = ("enc_eeg",)
    attention_modules = ("attention_model", "subject_wise_linear")

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, n_subject_linears: int = 1, n_heads: int = 1,
                 dim_feedforward: int = 2048, attention_dropout: float = 0.1, max_len: int = 5000,
                 n_filters: int = 40, tsconv_dropout: float = 0.5, proj_dropout: float = 0.5):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        if n_chans % n_heads:
            raise ValueError(f"n_chans={n_chans} is not divisible by n_heads={n_heads}; the attention width is "
                             "the channel count. Use n_heads=1 (the fork's value).")
        if n_subject_linears < 1:
            raise ValueError(f"n_subject_linears must be at least 1, got {n_subject_linears}.")
        self.attention_model = _EEGAttention(n_chans, n_heads, dim_feedforward, attention_dropout, max_len)
        self.subject_wise_linear = nn.ModuleList(nn.Linear(n_times, n_times) for _ in range(n_subject_linears))
        self.enc_eeg = tsconv_encoder(n_chans, n_filters, tsconv_dropout)
        self.proj_eeg = ProjectionHead(tsconv_out_features(n_times, n_filters), n_outputs, proj_dropout)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        self._set_config(n_subject_linears=n_subject_linears, n_heads=n_heads, dim_feedforward=dim_feedforward,
                         attention_dropout=attention_dropout, max_len=max_len, n_filters=n_filters,
                         tsconv_dropout=tsconv_dropout, proj_dropout=proj_dropout)

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        x = self.subject_wise_linear[0](self.attention_model(x))  # (B, C, T)
        return self.proj_eeg(self.enc_eeg(x))  # (B, n_outputs)

    def effective_logit_scale(self) -> torch.Tensor:
        """The raw, unclamped ``logit_scale`` (as the fork uses it)."""
        return self.logit_scale
