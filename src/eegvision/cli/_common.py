"""Shared CLI plumbing: error reporting, comma-separated lists, ``KEY=VALUE`` options."""

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


def split_list(text: str | None) -> list[str] | None:
    """``"sub-01, sub-02"`` -> ``["sub-01", "sub-02"]`` (empty items dropped); ``None`` for no text.

    Options that take several values are written comma-separated on the command line; the library takes
    lists, so this is the one place where text is split on commas.
    """
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def channels_option(text: str | None) -> str | list[str] | None:
    """``--channels``: one name (a region such as occipito-parietal, or a channel) as text, several as a list."""
    names = split_list(text)
    return names[0] if names and len(names) == 1 else names


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
