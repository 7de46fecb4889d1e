"""Subject names: BIDS-style ``sub-XX`` from whatever a user or a file names them."""

from __future__ import annotations

__all__ = ["normalize_subject"]


def normalize_subject(name: str | int) -> str:
    """``"sub-01"`` for ``1``, ``"1"``, ``"01"`` or ``"sub-01"``; other names unchanged."""
    text = str(name).strip()
    if text.isdigit():
        return f"sub-{int(text):02d}"
    return text
