r"""A subject router on top of any encoder, used **only in training**: at evaluation every subject (seen or
unseen) takes the same, averaged route, so the encoder works for a subject it never saw.

SAMGA (arXiv 2604.17782; ``anchors.md`` §1, §7) trains with "a subject-aware router, used in training but not at
inference"; its code was not public (LinJiang8/SAMGA holds a README only), so the form below is ours: a mixture
of residual linear adapters on the base encoder's embedding :math:`h = f(x)`,

.. math::  y = h + \sum_{e=1}^{E} w_e(s)\, A_e h ,

with :math:`A_e \in \mathbb R^{d \times d}` (zero at the start: the composite starts exactly as the base
encoder) and routing weights :math:`w(s)` that depend on the subject :math:`s`:

``mode="gate"``
    a learned gate :math:`G \in \mathbb R^{S \times E}`, :math:`w(s) = \mathrm{softmax}(G_s)` (a mixture of
    experts whose input is the subject id); ``n_experts`` adapters shared by the ``S`` training subjects;
``mode="heads"``
    one adapter per training subject (:math:`E = S`), :math:`w(s) = e_s` (one-hot): joint multi-subject
    training with per-subject heads on a shared encoder.

**Training** (``module.training`` and a training subject id :math:`0 \le s < S`): :math:`w(s)` as above.
**Evaluation** (``eval()``), a missing id or an unseen one (``-1``): the average route
:math:`\bar w = \frac1S \sum_s w(s)`, whatever the id — so at test time the router ignores the subject id and
the composite is one fixed map :math:`y = (I + \sum_e \bar w_e A_e)\, h`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from eegvision.checks import check_choice
from eegvision.models.encoders.base import EEGEncoder, wrapped_groups

__all__ = ["ROUTER_MODES", "RoutedEncoder"]

#: The routing forms of :class:`RoutedEncoder` (``FitConfig.subject_router``).
ROUTER_MODES = ("gate", "heads")


class RoutedEncoder(EEGEncoder):
    """``base(x) + sum_e w_e(subject) A_e base(x)``; the subject route only in training (module docstring).

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters (the base encoder's; ``n_subjects`` training subjects route).
    base : dict
        The base encoder's config (``encoder.config``); :meth:`around` builds the composite from a built one.
    mode : {"gate", "heads"}
    n_experts : int
        Adapters of ``mode="gate"`` (``heads`` uses one per subject).
    """

    name = "routed"
    listed = False

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, base: dict[str, Any], mode: str = "gate", n_experts: int = 4):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        self.mode = check_choice("subject_router", mode, ROUTER_MODES)
        if mode == "gate" and (isinstance(n_experts, bool) or not isinstance(n_experts, int) or n_experts < 1):
            raise ValueError(f"router_experts must be a positive integer (the number of adapters), got "
                             f"{n_experts!r}.")
        self.base = EEGEncoder.from_config(base)
        if (self.base.n_chans, self.base.n_times, self.base.n_outputs) != (n_chans, n_times, n_outputs):
            raise ValueError(f"The base encoder maps {self.base.n_chans} x {self.base.n_times} to "
                             f"{self.base.n_outputs}; the router was built for {n_chans} x {n_times} to {n_outputs}.")
        e = n_subjects if mode == "heads" else int(n_experts)
        self.n_experts = e
        self.experts = nn.Parameter(torch.zeros(e, n_outputs, n_outputs))
        if mode == "gate":
            self.gate = nn.Parameter(torch.zeros(n_subjects, e))
        else:
            self.register_buffer("gate", torch.eye(n_subjects), persistent=False)
        self._set_config(base=self.base.config, mode=mode, n_experts=int(n_experts))

    @classmethod
    def around(cls, base: EEGEncoder, mode: str = "gate", n_experts: int = 4) -> RoutedEncoder:
        """The composite around a built encoder (its weights and buffers copied)."""
        out = cls(base.n_chans, base.n_times, base.n_outputs, base.sfreq, base.n_subjects, base=base.config,
                  mode=mode, n_experts=n_experts)
        out.base.load_state_dict(base.state_dict())
        return out

    def route_table(self) -> torch.Tensor:
        """``(n_subjects, n_experts)``: the routing weights of each training subject."""
        return torch.softmax(self.gate, dim=-1) if self.mode == "gate" else self.gate

    def routing(self, subject_ids: torch.Tensor | None, batch: int) -> torch.Tensor:
        """``(batch, n_experts)`` weights: each sample's subject route in training, the average route otherwise
        (evaluation, no ids, or an id outside ``0..n_subjects-1``)."""
        table = self.route_table()
        mean = table.mean(0)
        if not self.training or subject_ids is None:
            return mean.expand(batch, -1)
        ids = subject_ids.long()
        seen = (ids >= 0) & (ids < self.n_subjects)
        return torch.where(seen[:, None], table[ids.clamp(0, self.n_subjects - 1)], mean.expand(batch, -1))

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        h = self.base(x, subject_ids)
        w = self.routing(subject_ids, x.shape[0]).to(h.dtype)
        z = torch.matmul(h[None], self.experts.to(h.dtype).transpose(1, 2))     # (E, batch, d): A_e h per expert
        return h + (w.T[:, :, None] * z).sum(0)

    def config_for_subjects(self, n_subjects: int) -> dict[str, Any]:
        return {**super().config_for_subjects(n_subjects), "base": self.base.config_for_subjects(n_subjects)}

    def module_groups(self) -> dict[str, list[str]]:
        """The base encoder's groups prefixed with ``base.``; the adapters and gate are the ``subject`` group."""
        groups = wrapped_groups(self.base)
        groups["subject"] += ["experts"] + (["gate"] if self.mode == "gate" else [])
        return groups
