"""BLEU-1…4 (Papineni et al., 2002) exactly as the COCO caption evaluation code computes it.

For a candidate c with references R (all tokenised), n = 1..N:

* ``correct_n`` = Σ over the candidate's n-grams g of ``min(count_c(g), max_r count_r(g))`` (clipped counts);
* ``guess_n`` = ``max(0, len(c) − n + 1)``, the number of candidate n-grams;
* ``ref_len`` = the length of the reference closest in length to c (ties: the shorter one).

Corpus BLEU-n sums ``correct``, ``guess``, ``len(c)`` and ``ref_len`` over all captions first::

    BLEU-n = BP · (Π_{k≤n} (correct_k + 1e-15) / (guess_k + 1e-9))^(1/n),
    BP = exp(1 − ref_len / len(c)) if len(c) < ref_len else 1

and per-caption BLEU-n applies the same formula to one caption's counts, without smoothing. The guards 1e-15 and
1e-9 are COCO's (``bleu_scorer.py``); they are kept so that values agree to rounding, which means that a caption
without any matching 4-gram gets a per-caption BLEU-4 of about 1e-4, not exactly 0, as in COCO's tables.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["coco_bleu"]

_TINY, _SMALL = 1e-15, 1e-9     # pycocoevalcap's guards against 0/0 (numerator, denominator)


def _ngrams(words: Sequence[str], n_max: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for n in range(1, n_max + 1) for i in range(len(words) - n + 1))


def _bleu(correct: Sequence[float], guess: Sequence[float], test_len: float, ref_len: float) -> list[float]:
    out, prod = [], 1.0
    for k in range(len(correct)):
        prod *= (correct[k] + _TINY) / (guess[k] + _SMALL)
        out.append(prod ** (1.0 / (k + 1)))
    ratio = (test_len + _TINY) / (ref_len + _SMALL)
    if ratio < 1:
        out = [b * math.exp(1 - 1 / ratio) for b in out]
    return out


def coco_bleu(references: Sequence[Sequence[Sequence[str]]], candidates: Sequence[Sequence[str]],
              n_max: int = 4) -> tuple[list[float], np.ndarray]:
    """Corpus and per-caption BLEU-1…``n_max`` of tokenised candidates against tokenised references.

    Parameters
    ----------
    references : sequence (images) of sequences (references) of token lists
    candidates : sequence (images) of token lists, one per image
    n_max : int
        Largest n (4 in COCO).

    Returns
    -------
    (corpus ``[BLEU-1, …, BLEU-n_max]``, per-caption array ``(n_images, n_max)``)
    """
    if len(references) != len(candidates):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference sets; give one candidate "
                         "per image.")
    if not len(candidates):
        raise ValueError("No captions to score.")
    per = np.zeros((len(candidates), n_max))
    total_correct, total_guess = np.zeros(n_max), np.zeros(n_max)
    total_test = total_ref = 0.0
    for i, (cand, refs) in enumerate(zip(candidates, references)):
        if not len(refs):
            raise ValueError(f"Image {i} has no reference caption.")
        max_ref: Counter = Counter()
        for r in refs:
            max_ref |= _ngrams(list(r), n_max)                # n-gram → max count over the references
        counts = _ngrams(list(cand), n_max)
        correct = [0.0] * n_max
        for g, c in counts.items():
            correct[len(g) - 1] += min(c, max_ref.get(g, 0))
        guess = [max(0, len(cand) - k) for k in range(n_max)]
        ref_len = min((abs(len(r) - len(cand)), len(r)) for r in refs)[1]
        per[i] = _bleu(correct, guess, len(cand), ref_len)
        total_correct += correct
        total_guess += guess
        total_test += len(cand)
        total_ref += ref_len
    return _bleu(list(total_correct), list(total_guess), total_test, total_ref), per
