"""The ``ridge`` encoder: its forward pass by hand, its cross-validated solver against scikit-learn's ``RidgeCV``,
per-fold retrieval scores and reduced rank against hand computations, and the closed-form fit of a run."""

import json

import numpy as np
import pytest
import sklearn
import torch
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import GroupKFold

from eegvision.evaluation.ridge_cv import default_alphas, ridge_cv
from eegvision.models import create_encoder, load_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem(n, p, d=6, seed=0):
    """A design with uneven feature scales and offsets, targets with offsets, 3 rows per group."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) * rng.uniform(0.5, 3.0, p) + 2.0 * rng.standard_normal(p)
    y = x[:, :4] @ rng.standard_normal((4, d)) + 2.0 * rng.standard_normal((n, d)) + 1.5
    return x, y, np.repeat(np.arange(n // 3), 3)


def test_forward_equals_a_numpy_forward_and_survives_saving(tmp_path):
    """whitening W on channels -> bin means of decim samples (ragged tail dropped) -> channel-major flatten ->
    standardise -> x @ coef + intercept, written out in numpy."""
    rng = np.random.default_rng(1)
    c, t, d, decim = 3, 11, 4, 3  # 3 bins of 3 samples; the last 2 samples are dropped
    enc = create_encoder("ridge", n_chans=c, n_times=t, n_outputs=d, sfreq=30.0, decim=decim, whiten=True)
    assert enc.n_features == c * 3 and enc.config["whitening"] == "mvnn" and enc.config["decim"] == 3
    w = rng.standard_normal((c, c))
    mean, scale = rng.standard_normal(c * 3), rng.uniform(0.5, 2.0, c * 3)
    coef, intercept = rng.standard_normal((c * 3, d)), rng.standard_normal(d)
    enc.set_whitening(w)
    enc.set_solution(mean, scale, coef, intercept)
    x = rng.standard_normal((5, c, t)).astype(np.float32)

    expected = np.zeros((5, d))
    for i in range(5):
        wx = w @ x[i].astype(np.float64)
        binned = np.array([[wx[ch, 3 * b:3 * b + 3].mean() for b in range(3)] for ch in range(c)])  # (c, bins)
        z = (binned.reshape(-1) - mean) / scale
        expected[i] = z @ coef + intercept
    with torch.no_grad():
        out = enc(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)

    loaded = load_encoder(enc.save_pretrained(tmp_path / "enc"))
    np.testing.assert_array_equal(loaded.whitening_matrix().numpy(), w.astype(np.float32))
    with torch.no_grad():
        assert torch.equal(loaded(torch.from_numpy(x)), enc(torch.from_numpy(x)))
    assert loaded.config == enc.config and loaded.closed_form


@pytest.mark.parametrize("n,p", [(90, 150), (300, 40)], ids=["kernel", "primal"])
def test_ridge_cv_r2_equals_sklearn_ridgecv_with_group_kfold(n, p):
    x, y, groups = _problem(n, p)
    alphas = [0.3, 3.0, 30.0, 300.0, 3000.0]
    with sklearn.config_context(enable_metadata_routing=True):
        ref = RidgeCV(alphas=alphas, cv=GroupKFold(n_splits=4), fit_intercept=True).fit(x, y, groups=groups)
    res = ridge_cv(x, y, groups, alphas, n_splits=4, scoring="r2", chunk_rows=37)
    assert res.form == ("kernel" if n < p else "primal")
    assert ref.alpha_ not in (alphas[0], alphas[-1])  # an interior choice: the comparison means something
    assert res.alpha == ref.alpha_
    np.testing.assert_allclose(res.coef.T, ref.coef_, rtol=1e-6, atol=1e-6 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(res.intercept, ref.intercept_, rtol=1e-6)
    assert max(res.scores["r2"]) == pytest.approx(ref.best_score_, rel=1e-9)


@pytest.mark.parametrize("n,p", [(60, 80), (120, 20)], ids=["kernel", "primal"])
def test_retrieval_scores_and_reduced_rank_against_per_fold_sklearn_fits(n, p):
    """Per fold and penalty: a scikit-learn Ridge on the fold's training rows, its predictions on the held-out
    rows ranked by cosine against every held-out target (ties against) — the top-1 and true-pair cosine recorded;
    with rank=2, the refit equals Ridge's coefficients projected on the top-2 principal directions of its fitted
    values (numpy SVD)."""
    x, y, groups = _problem(n, p, seed=3)
    alphas = [1.0, 50.0, 2000.0]
    res = ridge_cv(x, y, groups, alphas, n_splits=3, scoring="top1")
    folds = list(GroupKFold(n_splits=3).split(x, y, groups))
    for j, a in enumerate(alphas):
        top1, cos = [], []
        for tr, va in folds:
            pred = Ridge(alpha=a).fit(x[tr], y[tr]).predict(x[va])
            pn = pred / np.linalg.norm(pred, axis=1, keepdims=True)
            yn = y[va] / np.linalg.norm(y[va], axis=1, keepdims=True)
            sims = pn @ yn.T
            top1.append(np.mean([np.sum(np.delete(sims[i], i) >= sims[i, i]) == 0 for i in range(len(va))]))
            cos.append(np.mean(np.diag(sims)))
        assert res.scores["top1"][j] == pytest.approx(np.mean(top1), abs=1e-12)
        assert res.scores["cosine"][j] == pytest.approx(np.mean(cos), abs=1e-6)
    best = max(range(3), key=lambda i: (res.scores["top1"][i], res.scores["cosine"][i], -i))
    assert res.alpha == alphas[best] and res.scoring == "top1"

    reduced = ridge_cv(x, y, groups, [50.0], n_splits=3, scoring="r2", rank=2)
    full = Ridge(alpha=50.0).fit(x, y)
    fitted = x @ full.coef_.T - (x @ full.coef_.T).mean(0)
    vr = np.linalg.svd(fitted, full_matrices=False)[2][:2].T  # (d, 2)
    coef = full.coef_.T @ vr @ vr.T
    np.testing.assert_allclose(reduced.coef, coef, atol=1e-8 * np.abs(coef).max())
    np.testing.assert_allclose(reduced.intercept, y.mean(0) - x.mean(0) @ coef, atol=1e-8)
    assert np.linalg.matrix_rank(reduced.coef, tol=1e-8 * np.abs(coef).max()) == 2


def test_default_alphas_and_refusals():
    assert default_alphas(100, 40) == pytest.approx([100 * 10.0 ** e for e in np.arange(-3, 3.01, 0.5)])
    x, y, groups = _problem(30, 5)
    with pytest.raises(ValueError, match="needs at least 12 training concepts; the data has 10. Use fewer folds"):
        ridge_cv(x, y, groups, [1.0], n_splits=12)
    with pytest.raises(ValueError, match=r"ridge_cv's y has shape \(29, 6\); expected \(30, outputs\)"):
        ridge_cv(x, y[1:], groups, [1.0])
    with pytest.raises(ValueError, match="scoring must be one of top1, r2, pairwise; got 'acc'"):
        ridge_cv(x, y, groups, [1.0], scoring="acc")
    for opts, msg in (({"decim": 0}, "decim must be a whole number of 1 or more; got 0"),
                      ({"decim": 21}, "decim=21 samples per time bin is longer than the epoch"),
                      ({"scoring": "top5"}, "scoring must be one of top1, r2, pairwise; got 'top5'"),
                      ({"alphas": [1.0, -2.0]}, "positive penalties"), ({"cv": 1}, "cv must be a whole number of 2"),
                      ({"rank": 9}, "rank=9 exceeds the embedding size n_outputs=8"),
                      ({"whiten": "yes"}, "whiten must be one of False, True; got 'yes'")):
        with pytest.raises(ValueError, match=msg):
            create_encoder("ridge", n_chans=3, n_times=20, n_outputs=8, **opts)


def test_closed_form_run_equals_ridgecv_on_its_design(tmp_path, monkeypatch):
    """`fit --encoder ridge` with scoring r2: the saved encoder's weights are RidgeCV's on the design built by hand
    (repetition means of every training condition, bin means of 2 samples, standardised), the run records the
    choice, and its test embeddings are the encoder's forward on the averaged test EEG."""
    from decode_helpers import make_problem, patch_open_data

    from eegvision.training.config import FitConfig
    from eegvision.training.fitting import fit
    from eegvision.training.rundir import RunFolder

    store, data = make_problem(tmp_path, n_subjects=1, n_train_concepts=24, images_per_concept=2, n_test=10,
                               noise=3.0)
    patch_open_data(monkeypatch, store)
    alphas = [1.0, 30.0, 1000.0, 30000.0]
    run = fit(FitConfig(data=str(data), subjects=["sub-01"], encoder="ridge", eval_ks=[2, 10], eval_methods=["exact"],
                        encoder_options={"decim": 2, "alphas": alphas, "cv": 4, "scoring": "r2"}), tmp_path / "run")

    eeg = store.array("sub-01", "training").astype(np.float64).mean(1)  # (48, 6, 20)
    raw = eeg.reshape(48, 6, 10, 2).mean(-1).reshape(48, -1)
    design = (raw - raw.mean(0)) / raw.std(0)
    meta = store.metadata("sub-01", "training").drop_duplicates("condition")
    from eegvision.features.files import load_features

    y = load_features(data / "features" / "train.safetensors").image.numpy().astype(np.float64)
    with sklearn.config_context(enable_metadata_routing=True):
        ref = RidgeCV(alphas=alphas, cv=GroupKFold(n_splits=4)).fit(design, y, groups=meta["concept_index"].to_numpy())

    unit = RunFolder.open(run.path).unit()
    sel = unit.read_selection()
    assert (sel["alpha"], sel["selection"], sel["form"], sel["n_rows"], sel["n_features"]) == (
        ref.alpha_, "cv_r2", "kernel", 48, 60)
    assert sel["best_val"] == pytest.approx(ref.best_score_, rel=1e-6)
    enc = unit.load_encoder()
    np.testing.assert_allclose(enc.linear.weight.detach().numpy(), ref.coef_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(enc.linear.bias.detach().numpy(), ref.intercept_, rtol=1e-4, atol=1e-5)

    test = store.array("sub-01", "test").astype(np.float64).mean(1)
    tdesign = (test.reshape(10, 6, 10, 2).mean(-1).reshape(10, -1) - raw.mean(0)) / raw.std(0)
    np.testing.assert_allclose(unit.read_test_embeddings()["sub-01"].numpy(), ref.predict(tdesign), rtol=1e-3,
                               atol=1e-4)
    hist = unit.read_history()
    assert len(hist) == 1 and hist[0]["epoch"] == 0 and hist[0]["val_top1"] == pytest.approx(sel["cv_scores"]["top1"][
        alphas.index(sel["alpha"])])
    desc = json.loads((run.path / "config.json").read_text())
    assert desc["data"]["form"] == "kernel" and desc["data"]["n_train"] == 48 and desc["data"]["whiten"] is None


def test_a_fitted_ridge_fine_tunes_by_gradient_with_its_preprocessing_fixed():
    """The solution is one nn.Linear: a gradient step moves exactly its weight and bias (by the hand-computed MSE
    gradient), while the whitening, mean and scale buffers stay as fitted."""
    rng = np.random.default_rng(2)
    enc = create_encoder("ridge", n_chans=2, n_times=8, n_outputs=3, sfreq=100.0, decim=4, whiten=True)
    enc.set_whitening(np.array([[2.0, 0.5], [0.5, 1.0]]))
    enc.set_solution(rng.standard_normal(4), np.full(4, 2.0), rng.standard_normal((4, 3)), rng.standard_normal(3))
    assert [n for n, _ in enc.named_parameters()] == ["linear.weight", "linear.bias"]
    assert enc.module_groups()["head"] == ["linear"]
    buffers = {k: v.clone() for k, v in enc.named_buffers()}
    x, y = torch.randn(5, 2, 8), torch.randn(5, 3)
    z = ((enc.bin_times(enc.whitening_matrix() @ x) - enc.feature_mean) / enc.feature_scale).numpy()
    w0, b0 = enc.linear.weight.detach().numpy().copy(), enc.linear.bias.detach().numpy().copy()
    resid = z @ w0.T + b0 - y.numpy()  # d/dW of mean over rows of the summed squared error: 2/n resid^T z
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    loss = ((enc(x) - y) ** 2).sum(1).mean()
    loss.backward()
    opt.step()
    np.testing.assert_allclose(enc.linear.weight.detach().numpy(), w0 - 0.1 * 2 / 5 * resid.T @ z, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(enc.linear.bias.detach().numpy(), b0 - 0.1 * 2 / 5 * resid.sum(0), rtol=1e-5,
                               atol=1e-6)
    for k, v in enc.named_buffers():
        assert torch.equal(v, buffers[k]), k
