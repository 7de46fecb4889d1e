"""Statistics over result rows: summary mean ± std, bootstrap intervals, tests against chance, paired tests.

Units of resampling (stated because papers rarely do):

* :func:`summarize` works over **subjects**. Runs of the same subject with different seeds are first averaged
  into one value per subject; the bootstrap CI resamples subjects with replacement, and the test against chance
  is a one-sided Wilcoxon signed-rank test of the subject means against the chance level. The ``std`` column
  is the plain standard deviation over all runs (subjects × seeds, ``ddof=1``), as papers report it.
* :func:`query_bootstrap_ci` works over **test queries** of one run (the candidate set stays fixed): it says
  how much one subject's number would move with a different sample of test concepts.
* :func:`permutation_test_chance` tests one run against chance by permuting which candidate is the true one
  for each query (exact for every k, top-t and tie rule, since it reuses the exact k-way table).
* :func:`paired_comparison` pairs two encoders on identical (subject, seed) units and reports the paired t-test
  and the Wilcoxon signed-rank test (two-sided), the number of pairs and the mean difference.
* :func:`paired_item_bootstrap` pairs two decoders on the same **test items** of one or more strata (e.g. the
  seeds of a simulation): the items of each stratum are resampled with replacement, the same draw for both
  decoders, and the per-stratum differences are averaged with equal weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats as sps

from eegvision.checks import check_choice, check_name, check_names, check_positive
from eegvision.evaluation.kway import (
    DEFAULT_KS,
    DEFAULT_TOPS,
    KWayAccuracy,
    _check_scores,
    _validate_ks_tops,
    hit_probability_table,
)

SUMMARY_BY: tuple[str, ...] = (
    "dataset", "encoder", "protocol", "selection", "modality", "method", "k", "features", "n_chans", "window",
    "calibration",
)
PAIR_BY: tuple[str, ...] = ("dataset", "protocol", "selection", "modality", "method", "k", "features",
                            "calibration")

__all__ = [
    "PAIR_BY", "SUMMARY_BY", "binomial_pvalue", "bootstrap_ci", "chance_level", "format_summary",
    "paired_comparison", "paired_item_bootstrap", "permutation_test_chance", "query_bootstrap_ci", "summarize",
]


def chance_level(k: int, top: int = 1) -> float:
    """Chance accuracy of a k-way top-t trial: ``min(t, k) / k``."""
    return min(top, k) / k


def bootstrap_ci(values, *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (1-D; resampled with replacement).

    Returns ``(nan, nan)`` for fewer than two values.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_item_bootstrap(a, b, *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Paired percentile-bootstrap confidence interval of ``mean(a) - mean(b)`` over items, combined over strata.

    Parameters
    ----------
    a, b
        Per-item values of two decoders (e.g. 0/1 top-1 correctness): one 1-D array, or a sequence of 1-D
        arrays, one per stratum (a seed); ``a[s][i]`` and ``b[s][i]`` are the same item.
    n_boot, level, seed
        Bootstrap replicates, two-sided level, and the seed of the resampling.

    Returns
    -------
    dict
        ``mean_diff`` (the mean over strata of each stratum's mean difference), ``ci_low``/``ci_high`` (the
        ``(1-level)/2`` and ``(1+level)/2`` quantiles of that statistic over replicates; each replicate draws
        every stratum's items with replacement, the same indices for ``a`` and ``b``), ``n_strata``,
        ``n_items`` (total), ``level``, ``n_boot``.
    """
    check_positive("n_boot", n_boot)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level}.")
    sa, sb = _strata(a, "a"), _strata(b, "b")
    if len(sa) != len(sb) or not sa:
        raise ValueError(f"a and b need the same number of strata (at least one); got {len(sa)} and {len(sb)}.")
    rng = np.random.default_rng(seed)
    boots = np.zeros(int(n_boot))
    for i, (x, y) in enumerate(zip(sa, sb)):
        if x.shape != y.shape or x.size == 0:
            raise ValueError(f"Stratum {i}: a has {x.size} items and b {y.size}; pair the same (non-empty) items.")
        d = x - y
        boots += d[rng.integers(0, d.size, size=(int(n_boot), d.size))].mean(1)
    boots /= len(sa)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return {"mean_diff": float(np.mean([(x - y).mean() for x, y in zip(sa, sb)])), "ci_low": float(lo),
            "ci_high": float(hi), "n_strata": len(sa), "n_items": int(sum(x.size for x in sa)), "level": level,
            "n_boot": int(n_boot)}


def _strata(values, name: str) -> list[np.ndarray]:
    """One 1-D float array per stratum, from an array (one stratum) or a sequence of arrays."""
    if isinstance(values, np.ndarray) and values.ndim == 1 or (
            isinstance(values, Sequence) and values and np.isscalar(values[0])):
        return [np.asarray(values, np.float64)]
    out = [np.asarray(v, np.float64) for v in values]
    for i, v in enumerate(out):
        if v.ndim != 1 or not np.all(np.isfinite(v)):
            raise ValueError(f"{name}[{i}] must be a 1-D array of finite per-item values; got shape {v.shape}.")
    return out


def query_bootstrap_ci(acc: KWayAccuracy, *, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap CI of every k-way accuracy of one run, resampling **test queries** (same resample for all k).

    Returns
    -------
    low, high : ndarray (len(ks), len(tops))
    """
    pq = acc.per_query
    n = pq.shape[-1]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    # Mean over the resampled queries, for all (k, t) at once: counts per query avoid a (k, t, B, n) array.
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], idx), 1.0)
    boots = np.einsum("ktn,bn->ktb", pq, counts) / n
    alpha = (1.0 - level) / 2.0
    return np.quantile(boots, alpha, axis=2), np.quantile(boots, 1.0 - alpha, axis=2)


def _row_ranks(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per entry: number of other entries of its row scoring strictly higher, and scoring equal."""
    rmin = sps.rankdata(s, method="min", axis=1).astype(np.int64)
    rmax = sps.rankdata(s, method="max", axis=1).astype(np.int64)
    m = s.shape[1]
    return m - rmax, rmax - rmin


def permutation_test_chance(
    scores,
    targets=None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    tops: Sequence[int] = DEFAULT_TOPS,
    n_perm: int = 1000,
    seed: int = 0,
    ties: str = "pessimistic",
) -> np.ndarray:
    """One-sided permutation p-values of the exact k-way accuracies against chance.

    The null hypothesis is that the scores carry no information about which candidate is true: the targets
    are shuffled across queries ``n_perm`` times and the exact k-way accuracy recomputed each time.

    Returns
    -------
    ndarray (len(ks), len(tops))
        ``(1 + #{null >= observed}) / (1 + n_perm)``; the smallest attainable value is ``1 / (1 + n_perm)``.
    """
    s, t = _check_scores(scores, targets)
    n, n_cand = s.shape
    ks, tops = _validate_ks_tops(ks, tops, n_cand)
    table = hit_probability_table(n_cand, ks, tops)
    higher, tied = _row_ranks(s)
    if ties == "pessimistic":
        m_all = higher + tied
    elif ties == "optimistic":
        m_all = higher
    elif ties == "average":
        m_all = None
    else:
        check_choice("ties", ties, ("pessimistic", "optimistic", "average"))

    def accuracy(target_idx: np.ndarray) -> np.ndarray:  # target_idx (B, n) -> (ks, tops, B)
        rows = np.arange(n)[None, :]
        if m_all is not None:
            return table[:, :, m_all[rows, target_idx]].mean(axis=3)
        h, e = higher[rows, target_idx], tied[rows, target_idx]
        cum = np.concatenate([np.zeros(table.shape[:2] + (1,)), np.cumsum(table, axis=2)], axis=2)
        return ((cum[:, :, h + e + 1] - cum[:, :, h]) / (e + 1)).mean(axis=3)

    observed = accuracy(t[None, :])[:, :, 0]
    rng = np.random.default_rng(seed)
    exceed = np.zeros_like(observed)
    chunk = max(1, 2_000_000 // max(1, n * len(ks) * len(tops)))
    for start in range(0, n_perm, chunk):
        b = min(chunk, n_perm - start)
        perm = rng.permuted(np.broadcast_to(t, (b, n)), axis=1)
        null = accuracy(perm)
        exceed += (null >= observed[:, :, None] - 1e-12).sum(axis=2)
    return (1.0 + exceed) / (1.0 + n_perm)


def binomial_pvalue(accuracy: float, n_queries: int, k: int, top: int = 1) -> float:
    """One-sided exact binomial p-value of ``accuracy`` over ``n_queries`` trials against chance ``t/k``.

    Exact when the accuracy counts independent 0/1 trials (k equal to the number of candidates, or a single
    Monte-Carlo draw). For exact k-way expectations (fractional hits) the hit count is rounded, which is an
    approximation; prefer :func:`permutation_test_chance` there.
    """
    hits = int(round(accuracy * n_queries))
    return float(sps.binomtest(hits, n_queries, chance_level(k, top), alternative="greater").pvalue)


def _frame(rows):
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        return rows.copy()
    return pd.DataFrame(list(rows))


def summarize(
    rows: Iterable[Mapping],
    *,
    by: Sequence[str] = SUMMARY_BY,
    metrics: Sequence[str] = ("top1", "top5"),
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
):
    """Summary table over subjects and seeds: mean ± std, bootstrap CI over subjects, test against chance.

    Parameters
    ----------
    rows : iterable of result rows (or a DataFrame)
        As written by :func:`eegvision.evaluation.results.make_rows`.
    by : sequence of str
        Grouping columns (columns absent from the rows are ignored). Subject and seed are what is summarised.
    metrics : sequence of str
        Accuracy columns, e.g. ``("top1", "top5")``.

    Returns
    -------
    pandas.DataFrame
        One row per group with ``n_runs``, ``n_subjects``, ``n_seeds`` and per metric ``{m}_mean``, ``{m}_std``
        (over runs), ``{m}_ci_low``/``{m}_ci_high`` (bootstrap over subject means), ``{m}_chance`` and
        ``{m}_p_chance`` (one-sided Wilcoxon signed-rank of subject means > chance; NaN below 2 subjects).
    """
    import pandas as pd

    df = _frame(rows)
    if df.empty:
        raise ValueError("no result rows to summarise")
    by = [c for c in by if c in df.columns]
    if "subject" not in df.columns:
        df["subject"] = "all"
    if "seed" not in df.columns:
        df["seed"] = 0
    out = []
    for key, g in df.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(by, key))
        rec["n_runs"] = len(g)
        rec["n_subjects"] = int(g["subject"].nunique(dropna=False))
        rec["n_seeds"] = int(g["seed"].nunique(dropna=False))
        for m in metrics:
            if m not in g.columns:
                continue
            vals = g[m].astype(float)
            subj = g.assign(_v=vals).groupby("subject", dropna=False)["_v"].mean().to_numpy()
            rec[f"{m}_mean"] = float(vals.mean())
            rec[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
            lo, hi = bootstrap_ci(subj, n_boot=n_boot, level=level, seed=seed)
            rec[f"{m}_ci_low"], rec[f"{m}_ci_high"] = lo, hi
            chance = float("nan")
            if "k" in rec and m[3:].isdigit() and pd.notna(rec["k"]):
                chance = chance_level(int(rec["k"]), int(m[3:]))
            rec[f"{m}_chance"] = chance
            p = float("nan")
            diff = subj - chance
            if len(subj) >= 2 and np.isfinite(chance) and np.any(diff != 0):
                p = float(sps.wilcoxon(diff, alternative="greater").pvalue)
            rec[f"{m}_p_chance"] = p
        out.append(rec)
    return pd.DataFrame(out)


def format_summary(summary, *, metrics: Sequence[str] = ("top1", "top5"), percent: bool = False, digits: int = 3):
    """Readable copy of :func:`summarize` output with ``mean ± std [ci_low, ci_high]`` strings per metric."""
    df = summary.copy()
    scale = 100.0 if percent else 1.0
    d = digits if not percent else max(digits - 2, 1)
    for m in metrics:
        if f"{m}_mean" not in df.columns:
            continue

        def fmt(r, m=m):
            s = f"{r[f'{m}_mean'] * scale:.{d}f}"
            if np.isfinite(r[f"{m}_std"]):
                s += f" ± {r[f'{m}_std'] * scale:.{d}f}"
            if np.isfinite(r[f"{m}_ci_low"]):
                s += f" [{r[f'{m}_ci_low'] * scale:.{d}f}, {r[f'{m}_ci_high'] * scale:.{d}f}]"
            return s

        df[m] = df.apply(fmt, axis=1)
        df = df.drop(columns=[c for c in df.columns if c.startswith(f"{m}_") and c != f"{m}_p_chance"])
    return df


def paired_comparison(
    rows: Iterable[Mapping],
    a: str,
    b: str,
    *,
    metric: str = "top1",
    factor: str = "encoder",
    pair_on: Sequence[str] = ("subject", "seed"),
    by: Sequence[str] = PAIR_BY,
    n_boot: int = 10_000,
    seed: int = 0,
):
    """Paired comparison of two levels of ``factor`` (two encoders by default) on matched units.

    Units are matched on ``pair_on`` (subject and seed) within each group of ``by``; unmatched units are
    dropped and the number of pairs ``n`` is reported.

    Returns
    -------
    pandas.DataFrame
        Per group: ``n``, ``mean_a``, ``mean_b``, ``mean_diff`` (a − b), ``std_diff``, bootstrap ``ci_low`` /
        ``ci_high`` of the mean difference, paired t-test ``t`` / ``p_ttest`` and Wilcoxon signed-rank
        ``w`` / ``p_wilcoxon`` (two-sided; NaN when fewer than 2 pairs or all differences are zero).
    """
    import pandas as pd

    df = _frame(rows)
    check_name("Column", factor, list(df.columns), "the result rows")
    levels = sorted(df[factor].dropna().unique(), key=str)
    check_names(str(factor).capitalize(), [a, b], levels, "the results")
    by = [c for c in by if c in df.columns]
    pair_on = [c for c in pair_on if c in df.columns]
    if not pair_on:
        raise ValueError(f"rows need at least one of the pairing columns {list(pair_on)} (subject, seed)")
    keys = by + pair_on
    da = df[df[factor] == a].groupby(keys, dropna=False)[metric].mean()
    db = df[df[factor] == b].groupby(keys, dropna=False)[metric].mean()
    joined = pd.concat([da.rename("a"), db.rename("b")], axis=1, join="inner").reset_index()
    out = []
    groups = joined.groupby(by, dropna=False, sort=True) if by else [((), joined)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(by, key))
        x, y = g["a"].to_numpy(float), g["b"].to_numpy(float)
        d = x - y
        rec.update(a=a, b=b, metric=metric, n=len(d), mean_a=float(x.mean()), mean_b=float(y.mean()),
                   mean_diff=float(d.mean()), std_diff=float(d.std(ddof=1)) if len(d) > 1 else float("nan"))
        rec["ci_low"], rec["ci_high"] = bootstrap_ci(d, n_boot=n_boot, seed=seed)
        t = p_t = w = p_w = float("nan")
        if len(d) >= 2 and np.any(d != 0):
            res = sps.ttest_rel(x, y)
            t, p_t = float(res.statistic), float(res.pvalue)
            wres = sps.wilcoxon(x, y)
            w, p_w = float(wres.statistic), float(wres.pvalue)
        rec.update(t=t, p_ttest=p_t, w=w, p_wilcoxon=p_w)
        out.append(rec)
    return pd.DataFrame(out)
