"""Encoding-model identification (evaluation/encoding.py) against scikit-learn's Ridge, and where it beats
feature-space ridge: a response that sees only a few directions of the features."""

import numpy as np
from sklearn.linear_model import Ridge

from eegvision.evaluation.encoding import encoding_identification
from eegvision.evaluation.linear import ranks_from_scores, ridge_retrieval


def _problem(seed=0, n_concepts=60, per=4, n_test=40, dim=48, rank=3, n_feat=120, noise=1.5):
    rng = np.random.default_rng(seed)
    proj = rng.standard_normal((dim, rank))
    pattern = rng.standard_normal((rank, n_feat))

    def draw(n):
        y = rng.standard_normal((n, dim))
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        x = (y @ proj) @ pattern + noise * rng.standard_normal((n, n_feat))
        return x, y

    x_tr, y_tr = draw(n_concepts * per)
    x_te, y_te = draw(n_test)
    return x_tr, y_tr, x_te, y_te, np.repeat(np.arange(n_concepts), per)


def test_equals_sklearn_ridge_on_features_then_correlation():
    x_tr, y_tr, x_te, y_te, groups = _problem()
    res = encoding_identification(x_tr, y_tr, x_te, y_te, groups, seed=3, alphas=[0.01, 0.1, 1.0],
                                  return_ranks=True)
    # the same model by hand: standardise X, fit sklearn Ridge(Y -> X) with the absolute penalty, cosine scores
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-12
    xs, xt = (x_tr - mu) / sd, (x_te - mu) / sd
    yc = y_tr - y_tr.mean(0)
    smax2 = np.linalg.eigvalsh(yc.T @ yc).max()
    model = Ridge(alpha=res["alpha"] * smax2, fit_intercept=True, solver="svd").fit(y_tr, xs)
    pred = model.predict(y_te) - xs.mean(0)
    a = (xt - xs.mean(0))
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (pred / np.linalg.norm(pred, axis=1, keepdims=True)).T
    np.testing.assert_array_equal(res["ranks"], ranks_from_scores(cos))
    assert res["top1"] == float((ranks_from_scores(cos) < 1).mean())
    assert res["alpha"] in (0.01, 0.1, 1.0)


def test_beats_feature_space_ridge_when_the_response_sees_few_feature_directions():
    tops = []
    for seed in range(3):
        x_tr, y_tr, x_te, y_te, groups = _problem(seed=seed)
        enc = encoding_identification(x_tr, y_tr, x_te, y_te, groups, seed=seed)["top1"]
        rid = ridge_retrieval(x_tr, y_tr, x_te, y_te, groups, seed=seed)["top1"]
        tops.append((enc, rid))
    enc, rid = np.mean(tops, axis=0)
    # measured: encoding 0.575, 0.550, 0.625 vs ridge 0.200, 0.175, 0.100 (40-way, chance 0.025)
    assert enc > rid + 0.1, tops


def test_refuses_mismatched_rows():
    import pytest

    x_tr, y_tr, x_te, y_te, groups = _problem()
    with pytest.raises(ValueError, match="rows differ"):
        encoding_identification(x_tr[:-1], y_tr, x_te, y_te, groups)
