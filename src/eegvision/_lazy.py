"""Lazy package exports: a package lists ``{public name: submodule}`` and imports each on first access.

Packages whose modules pull in torch, mne or pandas use this so that ``import eegvision.<package>`` stays
cheap (the CLI's ``--help`` and the readers' checks do not pay for torch)::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"open_store": "disk", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable, Callable, list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``names`` (name -> submodule)."""
    table = dict(names)

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{table[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__, sorted(table)
