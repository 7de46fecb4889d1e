"""The trainable image-side projector of ``FitConfig.projector``: ``Linear(feature_dim, dim)`` on the image targets.

NeuroBridge (feroooooo/NeuroBridge@6144203, ``module/projector.py`` ``ProjectorLinear``, built in ``train.py`` for
``--projector linear --feature_dim 512``) passes every image feature (training and test, 1024-d RN50) through its
own trainable ``nn.Linear(1024, 512)`` before the loss and the retrieval, next to the EEG side's
(:class:`eegvision.models.encoders.projected.ProjectedEncoder`). A run trained with a projector saves this module
in each unit's ``image_projector/`` (``config.json`` + ``model.safetensors``, the encoder's format) and scores its
test embeddings against the projected test features (:meth:`ImageProjector.project_features`).

>>> proj = ImageProjector(1024, 512)
>>> sum(p.numel() for p in proj.parameters())
524800
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eegvision.features.files import Features
from eegvision.models.encoders.checkpoint import (
    load_checkpoint_weights,
    read_checkpoint_config,
    write_checkpoint,
)

__all__ = ["ImageModule", "ImageProjector"]


class ImageModule(nn.Module):
    """What the trainable image-side modules share (:class:`ImageProjector`, the multi-view target of
    :mod:`eegvision.models.multi_view`, the fusion encoder of :mod:`eegvision.models.fusion_encoder`): saving and
    loading in the encoder's format (``config.json`` with the module's ``name`` + ``model.safetensors``) and mapping a
    whole feature file (:meth:`project_features`). A subclass sets ``name``, ``what`` (for messages) and ``config``
    (its constructor's arguments plus ``name``) and may extend :meth:`projected_metadata`."""

    name = ""
    what = "an image-side module"
    #: Images mapped at a time by :meth:`project_features`.
    project_batch = 1024

    @property
    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def projected_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """The metadata of a feature file mapped by this module: ``normalized`` ``"false"`` and ``projector``
        (the module's name and sizes) added."""
        sizes = {k: v for k, v in self.config.items() if k != "name"}
        return {**metadata, "normalized": "false", "projector": f"{self.name} {sizes} of the run"}

    @torch.no_grad()
    def project_features(self, feats: Features, batch_size: int | None = None) -> Features:
        """``feats`` with its image rows mapped (float32, on CPU, ``batch_size`` images at a time, default
        ``project_batch``) and no text rows (the modules are trained on images only); metadata from
        :meth:`projected_metadata`."""
        batch_size = batch_size or self.project_batch
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        image = torch.cat([self(chunk.to(device)).float().cpu() for chunk in feats.image.split(batch_size)])
        self.train(was_training)
        return Features(image=image, text=None, metadata=self.projected_metadata(feats.metadata), path=feats.path,
                        concepts=feats.concepts)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/config.json`` and ``directory/model.safetensors`` (atomically)."""
        return write_checkpoint(self, self.config, directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> ImageModule:
        """Rebuild a module written by :meth:`save_pretrained` (eval mode, on ``map_location``)."""
        config = read_checkpoint_config(directory)
        if config.get("name") != cls.name:
            raise ValueError(f"{directory} holds a {config.get('name')!r}, not {cls.what}; give a run unit's "
                             "image_projector/ folder.")
        model = cls(**{k: v for k, v in config.items() if k != "name"})
        load_checkpoint_weights(model, directory, map_location)
        return model.to(map_location).eval()


class ImageProjector(ImageModule):
    """``Linear(in_dim, dim)`` (with bias) applied to image features (module docstring).

    Parameters
    ----------
    in_dim : int
        The image features' size (the encoder's output before its projection).
    dim : int
        The shared retrieval space's size (NeuroBridge: 512).
    """

    name = "image_projector"
    what = "an image projector"

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        for what, value in (("in_dim", in_dim), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ImageProjector {what} must be a positive integer; got {value!r}.")
        self.in_dim, self.dim = int(in_dim), int(dim)
        self.linear = nn.Linear(self.in_dim, self.dim)

    @property
    def config(self) -> dict[str, Any]:
        """What :meth:`from_pretrained` rebuilds the module from."""
        return {"name": self.name, "in_dim": self.in_dim, "dim": self.dim}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.in_dim:
            raise ValueError(f"The image projector maps {self.in_dim}-d features; got shape {tuple(features.shape)}. "
                             "Give the image features the run was trained with.")
        return self.linear(features.to(self.linear.weight.dtype))
