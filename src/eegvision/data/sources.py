"""Open any data source as a :class:`~eegvision.store.base.Store`: an eegvision store or a THINGS-EEG2 folder.

Every command that takes ``--data`` goes through :func:`open_data`, the one place where a folder becomes
training data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["open_data"]


def open_data(path: str | os.PathLike) -> Any:
    """Open DATA: an eegvision store (``manifest.json``) or a THINGS-EEG2 folder, read in place."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"Data not found: {p}. Give a store directory (with manifest.json, made by "
                                "`eegvision convert`) or a THINGS-EEG2 folder (with Preprocessed_data_250Hz/).")
    if (p / "manifest.json").is_file():
        from eegvision.store.disk import open_store

        return open_store(p)
    if (p / "Preprocessed_data_250Hz").is_dir() or p.name == "Preprocessed_data_250Hz":
        from eegvision.store.things_folder import open_things_eeg2

        return open_things_eeg2(p)
    raise FileNotFoundError(f"{p} is neither an eegvision store (no manifest.json) nor a THINGS-EEG2 folder (no "
                            "Preprocessed_data_250Hz/). Convert the data with `eegvision convert`, or point --data "
                            "at the folder that contains Preprocessed_data_250Hz/.")
