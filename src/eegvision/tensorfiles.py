"""Reading tensor files (``.safetensors``, ``.pt``) with one clear error for a damaged or foreign file.

``safetensors`` and ``torch.load`` report a damaged file with their own exception types and messages
(``SafetensorError: Error while deserializing header: HeaderTooLarge``, ``PytorchStreamReader failed reading
zip archive``) that do not name the file, and ``torch.load`` advises setting ``weights_only=False``, which
would run code stored in the file. Every reader of eegvision opens tensor files through this module, so a
bad file always gives one ``ValueError`` that names it, says what is wrong and how to fix it; the command
line prints it as one line and exits with code 2.

It is a base module of its own, not part of :mod:`eegvision.checks`, because it imports ``torch`` and
``safetensors`` (lazily), which the argument checks never need.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["load_safetensors", "load_torch", "open_safetensors", "unreadable_file"]

_REWRITE = "It is damaged or not a {kind} file (an interrupted copy or write?); copy or write it again."


def _reason(exc: BaseException) -> str:
    """The first sentence of a library's message (torch's unpickler: its own reason, not its advice)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return exc.__class__.__name__
    return lines[0].split(". ")[0].rstrip(".")


def unreadable_file(what: str, path: str | os.PathLike, exc: BaseException, kind: str, hint: str = "") -> ValueError:
    """The error for a file the library cannot read: what it is, where, the library's reason and the fix.

    Examples
    --------
    >>> unreadable_file("Feature file", "/d/test.safetensors", OSError("HeaderTooLarge"), "safetensors")
    ValueError('Feature file /d/test.safetensors could not be read (HeaderTooLarge). It is damaged or not a \
safetensors file (an interrupted copy or write?); copy or write it again.')
    """
    return ValueError(f"{what} {Path(path)} could not be read ({_reason(exc)}). "
                      + (hint or _REWRITE.format(kind=kind)))


def _safetensors_errors() -> tuple[type[BaseException], ...]:
    from safetensors import SafetensorError

    # A file cut short can also fail while a tensor is read (OSError, RuntimeError) or decoded (UnicodeError).
    return SafetensorError, OSError, RuntimeError, UnicodeError


@contextlib.contextmanager
def open_safetensors(path: str | os.PathLike, what: str, hint: str = "") -> Iterator[Any]:
    """``safetensors.safe_open(path)`` (torch tensors) as a context; a damaged file raises one ``ValueError``.

    Parameters
    ----------
    path : path
        The ``.safetensors`` file (it must exist; check it with :func:`eegvision.checks.check_file` first).
    what : str
        What the file is, capitalised (``"Feature file"``, ``"Encoder weights"``), for the message.
    hint : str
        How to fix a damaged file (default: copy or write it again).
    """
    from safetensors import safe_open

    errors = _safetensors_errors()
    try:
        with safe_open(str(path), framework="pt") as handle:
            yield handle
    except errors as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise unreadable_file(what, path, exc, "safetensors", hint) from None


def load_safetensors(path: str | os.PathLike, what: str, hint: str = "", device: str = "cpu") -> dict:
    """Every tensor of a ``.safetensors`` file as ``{name: tensor}``; see :func:`open_safetensors`."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except _safetensors_errors() as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise unreadable_file(what, path, exc, "safetensors", hint) from None


def load_torch(path: str | os.PathLike, what: str, hint: str = "", trusted: bool = False) -> Any:
    """``torch.load(path)`` on the CPU; a damaged file, or one holding Python objects, raises one ``ValueError``.

    Parameters
    ----------
    path : path
        A ``torch.save`` file (``.pt``, ``.pth``, ``.ckpt``).
    what : str
        What the file is, capitalised (``"Embedding file"``), for the message.
    hint : str
        How to fix a damaged file (default: copy or write it again).
    trusted : bool
        ``True`` only for files eegvision wrote itself (the Lightning checkpoints of a run folder): they are
        unpickled in full. Any other file is read with ``weights_only=True``: tensors, numbers, text and
        containers only, so no code in the file runs.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError,
            TypeError, KeyError, IndexError) as exc:
        if not trusted and "unsupported global" in str(exc).lower():
            raise ValueError(
                f"{what} {Path(path)} holds Python objects besides tensors, and eegvision reads only tensors, "
                "numbers, text, lists and dicts from .pt files (unpickling anything else could run code stored "
                "in the file). Save it again as tensors, e.g. torch.save({'img_features': tensor}, path), or "
                "convert it to .safetensors or .npy.") from None
        raise unreadable_file(what, path, exc, "torch.save (.pt)", hint) from None
