"""Common base of every eegvision encoder: signal parameters, ``.config``, input checks, saving."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import torch
from torch import nn

from eegvision.models.encoders.layers import check_subject_ids


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


class EEGEncoder(nn.Module):
    """Base class: maps ``(batch, n_chans, n_times)`` EEG/MEG to ``(batch, n_outputs)`` embeddings.

    Subclasses call ``super().__init__(...)`` with the braindecode signal parameters, build their
    layers, record every constructor argument with :meth:`_set_config`, and implement
    :meth:`embed` (the forward pass on validated input).

    Parameters
    ----------
    n_chans, n_times : int
        Input channels and time samples.
    n_outputs : int
        Embedding size (1024 for ViT-H-14 CLIP).
    sfreq : float
        Sampling rate in Hz (recorded in the config; some backbones use it).
    n_subjects : int
        Number of training subjects (ids ``0..n_subjects-1``); id ``-1`` means unseen.
    """

    #: Registry name, set by each subclass.
    name: ClassVar[str] = ""

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1):
        super().__init__()
        self.n_chans = _check_positive_int("n_chans", n_chans)
        self.n_times = _check_positive_int("n_times", n_times)
        self.n_outputs = _check_positive_int("n_outputs", n_outputs)
        self.n_subjects = _check_positive_int("n_subjects", n_subjects)
        if not isinstance(sfreq, (int, float)) or sfreq <= 0:
            raise ValueError(f"sfreq must be a positive number of Hz, got {sfreq!r}.")
        self.sfreq = float(sfreq)
        self._config: dict[str, Any] = {}

    # ------------------------------------------------------------------ config
    def _set_config(self, **options: Any) -> None:
        config = {
            "name": self.name, "n_chans": self.n_chans, "n_times": self.n_times,
            "n_outputs": self.n_outputs, "sfreq": self.sfreq, "n_subjects": self.n_subjects,
            **options,
        }
        try:
            json.dumps(config)
        except TypeError as err:
            raise ValueError(f"Encoder options must be JSON-serialisable, got {options!r}.") from err
        self._config = config

    @property
    def config(self) -> dict[str, Any]:
        """Every constructor argument, JSON-able; ``create_encoder(**config)`` rebuilds the model."""
        return json.loads(json.dumps(self._config))

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, subject_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Embed a batch.

        Parameters
        ----------
        x : Tensor, shape (batch, n_chans, n_times)
            EEG/MEG epochs.
        subject_ids : LongTensor, shape (batch,), optional
            Subject index of each sample; ``-1`` (or ``>= n_subjects``) selects the shared token of
            encoders with subject conditioning. ``None`` treats every sample as unseen.

        Returns
        -------
        Tensor, shape (batch, n_outputs)
        """
        if x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] != self.n_times:
            raise ValueError(
                f"eeg must have shape (batch, n_chans={self.n_chans}, n_times={self.n_times}), got "
                f"{tuple(x.shape)}. Build the encoder with the n_chans/n_times of your data."
            )
        check_subject_ids(subject_ids, x.shape[0])
        if subject_ids is not None and subject_ids.device != x.device:
            subject_ids = subject_ids.to(x.device)
        return self.embed(x, subject_ids)

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` (atomically) to ``directory``."""
        from eegvision.models.registry import save_pretrained

        save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str = "cpu") -> EEGEncoder:
        """Rebuild an encoder saved with :meth:`save_pretrained` (in eval mode)."""
        from eegvision.models.registry import load_encoder

        return load_encoder(directory, map_location=map_location)

    def n_parameters(self, trainable_only: bool = False) -> int:
        """Number of (unique) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def extra_repr(self) -> str:
        return (f"n_chans={self.n_chans}, n_times={self.n_times}, n_outputs={self.n_outputs}, "
                f"n_subjects={self.n_subjects}")
