"""Shared CLI plumbing: the two output streams, ``--json``, error reporting, comma lists, ``KEY=VALUE`` options.

Results and headlines go to ``stdout`` (so ``eegvision evaluate RUN > results.txt`` keeps them); progress bars,
notes, warnings and errors go to ``stderr``. With ``--json`` a command prints one JSON document on stdout
instead of its tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

#: Results and headlines (tables, scores, "wrote PATH"); soft wrap keeps long paths on one line in files.
stdout = Console(soft_wrap=True)
#: Notes, warnings and errors (progress bars write to stderr too).
stderr = Console(stderr=True, soft_wrap=True)

JSON_HELP = "Print the result as one JSON document on stdout (no tables)."


def jsonable(value: Any) -> Any:
    """``value`` as JSON types: dataclasses and mappings as objects, paths as text, arrays as lists, NaN as null.

    Tensors and arrays with more than one axis are given as ``{"shape": [...]}`` (the numbers stay in the files
    the command wrote).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas table
        return jsonable(value.to_dict(orient="records"))
    if hasattr(value, "shape") and hasattr(value, "tolist"):  # numpy / torch
        if len(value.shape) > 1:
            return {"shape": [int(n) for n in value.shape]}
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


def print_json(data: Any) -> None:
    """Write ``data`` (see :func:`jsonable`) as one JSON document on stdout."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")
    sys.stdout.flush()


def _note(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the command line: the message as one ``note:`` line, without source lines."""
    stderr.print(f"[yellow]note:[/yellow] {escape(str(message))}", highlight=False)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors about user input into a one-line message and exit code 2; warnings into notes."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _note
            yield
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, PermissionError) as exc:
        msg = exc.args[0] if exc.args else str(exc)
        stderr.print(f"[red]error:[/red] {escape(str(msg))}", highlight=False)
        raise typer.Exit(code=2) from None


def split_list(text: str | None) -> list[str] | None:
    """``"sub-01, sub-02"`` -> ``["sub-01", "sub-02"]`` (empty items dropped); ``None`` for no text.

    Options that take several values are written comma-separated on the command line; the library takes
    lists, so this is the one place where text is split on commas.
    """
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def number_list(text: str | None, kind: type = int, flag: str = "this option") -> list | None:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (``kind`` int or float); ``None`` for no text; a clear error for a bad item."""
    items = split_list(text)
    if items is None:
        return None
    try:
        return [kind(t) for t in items]
    except ValueError:
        example = "2,4,10" if kind is int else "0.0001,0.003"
        raise ValueError(f"{flag} takes comma-separated {'integers' if kind is int else 'numbers'} (e.g. "
                         f"{example}), got {text!r}.") from None


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
