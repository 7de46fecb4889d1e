"""Result rows (CSV/JSON round trip) and statistics: bootstrap, tests against chance, paired comparisons."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from eegvision.evaluation.kway import kway_exact, kway_montecarlo
from eegvision.evaluation.results import make_rows, read_results, results_frame, write_results
from eegvision.evaluation.stats import (
    binomial_pvalue,
    bootstrap_ci,
    chance_level,
    format_summary,
    paired_comparison,
    permutation_test_chance,
    query_bootstrap_ci,
    summarize,
)


def _fake_rows(encoder, values, k=200):
    """values: {(subject, seed): (top1, top5)}"""
    return [dict(dataset="things-eeg2", subject=s, encoder=encoder, seed=seed, protocol="intra",
                 selection="val", modality="image", method="exact", k=k, top1=t1, top5=t5)
            for (s, seed), (t1, t5) in values.items()]


def test_rows_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    acc = kway_exact(rng.normal(size=(30, 30)), ks=(2, 10, 30))
    info = dict(dataset="things-eeg2", subject="sub-01", encoder="atms", seed=3, protocol="intra",
                selection="val-loss", n_train=16540, n_chans=63, window=(0.0, 1.0), features="ViT-H-14",
                best_epoch_on_test_top1=0.4)
    rows = make_rows(acc, modality="image", info=info, n_candidates=30)
    rows += make_rows(kway_montecarlo(rng.normal(size=(30, 30)), ks=(2,), n_draws=5), modality="text", info=info)
    assert [r["k"] for r in rows] == [2, 10, 30, 2]
    assert rows[0]["top1"] == pytest.approx(acc.get(2, 1)) and rows[0]["window"] == "[0.0, 1.0]"
    assert rows[-1]["method"] == "montecarlo" and rows[-1]["n_draws"] == 5 and "top1_draw_std" in rows[-1]
    for suffix in (".csv", ".json"):
        path = write_results(rows, tmp_path / f"res{suffix}")
        back = read_results(path)
        assert len(back) == 4
        for r0, r1 in zip(rows, back):
            for key in ("subject", "k", "seed", "n_chans", "modality", "method", "transductive"):
                assert r1[key] == r0[key], (suffix, key)
            assert r1["top1"] == pytest.approx(r0["top1"]) and r1["best_epoch_on_test_top1"] == 0.4
    header = (tmp_path / "res.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["dataset", "subject", "encoder", "seed", "protocol", "selection"]
    assert json.loads((tmp_path / "res.json").read_text())["columns"] == header
    assert len(results_frame([tmp_path / "res.csv", tmp_path / "res.json"])) == 8
    with pytest.raises(ValueError, match=r"Result info key 'subjet' is not in the result columns .*Did you mean subject\?"):
        make_rows(acc, modality="image", info={"subjet": "sub-01"})
    with pytest.raises(ValueError, match="modality must be one of image, text; got 'audio'"):
        make_rows(acc, modality="audio")
    with pytest.raises(ValueError, match=r"suffix of the results file res.txt must be one of .csv, .json; got '.txt'"):
        write_results(rows, tmp_path / "res.txt")
    assert not list(tmp_path.glob(".res*"))  # no temporary files left behind


def test_bootstrap_ci_against_scipy():
    x = np.random.default_rng(1).normal(0.3, 0.1, size=12)
    lo, hi = bootstrap_ci(x, n_boot=20000, seed=0)
    ref = sps.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", random_state=0).confidence_interval
    assert lo < x.mean() < hi
    assert lo == pytest.approx(ref.low, abs=0.006) and hi == pytest.approx(ref.high, abs=0.006)
    assert bootstrap_ci(np.full(5, 0.2)) == pytest.approx((0.2, 0.2))
    assert np.isnan(bootstrap_ci([0.5])[0])


def test_query_bootstrap_matches_naive_resampling():
    rng = np.random.default_rng(2)
    acc = kway_exact(rng.normal(size=(40, 40)) + 2 * np.eye(40), ks=(2, 10, 40))
    lo, hi = query_bootstrap_ci(acc, n_boot=300, seed=5)
    idx = np.random.default_rng(5).integers(0, 40, size=(300, 40))
    boots = acc.per_query[:, :, idx].mean(axis=3)  # (ks, tops, B)
    assert np.allclose(lo, np.quantile(boots, 0.025, axis=2))
    assert np.allclose(hi, np.quantile(boots, 0.975, axis=2))
    assert np.all(lo <= acc.accuracy + 1e-12) and np.all(acc.accuracy <= hi + 1e-12)


def test_permutation_test_against_naive_loop():
    rng = np.random.default_rng(3)
    n = 30
    q = rng.normal(size=(n, 8))
    s = (q + 3.0 * rng.normal(size=q.shape)) @ q.T  # weak signal
    p = permutation_test_chance(s, ks=(2, 10), tops=(1,), n_perm=400, seed=0)
    obs = kway_exact(s, ks=(2, 10), tops=(1,)).accuracy
    r = np.random.default_rng(99)
    null = np.array([kway_exact(s, r.permutation(n), ks=(2, 10), tops=(1,)).accuracy for _ in range(400)])
    p_naive = (1 + (null >= obs - 1e-12).sum(axis=0)) / 401
    assert np.allclose(p, p_naive, atol=0.07)
    strong = permutation_test_chance(np.eye(n) + 0.01 * rng.normal(size=(n, n)), ks=(2,), tops=(1,), n_perm=99)
    assert strong[0, 0] == pytest.approx(1 / 100)
    noise = [permutation_test_chance(rng.normal(size=(n, n)), ks=(4,), tops=(1,), n_perm=99, seed=i)[0, 0]
             for i in range(12)]
    assert 0.2 < np.mean(noise) < 0.8


def test_binomial_and_chance_level():
    assert chance_level(200, 5) == 0.025 and chance_level(2, 5) == 1.0
    assert binomial_pvalue(0.36, 200, 200, 1) == pytest.approx(
        sps.binomtest(72, 200, 0.005, alternative="greater").pvalue)


def test_summary_over_subjects_and_seeds():
    vals = {("sub-01", 0): (0.30, 0.60), ("sub-01", 1): (0.34, 0.62), ("sub-02", 0): (0.20, 0.50),
            ("sub-02", 1): (0.22, 0.52), ("sub-03", 0): (0.40, 0.70), ("sub-03", 1): (0.38, 0.66)}
    rows = _fake_rows("atms", vals) + _fake_rows("atms", {k: (v[0] + 0.1, v[1]) for k, v in vals.items()}, k=100)
    summary = summarize(rows, n_boot=2000)
    assert len(summary) == 2
    r = summary[summary["k"] == 200].iloc[0]
    top1 = np.array([v[0] for v in vals.values()])
    assert r["n_runs"] == 6 and r["n_subjects"] == 3 and r["n_seeds"] == 2
    assert r["top1_mean"] == pytest.approx(top1.mean()) and r["top1_std"] == pytest.approx(top1.std(ddof=1))
    subj = np.array([0.32, 0.21, 0.39])
    assert r["top1_ci_low"] >= subj.min() - 1e-12 and r["top1_ci_high"] <= subj.max() + 1e-12
    assert r["top1_chance"] == 0.005 and r["top5_chance"] == 0.025
    assert r["top1_p_chance"] == pytest.approx(sps.wilcoxon(subj - 0.005, alternative="greater").pvalue)
    text = format_summary(summary)
    assert text.loc[summary["k"] == 200, "top1"].iloc[0].startswith(f"{top1.mean():.3f} ± ")
    with pytest.raises(ValueError, match="no result rows"):
        summarize([])


def test_paired_comparison_against_scipy():
    rng = np.random.default_rng(4)
    units = [(f"sub-{i:02d}", s) for i in range(1, 9) for s in (0, 1)]
    a = {u: (0.3 + 0.05 * rng.normal(), 0.6) for u in units}
    b = {u: (a[u][0] - 0.03 + 0.02 * rng.normal(), 0.6) for u in units}
    b.pop(units[0])  # unmatched unit must be dropped
    rows = _fake_rows("atms", a) + _fake_rows("nice", b)
    res = paired_comparison(rows, "atms", "nice", metric="top1")
    assert len(res) == 1
    r = res.iloc[0]
    x = np.array([a[u][0] for u in units[1:]])
    y = np.array([b[u][0] for u in units[1:]])
    assert r["n"] == 15 and r["mean_diff"] == pytest.approx((x - y).mean())
    assert r["p_ttest"] == pytest.approx(sps.ttest_rel(x, y).pvalue)
    assert r["p_wilcoxon"] == pytest.approx(sps.wilcoxon(x, y).pvalue)
    assert r["ci_low"] < r["mean_diff"] < r["ci_high"]
    with pytest.raises(ValueError, match=r"Encoder 'eegnet' is not in the results \(available: atms, "):
        paired_comparison(rows, "atms", "eegnet")
    same = paired_comparison(rows + _fake_rows("copy", a), "atms", "copy")
    assert same.iloc[0]["mean_diff"] == 0 and np.isnan(same.iloc[0]["p_ttest"])
    assert isinstance(res, pd.DataFrame)
