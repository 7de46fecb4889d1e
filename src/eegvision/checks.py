"""Checks of user input, with messages that say what is wrong, what was got and how to fix it.

Every library function validates its arguments with these helpers, so errors read the same everywhere,
including on the command line (where they are printed as one line). Messages are written for a person,
not a Python prompt: names are quoted as ``'sub-01'``, lists are spelled out (``sub-01, sub-02``), and
misspelled names come with suggestions (``Did you mean sub-01?``).

All checks raise ``ValueError`` except :func:`check_file` (``FileNotFoundError``); each returns the
checked value so it can be used inline.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "check_choice",
    "check_dtype",
    "check_file",
    "check_finite",
    "check_int",
    "check_list",
    "check_name",
    "check_names",
    "check_positive",
    "check_range",
    "check_settings",
    "check_shape",
    "close_matches",
    "name_error",
    "show",
    "show_list",
]

#: Lists longer than this are shortened in messages (``a, b, c, ... (1654 in all)``).
_MAX_LISTED = 40
_KIND_WORDS = {"f": "floating-point", "i": "signed integer", "u": "unsigned integer", "b": "boolean",
               "c": "complex", "iu": "integer", "fiu": "numeric", "fc": "floating-point or complex"}


def show(value: Any) -> str:
    """``value`` as a message shows it: text in single quotes, anything else as ``str``."""
    return f"'{value}'" if isinstance(value, str) else str(value)


def show_list(items: Collection[Any], limit: int = _MAX_LISTED) -> str:
    """``a, b, c`` (``none`` when empty; ``a, b, ... (N in all)`` beyond ``limit`` entries)."""
    items = [str(i) for i in items]
    if not items:
        return "none"
    if len(items) > limit:
        return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"
    return ", ".join(items)


def close_matches(value: str, known: Collection[str], n: int = 3) -> list[str]:
    """Up to ``n`` entries of ``known`` that look most like ``value``, best first (for "did you mean" hints).

    Candidates must be at least half similar (``difflib`` ratio 0.5, ignoring case) and within 0.1 of the
    best one, so ``'sub-O1'`` suggests ``sub-01`` but not also ``sub-02``.
    """
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(str(value).lower())
    scored = []
    for k in dict.fromkeys(str(k) for k in known):
        matcher.set_seq1(k.lower())
        if matcher.real_quick_ratio() >= 0.5 and matcher.quick_ratio() >= 0.5 and matcher.ratio() >= 0.5:
            scored.append((matcher.ratio(), k))
    scored.sort(key=lambda t: -t[0])
    return [k for r, k in scored[:n] if r >= scored[0][0] - 0.1]


def _did_you_mean(value: Any, known: Collection[Any]) -> str:
    hints = close_matches(str(value), [str(k) for k in known])
    return f" Did you mean {' or '.join(hints)}?" if hints else ""


def check_choice(name: str, value: Any, choices: Collection[Any], hint: str = "") -> Any:
    """``value`` if it is one of ``choices``, else a ``ValueError``.

    Parameters
    ----------
    name : str
        The option as the user wrote it (``"dtype"``, ``"--dtype"``).
    value : object
        The value given.
    choices : collection
        Allowed values.
    hint : str
        Appended to the message (how to fix it, when the choices alone do not say).

    Examples
    --------
    >>> check_choice("dtype", "float61", ("float16", "float32"))
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of float16, float32; got 'float61'. Did you mean float16?
    """
    if value in choices:
        return value
    raise ValueError(f"{name} must be one of {show_list(choices)}; got {show(value)}."
                     + _did_you_mean(value, choices) + (f" {hint}" if hint else ""))


def check_name(kind: str, value: Any, known: Collection[Any], where: str, hint: str = "") -> Any:
    """``value`` if ``known`` holds it, else a ``ValueError`` listing ``known`` with close matches.

    Parameters
    ----------
    kind : str
        What the name names, capitalised (``"Subject"``, ``"Encoder"``, ``"Column"``).
    value : object
        The name given.
    known : collection
        The names that exist.
    where : str
        Where they exist (``"store /data/eeg"``, ``"the encoder registry"``).
    hint : str
        Appended to the message.

    Examples
    --------
    >>> check_name("Subject", "sub-O1", ["sub-01", "sub-02"], "store /data/eeg")
    Traceback (most recent call last):
    ...
    ValueError: Subject 'sub-O1' is not in store /data/eeg (available: sub-01, sub-02). Did you mean sub-01?
    """
    if value in known:
        return value
    raise name_error(kind, value, known, where, hint)


def name_error(kind: str, value: Any, known: Collection[Any], where: str, hint: str = "") -> ValueError:
    """The error :func:`check_name` raises, for callers that look names up their own way (aliases, case)."""
    return ValueError(f"{kind} {show(value)} is not in {where} (available: {show_list(known)})."
                      + _did_you_mean(value, known) + (f" {hint}" if hint else ""))


def check_settings(name: str, value: Any, defaults: dict[str, Any]) -> dict[str, Any] | None:
    """A dict option (e.g. ``FitConfig.multi_view_target``): ``None``, or ``defaults`` updated with ``value``,
    whose keys must be among ``defaults``'; ``ValueError`` naming what was wrong otherwise. The values are the
    caller's to check."""
    if value is None:
        return None
    example = repr(defaults)
    if not isinstance(value, dict):
        raise ValueError(f"{name} is a dict such as {example} or None; got {value!r}.")
    check_names(f"{name} key", list(value), list(defaults), name, f"Give e.g. {example}.")
    return {**defaults, **value}


def check_names(kind: str, values: Sequence[Any], known: Collection[Any], where: str, hint: str = "",
                ignore_case: bool = False) -> list[Any]:
    """``list(values)`` if ``known`` holds every one, else one ``ValueError`` naming all unknown ones.

    ``ignore_case`` compares text case-insensitively (channel names). See :func:`check_name`.
    """
    values = list(values)
    fold = (lambda v: str(v).lower()) if ignore_case else (lambda v: v)
    known_folded = {fold(k) for k in known}
    unknown = [v for v in values if fold(v) not in known_folded]
    if not unknown:
        return values
    if len(unknown) == 1:
        raise name_error(kind, unknown[0], known, where, hint)
    nearest = {show(v): close_matches(str(v), [str(k) for k in known], n=1) for v in unknown}
    hints = [f"{match[0]} for {shown}" for shown, match in nearest.items() if match]
    raise ValueError(f"{kind} names {', '.join(show(v) for v in unknown)} are not in {where} "
                     f"(available: {show_list(known)})." + (f" Did you mean {', '.join(hints)}?" if hints else "")
                     + (f" {hint}" if hint else ""))


def check_list(name: str, value: Any, example: str) -> list[Any]:
    """``list(value)`` for a list-like ``value``; text is refused (it is never split on commas here).

    Examples
    --------
    >>> check_list("subjects", "sub-01,sub-02", "['sub-01', 'sub-02']")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: subjects takes a list such as ['sub-01', 'sub-02']; got the text 'sub-01,sub-02'. Split...
    """
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        got = f"the text {show(value)}" if isinstance(value, str) else f"{show(value)} ({type(value).__name__})"
        raise ValueError(f"{name} takes a list such as {example}; got {got}. Split it into a list first.")
    return list(value)


def check_positive(name: str, value: Any, allow_zero: bool = False) -> Any:
    """``value`` if it is a number above 0 (or at least 0 with ``allow_zero``), else a ``ValueError``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "0 or more" if allow_zero else "above 0"
        raise ValueError(f"{name} must be a number {bound}; got {show(value)}.")
    return value


def _show_shape(shape: Sequence[int | str | None]) -> str:
    inner = ", ".join("any" if n is None else str(n) for n in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def check_shape(name: str, array: Any, expected: Sequence[int | str | None], hint: str = "") -> Any:
    """``array`` if its shape matches ``expected``, else a ``ValueError``.

    Entries of ``expected`` are lengths, or ``None`` / an axis name (``"conditions"``) for any length;
    ``array`` is anything with a ``shape`` (arrays, memory maps, array references) or array-like.

    Examples
    --------
    >>> check_shape("eeg", np.zeros((4, 64, 250)), (None, 63, 250))
    Traceback (most recent call last):
    ...
    ValueError: eeg has shape (4, 64, 250); expected (any, 63, 250).
    >>> check_shape("eeg", np.zeros((4, 63)), ("trials", "channels", "times"))
    Traceback (most recent call last):
    ...
    ValueError: eeg has shape (4, 63); expected (trials, channels, times).
    """
    shape = tuple(int(n) for n in (array.shape if hasattr(array, "shape") else np.shape(array)))
    expected = tuple(expected)
    if len(shape) == len(expected) and all(not isinstance(e, int) or e == n for n, e in zip(shape, expected)):
        return array
    raise ValueError(f"{name} has shape {_show_shape(shape)}; expected {_show_shape(expected)}."
                     + (f" {hint}" if hint else ""))


def check_dtype(name: str, array: Any, kinds: str, hint: str = "") -> Any:
    """``array`` if its dtype kind is among ``kinds`` (numpy kind letters: ``"f"``, ``"iu"``, ``"fiu"``)."""
    dtype = np.asarray(array).dtype if not hasattr(array, "dtype") else np.dtype(array.dtype)
    if dtype.kind in kinds:
        return array
    words = _KIND_WORDS.get(kinds, f"dtype kind {' or '.join(kinds)}")
    raise ValueError(f"{name} has dtype {dtype}; expected {words} values." + (f" {hint}" if hint else ""))


def check_finite(name: str, array: Any, where: str = "", hint: str = "") -> Any:
    """``array`` if it holds no NaN or infinite value, else a ``ValueError`` that counts them and locates the first.

    Examples
    --------
    >>> check_finite("scores", np.array([[0.0, np.nan], [np.inf, 1.0]]), where="run r1")
    Traceback (most recent call last):
    ...
    ValueError: scores of run r1 holds 1 NaN and 1 infinite value(s), the first at index (0, 1).
    """
    values = np.asarray(array)
    if values.dtype.kind not in "fc":
        return array
    bad = ~np.isfinite(values)
    if not bad.any():
        return array
    n_nan = int(np.isnan(values).sum())
    first = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), values.shape))
    index = str(first[0]) if len(first) == 1 else f"({', '.join(map(str, first))})"
    label = f"{name} of {where}" if where else name
    raise ValueError(f"{label} holds {n_nan} NaN and {int(bad.sum()) - n_nan} infinite value(s), the first at "
                     f"index {index}." + (f" {hint}" if hint else ""))


def check_file(path: str | os.PathLike, what: str, how_to_make: str) -> Path:
    """``Path(path)`` if it is a file, else a ``FileNotFoundError`` naming ``what`` and how to make it.

    Examples
    --------
    >>> check_file("/no/such/features.safetensors", "Feature file", "Run `eegvision features` first.")
    Traceback (most recent call last):
    ...
    FileNotFoundError: Feature file /no/such/features.safetensors does not exist. Run `eegvision features` first.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        state = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise FileNotFoundError(f"{what} {p} {state}. {how_to_make}")
    return p


def check_int(name: str, value: Any, minimum: int | None = None, hint: str = "") -> int:
    """``int(value)`` if ``value`` is a whole number (not a bool) of at least ``minimum``, else a ``ValueError``.

    Examples
    --------
    >>> check_int("patience", 2.5, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: patience must be a whole number of 1 or more; got 2.5.
    """
    whole = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not whole or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" of {minimum} or more"
        raise ValueError(f"{name} must be a whole number{bound}; got {show(value)}." + (f" {hint}" if hint else ""))
    return int(value)


def check_range(name: str, value: Any, low: float, high: float, *, include_low: bool = True,
                include_high: bool = False, hint: str = "") -> float:
    """``float(value)`` if it is a number between ``low`` and ``high``, else a ``ValueError`` naming the interval.

    Examples
    --------
    >>> check_range("channel_dropout", 1.0, 0.0, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: channel_dropout must be a number in [0, 1); got 1.0.
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and np.isfinite(value) and (value >= low if include_low else value > low) \
        and (value <= high if include_high else value < high)
    if not ok:
        interval = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
        raise ValueError(f"{name} must be a number in {interval}; got {show(value)}." + (f" {hint}" if hint else ""))
    return float(value)
