"""Shared CLI plumbing: progress bars, error reporting."""

from __future__ import annotations

import contextlib
import json
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


def parse_options(pairs: list[str] | None, flag: str = "--encoder-option") -> dict:
    """``KEY=VALUE`` pairs (VALUE parsed as JSON when it is JSON, else kept as a string) → dict."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"{flag} takes KEY=VALUE (VALUE as JSON, e.g. dropout=0.1), got {pair!r}.")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
