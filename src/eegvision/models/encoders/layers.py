"""Building blocks shared by the EEG/MEG encoders.

* :class:`TSConvPatchEmbedding` / :func:`tsconv_encoder`: the temporal-spatial convolution of
  NICE and ATM-S (ShallowNet-like), generalised to any ``n_chans`` and ``n_times``.
* :class:`ProjectionHead`: ``Linear -> x + Dropout(Linear(GELU(x))) -> LayerNorm``, ATM's ``Proj_eeg``
  and the UBP/NeuroBridge ``EEGProject`` head.
* :class:`SubjectEmbedding`: one learned token per training subject plus a *shared* token used for
  unseen subjects (id ``-1`` or ``>= n_subjects``), looked up per sample without Python loops.
* :class:`SinusoidalPositions`: the fixed sine/cosine table of "Attention is all you need".

Module attribute names follow the ATM reference code so that its state dicts load unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from eegvision.checks import check_choice

#: Temporal kernel, average-pool width and pool stride of the TSConv block (NICE / ATM-S).
TSCONV_KERNEL = 25
TSCONV_POOL = 51
TSCONV_STRIDE = 5


def tsconv_n_steps(n_times: int) -> int:
    """Number of time steps left after the TSConv block: ``floor((T - 25 + 1 - 51) / 5) + 1``.

    Raises
    ------
    ValueError
        If ``n_times`` is too short for the 25-sample convolution plus the 51-sample pooling.
    """
    valid = n_times - TSCONV_KERNEL + 1 - TSCONV_POOL
    if valid < 0:
        min_times = TSCONV_KERNEL - 1 + TSCONV_POOL
        raise ValueError(
            f"The TSConv block needs at least {min_times} time samples (25-sample convolution then "
            f"51-sample pooling), got n_times={n_times}. Use a longer time window or another encoder."
        )
    return valid // TSCONV_STRIDE + 1


def tsconv_out_features(n_times: int, n_filters: int = 40) -> int:
    """Flattened TSConv output size, ``n_filters * tsconv_n_steps(n_times)`` (1440 for T=250)."""
    return n_filters * tsconv_n_steps(n_times)


class TSConvPatchEmbedding(nn.Module):
    """Temporal conv -> average pool -> BN/ELU -> spatial conv -> BN/ELU -> dropout -> 1x1 conv.

    Input ``(batch, n_chans, n_times)``; output ``(batch, n_steps, n_filters)`` where
    ``n_steps = tsconv_n_steps(n_times)``. The output is time-major (``b e h w -> b (h w) e``) as in
    the reference, so flattening it gives the same feature order as NICE/ATM-S checkpoints.

    Parameters
    ----------
    n_chans : int
        Number of input channels; the spatial convolution spans all of them.
    n_filters : int
        Number of temporal and spatial filters (40 in NICE/ATM-S).
    dropout : float
        Dropout after the spatial block (0.5 in NICE/ATM-S).
    """

    def __init__(self, n_chans: int, n_filters: int = 40, dropout: float = 0.5):
        super().__init__()
        self.tsconv = nn.Sequential(
            nn.Conv2d(1, n_filters, (1, TSCONV_KERNEL)),
            nn.AvgPool2d((1, TSCONV_POOL), (1, TSCONV_STRIDE)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Conv2d(n_filters, n_filters, (n_chans, 1)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Dropout(dropout),
        )
        self.projection = nn.Sequential(nn.Conv2d(n_filters, n_filters, (1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tsconv(x.unsqueeze(1))  # (B, F, 1, steps)
        x = self.projection(x)  # (B, F, 1, steps)
        return x.flatten(2).transpose(1, 2)  # (B, steps, F)


def tsconv_encoder(n_chans: int, n_filters: int = 40, dropout: float = 0.5) -> nn.Sequential:
    """TSConv patch embedding followed by a flatten: ``(B, C, T) -> (B, n_filters * n_steps)``.

    A ``Sequential`` whose element 0 is the patch embedding, so state-dict keys read
    ``0.tsconv.0.weight`` like the reference ``Enc_eeg``.
    """
    return nn.Sequential(TSConvPatchEmbedding(n_chans, n_filters, dropout), nn.Flatten(1))


class ResidualAdd(nn.Module):
    """``x + fn(x)``."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class ProjectionHead(nn.Sequential):
    """``Linear(in, out)``, then ``x + Dropout(Linear(GELU(x)))``, then ``LayerNorm(out)``.

    ATM's ``Proj_eeg`` (dropout 0.5) and the UBP/NeuroBridge ``EEGProject`` (dropout 0.3).
    The output is not L2-normalised; after the LayerNorm its norm is about ``sqrt(out)``.
    """

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.5):
        super().__init__(
            nn.Linear(in_features, out_features),
            ResidualAdd(
                nn.Sequential(nn.GELU(), nn.Linear(out_features, out_features), nn.Dropout(dropout))
            ),
            nn.LayerNorm(out_features),
        )


def sinusoid_table(n_positions: int, dim: int) -> torch.Tensor:
    """``(n_positions, dim)`` sine (even columns) / cosine (odd columns) table; any ``dim``.

    Identical to the reference ``PositionalEmbedding`` for even ``dim``; for odd ``dim`` (e.g. MEG,
    201 samples) the cosine half simply has one column fewer.
    """
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term[: dim // 2])
    return table


class SinusoidalPositions(nn.Module):
    """Fixed positional table, returned for the first ``n`` positions as ``(1, n, dim)``.

    Parameters
    ----------
    dim : int
        Embedding width.
    max_len : int
        Number of rows kept (the reference keeps 5000).
    persistent : bool
        Whether the ``pe`` buffer is part of the state dict (the reference's is, so reference-mode
        models keep it for strict loading; it is recomputed on construction either way).
    """

    def __init__(self, dim: int, max_len: int = 5000, persistent: bool = True):
        super().__init__()
        self.register_buffer("pe", sinusoid_table(max_len, dim).unsqueeze(0), persistent=persistent)

    def forward(self, n: int) -> torch.Tensor:
        return self.pe[:, :n]


class SubjectEmbedding(nn.Module):
    """Learned per-subject token with a shared token for unseen subjects.

    ``forward(subject_ids, batch_size)`` returns ``(batch, 1, dim)``. Each sample is looked up on its
    own (vectorised): ids ``0..n_subjects-1`` select their row, id ``-1`` (or any id outside the
    table) selects the shared token, and ``subject_ids=None`` gives every sample the shared token.

    Parameters
    ----------
    n_rows : int
        Number of rows of the subject table.
    dim : int
        Token width.
    id_rule : {"per_sample", "reference"}
        ``"per_sample"``: row = id. ``"reference"`` reproduces ATM: row = ``row_of_id[id]`` (by default
        ``id + 1``, the trailing digits of ``sub-XX``), and if *any* row in the batch falls outside the
        table (``sub-10`` with 10 rows) *every* sample of the batch gets the shared token.
    row_of_id : sequence of int, optional
        Reference rule only: the table row of each eegvision id (e.g. ``[8]`` for a run that holds only
        ``sub-08``). Defaults to ``id + 1``.
    mask_token : bool
        Also create the reference's unused ``mask_embedding`` parameter (state-dict compatibility).
    zero_init : bool
        Start all tokens at zero (used when the token is *added* to features, so that a fresh model
        starts subject-agnostic) instead of N(0, 1) like ``nn.Embedding``.
    """

    def __init__(
        self,
        n_rows: int,
        dim: int,
        *,
        id_rule: str = "per_sample",
        row_of_id: list[int] | None = None,
        mask_token: bool = False,
        zero_init: bool = False,
    ):
        super().__init__()
        self.id_rule = check_choice("id_rule", id_rule, ("per_sample", "reference"))
        self.n_rows = n_rows
        self.subject_embedding = nn.Embedding(n_rows, dim)
        self.shared_embedding = nn.Parameter(torch.randn(1, dim))
        if mask_token:
            self.mask_embedding = nn.Parameter(torch.randn(1, dim))
        if zero_init:
            nn.init.zeros_(self.subject_embedding.weight)
            nn.init.zeros_(self.shared_embedding)
        rows = torch.as_tensor(row_of_id if row_of_id is not None else [], dtype=torch.long)
        self.register_buffer("row_of_id", rows, persistent=False)

    def rows(self, subject_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Table rows and an ``unseen`` mask for ``subject_ids`` (both ``(batch,)``)."""
        ids = subject_ids.long()
        if self.id_rule == "per_sample":
            unseen = (ids < 0) | (ids >= self.n_rows)
            return ids.clamp(0, self.n_rows - 1), unseen
        # reference rule: map eegvision ids to ATM rows, then the batch-wide fallback
        if self.row_of_id.numel():
            known = (ids >= 0) & (ids < self.row_of_id.numel())
            rows = torch.where(known, self.row_of_id[ids.clamp(0, self.row_of_id.numel() - 1)], -1)
        else:
            rows = torch.where(ids >= 0, ids + 1, -1)
        unseen = rows < 0
        unseen = unseen | (rows >= self.n_rows).any()  # ATM: one out-of-table id -> all shared
        return rows.clamp(0, self.n_rows - 1), unseen

    def forward(self, subject_ids: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        if subject_ids is None:
            return self.shared_embedding.expand(batch_size, -1).unsqueeze(1)
        rows, unseen = self.rows(subject_ids)
        tokens = torch.where(unseen.unsqueeze(1), self.shared_embedding, self.subject_embedding(rows))
        return tokens.unsqueeze(1)  # (B, 1, dim)


def check_subject_ids(subject_ids: torch.Tensor | None, batch_size: int) -> None:
    """Raise ``ValueError`` unless ``subject_ids`` is ``None`` or an integer tensor of shape (batch,)."""
    if subject_ids is None:
        return
    if not isinstance(subject_ids, torch.Tensor):
        raise TypeError(f"subject_ids must be a torch.LongTensor or None, got {type(subject_ids).__name__}.")
    if subject_ids.shape != (batch_size,) or subject_ids.is_floating_point():
        raise ValueError(
            f"subject_ids must be an integer tensor of shape (batch,)=({batch_size},), got dtype "
            f"{subject_ids.dtype} and shape {tuple(subject_ids.shape)}."
        )


__all__ = [
    "ProjectionHead",
    "ResidualAdd",
    "SinusoidalPositions",
    "SubjectEmbedding",
    "TSConvPatchEmbedding",
    "check_subject_ids",
    "sinusoid_table",
    "tsconv_encoder",
    "tsconv_n_steps",
    "tsconv_out_features",
]
