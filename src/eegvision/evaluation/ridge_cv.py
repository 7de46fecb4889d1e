r"""Ridge regression with the penalty chosen by grouped K-fold cross-validation, for every penalty at once.

For a design :math:`X` (rows × features) and targets :math:`Y` (rows × outputs), each fold's training part is
centred (as ``fit_intercept=True`` does) and the ridge solutions for all penalties :math:`\alpha` come from one
symmetric eigendecomposition per fold:

* **kernel form** (a fold's training rows < features): :math:`K = X_c X_c^\top = U \operatorname{diag}(s) U^\top`, predictions
  :math:`\hat Y_v = K_{vc}\, U \operatorname{diag}(1/(s+\alpha))\, U^\top Y_c + \bar y`;
* **primal form** (otherwise): the sufficient statistics :math:`X^\top X`, :math:`X^\top Y`, :math:`\sum x`,
  :math:`\sum y` of each fold are accumulated in float64 from float32 chunks of rows (about ``chunk_rows`` at a
  time); a fold's training part is the total minus the fold, :math:`X_c^\top X_c = V \operatorname{diag}(\lambda)
  V^\top`, :math:`W(\alpha) = V \operatorname{diag}(1/(\lambda+\alpha)) V^\top X_c^\top Y_c`.

The folds are scikit-learn's ``GroupKFold(n_splits)`` over ``groups`` (the concept of each row: a held-out fold
holds out whole concepts, as the test set does). Per penalty and fold it scores R² (scikit-learn's ``r2_score``,
uniform mean over outputs), the mean squared error, and retrieval among the fold's held-out rows (top-1/top-5 of
each prediction's cosine against every held-out target; ties count against; the pairwise accuracy — the fraction
of the other held-out targets ranked below the true one, ties against, averaged over rows; and the mean cosine of
the true pairs). The penalty maximises the mean over folds of ``scoring``: ``"r2"`` (the first best in grid
order) — which makes the whole procedure equal to ``RidgeCV(alphas, cv=GroupKFold(n_splits), fit_intercept=True)``
—, ``"top1"`` or ``"pairwise"`` (ties broken by the mean true-pair cosine). Pairwise accuracy uses every rank, not
only the first place, so it still separates penalties where top-1 among the held-out rows sits near chance. The
model is then refitted on all rows.

Reduced rank (``rank=r``): the classic reduced-rank ridge — the fitted values :math:`X_c W` of the training rows
are projected onto their top ``r`` principal directions :math:`V_r` (eigenvectors of
:math:`W^\top X_c^\top X_c W`), :math:`W_r = W V_r V_r^\top`; in cross-validation as in the refit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from eegvision.checks import check_choice, check_shape
from eegvision.evaluation.linear import topk_from_scores

__all__ = ["SCORINGS", "RidgeCVResult", "default_alphas", "fold_solver", "pairwise_accuracy", "ridge_cv"]

SCORES = ("r2", "top1", "top5", "pairwise", "cosine", "mse")
#: The scores a penalty can be chosen by.
SCORINGS = ("top1", "r2", "pairwise")


@dataclass
class RidgeCVResult:
    """What :func:`ridge_cv` returns.

    Attributes
    ----------
    alpha : float
        The chosen penalty.
    coef, intercept : ndarray
        ``(features, outputs)`` and ``(outputs,)``: predictions are ``x @ coef + intercept``.
    alphas : list of float
        The penalties tried, in order.
    scores : dict
        ``{score: [mean over folds, per penalty]}`` for ``r2``, ``top1``, ``top5``, ``pairwise``, ``cosine``, ``mse``.
    fold_scores : dict
        ``{score: [[per penalty] per fold]}``.
    form : str
        ``"kernel"`` or ``"primal"``.
    scoring : str
        The score the penalty maximised.
    n_rows, n_features, n_splits : int
    rank : int or None
    train_mse : float
        Mean squared error (summed over outputs) of the refitted model on its training rows.
    """

    alpha: float
    coef: np.ndarray
    intercept: np.ndarray
    alphas: list[float]
    scores: dict[str, list[float]]
    fold_scores: dict[str, list[list[float]]]
    form: str
    scoring: str
    n_rows: int
    n_features: int
    n_splits: int
    rank: int | None = None
    train_mse: float = float("nan")
    fold_sizes: list[int] = field(default_factory=list)

    @property
    def best(self) -> dict[str, float]:
        """The cross-validated scores of the chosen penalty."""
        i = self.alphas.index(self.alpha)
        return {k: float(v[i]) for k, v in self.scores.items()}

    @property
    def at_grid_edge(self) -> bool:
        """Whether the chosen penalty is the smallest or the largest tried (widen the grid when it is)."""
        return len(self.alphas) > 1 and self.alpha in (min(self.alphas), max(self.alphas))


def default_alphas(n_rows: int, n_features: int) -> list[float]:
    """``max(n_rows, n_features) * 10**[-3, -2.5, ..., 3]``: around the mean non-zero eigenvalue of the Gram
    matrix of a standardised design (its trace is ``n_rows * n_features``)."""
    return [float(max(n_rows, n_features) * 10.0 ** e) for e in np.arange(-3.0, 3.01, 0.5)]


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's ``r2_score(y, pred)`` (uniform average over outputs, constant outputs handled alike)."""
    num = ((y - pred) ** 2).sum(0)
    den = ((y - y.mean(0)) ** 2).sum(0)
    r2 = np.ones_like(num)
    ok = den != 0
    r2[ok] = 1.0 - num[ok] / den[ok]
    r2[~ok & (num != 0)] = 0.0
    return float(r2.mean())


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    p = pred.astype(np.float32)
    t = y.astype(np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True).clip(1e-12)
    t /= np.linalg.norm(t, axis=1, keepdims=True).clip(1e-12)
    sims = p @ t.T
    ks = (1, 5) if len(y) >= 5 else (1,)
    top = topk_from_scores(sims, ks)
    return {"r2": _r2(y, pred), "top1": top["top1"], "top5": top.get("top5", float("nan")),
            "pairwise": pairwise_accuracy(sims), "cosine": float(np.mean(np.diag(sims))),
            "mse": float(((y - pred) ** 2).sum(1).mean())}


def pairwise_accuracy(sims: np.ndarray) -> float:
    """Mean over rows of the fraction of the other columns scored strictly below the true one (the diagonal):
    ``1 - rank / (n - 1)`` with ties counted against (chance 0.5). ``sims`` is ``(n, n)``, row ``i``'s true
    column ``i``."""
    n = len(sims)
    if n < 2:
        return float("nan")
    true = np.diag(sims)[:, None]
    return float(((sims < true).sum(1) / (n - 1)).mean())


def _top_directions(gram: np.ndarray, rank: int | None) -> np.ndarray | None:
    """``(outputs, rank)`` top eigenvectors of the fitted values' Gram matrix ``(outputs, outputs)``."""
    if rank is None or rank >= len(gram):
        return None
    _, vec = np.linalg.eigh(gram)
    return vec[:, ::-1][:, :rank]


def _check(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_splits: int) -> None:
    check_shape("ridge_cv's x", x, ("rows", "features"))
    check_shape("ridge_cv's y", y, (len(x), "outputs"), "Give one target row per row of x.")
    check_shape("ridge_cv's groups", groups, (len(x),), "Give the group (concept) of every row of x.")
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(f"Cross-validation with {n_splits} folds holds out whole concepts and needs at least "
                         f"{n_splits} training concepts; the data has {n_groups}. Use fewer folds (cv={n_groups} "
                         "or less) or more training concepts.")


def ridge_cv(x: np.ndarray, y: np.ndarray, groups: np.ndarray, alphas: Sequence[float] | None = None, *,
             n_splits: int = 5, scoring: str = "top1", rank: int | None = None,
             chunk_rows: int = 2048) -> RidgeCVResult:
    """Ridge with the penalty chosen by ``GroupKFold`` cross-validation (see the module docstring).

    Parameters
    ----------
    x : ndarray, shape (rows, features)
        The design (float32 or float64; read in chunks of ``chunk_rows`` rows, never copied whole in float64
        in the primal form).
    y : ndarray, shape (rows, outputs)
        Targets.
    groups : ndarray, shape (rows,)
        Group (concept) of each row; a fold holds out whole groups.
    alphas : list of float, optional
        Absolute penalties (default :func:`default_alphas`).
    n_splits, scoring, rank
        Folds; ``"top1"``, ``"r2"`` or ``"pairwise"``; reduced rank (None: full rank).
    """
    check_choice("scoring", scoring, SCORINGS)
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    _check(x, y, groups, n_splits)
    n, p = x.shape
    alphas = default_alphas(n, p) if alphas is None else [float(a) for a in alphas]
    folds, form, solver = fold_solver(x, y, groups, n_splits, chunk_rows)

    fold_scores: dict[str, list[list[float]]] = {k: [] for k in SCORES}
    for f, va in enumerate(folds):
        per_alpha = [_scores(y[va], pred) for pred in solver.fold_predictions(f, va, alphas, rank)]
        for k in SCORES:
            fold_scores[k].append([s[k] for s in per_alpha])
    scores = {k: [float(v) for v in np.mean(fold_scores[k], axis=0)] for k in SCORES}
    if scoring == "r2":
        best = int(np.argmax(scores["r2"]))  # the first best, as GridSearchCV
    else:
        best = max(range(len(alphas)), key=lambda i: (scores[scoring][i], scores["cosine"][i], -i))
    alpha = alphas[best]
    coef, intercept = solver.refit(alpha, rank)
    return RidgeCVResult(alpha=alpha, coef=coef, intercept=intercept, alphas=alphas, scores=scores,
                         fold_scores=fold_scores, form=form, scoring=scoring, n_rows=n, n_features=p,
                         n_splits=n_splits, rank=rank, train_mse=_train_mse(x, y, coef, intercept, chunk_rows),
                         fold_sizes=[len(va) for va in folds])


def fold_solver(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_splits: int, chunk_rows: int
                ) -> tuple[list[np.ndarray], str, "_KernelSolver | _PrimalSolver"]:
    """The held-out rows of each ``GroupKFold`` fold, the solver's form (``"kernel"`` when a fold's training rows
    are fewer than the features, else ``"primal"``) and the solver whose ``fold_predictions`` give every penalty's
    held-out predictions (inputs already checked)."""
    from sklearn.model_selection import GroupKFold

    n, p = x.shape
    folds = [va for _, va in GroupKFold(n_splits=n_splits).split(np.zeros((n, 1)), groups=groups)]
    fold_of = np.empty(n, dtype=np.int64)
    for f, va in enumerate(folds):
        fold_of[va] = f
    form = "kernel" if n - min(len(va) for va in folds) < p else "primal"
    solver = _KernelSolver(x, y) if form == "kernel" else _PrimalSolver(x, y, fold_of, n_splits, chunk_rows)
    return folds, form, solver


def _train_mse(x: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: np.ndarray, chunk: int) -> float:
    total = 0.0
    for a in range(0, len(x), chunk):
        pred = np.asarray(x[a:a + chunk], np.float64) @ coef + intercept
        total += float(((y[a:a + chunk] - pred) ** 2).sum())
    return total / len(x)


class _KernelSolver:
    """A fold's training rows < features: every fold from the centred Gram matrix of its training rows
    (``n_train x n_train``)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def _centred(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xt = np.asarray(self.x[rows], dtype=np.float64)
        mu = xt.mean(0)
        xt -= mu
        return xt, mu

    def fold_predictions(self, f: int, va: np.ndarray, alphas: list[float], rank: int | None) -> Iterator[np.ndarray]:
        """Predictions for the held-out rows ``va`` of fold ``f``, one penalty at a time."""
        tr = np.setdiff1d(np.arange(len(self.x)), va)
        xc, mu = self._centred(tr)
        ybar = self.y[tr].mean(0)
        s, u = np.linalg.eigh(xc @ xc.T)
        s = np.clip(s, 0.0, None)
        uty = u.T @ (self.y[tr] - ybar)
        kvu = ((np.asarray(self.x[va], np.float64) - mu) @ xc.T) @ u
        del xc
        for a in alphas:
            c = uty / (s + a)[:, None]
            pred = kvu @ c
            vr = _top_directions(c.T @ (c * (s ** 2)[:, None]), rank)  # (K A)^T (K A) with K = U diag(s) U^T
            if vr is not None:
                pred = (pred @ vr) @ vr.T
            yield pred + ybar

    def refit(self, alpha: float, rank: int | None) -> tuple[np.ndarray, np.ndarray]:
        xc, mu = self._centred(np.arange(len(self.x)))
        ybar = self.y.mean(0)
        k = xc @ xc.T
        dual = np.linalg.solve(k + alpha * np.eye(len(k)), self.y - ybar)
        coef = xc.T @ dual
        vr = _top_directions((k @ dual).T @ (k @ dual), rank)
        if vr is not None:
            coef = (coef @ vr) @ vr.T
        return coef, ybar - mu @ coef


class _PrimalSolver:
    """Otherwise: per-fold sufficient statistics, accumulated in float64 from float32 chunks of rows.

    Rows are shifted by the overall mean ``m0`` before accumulating, so the centring of each fold's training
    part (``S - n mu mu^T`` with the small shifted mean ``mu``) loses no precision.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, fold_of: np.ndarray, n_folds: int, chunk: int) -> None:
        self.x, self.y, self.chunk = x, y, chunk
        n, p = x.shape
        self.m0 = np.zeros(p)
        for a in range(0, n, chunk):
            self.m0 += np.asarray(x[a:a + chunk], np.float64).sum(0)
        self.m0 /= n
        d = y.shape[1]
        self.sxx = np.zeros((n_folds, p, p))
        self.sxy = np.zeros((n_folds, p, d))
        self.sx = np.zeros((n_folds, p))
        self.sy = np.zeros((n_folds, d))
        self.n = np.bincount(fold_of, minlength=n_folds).astype(np.float64)
        for a in range(0, n, chunk):
            u = np.asarray(x[a:a + chunk], np.float64) - self.m0
            yy, ff = y[a:a + chunk], fold_of[a:a + chunk]
            for f in np.unique(ff):
                sel = ff == f
                uf = u[sel]
                self.sxx[f] += uf.T @ uf
                self.sxy[f] += uf.T @ yy[sel]
                self.sx[f] += uf.sum(0)
                self.sy[f] += yy[sel].sum(0)

    def _train_stats(self, f: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Centred ``X^T X``, ``X^T Y`` of all rows but fold ``f`` (all rows for None), their x and y means."""
        keep = np.ones(len(self.n), bool)
        if f is not None:
            keep[f] = False
        n = self.n[keep].sum()
        mu = self.sx[keep].sum(0) / n
        ybar = self.sy[keep].sum(0) / n
        sxx = self.sxx[keep].sum(0) - n * np.outer(mu, mu)
        sxy = self.sxy[keep].sum(0) - n * np.outer(mu, ybar)
        return sxx, sxy, mu + self.m0, ybar

    def fold_predictions(self, f: int, va: np.ndarray, alphas: list[float], rank: int | None) -> Iterator[np.ndarray]:
        """Predictions for the held-out rows ``va`` of fold ``f``, one penalty at a time."""
        sxx, sxy, mu, ybar = self._train_stats(f)
        lam, v = np.linalg.eigh(sxx)
        lam = np.clip(lam, 0.0, None)
        c = v.T @ sxy
        z = (np.asarray(self.x[va], np.float64) - mu) @ v
        for a in alphas:
            ca = c / (lam + a)[:, None]
            pred = z @ ca
            vr = _top_directions(ca.T @ (ca * lam[:, None]), rank)  # W^T S W with W = V diag(1/(lam+a)) V^T S_xy
            if vr is not None:
                pred = (pred @ vr) @ vr.T
            yield pred + ybar

    def refit(self, alpha: float, rank: int | None) -> tuple[np.ndarray, np.ndarray]:
        sxx, sxy, mu, ybar = self._train_stats(None)
        coef = np.linalg.solve(sxx + alpha * np.eye(len(sxx)), sxy)
        vr = _top_directions(coef.T @ sxx @ coef, rank)
        if vr is not None:
            coef = (coef @ vr) @ vr.T
        return coef, ybar - mu @ coef
