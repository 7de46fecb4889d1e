"""ATM-S: channel-token transformer + TSConv + projector (Li et al., NeurIPS 2024).

Pipeline, for input ``(B, C, T)``::

    Linear(T -> d_model) per channel            (B, C, d)      "inverted" channel tokens
    + sinusoidal PE over the channel index      (B, C, d)
    prepend subject token                       (B, 1 + C, d)
    1 post-norm transformer layer + LayerNorm   (B, 1 + C, d)
    slice to C tokens                           (B, C, d)      reference: [:, :C] / fixed: [:, 1:]
    TSConv (temporal conv, pool, spatial conv)  (B, 40 * n_steps)
    projector Linear + residual MLP + LayerNorm (B, n_outputs)

``mode="reference"`` reproduces the authors' code (``Retrieval/ATMS_retrieval.py`` at ``61fc9c3``)
including its quirks, has exactly 3,202,413 parameters at 63 x 250 and loads its state dicts with
``load_state_dict(strict=True)`` (module names match). The reference's code up to ``22c84ad`` adds no
positional encoding (``positional_encoding=False``); its state dicts have the same keys, so
:func:`eegvision.models.reference.load_reference_checkpoint` asks which one a checkpoint needs.
``mode="fixed"`` (default) fixes the quirks; every quirk is also a separate switch (see :class:`ATMSEncoder`).

References
----------
Li, Wei, Li, Zou, Liu. "Visual Decoding and Reconstruction via EEG Embeddings with Guided
Diffusion". NeurIPS 2024. arXiv:2403.07721.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from eegvision.checks import check_choice
from eegvision.models.encoders.base import EEGEncoder
from eegvision.models.encoders.layers import (
    ProjectionHead,
    SinusoidalPositions,
    SubjectEmbedding,
    tsconv_encoder,
    tsconv_out_features,
)

#: Switch values of each preset.
MODES: dict[str, dict] = {
    "reference": {"channel_slice": "reference", "logit_scale": "raw", "positional_encoding": True,
                  "subject_token_ids": "reference", "unused_modules": True},
    "fixed": {"channel_slice": "fixed", "logit_scale": None, "positional_encoding": True,
              "subject_token_ids": "per_sample", "unused_modules": False},
}
#: Rows of the reference subject table (``num_subjects=10`` in the reference iTransformer).
REFERENCE_SUBJECT_ROWS = 10
#: Reference ``logit_scale`` initial value, log(1 / 0.07).
LOGIT_SCALE_INIT = math.log(1 / 0.07)
#: Upper bound of an exponentiated logit scale (CLIP).
LOGIT_SCALE_MAX = 100.0


def subject_row(subject: str) -> int:
    """ATM's subject-table row of a subject name: its trailing digits (``"sub-08"`` -> 8)."""
    match = re.search(r"\d+$", subject)
    if match is None:
        raise ValueError(f"Cannot read a subject number from {subject!r}; expected a name like 'sub-08'.")
    return int(match.group())


class _AttentionLayer(nn.Module):
    """Multi-head self-attention with ``d_keys = d_model // n_heads`` (Q/K/V width 248 for 250)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        d_keys = d_model // n_heads
        if d_keys < 1:
            raise ValueError(f"d_model={d_model} is smaller than n_heads={n_heads}; lower n_heads.")
        self.query_projection = nn.Linear(d_model, d_keys * n_heads)
        self.key_projection = nn.Linear(d_model, d_keys * n_heads)
        self.value_projection = nn.Linear(d_model, d_keys * n_heads)
        self.out_projection = nn.Linear(d_keys * n_heads, d_model)
        self.n_heads = n_heads
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.query_projection(x).view(b, n, self.n_heads, -1).transpose(1, 2)  # (B, H, N, E)
        k = self.key_projection(x).view(b, n, self.n_heads, -1).transpose(1, 2)
        v = self.value_projection(x).view(b, n, self.n_heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, scale=1.0 / math.sqrt(q.shape[-1])
        )  # softmax(QK^T / sqrt(E)) with attention dropout, then V; non-causal
        return self.out_projection(out.transpose(1, 2).reshape(b, n, -1))  # (B, N, d)


class _EncoderLayer(nn.Module):
    """Post-norm layer: ``x = LN(x + drop(attn(x)))``; ``LN(x + drop(W2 drop(gelu(W1 x))))``.

    The feed-forward weights are 1x1 ``Conv1d`` modules as in the reference; they are applied as
    matrix products on ``(B, N, d)`` (identical result, no transposes).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.attention = _AttentionLayer(d_model, n_heads, dropout)
        self.conv1 = nn.Conv1d(d_model, d_ff, kernel_size=1)
        self.conv2 = nn.Conv1d(d_ff, d_model, kernel_size=1)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attention(x)))
        y = self.dropout(F.gelu(F.linear(x, self.conv1.weight[..., 0], self.conv1.bias)))
        y = self.dropout(F.linear(y, self.conv2.weight[..., 0], self.conv2.bias))
        return self.norm2(x + y)


class _Encoder(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, e_layers: int):
        super().__init__()
        self.attn_layers = nn.ModuleList(
            [_EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(e_layers)]
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.attn_layers:
            x = layer(x)
        return self.norm(x)


class _TimeFeatureEmbedding(nn.Module):
    """The reference's calendar-feature embedding; never called (``x_mark`` is None)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.embed = nn.Linear(4, d_model, bias=False)


class _DataEmbedding(nn.Module):
    """Channel tokens: ``Linear(n_times -> d_model)`` + channel PE, subject token prepended, dropout."""

    def __init__(self, n_chans: int, n_times: int, d_model: int, dropout: float, subject: SubjectEmbedding,
                 positional_encoding: bool, unused_modules: bool):
        super().__init__()
        self.value_embedding = nn.Linear(n_times, d_model)
        # the reference keeps a 5000-row table in its state dict; otherwise only n_chans rows, unsaved
        self.position_embedding = SinusoidalPositions(
            d_model, max_len=5000 if unused_modules else n_chans, persistent=unused_modules
        )
        if unused_modules:
            self.temporal_embedding = _TimeFeatureEmbedding(d_model)
        self.dropout = nn.Dropout(dropout)
        self.subject_embedding = subject
        if unused_modules:
            self.mask_token = nn.Parameter(torch.randn(1, d_model))
        self.positional_encoding = positional_encoding

    def forward(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        x = self.value_embedding(x)  # (B, C, d)
        if self.positional_encoding:
            x = x + self.position_embedding(x.shape[1])
        token = self.subject_embedding(subject_ids, x.shape[0])  # (B, 1, d)
        return self.dropout(torch.cat([token, x], dim=1))  # (B, 1 + C, d)


class _ChannelTransformer(nn.Module):
    """The reference's ``iTransformer``: embedding then encoder (slicing is done by the caller)."""

    def __init__(self, embedding: _DataEmbedding, encoder: _Encoder):
        super().__init__()
        self.enc_embedding = embedding
        self.encoder = encoder

    def forward(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        return self.encoder(self.enc_embedding(x, subject_ids))


class ATMSEncoder(EEGEncoder):
    """ATM-S encoder with the reference's quirks as switches.

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (see :class:`~eegvision.models.encoders.base.EEGEncoder`). ``d_model``
        follows ``n_times`` and the spatial convolution spans ``n_chans``, so MEG (271 x 201) and
        channel subsets work without changes.
    mode : {"fixed", "reference"}
        Preset for the five switches below; an explicitly passed switch overrides the preset.
        ``"reference"``: the authors' code, quirks included. ``"fixed"``: the quirks fixed.
    channel_slice : {"reference", "fixed"}
        ``"reference"`` keeps ``enc_out[:, :n_chans]``: the subject token plus all channels but the
        last one (O2 for THINGS-EEG2), which is silently dropped. ``"fixed"`` drops the subject token
        (``enc_out[:, 1:]``) and keeps every channel.
    logit_scale : {"raw", "exp", None}
        A learnable ``logit_scale`` parameter (init log(1/0.07)) kept on the encoder, as in the
        reference. ``"raw"``: used as is, unclamped (reference). ``"exp"``: exponentiated and clamped to
        <= 100 (CLIP). ``None`` (fixed default): no parameter; the temperature belongs to the loss.
        :meth:`effective_logit_scale` returns the multiplier to apply to similarities.
    positional_encoding : bool
        Add the sinusoidal table over the channel index to the channel tokens.
    subject_token_ids : {"per_sample", "reference"}
        ``"per_sample"``: a table of ``n_subjects`` rows, each sample uses its own id; id ``-1`` or
        ``>= n_subjects`` uses the shared token. ``"reference"``: a table of 10 rows addressed like the
        reference (row = trailing digits of ``sub-XX``: ``subject_names`` gives the name of each id,
        default ``sub-{id+1:02d}``), so row 0 is never used and ``sub-10`` (row 10) falls back to the
        shared token, for the *whole batch*.
    unused_modules : bool
        Create the reference's dead parameters (``subject_wise_linear`` 2 x Linear(d, T), the
        time-feature Linear(4, d), ``mask_token``, ``mask_embedding``) and keep the 5000-row PE buffer
        in the state dict, so that reference checkpoints load strictly and the count matches.
    subject_names : list of str, optional
        Reference id rule only: the subject name of each eegvision id (``["sub-08"]`` for a run on
        sub-08 alone), used to pick reference rows.
    d_model, n_heads, d_ff, e_layers, dropout
        Transformer width (default ``n_times``), heads (4), feed-forward width (256), layers (1) and
        dropout (0.25, also used for attention).
    n_filters, tsconv_dropout, proj_dropout
        TSConv filters (40) and dropouts (0.5, 0.5).
    """

    name = "atms"
    head_modules = ("proj_eeg",)
    encoder_modules = ("enc_eeg",)
    attention_modules = ("encoder", "subject_wise_linear")  # the subject table inside is "subject"

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_outputs: int = 1024,
        sfreq: float = 250.0,
        n_subjects: int = 1,
        *,
        mode: str = "fixed",
        channel_slice: str | None = None,
        logit_scale: str | None | bool = False,
        positional_encoding: bool | None = None,
        subject_token_ids: str | None = None,
        unused_modules: bool | None = None,
        subject_names: list[str] | None = None,
        d_model: int | None = None,
        n_heads: int = 4,
        d_ff: int = 256,
        e_layers: int = 1,
        dropout: float = 0.25,
        n_filters: int = 40,
        tsconv_dropout: float = 0.5,
        proj_dropout: float = 0.5,
    ):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        preset = MODES[check_choice("mode", mode, tuple(MODES))]
        # `False` is the "not given" sentinel of logit_scale because None is a valid choice
        switches = {
            "channel_slice": channel_slice, "logit_scale": logit_scale,
            "positional_encoding": positional_encoding, "subject_token_ids": subject_token_ids,
            "unused_modules": unused_modules,
        }
        for key, value in switches.items():
            not_given = value is False if key == "logit_scale" else value is None
            if not_given:
                switches[key] = preset[key]
        self.channel_slice = check_choice("channel_slice", switches["channel_slice"], ("reference", "fixed"))
        self.logit_scale_mode = check_choice("logit_scale", switches["logit_scale"], ("raw", "exp", None))
        self.subject_token_ids = check_choice(
            "subject_token_ids", switches["subject_token_ids"], ("per_sample", "reference")
        )
        positional_encoding = bool(switches["positional_encoding"])
        unused_modules = bool(switches["unused_modules"])
        d_model = self.n_times if d_model is None else int(d_model)

        if self.subject_token_ids == "reference":
            names = subject_names or [f"sub-{i + 1:02d}" for i in range(n_subjects)]
            row_of_id = [subject_row(s) for s in names]
            subject = SubjectEmbedding(REFERENCE_SUBJECT_ROWS, d_model, id_rule="reference",
                                       row_of_id=row_of_id, mask_token=unused_modules)
        else:
            if subject_names is not None and len(subject_names) != n_subjects:
                raise ValueError(
                    f"subject_names has {len(subject_names)} entries but n_subjects={n_subjects}."
                )
            subject = SubjectEmbedding(n_subjects, d_model, mask_token=unused_modules)

        embedding = _DataEmbedding(n_chans, n_times, d_model, dropout, subject, positional_encoding,
                                   unused_modules)
        self.encoder = _ChannelTransformer(embedding, _Encoder(d_model, n_heads, d_ff, dropout, e_layers))
        if unused_modules:
            self.subject_wise_linear = nn.ModuleList([nn.Linear(d_model, n_times) for _ in range(2)])
        self.enc_eeg = tsconv_encoder(n_chans, n_filters, tsconv_dropout)
        self.proj_eeg = ProjectionHead(tsconv_out_features(d_model, n_filters), n_outputs, proj_dropout)
        if self.logit_scale_mode is not None:
            self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        else:
            self.logit_scale = None

        self._set_config(
            mode=mode, channel_slice=self.channel_slice, logit_scale=self.logit_scale_mode,
            positional_encoding=positional_encoding, subject_token_ids=self.subject_token_ids,
            unused_modules=unused_modules, subject_names=subject_names, d_model=d_model,
            n_heads=n_heads, d_ff=d_ff, e_layers=e_layers, dropout=dropout, n_filters=n_filters,
            tsconv_dropout=tsconv_dropout, proj_dropout=proj_dropout,
        )

    def config_for_subjects(self, n_subjects: int) -> dict:
        """The config with ``n_subjects`` rows; recorded ``subject_names`` get ``new-<id>`` for added ids."""
        config = super().config_for_subjects(n_subjects)
        names = config.get("subject_names")
        if names:
            config["subject_names"] = list(names) + [f"new-{i}" for i in range(len(names), int(n_subjects))]
        return config

    def reference_rows(self) -> dict[str, int | None] | None:
        """Reference id rule: the subject-table row of each subject name (``None``: outside the 10-row table,
        so a batch holding it gives every sample the shared token, as ``sub-10`` does in the reference).

        ``None`` under the per-sample rule.
        """
        if self.subject_token_ids != "reference":
            return None
        names = self.config.get("subject_names") or [f"sub-{i + 1:02d}" for i in range(self.n_subjects)]
        rows = {name: subject_row(name) for name in names}
        return {name: (row if 0 <= row < REFERENCE_SUBJECT_ROWS else None) for name, row in rows.items()}

    def channel_tokens(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        """Transformer output after the slice, ``(B, n_chans, d_model)``."""
        enc_out = self.encoder(x, subject_ids)  # (B, 1 + C, d)
        if self.channel_slice == "reference":
            return enc_out[:, : self.n_chans]  # subject token + channels 0..C-2 (drops the last one)
        return enc_out[:, 1:]  # all channels, no subject token

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        tokens = self.channel_tokens(x, subject_ids)  # (B, C, d)
        return self.proj_eeg(self.enc_eeg(tokens))  # (B, n_outputs)

    def effective_logit_scale(self) -> torch.Tensor | None:
        """Multiplier for cosine/dot-product logits: raw parameter, ``exp`` clamped to 100, or None."""
        if self.logit_scale is None:
            return None
        if self.logit_scale_mode == "raw":
            return self.logit_scale
        return self.logit_scale.exp().clamp(max=LOGIT_SCALE_MAX)


def load_reference_state_dict(model: ATMSEncoder, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a state dict saved by the reference ``ATMS`` module into ``model``.

    The reference and a ``mode="reference"`` model share module names, so this is a strict
    ``load_state_dict``; it additionally drops a ``module.`` prefix (DataParallel checkpoints) and
    gives a clear error for a model that was not built in reference layout.

    ``model`` keeps its own ``positional_encoding`` setting, which the state dict cannot confirm (the
    reference's ``pe`` buffer is saved whether or not its forward pass uses it). To import a file, prefer
    :func:`eegvision.models.reference.load_reference_checkpoint`, which requires that choice.
    """
    if not isinstance(model, ATMSEncoder):
        raise TypeError(f"model must be an ATMSEncoder, got {type(model).__name__}.")
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            "The state dict does not match this ATM-S layout: missing keys "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected keys "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}. Reference checkpoints need "
            "create_encoder('atms', n_chans=63, n_times=250, mode='reference', positional_encoding=...); "
            "eegvision.models.reference.load_reference_checkpoint builds it from the file."
        )
    model.load_state_dict(state, strict=True)
