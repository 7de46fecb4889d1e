"""Degenerate captions: a decoder that loops on words (``a medium red red red red the the``).

Corpus metrics barely move when a few captions loop, so the report flags them separately
(:func:`caption_repetition` on every decoded caption) and every caption score comes with the fraction of captions
that say a word three or more times in a row (:func:`repeated_word_fraction`, built on :func:`max_word_run`).
Words are what :func:`caption_repetition` reads: lower case, punctuation dropped (``the the,`` is a run of 2).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["caption_repetition", "max_word_run", "repeated_word_fraction", "repetition_summary"]

_WORD = re.compile(r"[\w'-]+")
#: a word said this many times in a row makes a caption degenerate (issue 19: "no caption repeats a word three
#: times in a row")
DEGENERATE_RUN = 3


def _words(caption: str) -> list[str]:
    return _WORD.findall(str(caption).lower())


def max_word_run(caption: str) -> int:
    """Length of the longest run of one word said again and again in a row (0 for a caption without words).

    Examples
    --------
    >>> max_word_run("a medium red red red red the the, on a sand background")
    4
    >>> max_word_run("a red car next to a red hat")
    1
    >>> max_word_run("")
    0
    """
    words = _words(caption)
    best, run = (1 if words else 0), 1
    for prev, word in zip(words, words[1:]):
        run = run + 1 if word == prev else 1
        best = max(best, run)
    return best


def repeated_word_fraction(captions: Sequence[str], run: int = DEGENERATE_RUN) -> float:
    """Fraction of ``captions`` with a word said ``run`` or more times in a row (↓; 0 = none degenerate).

    Examples
    --------
    >>> repeated_word_fraction(["a red red red square", "a red square", "a blue blue square", "a ring"])
    0.25
    """
    from eegvision.checks import check_int

    run = check_int("run", run, minimum=2)
    captions = list(captions)
    if not captions:
        raise ValueError("repeated_word_fraction needs at least one caption; got none.")
    return sum(max_word_run(c) >= run for c in captions) / len(captions)


def repetition_summary(captions: Sequence[str], run: int = DEGENERATE_RUN) -> dict[str, float]:
    """``{"max_word_run": longest run over all captions, f"word_{run}x_in_a_row": fraction of captions}`` — the
    numbers reported next to caption scores (both ↓)."""
    captions = list(captions)
    return {"max_word_run": float(max((max_word_run(c) for c in captions), default=0)),
            f"word_{run}x_in_a_row": repeated_word_fraction(captions, run)}


def caption_repetition(caption: str) -> str:
    """Why ``caption`` looks degenerate, or ``""``: a word three or more times in a row, or a word pair said
    twice in a row (``on the on the``). Case and punctuation are ignored.

    Examples
    --------
    >>> caption_repetition("a medium red red red red the the, on a sand background")
    "'red' 4 times in a row"
    >>> caption_repetition("a cat on the mat on the mat")
    "'on the mat' twice in a row"
    >>> caption_repetition("a red car next to a red hat")
    ''
    """
    words = _words(caption)
    i = 0
    while i < len(words):
        run = 1
        while i + run < len(words) and words[i + run] == words[i]:
            run += 1
        if run >= DEGENERATE_RUN:
            return f"'{words[i]}' {run} times in a row"
        i += run
    for size in (3, 2):  # the longest repeated phrase first
        for i in range(len(words) - 2 * size + 1):
            if words[i:i + size] == words[i + size:i + 2 * size]:
                return f"'{' '.join(words[i:i + size])}' twice in a row"
    return ""
