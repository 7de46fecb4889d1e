"""Fused-target weights chosen by grouped cross-validation (issue #17): pairwise accuracy by hand, the fast scoring
against explicit fused ridge fits, and a ridge run with ``target_weights='cv'``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eegvision.evaluation.fusion_cv import fusion_cv, weight_grid
from eegvision.evaluation.ridge_cv import pairwise_accuracy, ridge_cv
from eegvision.features.files import load_features, save_features
from eegvision.training.config import FitConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pairwise_accuracy_by_hand():
    s = np.array([[0.9, 0.1, 0.9],     # row 0: one below, one tie (against) -> 1/2
                  [0.5, 0.2, 0.1],     # row 1: one below (0.1) -> 1/2
                  [0.0, 0.1, 0.3]])    # row 2: both below -> 1
    assert pairwise_accuracy(s) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert pairwise_accuracy(np.eye(4)) == 1.0


def test_weight_grid_keeps_the_primary_and_refuses_bad_grids():
    assert weight_grid(2, [1.0, 0.0], 0.5) == [(0.5, 0.0, 0.0), (0.5, 0.0, 1.0), (0.5, 1.0, 0.0), (0.5, 1.0, 1.0)]
    with pytest.raises(ValueError, match=">= 0"):
        weight_grid(1, [-1.0, 1.0])
    with pytest.raises(ValueError, match="combinations"):
        weight_grid(13, [0.0, 1.0, 2.0])


def test_fusion_cv_scores_equal_explicit_fused_ridge_fits():
    """Every weight vector's score equals ridge_cv's pairwise accuracy on the explicitly fused target; a block the
    design does not carry gets weight 0, one it carries a positive weight."""
    rng = np.random.default_rng(0)
    n_concepts, per = 40, 2
    groups = np.repeat(np.arange(n_concepts), per)
    carried = rng.standard_normal((n_concepts, 5))[groups]
    x = carried @ rng.standard_normal((5, 30)) + 0.5 * rng.standard_normal((len(groups), 30))
    primary = carried[:, :3] + 0.3 * rng.standard_normal((len(groups), 3))
    noise = rng.standard_normal((len(groups), 4))
    extra = carried[:, 3:] + 0.1 * rng.standard_normal((len(groups), 2))
    alphas = [1.0, 30.0, 1000.0]
    res = fusion_cv(x, [primary, noise, extra], groups, [0.0, 1.0], alphas, n_splits=4)
    unit = [t / np.linalg.norm(t, axis=1, keepdims=True) for t in (primary, noise, extra)]
    for row in res.table:
        w = np.asarray(row["weights"])
        y = np.concatenate([np.sqrt(wj / w.sum()) * u for wj, u in zip(w, unit)], 1)
        ref = ridge_cv(x, y, groups, alphas, n_splits=4, scoring="pairwise")
        assert row["pairwise"] == pytest.approx(max(ref.scores["pairwise"]), abs=1e-12)
    assert res.weights == [1.0, 0.0, 1.0]
    assert res.pairwise > res.primary_only["pairwise"]


def test_ridge_run_with_cv_weights_drops_a_target_the_eeg_does_not_carry(tmp_path, monkeypatch):
    from decode_helpers import make_problem, patch_open_data

    from eegvision.training.fitting import fit

    store, data = make_problem(tmp_path, n_subjects=1, n_train_concepts=12, images_per_concept=2, n_test=8, dim=6,
                               noise=0.5)
    patch_open_data(monkeypatch, store)
    rng = np.random.default_rng(3)
    for s, n in (("train", 24), ("test", 8)):
        save_features(tmp_path / f"rand.{s}.safetensors", rng.standard_normal((n, 5)).astype(np.float32))
    opts = {"decim": 4, "alphas": [1.0, 100.0], "cv": 3}
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="ridge", eval_ks=[2, 8], eval_methods=["exact"],
                    encoder_options=opts, targets=[str(tmp_path / "rand.train.safetensors")], target_mode="fused",
                    target_weights="cv", target_weight_grid=[0.0, 1.0])
    res = fit(cfg, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "target_weights.json").read_text())
    assert record["weights"] == [1.0, 0.0] and record["unit"] == "sub-01" and len(record["table"]) == 2
    prim = load_features(data / "features" / "test.safetensors").image.numpy().astype(np.float64)
    recorded = load_features(res.run.feature_file("test")).image.numpy()
    np.testing.assert_allclose(recorded, prim / np.linalg.norm(prim, axis=1, keepdims=True), atol=1e-6)
    sel = json.loads((res.run.unit().path / "selection.json").read_text())
    assert sel["alphas"] == [record["alpha"]]
    with pytest.raises(ValueError, match="target-mode fused"):
        FitConfig(data=str(data), subjects=["sub-01"], encoder="ridge", targets=["a.train.safetensors"],
                  target_weights="cv")


def test_cli_refuses_a_bad_weight_grid_and_a_single_blur_file(tmp_path):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    runner = CliRunner()
    base = ["fit", "--data", str(tmp_path), "--subject", "sub-01", "--out", str(tmp_path / "r")]
    res = runner.invoke(app, base + ["--encoder", "ridge", "--target-mode", "fused", "--target-weights", "cv",
                                     "--target-weight-grid", "0,half"])
    assert res.exit_code == 2 and "--target-weight-grid takes weights >= 0" in res.output and "'0,half'" in res.output
    res = runner.invoke(app, base + ["--encoder", "stconv", "--blur-levels", "low.train.safetensors"])
    assert res.exit_code == 2 and "LOW and HIGH blur training feature files" in res.output
    assert not (tmp_path / "r").exists()
