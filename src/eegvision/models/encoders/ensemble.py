"""A seed ensemble: several trained encoders whose L2-normalised embeddings are averaged.

``EnsembleEncoder(members)`` embeds a batch with every member and returns the mean of their L2-normalised
embeddings (not normalised again: retrieval scores by cosine, so only the direction matters). Its config records
each member's config, so a saved ensemble (``save_pretrained``) reloads with ``load_encoder`` like any encoder,
and every command that embeds with a run's encoder (``embed``, ``reconstruct``, analyses) uses the ensemble.
``fit`` builds it from the members of ``FitConfig.ensemble``; it is not listed among the encoders to train.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eegvision.models.encoders.base import EEGEncoder


class EnsembleEncoder(EEGEncoder):
    """Mean of the L2-normalised embeddings of several encoders of the same input and output shape.

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (those of the members).
    members : list of dict
        The members' configs (``encoder.config``); :meth:`from_members` builds an ensemble from trained encoders.
    """

    name = "ensemble"
    listed = False

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, members: Sequence[dict[str, Any]] = ()):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        if not members:
            raise ValueError("An ensemble needs at least one member config (members=[encoder.config, ...]).")
        self.members = nn.ModuleList(EEGEncoder.from_config(m) for m in members)
        for i, m in enumerate(self.members):
            if (m.n_chans, m.n_times, m.n_outputs) != (n_chans, n_times, n_outputs):
                raise ValueError(f"Ensemble member {i} maps {m.n_chans} channels x {m.n_times} samples to "
                                 f"{m.n_outputs} values, the ensemble {n_chans} x {n_times} to {n_outputs}; "
                                 "members must share the input and output shape.")
        self._set_config(members=[m.config for m in self.members])

    @classmethod
    def from_members(cls, encoders: Sequence[EEGEncoder]) -> EnsembleEncoder:
        """An ensemble holding copies of the weights of trained ``encoders``."""
        if not encoders:
            raise ValueError("An ensemble needs at least one trained encoder; got none.")
        first = encoders[0]
        ens = cls(first.n_chans, first.n_times, first.n_outputs, first.sfreq, first.n_subjects,
                  members=[e.config for e in encoders])
        for dst, src in zip(ens.members, encoders):
            dst.load_state_dict(src.state_dict())
        return ens

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        return torch.stack([F.normalize(m(x, subject_ids), dim=-1) for m in self.members]).mean(0)

    def config_for_subjects(self, n_subjects: int) -> dict[str, Any]:
        return {**super().config_for_subjects(n_subjects),
                "members": [m.config_for_subjects(n_subjects) for m in self.members]}

    def module_groups(self) -> dict[str, list[str]]:
        """Every member's groups, their names prefixed with ``members.I.``."""
        groups: dict[str, list[str]] = {"head": [], "encoder": [], "attention": [], "subject": []}
        for i, m in enumerate(self.members):
            for group, names in m.module_groups().items():
                groups.setdefault(group, []).extend(f"members.{i}.{n}" for n in names)
        return groups
