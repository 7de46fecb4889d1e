"""BrainMLP: flatten, one Linear, then a bias-free residual MLP block with LayerNorm (BrainHiVE's EEG encoder).

``(B, C, T) -> (B, C*T) -> Linear(C*T, n_outputs) -> [x + W2(Dropout(GELU(W1 x)))] -> LayerNorm(eps=1e-6)``,
the residual block repeated ``n_blocks`` times (one in BrainHiVE), ``W1``/``W2`` without bias. It is close to
EEGProject (:mod:`.eegproject`) but not identical: the dropout sits between the two hidden maps instead of after the
second, the hidden maps have no bias, and the LayerNorm ``eps`` is ``1e-6``. At BrainHiVE's size (17 channels x 250
samples -> 1024) it has 6,452,224 parameters, the count of the authors' ``BrainMLP`` (``tests/test_presets_sota.py``).
Subject ids are accepted and ignored.

References
----------
Zheng, Jia, Li, Zheng, Zeng, Gao, Liang. "Learning Brain Representation with Hierarchical Visual Embeddings"
(BrainHiVE). ICLR 2026. Code: github.com/ssshamiii/Brain-HIVE (``main/models_brain.py`` ``BrainMLP``).
"""

from __future__ import annotations

import torch
from torch import nn

from eegvision.checks import check_range
from eegvision.models.encoders.base import EEGEncoder


class ResidualMLPBlock(nn.Module):
    """``LayerNorm(x + W2(Dropout(GELU(W1 x))))`` with bias-free ``W1: d -> hidden``, ``W2: hidden -> d``."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.1, eps: float = 1e-6):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.w2(self.dropout(nn.functional.gelu(self.w1(x)))))


class BrainMLPEncoder(EEGEncoder):
    """Linear projection of the flattened epoch + bias-free residual MLP block(s) (BrainHiVE).

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (no subject conditioning).
    hidden : int, optional
        Width of the residual block's hidden layer (default: ``n_outputs``, as in BrainHiVE).
    n_blocks : int
        Residual blocks after the input projection (1).
    dropout : float
        Dropout inside each block (0.1 in BrainHiVE's ``configs/train_clip.yaml``).
    """

    name = "brainmlp"
    head_modules = ("blocks",)
    encoder_modules = ("proj_in",)

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, hidden: int | None = None, n_blocks: int = 1, dropout: float = 0.1):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        hidden = n_outputs if hidden is None else int(hidden)
        if hidden < 1 or int(n_blocks) < 1:
            raise ValueError(f"BrainMLP needs hidden >= 1 and n_blocks >= 1; got hidden={hidden}, "
                             f"n_blocks={n_blocks}.")
        check_range("dropout", dropout, 0.0, 1.0, include_high=False)
        self.proj_in = nn.Linear(n_chans * n_times, n_outputs)
        self.blocks = nn.Sequential(*(ResidualMLPBlock(n_outputs, hidden, dropout) for _ in range(int(n_blocks))))
        self._set_config(hidden=hidden, n_blocks=int(n_blocks), dropout=dropout)

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        return self.blocks(self.proj_in(x.reshape(x.shape[0], -1)))  # (B, C*T) -> (B, n_outputs)
