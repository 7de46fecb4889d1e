"""A neural encoder on top of a linear one: ``linear(x) + gate * neural(x)``, the gate starting at 0.

``fit`` builds it with ``FitConfig.ridge_init``: the ``linear`` part is the closed-form ridge solution of the
unit's fitting conditions (:class:`~eegvision.models.encoders.linear.LinearEncoder`) and the ``neural`` part a
fresh encoder; with the gate at 0 the composite starts exactly at the ridge solution and gradient training moves
away from it only as far as the validation split rewards (the selected epoch may be the first). The gate is a
learned scalar (ReZero, Bachlechner et al. 2021): its gradient is the neural part's output, so it leaves 0 at
the first step and the neural part then receives gradients. Both parts are trained; the config records both
parts' configs, so a saved composite reloads with ``load_encoder``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from eegvision.models.encoders.base import EEGEncoder

__all__ = ["ResidualEncoder"]


class ResidualEncoder(EEGEncoder):
    """``linear(x) + gate * neural(x)`` (module docstring).

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (those of both parts).
    linear, neural : dict
        The parts' configs (``encoder.config``); :meth:`around` builds the composite from built encoders.
    gate : float
        Initial value of the gate (0: start at the linear solution).
    """

    name = "residual"
    listed = False

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, linear: dict[str, Any], neural: dict[str, Any], gate: float = 0.0):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        self.linear = EEGEncoder.from_config(linear)
        self.neural = EEGEncoder.from_config(neural)
        for part, m in (("linear", self.linear), ("neural", self.neural)):
            if (m.n_chans, m.n_times, m.n_outputs) != (n_chans, n_times, n_outputs):
                raise ValueError(f"The {part} part maps {m.n_chans} channels x {m.n_times} samples to {m.n_outputs} "
                                 f"values, the composite {n_chans} x {n_times} to {n_outputs}; both parts must share "
                                 "the input and output shape.")
        self.gate = nn.Parameter(torch.tensor(float(gate)))
        self._set_config(linear=self.linear.config, neural=self.neural.config, gate=float(gate))

    @classmethod
    def around(cls, linear: EEGEncoder, neural: EEGEncoder, gate: float = 0.0) -> ResidualEncoder:
        """The composite of two built encoders (their weights and buffers copied)."""
        out = cls(neural.n_chans, neural.n_times, neural.n_outputs, neural.sfreq, neural.n_subjects,
                  linear=linear.config, neural=neural.config, gate=gate)
        out.linear.load_state_dict(linear.state_dict())
        out.neural.load_state_dict(neural.state_dict())
        return out

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        return self.linear(x, subject_ids) + self.gate * self.neural(x, subject_ids)

    def config_for_subjects(self, n_subjects: int) -> dict[str, Any]:
        return {**super().config_for_subjects(n_subjects), "linear": self.linear.config_for_subjects(n_subjects),
                "neural": self.neural.config_for_subjects(n_subjects)}

    def module_groups(self) -> dict[str, list[str]]:
        """The parts' groups, prefixed with ``linear.`` and ``neural.``."""
        groups: dict[str, list[str]] = {"head": [], "encoder": [], "attention": [], "subject": []}
        for part in ("linear", "neural"):
            for group, names in getattr(self, part).module_groups().items():
                groups.setdefault(group, []).extend(f"{part}.{n}" for n in names)
        return groups
