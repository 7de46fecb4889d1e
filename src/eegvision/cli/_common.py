"""Shared CLI plumbing: progress bars, error reporting."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors about user input into a one-line message and exit code 2."""
    try:
        yield
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, PermissionError) as exc:
        msg = exc.args[0] if exc.args else str(exc)
        console.print(f"[red]error:[/red] {msg}")
        raise typer.Exit(code=2) from None
