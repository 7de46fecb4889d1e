"""Encoder registry: build encoders by name, describe them, save and reload them.

Names
-----
* eegvision encoders: ``"atms"`` (ATM-S), ``"nice"``, ``"eegproject"``, ``"projector"`` (ATM's MLP
  baseline), ``"stconv"`` (eegvision's spatial-filter + temporal-convolution + MLP encoder), ``"atms50"``
  (the 2024 temporal-attention ATM-S, for imported checkpoints). Case, ``-`` and ``_`` are ignored (``"ATM-S"`` works).
* any braindecode model: ``"braindecode:EEGNet"``, ``"braindecode:ShallowFBCSPNet"``, ... A bare
  braindecode class name (``"EEGNet"``) is accepted as well.

Checkpoints are a directory with ``config.json`` (the encoder's ``.config`` plus the eegvision
version) and ``model.safetensors``; :func:`load_encoder` rebuilds the module from the two.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eegvision.models.encoders.atms import ATMSEncoder
from eegvision.models.encoders.atms50 import ATMS50Encoder
from eegvision.models.encoders.base import EEGEncoder
from eegvision.models.encoders.braindecode_head import (
    PREFIX,
    BraindecodeEncoder,
    braindecode_model_names,
)
from eegvision.models.encoders.eegproject import EEGProjectEncoder
from eegvision.models.encoders.nice import NICEEncoder
from eegvision.models.encoders.projector import ProjectorEncoder
from eegvision.models.encoders.stconv import STConvEncoder
from eegvision.utils import atomic_path, close_matches, write_text_atomic

#: eegvision's own encoders, by registry name.
ENCODERS: dict[str, type[EEGEncoder]] = {
    "atms": ATMSEncoder,
    "nice": NICEEncoder,
    "eegproject": EEGProjectEncoder,
    "projector": ProjectorEncoder,
    "stconv": STConvEncoder,
    "atms50": ATMS50Encoder,
}
_ALIASES = {"atm": "atms", "mlp": "projector", "mlpprojector": "projector"}

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


def _normalise(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def list_models(braindecode: bool = True) -> list[str]:
    """Registered encoder names.

    Parameters
    ----------
    braindecode : bool
        Also list every braindecode model as ``"braindecode:<Class>"``.

    Returns
    -------
    list of str
        eegvision encoders first (``atms``, ``nice``, ``eegproject``, ``projector``), then braindecode.
    """
    names = list(ENCODERS)
    if braindecode:
        names += [PREFIX + n for n in braindecode_model_names()]
    return names


def resolve_name(name: str) -> tuple[type[EEGEncoder], dict[str, Any]]:
    """The encoder class for ``name`` and the fixed options it implies (the braindecode model)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"Encoder name must be a non-empty string, got {name!r}.")
    key = _normalise(name)
    key = _ALIASES.get(key, key)
    if key in ENCODERS:
        return ENCODERS[key], {}
    bd_names = braindecode_model_names()
    model = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if model in bd_names:
        return BraindecodeEncoder, {"model": model}
    by_lower = {n.lower(): n for n in bd_names}
    if model.lower() in by_lower:
        return BraindecodeEncoder, {"model": by_lower[model.lower()]}
    hints = close_matches(name, list_models()) or close_matches(name, list(bd_names))
    raise ValueError(
        f"Unknown encoder {name!r}."
        + (f" Did you mean {', '.join(map(repr, hints))}?" if hints else "")
        + " See eegvision.models.list_models() for all names."
    )


def create_encoder(name: str, *, n_chans: int, n_times: int, n_outputs: int = 1024,
                   sfreq: float = 250.0, n_subjects: int = 1, **options: Any) -> EEGEncoder:
    """Build an encoder by name.

    Parameters
    ----------
    name : str
        A name from :func:`list_models` (e.g. ``"atms"``, ``"braindecode:EEGNet"``).
    n_chans, n_times : int
        Input shape of one epoch, ``(n_chans, n_times)``.
    n_outputs : int
        Embedding size (1024 for ViT-H-14).
    sfreq : float
        Sampling rate in Hz.
    n_subjects : int
        Number of training subjects; ids ``0..n_subjects-1``, ``-1`` = unseen.
    **options
        Encoder-specific options (e.g. ``mode="reference"`` for ATM-S, ``head="projector"`` for
        braindecode models). Unknown options raise a ``ValueError`` listing the allowed ones.

    Returns
    -------
    EEGEncoder
        ``forward(x: (B, n_chans, n_times), subject_ids: (B,) | None) -> (B, n_outputs)``.

    Examples
    --------
    >>> enc = create_encoder("atms", n_chans=63, n_times=250)
    >>> enc(torch.randn(2, 63, 250)).shape
    torch.Size([2, 1024])
    """
    cls, fixed = resolve_name(name)
    for key, value in fixed.items():
        if key in options and options[key] != value:
            raise ValueError(f"Encoder {name!r} implies {key}={value!r}, but {key}={options[key]!r} was given.")
    options.update(fixed)
    _check_options(cls, options, name)
    return cls(n_chans=n_chans, n_times=n_times, n_outputs=n_outputs, sfreq=sfreq,
               n_subjects=n_subjects, **options)


def _check_options(cls: type[EEGEncoder], options: dict[str, Any], name: str) -> None:
    import inspect

    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "n_chans", "n_times", "n_outputs", "sfreq", "n_subjects")]
    for key in options:
        if key not in allowed:
            hint = close_matches(key, allowed)
            raise ValueError(
                f"Unknown option {key!r} for encoder {name!r}."
                + (f" Did you mean {', '.join(map(repr, hint))}?" if hint else "")
                + f" Allowed options: {', '.join(allowed)}."
            )


def describe(name: str, *, n_chans: int = 63, n_times: int = 250, n_outputs: int = 1024,
             sfreq: float = 250.0, n_subjects: int = 1, **options: Any) -> dict[str, Any]:
    """Build ``name`` for the given shape and report its size.

    Returns
    -------
    dict
        ``name``, ``n_params`` (unique parameters), ``n_trainable``, ``input_shape``,
        ``output_shape`` and the full ``config``.
    """
    model = create_encoder(name, n_chans=n_chans, n_times=n_times, n_outputs=n_outputs, sfreq=sfreq,
                           n_subjects=n_subjects, **options)
    return {
        "name": model.config["name"],
        "n_params": model.n_parameters(),
        "n_trainable": model.n_parameters(trainable_only=True),
        "input_shape": [n_chans, n_times],
        "output_shape": [n_outputs],
        "config": model.config,
    }


def save_pretrained(model: EEGEncoder, directory: str | os.PathLike) -> Path:
    """Write ``directory/config.json`` and ``directory/model.safetensors`` (each atomically).

    The weights are written before the config, so a directory with a config always has matching
    weights. Returns the directory.
    """
    from safetensors.torch import save_model

    from eegvision import __version__

    if not isinstance(model, EEGEncoder):
        raise TypeError(f"save_pretrained expects an eegvision encoder, got {type(model).__name__}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_NAME, suffix=".safetensors") as tmp:
        save_model(model, str(tmp), metadata={"format": "pt", "encoder": model.config["name"]})
    config = {**model.config, "eegvision_version": __version__, "format_version": FORMAT_VERSION}
    write_text_atomic(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return directory


def load_encoder(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> EEGEncoder:
    """Rebuild an encoder written by :func:`save_pretrained`; returned in eval mode on ``map_location``."""
    from safetensors.torch import load_model

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{str(path)!r} not found. load_encoder expects a directory written by "
                "save_pretrained (config.json + model.safetensors)."
            )
    config = json.loads(config_path.read_text())
    config.pop("eegvision_version", None)
    config.pop("format_version", None)
    config.pop("pretrained", None)  # weights come from model.safetensors, not the original file
    name = config.pop("name")
    model = create_encoder(name, **config)
    load_model(model, str(weights_path), strict=True, device=str(map_location))
    return model.to(map_location).eval()


def count_parameters(model: nn.Module) -> int:
    """Number of unique parameters of any module."""
    return sum(p.numel() for p in model.parameters())
