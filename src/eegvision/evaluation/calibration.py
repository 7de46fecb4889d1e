"""Transductive calibration of test embeddings: centring, whitening, orthogonal Procrustes, SCORE-style alignment.

**Every method here is transductive**: it uses statistics of the *whole test set* of the subject being scored
(its test embeddings together) and, for ``procrustes`` and ``score``, of the candidate pool too. Rows scored
after a calibration carry ``transductive=True`` and ``calibration=<name>`` (:func:`~eegvision.evaluation.results.
make_rows`) and are never mixed with inductive numbers in a table or a headline
(:func:`~eegvision.evaluation.results.split_rows`). None of them uses the test labels.

Methods (``CALIBRATIONS``), applied by :func:`calibrate` to test queries ``Q`` (``n x d``) and candidates
``C`` (``m x d``):

``centre``
    ``Q - mean(Q)`` and ``C - mean(C)``: removes the offset the unseen subject's embeddings share (a subject
    "direction"); cosine scores afterwards.
``whiten``
    Centring, then ZCA whitening of each set with its own shrunk covariance
    ``(1 - a) S + a tr(S)/d I`` (``a = shrinkage``, 0.1 by default; the test set has fewer rows than dimensions),
    as SATTC's whitening step (CVPR 2026, ``anchors.md`` §7) does before its CSLS.
``procrustes``
    Centring, then one orthogonal Procrustes step (Schönemann 1966; :func:`scipy.linalg.orthogonal_procrustes`)
    in an ``r``-dimensional subspace: both sets are projected onto the candidates' top-``r`` principal axes and
    L2-normalised, every query is paired with a candidate by a one-to-one assignment
    (Hungarian, on the projected cosine similarities; no labels), the rotation ``R`` minimising
    ``||Q_r R - C_r[pairs]||_F`` is fitted on those pairs and the queries are rotated. The subspace keeps the
    rotation from memorising the pairs (in the full ``d > n`` space a rotation can map any ``n`` queries onto any
    ``n`` candidates).
``score``
    SCORE-style label-free alignment (SCORE, arXiv 2608.19134: "label-free orthogonal recovery on the unseen
    subject's test EEG", 53.2 % LOSO top-1 transductive; ``anchors.md`` §7). SCORE's code was not found; its
    abstract names the idea (recover an orthogonal map that aligns the unseen subject's test-embedding
    distribution with the trained embedding space, without labels). What is implemented: centring, projection onto the
    candidates' top-``r`` principal axes, per-set ZCA whitening there (moment matching), L2 normalisation, then
    alternating assignment and orthogonal
    Procrustes in the candidates' top-``r`` principal subspace — the Wasserstein-Procrustes scheme (Zhang et al.
    2017; Grave et al. 2019) — for at most ``n_iter`` rounds or until the assignment stops changing. It differs
    from SCORE wherever SCORE's details differ (its target may be the training distribution rather than the
    candidate pool, its matching may be soft); it is labelled ``score`` for "SCORE-style", not a reproduction.

All functions are deterministic (no random step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.optimize import linear_sum_assignment

from eegvision.checks import check_choice, check_finite, check_shape

__all__ = ["CALIBRATIONS", "Calibrated", "calibrate", "centre", "orthogonal_map", "whiten"]

#: The calibration methods of :func:`calibrate` (``evaluate --calibrate``).
CALIBRATIONS = ("centre", "whiten", "procrustes", "score")


@dataclass(frozen=True)
class Calibrated:
    """Calibrated queries and candidates (score them by cosine) and what the calibration did.

    Attributes
    ----------
    queries, candidates : ndarray
        ``(n, e)`` and ``(m, e)``; ``e`` is ``d``, or the subspace rank for ``procrustes``/``score``.
    method : str
    rotation : ndarray or None
        ``(r, r)`` the orthogonal map applied to the queries (``procrustes``, ``score``).
    n_iter : int
        Assignment/Procrustes rounds run (0 for ``centre``/``whiten``).
    details : dict
        Settings (shrinkage, rank) and, for ``score``, the fraction of queries whose assignment changed in the
        last round.
    """

    queries: np.ndarray
    candidates: np.ndarray
    method: str
    rotation: np.ndarray | None = None
    n_iter: int = 0
    details: dict = field(default_factory=dict)


def _matrix(x, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    check_shape(name, a, ("rows", "dim"))
    check_finite(name, a)
    return a


def centre(x: np.ndarray) -> np.ndarray:
    """``x - x.mean(0)``."""
    return x - x.mean(0, keepdims=True)


def whiten(x: np.ndarray, shrinkage: float = 0.1) -> np.ndarray:
    """Centre ``x`` and whiten it with the inverse square root of its shrunk covariance
    ``(1 - a) S + a tr(S)/d I`` (ZCA, symmetric; ``a = shrinkage`` in ``[0, 1]``)."""
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}.")
    xc = centre(x)
    d = x.shape[1]
    cov = xc.T @ xc / max(len(x) - 1, 1)
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / d * np.eye(d)
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 1e-12 * max(vals.max(), 1e-300), None)
    return xc @ (vecs * vals ** -0.5) @ vecs.T


def orthogonal_map(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal ``R`` (``d x d``) minimising ``||source @ R - target||_F`` (orthogonal Procrustes,
    Schönemann 1966; ``R = U V^T`` from the SVD ``source^T target = U S V^T``)."""
    s, t = _matrix(source, "source"), _matrix(target, "target")
    if s.shape != t.shape:
        raise ValueError(f"orthogonal_map needs paired rows of equal shape; got {s.shape} and {t.shape}.")
    r, _ = orthogonal_procrustes(s, t)
    return r


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _assign(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Candidate row paired with each query: a one-to-one maximum-similarity assignment (Hungarian); with more
    queries than candidates, the queries left over take their best candidate."""
    sim = _unit(q) @ _unit(c).T
    rows, cols = linear_sum_assignment(-sim)
    pair = sim.argmax(1)
    pair[rows] = cols
    return pair


def calibrate(queries, candidates, method: str, *, shrinkage: float = 0.1, rank: int = 16, n_iter: int = 20,
              ) -> Calibrated:
    """Calibrate test ``queries`` (``n x d`` embeddings of one subject's test set) against ``candidates``
    (``m x d`` image or text features of the test pool) with ``method`` (module docstring).

    Parameters
    ----------
    queries, candidates : array or tensor
        Test embeddings and candidate features (same ``d``).
    method : {"centre", "whiten", "procrustes", "score"}
    shrinkage : float
        Covariance shrinkage of ``whiten`` and ``score``.
    rank : int
        Subspace dimension of ``procrustes`` and ``score``, capped at ``min(n, m) // 3`` (at least 2) and ``d``.
    n_iter : int
        Most assignment/Procrustes rounds of ``score``.
    """
    method = check_choice("calibration", method, CALIBRATIONS)
    q, c = _matrix(queries, "queries"), _matrix(candidates, "candidates")
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions, candidates {c.shape[1]}; calibrate embeddings "
                         "against features of the same space.")
    if method == "centre":
        return Calibrated(centre(q), centre(c), method)
    if method == "whiten":
        return Calibrated(whiten(q, shrinkage), whiten(c, shrinkage), method, details={"shrinkage": shrinkage})
    q, c = centre(q), centre(c)
    r = int(max(2, min(rank, min(len(q), len(c)) // 3, q.shape[1])))
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    basis = vt[:r].T                                              # (d, r) candidates' principal axes
    qr, cr = q @ basis, c @ basis
    if method == "score":                                         # moment matching inside the subspace
        qr, cr = whiten(qr, shrinkage), whiten(cr, shrinkage)
    qr, cr = _unit(qr), _unit(cr)
    rounds = 1 if method == "procrustes" else max(1, int(n_iter))
    rot = np.eye(r)
    pair = _assign(qr, cr)
    changed = 1.0
    done = 0
    for done in range(1, rounds + 1):
        rot = orthogonal_map(qr, cr[pair])
        if done == rounds:
            break
        new = _assign(qr @ rot, cr)
        changed = float(np.mean(new != pair))
        pair = new
        if changed == 0.0:
            break
    details = {"rank": r, **({"shrinkage": shrinkage, "last_change": changed} if method == "score" else {})}
    return Calibrated(qr @ rot, cr, method, rotation=rot, n_iter=done, details=details)
