"""Encoder registry: build encoders by name, describe them, save and reload them.

Names
-----
* eegvision encoders: ``"atms"`` (ATM-S), ``"nice"``, ``"eegproject"``, ``"brainmlp"`` (BrainHiVE's),
  ``"projector"`` (ATM's MLP baseline), ``"stconv"`` (eegvision's spatial-filter + temporal-convolution + MLP encoder), ``"atms50"``
  (the 2024 temporal-attention ATM-S, for imported checkpoints), ``"ridge"`` (a linear map fitted in closed form,
  :mod:`eegvision.models.encoders.linear`). Case, ``-`` and ``_`` are ignored (``"ATM-S"`` works).
* any braindecode model: ``"braindecode:EEGNet"``, ``"braindecode:ShallowFBCSPNet"``, ... A bare
  braindecode class name (``"EEGNet"``) is accepted as well.

Every encoder class registers itself under its ``name`` when it is defined
(:data:`eegvision.models.encoders.base.ENCODER_CLASSES`); this module adds what users type (aliases,
case, bare braindecode class names, close-match hints) and the listing.

Checkpoints are a directory with ``config.json`` (the encoder's ``.config`` plus the eegvision
version) and ``model.safetensors`` (:mod:`eegvision.models.encoders.checkpoint`); :func:`load_encoder`
rebuilds the module from the two.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from eegvision.checks import name_error
from eegvision.models.encoders import ENCODER_CLASSES, BraindecodeEncoder, EEGEncoder
from eegvision.models.encoders.braindecode_head import PREFIX, braindecode_model_names

_ALIASES = {"atm": "atms", "mlp": "projector", "mlpprojector": "projector"}


def _normalise(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _plain_encoders() -> dict[str, type[EEGEncoder]]:
    """Registered classes without variants (eegvision's own encoders), by normalised name, sorted."""
    return {_normalise(n): c for n, c in sorted(ENCODER_CLASSES.items()) if not c.has_variants and c.listed}


def list_models(braindecode: bool = True) -> list[str]:
    """Registered encoder names.

    Parameters
    ----------
    braindecode : bool
        Also list the variants of every family: each braindecode model as ``"braindecode:<Class>"``.

    Returns
    -------
    list of str
        eegvision encoders first, in alphabetical order (``atms``, ``atms50``, ``brainmlp``, ``eegproject``,
        ``nice``, ``projector``, ``ridge``, ``stconv``), then the families' variants.
    """
    names = list(_plain_encoders())
    if braindecode:
        names += [f"{n}:{v}" for n, c in sorted(ENCODER_CLASSES.items()) if c.has_variants for v in c.variants()]
    return names


def model_descriptions(braindecode: bool = True) -> dict[str, str]:
    """``{name: one-line description}`` of every name :func:`list_models` gives, in its order.

    An eegvision encoder is described by the first line of its class docstring; a braindecode variant as
    ``"braindecode's <Class> with an embedding head"``.
    """
    out = {}
    for name in list_models(braindecode=braindecode):
        family, _, variant = name.partition(":")
        if variant:
            out[name] = f"braindecode's {variant} with an embedding head"
        else:
            doc = (_plain_encoders()[name].__doc__ or "").strip()
            out[name] = doc.splitlines()[0].replace("``", "") if doc else ""
    return out


def resolve_name(name: str) -> tuple[type[EEGEncoder], dict[str, Any]]:
    """The encoder class for ``name`` and the fixed options it implies (the braindecode model)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"Encoder name must be a non-empty string, got {name!r}.")
    key = _normalise(name)
    key = _ALIASES.get(key, key)
    plain = _plain_encoders()
    if key in plain:
        return plain[key], {}
    bd_names = braindecode_model_names()
    model = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if model in bd_names:
        return BraindecodeEncoder, {"model": model}
    by_lower = {n.lower(): n for n in bd_names}
    if model.lower() in by_lower:
        return BraindecodeEncoder, {"model": by_lower[model.lower()]}
    raise name_error("Encoder", name, [*list_models(), *bd_names], "eegvision (list_models() lists them)")


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
    cls.check_options(options, name)
    return cls(n_chans=n_chans, n_times=n_times, n_outputs=n_outputs, sfreq=sfreq,
               n_subjects=n_subjects, **options)


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
    if not isinstance(model, EEGEncoder):
        raise TypeError(f"save_pretrained expects an eegvision encoder, got {type(model).__name__}.")
    return model.save_pretrained(directory)


def load_encoder(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> EEGEncoder:
    """Rebuild an encoder written by :func:`save_pretrained`; returned in eval mode on ``map_location``."""
    return EEGEncoder.from_pretrained(directory, map_location=map_location)
