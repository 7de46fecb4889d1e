"""NICE: TSConv on the raw EEG, flatten, projector (Song et al., ICLR 2024; as re-run by ATM).

``(B, C, T) -> TSConv -> (B, 40 * n_steps) -> Linear + residual MLP + LayerNorm -> (B, n_outputs)``.
The subject ids are accepted and ignored. ``mode="reference"`` adds ATM's learnable raw
``logit_scale`` so that the parameter count (2,630,913 at 63 x 250) and state-dict keys
(``enc_eeg.0.tsconv.*``, ``proj_eeg.*``, ``logit_scale``) match ``contrast_retrieval.py``'s ``NICE``.

References
----------
Song, Liu, Li, Yuan, Du, Zheng, Li, Huang. "Decoding Natural Images from EEG for Object
Recognition". ICLR 2024. arXiv:2308.13234.
"""

from __future__ import annotations

import torch
from torch import nn

from eegvision.checks import check_choice
from eegvision.models.encoders.atms import LOGIT_SCALE_INIT, LOGIT_SCALE_MAX
from eegvision.models.encoders.base import EEGEncoder
from eegvision.models.encoders.layers import ProjectionHead, tsconv_encoder, tsconv_out_features


class NICEEncoder(EEGEncoder):
    """TSConv + projector encoder.

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters; ``n_subjects`` is recorded but NICE has no subject conditioning.
    mode : {"fixed", "reference"}
        ``"reference"`` sets ``logit_scale="raw"`` (ATM's baseline keeps one on the model).
    logit_scale : {"raw", "exp", None}
        As for :class:`~eegvision.models.encoders.atms.ATMSEncoder`.
    n_filters, tsconv_dropout, proj_dropout
        TSConv filters (40) and dropouts (0.5, 0.5).
    """

    name = "nice"
    head_modules = ("proj_eeg",)
    encoder_modules = ("enc_eeg",)

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, mode: str = "fixed", logit_scale: str | None | bool = False,
                 n_filters: int = 40, tsconv_dropout: float = 0.5, proj_dropout: float = 0.5):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        check_choice("mode", mode, ("fixed", "reference"))
        if logit_scale is False:
            logit_scale = "raw" if mode == "reference" else None
        self.logit_scale_mode = check_choice("logit_scale", logit_scale, ("raw", "exp", None))
        self.enc_eeg = tsconv_encoder(n_chans, n_filters, tsconv_dropout)
        self.proj_eeg = ProjectionHead(tsconv_out_features(n_times, n_filters), n_outputs, proj_dropout)
        self.logit_scale = (nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
                            if self.logit_scale_mode is not None else None)
        self._set_config(mode=mode, logit_scale=self.logit_scale_mode, n_filters=n_filters,
                         tsconv_dropout=tsconv_dropout, proj_dropout=proj_dropout)

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        return self.proj_eeg(self.enc_eeg(x))  # (B, C, T) -> (B, F*steps) -> (B, n_outputs)

    def effective_logit_scale(self) -> torch.Tensor | None:
        """Multiplier for logits: raw parameter, ``exp`` clamped to 100, or None."""
        if self.logit_scale is None:
            return None
        return self.logit_scale if self.logit_scale_mode == "raw" else self.logit_scale.exp().clamp(
            max=LOGIT_SCALE_MAX)
