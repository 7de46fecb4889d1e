"""EEGProject: flatten, then Linear + residual MLP + LayerNorm (the UBP / NeuroBridge baseline).

``(B, C, T) -> (B, C*T) -> Linear(C*T, n_outputs) -> x + Dropout(Linear(GELU(x))) -> LayerNorm``.
With 17 occipito-parietal channels and averaged repetitions it is the "vanilla" setting of UBP.
Subject ids are accepted and ignored.

References
----------
Wu et al. "Bridging the Vision-Brain Gap with an Uncertainty-Aware Blur Prior" (UBP). CVPR 2025.
"""

from __future__ import annotations

import torch
from torch import nn

from eegvision.checks import check_choice
from eegvision.models.encoders.atms import LOGIT_SCALE_INIT
from eegvision.models.encoders.base import EEGEncoder
from eegvision.models.encoders.layers import ProjectionHead


class EEGProjectEncoder(EEGEncoder):
    """Linear projector on the flattened epoch.

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (no subject conditioning).
    dropout : float
        Dropout of the residual branch (0.3 in UBP).
    logit_scale : {"raw", None}
        ``"raw"`` keeps UBP's learnable ``logit_scale`` parameter on the model (for its state dicts);
        default None (the loss owns the temperature).

    Notes
    -----
    UBP names the residual branch ``model.1.f``; :meth:`load_state_dict` accepts those keys.
    """

    name = "eegproject"
    head_modules = ("model.1", "model.2")  # residual MLP + LayerNorm after the input projection
    encoder_modules = ("model.0",)  # the input projection Linear(C*T, n_outputs)

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, dropout: float = 0.3, logit_scale: str | None = None):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        check_choice("logit_scale", logit_scale, ("raw", None))
        self.model = ProjectionHead(n_chans * n_times, n_outputs, dropout)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT)) if logit_scale else None
        self._set_config(dropout=dropout, logit_scale=logit_scale)

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], -1))  # (B, C*T) -> (B, n_outputs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state = {k.replace("model.1.f.", "model.1.fn.", 1): v for k, v in state_dict.items()}
        return super().load_state_dict(state, strict=strict, assign=assign)
