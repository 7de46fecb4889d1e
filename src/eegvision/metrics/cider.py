"""CIDEr-D (Vedantam et al., 2015) as the COCO caption evaluation code defines it.

For each n = 1..4, a caption becomes a vector g_n of TF-IDF weights over its n-grams::

    g_n(w) = tf(w) · log(max(1, N) / max(1, df(w)))

where tf is the raw count of n-gram w in the caption, N the number of images and df(w) the number of images whose
*reference* set contains w (document frequency over the reference corpus). Between a candidate c and a
reference r of image i::

    sim_n(c, r) = Σ_w min(g_n^c(w), g_n^r(w)) · g_n^r(w) / (‖g_n^c‖ ‖g_n^r‖)
                  · exp(−(ℓ_c − ℓ_r)² / (2σ²))

with σ = 6 and ℓ the caption length in words (the "-D" clipping of candidate weights by reference weights and the
Gaussian length penalty). CIDEr-D(c, i) = 10 · mean_n mean_r sim_n(c, r). The corpus score is the mean over images.

Tokenisation: lower-case, punctuation removed, split on white space (the COCO PTB tokenizer does the same for
ordinary captions but needs Java; this is its pure-Python stand-in).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["cider_d", "ngram_counts"]


def ngram_counts(words: Sequence[str], n_max: int = 4) -> list[Counter]:
    """``[Counter of 1-grams, ..., Counter of n_max-grams]`` of a token list."""
    return [Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1)) for n in range(1, n_max + 1)]


def _vector(counts: list[Counter], df: list[Counter], log_n: float) -> tuple[list[dict], list[float]]:
    vec, norms = [], []
    for n, c in enumerate(counts):
        v = {g: tf * (log_n - math.log(max(1.0, df[n].get(g, 0.0)))) for g, tf in c.items()}
        vec.append(v)
        norms.append(math.sqrt(sum(x * x for x in v.values())))
    return vec, norms


def cider_d(references: Sequence[Sequence[Sequence[str]]], candidates: Sequence[Sequence[str]],
            n_max: int = 4, sigma: float = 6.0) -> tuple[float, np.ndarray]:
    """CIDEr-D of tokenised candidates against tokenised reference sets.

    Parameters
    ----------
    references : sequence (images) of sequences (references) of token lists
    candidates : sequence (images) of token lists
        One candidate per image.
    n_max : int
        Largest n-gram (4 in COCO).
    sigma : float
        Width of the Gaussian length penalty (6 in COCO).

    Returns
    -------
    (corpus score, per-image scores ``(n_images,)``)
    """
    if len(references) != len(candidates):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference sets; give one candidate "
                         "per image.")
    if not len(candidates):
        raise ValueError("No captions to score.")
    ref_counts = [[ngram_counts(list(r), n_max) for r in refs] for refs in references]
    df: list[Counter] = [Counter() for _ in range(n_max)]
    for refs in ref_counts:                         # document frequency: images whose references contain g
        for n in range(n_max):
            df[n].update(set().union(*(r[n].keys() for r in refs)) if refs else set())
    log_n = math.log(max(1.0, float(len(references))))
    scores = np.zeros(len(candidates))
    for i, (cand, refs) in enumerate(zip(candidates, ref_counts)):
        if not refs:
            raise ValueError(f"Image {i} has no reference caption.")
        vc, nc = _vector(ngram_counts(list(cand), n_max), df, log_n)
        total = np.zeros(n_max)
        for r_tokens, r in zip(references[i], refs):
            vr, nr = _vector(r, df, log_n)
            delta = float(len(cand) - len(r_tokens))
            penalty = math.exp(-(delta ** 2) / (2 * sigma ** 2))
            for n in range(n_max):
                dot = sum(min(val, vr[n][g]) * vr[n][g] for g, val in vc[n].items() if g in vr[n])
                if nc[n] != 0 and nr[n] != 0:
                    total[n] += penalty * dot / (nc[n] * nr[n])
        scores[i] = 10.0 * float(np.mean(total)) / len(refs)
    return float(scores.mean()), scores
