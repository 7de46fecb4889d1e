"""k-way zero-shot identification accuracy, computed exactly from ranks (and by Monte-Carlo for comparison).

The protocol of the ATM reference (``atm.md`` §4.1): for each query (an EEG embedding whose true class is
``y``), draw ``k - 1`` distractor classes uniformly without replacement from the other classes, score the
``k`` candidates, and count a top-``t`` hit when ``y`` is among the ``t`` best. The reference runs this
once, unseeded, so its numbers for ``k < N`` are single noisy draws.

The quantity it estimates has a closed form. Let ``m_i`` be the number of *other* candidates that beat the
true one for query ``i``. A top-``t`` hit happens exactly when fewer than ``t`` of the ``k - 1`` drawn
distractors are among those ``m_i``, so the number of beating distractors is hypergeometric::

    P(hit_i | k, t) = sum_{j < t} C(m_i, j) C(M - 1 - m_i, k - 1 - j) / C(M - 1, k - 1)

with ``M`` candidates in all. :func:`kway_exact` averages this over queries: the expected accuracy over
*all* distractor sets, with no random draw. One table ``P[k, t, m]`` (``len(ks) x len(tops) x M``) serves
every query, so all ``k`` come from one similarity matrix in a few milliseconds.

Ties. A distractor scoring exactly as high as the true class is handled by ``ties``:
``"pessimistic"`` (default) counts it as beating the true class, which is what the reference does (the true
class is last in its candidate list and ``argmax`` returns the first maximum); ``"optimistic"`` counts it as
losing; ``"average"`` breaks ties uniformly at random (the exact expectation, not a midpoint rank).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import hypergeom

from eegvision.checks import check_choice, check_finite, check_shape

DEFAULT_KS: tuple[int, ...] = (2, 4, 10, 50, 100, 200)
DEFAULT_TOPS: tuple[int, ...] = (1, 5)
TIES = ("pessimistic", "optimistic", "average")

__all__ = [
    "DEFAULT_KS", "DEFAULT_TOPS", "KWayAccuracy", "cosine_similarity", "hit_probability_table",
    "kway_exact", "kway_montecarlo", "rank_counts",
]


@dataclass
class KWayAccuracy:
    """k-way accuracies for one score matrix.

    Attributes
    ----------
    ks, tops : tuple of int
        The k values (rows of ``accuracy``) and the top-t values (columns).
    accuracy : ndarray, shape (len(ks), len(tops))
        Mean accuracy over queries, a fraction in [0, 1].
    per_query : ndarray, shape (len(ks), len(tops), n_queries)
        Hit probability per query (exact mode) or hit rate over draws (Monte-Carlo mode).
    method : str
        ``"exact"`` or ``"montecarlo"``.
    draw_std : ndarray or None, shape (len(ks), len(tops))
        Monte-Carlo only: standard deviation of the accuracy across draws, i.e. the spread a single
        reference-style run would show.
    n_draws : int or None
        Monte-Carlo only: number of repetitions.
    """

    ks: tuple[int, ...]
    tops: tuple[int, ...]
    accuracy: np.ndarray
    per_query: np.ndarray
    method: str
    draw_std: np.ndarray | None = None
    n_draws: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def n_queries(self) -> int:
        return int(self.per_query.shape[-1])

    def get(self, k: int, top: int = 1) -> float:
        """Accuracy for one ``k`` and one top-``t``."""
        try:
            return float(self.accuracy[self.ks.index(k), self.tops.index(top)])
        except ValueError:
            raise KeyError(f"no result for k={k}, top={top}; have ks={self.ks}, tops={self.tops}") from None

    def as_dict(self) -> dict[int, dict[str, float]]:
        """``{k: {"top1": ..., "top5": ...}}``."""
        return {k: {f"top{t}": float(self.accuracy[a, b]) for b, t in enumerate(self.tops)}
                for a, k in enumerate(self.ks)}


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, on any device
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def cosine_similarity(queries, candidates) -> np.ndarray:
    """Cosine similarity matrix ``(n_queries, n_candidates)`` between two sets of row vectors.

    Accepts numpy arrays or torch tensors; computes in float64.
    """
    q = check_shape("queries", _as_numpy(queries), ("rows", "dim"))
    c = check_shape("candidates", _as_numpy(candidates), ("rows", "dim"))
    if q.shape[1] != c.shape[1]:
        raise ValueError(
            f"embedding sizes differ: queries have dim {q.shape[1]}, candidates dim {c.shape[1]}. "
            "The EEG embeddings must live in the same space as the image/text features (same CLIP model)."
        )
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    cn = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return qn @ cn.T


def _check_scores(scores, targets) -> tuple[np.ndarray, np.ndarray]:
    s = check_shape("scores", _as_numpy(scores), ("n_queries", "n_candidates"))
    n, m = s.shape
    if m < 2:
        raise ValueError(f"need at least 2 candidates, got {m}")
    if targets is None:
        if n != m:
            raise ValueError(
                f"scores is {n} x {m}, not square, so the true candidate of each query is ambiguous: "
                "pass targets (the index of the true candidate for every query)"
            )
        t = np.arange(n)
    else:
        t = np.asarray(targets, dtype=np.int64).reshape(-1)
        if t.shape[0] != n:
            raise ValueError(f"targets has {t.shape[0]} entries but scores has {n} rows (queries)")
        if n and (t.min() < 0 or t.max() >= m):
            raise ValueError(f"targets must index candidates 0..{m - 1}, got range {t.min()}..{t.max()}")
    check_finite("scores", s, hint="Check the embeddings for NaN.")
    return s, t


def rank_counts(scores, targets=None) -> tuple[np.ndarray, np.ndarray]:
    """For each query, how many other candidates score strictly higher than, and equal to, the true one.

    Parameters
    ----------
    scores : array (n_queries, n_candidates)
        Higher is better.
    targets : array of int (n_queries,), optional
        Index of the true candidate per query; default ``arange(n)`` for a square matrix.

    Returns
    -------
    higher, tied : ndarray of int, shape (n_queries,)
    """
    s, t = _check_scores(scores, targets)
    return _rank_counts(s, t)


def _rank_counts(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true = s[np.arange(s.shape[0]), t][:, None]
    higher = (s > true).sum(axis=1)
    tied = (s == true).sum(axis=1) - 1
    return higher.astype(np.int64), tied.astype(np.int64)


def _validate_ks_tops(ks, tops, n_candidates) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ks = tuple(int(k) for k in ks)
    tops = tuple(int(t) for t in tops)
    if not ks or not tops:
        raise ValueError("ks and tops must not be empty")
    bad = [k for k in ks if k < 2 or k > n_candidates]
    if bad:
        raise ValueError(
            f"k must be between 2 and the number of candidates ({n_candidates}); got {bad}. "
            "Drop those k values or evaluate with more candidates."
        )
    if any(t < 1 for t in tops):
        raise ValueError(f"top-t values must be >= 1, got {tops}")
    return ks, tops


def hit_probability_table(n_candidates: int, ks: Sequence[int], tops: Sequence[int]) -> np.ndarray:
    """``P[a, b, m]``: probability of a top-``tops[b]`` hit in a ``ks[a]``-way trial when ``m`` of the
    ``n_candidates - 1`` other candidates beat the true one (hypergeometric CDF at ``t - 1``).
    """
    ks, tops = _validate_ks_tops(ks, tops, n_candidates)
    pool = n_candidates - 1
    m = np.arange(n_candidates)[None, None, :]
    k = np.asarray(ks)[:, None, None]
    t = np.asarray(tops)[None, :, None]
    # X = number of drawn distractors that beat the true class ~ Hypergeom(pool, m, k - 1); hit iff X < t.
    table = hypergeom.cdf(t - 1, pool, m, k - 1)
    return np.clip(table, 0.0, 1.0)


def kway_exact(
    scores,
    targets=None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    tops: Sequence[int] = DEFAULT_TOPS,
    ties: str = "pessimistic",
) -> KWayAccuracy:
    """Exact expected k-way top-t accuracy over all distractor sets (no random draws).

    Parameters
    ----------
    scores : array or tensor (n_queries, n_candidates)
        Similarities, higher is better (e.g. :func:`cosine_similarity` of EEG embeddings and image features).
    targets : array of int (n_queries,), optional
        True candidate per query. Default: query ``i`` belongs to candidate ``i`` (square matrix).
        Use it for text classification where several queries share a concept.
    ks : sequence of int
        Numbers of candidates per trial (each between 2 and ``n_candidates``).
    tops : sequence of int
        Top-t criteria (1 and 5 by default).
    ties : {"pessimistic", "optimistic", "average"}
        How a distractor with exactly the true score counts (see the module docstring).

    Returns
    -------
    KWayAccuracy
        ``accuracy[a, b]`` is the expected top-``tops[b]`` accuracy for ``ks[a]``-way trials.
    """
    check_choice("ties", ties, TIES)
    s, t = _check_scores(scores, targets)
    higher, tied = _rank_counts(s, t)
    n_cand = s.shape[1]
    ks, tops = _validate_ks_tops(ks, tops, n_cand)
    table = hit_probability_table(n_cand, ks, tops)
    if ties == "pessimistic":
        per_query = table[:, :, higher + tied]
    elif ties == "optimistic":
        per_query = table[:, :, higher]
    else:
        # Random tie-breaking: the true class is equally likely to sit at each place in its tie group,
        # so average the table over m = higher .. higher + tied (a difference of cumulative sums).
        cum = np.concatenate([np.zeros(table.shape[:2] + (1,)), np.cumsum(table, axis=2)], axis=2)
        per_query = (cum[:, :, higher + tied + 1] - cum[:, :, higher]) / (tied + 1)
    return KWayAccuracy(ks=ks, tops=tops, accuracy=per_query.mean(axis=2), per_query=per_query,
                        method="exact", extra={"ties": ties})


def kway_montecarlo(
    scores,
    targets=None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    tops: Sequence[int] = DEFAULT_TOPS,
    n_draws: int = 100,
    seed: int = 0,
    chunk_elements: int = 4_000_000,
) -> KWayAccuracy:
    """Seeded Monte-Carlo k-way accuracy that mirrors the reference protocol.

    For every query and every draw, ``k - 1`` distractors are drawn uniformly without replacement from the
    other candidates, the true candidate is appended last, and the trial is a top-``t`` hit when fewer than
    ``t`` distractors score at least as high as the true one (``argmax`` returns the first maximum, so ties
    go to the distractors, as in the reference). The draws are independent across ``k`` (the reference
    also redraws per ``k``). Its mean converges to :func:`kway_exact` with ``ties="pessimistic"``.

    Parameters
    ----------
    scores, targets, ks, tops
        As in :func:`kway_exact`.
    n_draws : int
        Repetitions of the whole protocol (the reference does one).
    seed : int
        Seed of the ``numpy.random.Generator``.
    chunk_elements : int
        Memory bound: random keys are generated in chunks of about this many numbers.

    Returns
    -------
    KWayAccuracy
        ``accuracy`` is the mean over draws, ``draw_std`` the spread of single-draw accuracies.
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    s, t = _check_scores(scores, targets)
    n, n_cand = s.shape
    ks, tops = _validate_ks_tops(ks, tops, n_cand)
    rng = np.random.default_rng(seed)
    rows = np.arange(n)
    true = s[rows, t]
    # Scores of the other candidates of each query, in candidate order with the true one removed.
    other_idx = np.arange(n_cand)[None, :].repeat(n, axis=0)
    keep = other_idx != t[:, None]
    other = s[keep].reshape(n, n_cand - 1)
    beats = other >= true[:, None]  # ties count against (reference argmax behaviour)
    tops_arr = np.asarray(tops)

    per_draw = np.empty((len(ks), len(tops), n_draws, n))
    draws_per_chunk = max(1, chunk_elements // max(1, n * (n_cand - 1)))
    for a, k in enumerate(ks):
        for start in range(0, n_draws, draws_per_chunk):
            d = min(draws_per_chunk, n_draws - start)
            if k - 1 == n_cand - 1:
                n_beat = np.broadcast_to(beats.sum(axis=1), (d, n))
            else:
                keys = rng.random((d, n, n_cand - 1))
                chosen = np.argpartition(keys, k - 2, axis=2)[:, :, : k - 1]  # a uniform (k-1)-subset
                n_beat = np.take_along_axis(np.broadcast_to(beats, (d, n, n_cand - 1)), chosen, axis=2).sum(2)
            per_draw[a, :, start:start + d, :] = n_beat[None, :, :] < tops_arr[:, None, None]
    acc_per_draw = per_draw.mean(axis=3)  # (ks, tops, draws)
    draw_std = acc_per_draw.std(axis=2, ddof=1) if n_draws > 1 else np.zeros((len(ks), len(tops)))
    draw_std[draw_std < 1e-12] = 0.0  # identical draws (k = N): exact zero, not rounding noise
    return KWayAccuracy(ks=ks, tops=tops, accuracy=acc_per_draw.mean(axis=2), per_query=per_draw.mean(axis=2),
                        method="montecarlo", draw_std=draw_std, n_draws=n_draws, extra={"seed": seed})
