"""The on-disk form of an encoder: a directory with ``config.json`` and ``model.safetensors``.

``config.json`` holds the encoder's ``.config`` (its registry name and every constructor argument)
plus the eegvision version and the format version; ``model.safetensors`` its weights. This module
only reads and writes the two files; :meth:`eegvision.models.encoders.base.EEGEncoder.from_pretrained`
rebuilds the module from them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eegvision.utils import atomic_path, write_text_atomic

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


def write_checkpoint(model: nn.Module, config: dict[str, Any], directory: str | os.PathLike) -> Path:
    """Write ``directory/model.safetensors`` then ``directory/config.json`` (each atomically).

    The weights are written before the config, so a directory with a config always has matching
    weights. Returns the directory.
    """
    from safetensors.torch import save_model

    from eegvision import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_NAME, suffix=".safetensors") as tmp:
        save_model(model, str(tmp), metadata={"format": "pt", "encoder": config["name"]})
    record = {**config, "eegvision_version": __version__, "format_version": FORMAT_VERSION}
    write_text_atomic(directory / CONFIG_NAME, json.dumps(record, indent=2) + "\n")
    return directory


def read_checkpoint_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The encoder config stored in ``directory`` (name and constructor arguments, versions removed).

    ``pretrained`` (a weights file used when the encoder was first built) is dropped too: the
    weights come from ``model.safetensors``.
    """
    directory = Path(directory)
    for path in (directory / CONFIG_NAME, directory / WEIGHTS_NAME):
        if not path.is_file():
            raise FileNotFoundError(
                f"{str(path)!r} not found. load_encoder expects a directory written by "
                "save_pretrained (config.json + model.safetensors)."
            )
    config = json.loads((directory / CONFIG_NAME).read_text())
    for key in ("eegvision_version", "format_version", "pretrained"):
        config.pop(key, None)
    return config


def load_checkpoint_weights(model: nn.Module, directory: str | os.PathLike,
                            map_location: str | torch.device = "cpu") -> None:
    """Load ``directory/model.safetensors`` into ``model`` (strict: every tensor must match)."""
    from safetensors.torch import load_model

    from eegvision.tensorfiles import open_safetensors

    path = Path(directory) / WEIGHTS_NAME
    with open_safetensors(path, "Encoder weights"):  # a damaged file: one error that names it
        pass
    load_model(model, str(path), strict=True, device=str(map_location))
