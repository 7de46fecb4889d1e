"""A trainable linear projection after any encoder: ``Linear(base(x))``, the EEG side of ``FitConfig.projector``.

NeuroBridge (feroooooo/NeuroBridge@6144203, ``module/projector.py`` ``ProjectorLinear``; ``train.py --projector
linear --feature_dim 512``) maps the EEG encoder's 1024-d output and the 1024-d image feature each through its own
``nn.Linear(1024, 512)`` and retrieves in the 512-d space. This composite is the EEG half: the base encoder (its
output size the image features') followed by ``projection`` (``Linear(base.n_outputs, n_outputs)``, with bias),
saved and reloaded as one encoder, so everything that embeds EEG with a run's encoder (evaluation, ``embed``)
gets the projected embedding. The image half is :class:`eegvision.models.image_projector.ImageProjector`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from eegvision.models.encoders.base import EEGEncoder, wrapped_groups

__all__ = ["ProjectedEncoder"]


class ProjectedEncoder(EEGEncoder):
    """``projection(base(x))`` (module docstring).

    Parameters
    ----------
    n_chans, n_times, sfreq, n_subjects
        Signal parameters (the base encoder's).
    n_outputs : int
        The projected size (NeuroBridge: 512).
    base : dict
        The base encoder's config (``encoder.config``); :meth:`around` builds the composite from a built one.
    """

    name = "projected"
    listed = False

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 512, sfreq: float = 250.0,
                 n_subjects: int = 1, *, base: dict[str, Any]):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        self.base = EEGEncoder.from_config(base)
        if (self.base.n_chans, self.base.n_times) != (n_chans, n_times):
            raise ValueError(f"The base encoder reads {self.base.n_chans} channels x {self.base.n_times} samples; "
                             f"the projected encoder was built for {n_chans} x {n_times}.")
        self.projection = nn.Linear(self.base.n_outputs, n_outputs)
        self._set_config(base=self.base.config)

    @classmethod
    def around(cls, base: EEGEncoder, dim: int) -> ProjectedEncoder:
        """The composite of a built encoder (its weights and buffers copied) and a fresh ``Linear(n_outputs,
        dim)`` (PyTorch's default initialisation, drawn from the global RNG)."""
        out = cls(base.n_chans, base.n_times, int(dim), base.sfreq, base.n_subjects, base=base.config)
        out.base.load_state_dict(base.state_dict())
        return out

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        return self.projection(self.base(x, subject_ids))

    def config_for_subjects(self, n_subjects: int) -> dict[str, Any]:
        return {**super().config_for_subjects(n_subjects), "base": self.base.config_for_subjects(n_subjects)}

    def module_groups(self) -> dict[str, list[str]]:
        """The base encoder's groups prefixed with ``base.``; the projection joins the ``head`` group."""
        groups = wrapped_groups(self.base)
        groups["head"].append("projection")
        return groups
