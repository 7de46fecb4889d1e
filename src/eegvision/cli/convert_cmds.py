"""CLI commands: convert, info. (Filled in by its owner; each command wraps a library function.)"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
