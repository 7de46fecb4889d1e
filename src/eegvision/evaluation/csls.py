"""Cross-domain similarity local scaling (CSLS), a hubness correction. **Transductive.**

Conneau et al. (2018, "Word translation without parallel data") replace the cosine ``cos(x, y)`` by::

    CSLS(x, y) = 2 cos(x, y) - r_Y(x) - r_X(y)

where ``r_Y(x)`` is the mean cosine of query ``x`` to its ``n_neighbors`` nearest candidates and ``r_X(y)``
the mean cosine of candidate ``y`` to its ``n_neighbors`` nearest queries. Candidates that are close to
every query ("hubs") are penalised.

``r_X(y)`` is computed from the *test queries themselves*, so CSLS uses the whole test set at once: it is a
transductive method and exploits that the test concepts are mutually exclusive. Report it separately from the
inductive numbers (result rows carry ``method="csls"`` and ``transductive=True``); ``anchors.md`` §0 explains
how much such corrections inflate published numbers.
"""

from __future__ import annotations

import numpy as np

from eegvision.checks import check_shape
from eegvision.evaluation.kway import _as_numpy

__all__ = ["csls_scores"]


def _mean_top(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    n = min(n, x.shape[axis])
    part = -np.partition(-x, n - 1, axis=axis)
    part = np.take(part, np.arange(n), axis=axis)
    return part.mean(axis=axis)


def csls_scores(similarity, n_neighbors: int = 10) -> np.ndarray:
    """CSLS-corrected score matrix from a cosine similarity matrix.

    Parameters
    ----------
    similarity : array or tensor (n_queries, n_candidates)
        Cosine similarities between test queries (EEG embeddings) and candidates (image/text features).
    n_neighbors : int
        Neighbourhood size ``K`` (10 in Conneau et al.); clipped to the matrix size.

    Returns
    -------
    ndarray (n_queries, n_candidates)
        ``2 * similarity - r_query[:, None] - r_candidate[None, :]``. The query term is constant within a row,
        so only the candidate term changes rankings; it is kept so values match the published definition.
    """
    s = check_shape("similarity", _as_numpy(similarity), ("n_queries", "n_candidates"))
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
    r_query = _mean_top(s, n_neighbors, axis=1)      # each query's mean similarity to its nearest candidates
    r_cand = _mean_top(s, n_neighbors, axis=0)       # each candidate's mean similarity to its nearest queries
    return 2.0 * s - r_query[:, None] - r_cand[None, :]
