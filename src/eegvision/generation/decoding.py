"""How captions are decoded unless told otherwise, and the checked record of a decoding.

The captioner wraps a transformers causal LM, so the two guards against looping captions are transformers' own
``generate`` options (nothing is re-implemented here):

* ``no_repeat_ngram_size = 2`` — no token pair occurs twice in a caption (``NoRepeatNGramLogitsProcessor``). 2 is
  the smallest size that makes a word three times in a row impossible — ``w w w`` holds the pair ``w w`` twice,
  whereas with 3 ``w w w`` is still allowed once — and the simulated world's captions never say a word pair twice
  (``a small red circle on the left, on a sand background``), so blocking pairs costs them nothing. On free English
  captions it also forbids a repeated pair such as ``of a … of a``; pass 3 there if that matters more than the
  guarantee.
* ``repetition_penalty = 1.2`` — CTRL's penalty (Keskar et al. 2019, the value they recommend;
  ``RepetitionPenaltyLogitsProcessor``): the next-token score of every token already in the caption is divided by
  1.2 when positive and multiplied by 1.2 when negative, once per token whatever its count. With beam search
  transformers applies it to the log-probabilities (all negative: the repeated token's log-probability × 1.2).
  On its own it cannot stop a loop (a token far ahead stays ahead); it lowers the pull of words already said, so
  the blocked step falls on a new word rather than on another repeat.

``0`` and ``1.0`` turn them off (plain greedy or beam search).
"""

from __future__ import annotations

from typing import Any

from eegvision.checks import check_int, check_positive

__all__ = ["DECODING_DEFAULTS", "NO_REPEAT_NGRAM_SIZE", "REPETITION_PENALTY", "decoding_settings"]

NO_REPEAT_NGRAM_SIZE = 2
REPETITION_PENALTY = 1.2
#: every decoding option eegvision records next to captions, at its default
DECODING_DEFAULTS: dict[str, Any] = {"num_beams": 1, "max_new_tokens": 30, "no_repeat_ngram_size": NO_REPEAT_NGRAM_SIZE,
                                     "repetition_penalty": REPETITION_PENALTY, "length_penalty": 1.0}


def decoding_settings(num_beams: int = 1, max_new_tokens: int = 30, no_repeat_ngram_size: int = NO_REPEAT_NGRAM_SIZE,
                      repetition_penalty: float = REPETITION_PENALTY, length_penalty: float = 1.0) -> dict[str, Any]:
    """The decoding options, checked, as recorded next to captions (``captions.json``, ``training.json``,
    ``demo.json``).

    ``num_beams`` ≥ 1 (1 = greedy), ``max_new_tokens`` ≥ 1, ``no_repeat_ngram_size`` ≥ 0 (0 = no blocking),
    ``repetition_penalty`` > 0 (1 = no penalty), ``length_penalty`` any number (beam search only).

    Examples
    --------
    >>> decoding_settings(num_beams=3)["no_repeat_ngram_size"]
    2
    """
    return {"num_beams": check_int("num_beams", num_beams, minimum=1, hint="1 = greedy, more = beam search."),
            "max_new_tokens": check_int("max_new_tokens", max_new_tokens, minimum=1),
            "no_repeat_ngram_size": check_int("no_repeat_ngram_size", no_repeat_ngram_size, minimum=0,
                                              hint="0 turns n-gram blocking off; 2 forbids any repeated word pair."),
            "repetition_penalty": float(check_positive("repetition_penalty", repetition_penalty)),
            "length_penalty": float(length_penalty)}
