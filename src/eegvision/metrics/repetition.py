"""Degenerate captions: a decoder that loops on words (``a medium red red red red the the``).

Corpus metrics barely move when a few captions loop, so the report flags them separately
(:func:`caption_repetition` on every decoded caption).
"""

from __future__ import annotations

import re

__all__ = ["caption_repetition"]

_WORD = re.compile(r"[\w'-]+")


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
    words = _WORD.findall(caption.lower())
    i = 0
    while i < len(words):
        run = 1
        while i + run < len(words) and words[i + run] == words[i]:
            run += 1
        if run >= 3:
            return f"'{words[i]}' {run} times in a row"
        i += run
    for size in (3, 2):  # the longest repeated phrase first
        for i in range(len(words) - 2 * size + 1):
            if words[i:i + size] == words[i + size:i + 2 * size]:
                return f"'{' '.join(words[i:i + size])}' twice in a row"
    return ""
