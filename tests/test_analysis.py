"""Analyses: time windows, regions, channel importance, RSA, t-SNE, THINGS categories."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from eegvision.analysis import (
    channel_importance,
    embedding_map,
    load_pair,
    plan_windows,
    region_analysis,
    rsa,
    rsa_analysis,
    things_categories,
    time_analysis,
)
from eegvision.analysis import test_categories as eeg2_test_categories
from eegvision.analysis._fit import bin_window, fit_ridge

N1_LATENCY = 0.170
POSTERIOR = {"P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A simulated subject with one strong posterior component (N1, 170 ms) and a linear code."""
    from eegvision.sim import EEG_COMPONENTS, ForwardParams, Preset, simulate

    n1 = [asdict(c) for c in EEG_COMPONENTS if c.name == "N1"]
    params = ForwardParams(signal=4.0, nonlinearity=0.0, components=n1, latency_sd=0.005, gated_components=[])
    pr = Preset("test", n_subjects=1, n_train_concepts=120, n_train_images=2, train_reps=2, n_test_concepts=24,
                test_reps=8, n_sessions=2, feature_dim=32, write_raw=False)
    root = tmp_path_factory.mktemp("sim")
    simulate(root, preset=pr, params=params, images=False, seed=0, overwrite=True)
    pair = load_pair(root, "sub-01", cache_dir=root / "features")
    return root, pair


def test_plan_windows_hand_values():
    times = np.arange(250) / 250.0
    w = plan_windows(times, 250.0, 100, 50)
    assert w[0] == (0, 25) and w[1] == (13, 38) and w[2] == (25, 50)
    assert all(b - a == 25 for a, b in w) and w[-1][1] <= 250
    g = plan_windows(times, 250.0, 100, 100, growing=True)
    assert g[0] == (0, 25) and g[-1] == (0, 250) and len(g) == 10
    with pytest.raises(ValueError, match="window"):
        plan_windows(times, 250.0, 2000, 50)


def test_bin_window_and_ridge_match_naive():
    rng = np.random.default_rng(0)
    eeg = rng.standard_normal((40, 3, 10)).astype(np.float32)
    f = bin_window(eeg, 2, 9, 3, channels=[2, 0])  # 7 samples -> 3 bins with edges 0, 2, 5, 7
    ref = np.stack([eeg[:, [2, 0], 2:4].mean(2), eeg[:, [2, 0], 4:7].mean(2), eeg[:, [2, 0], 7:9].mean(2)], -1)
    np.testing.assert_allclose(f, ref.reshape(40, -1), rtol=1e-5, atol=1e-6)
    # ridge weights equal the normal-equation solution for the chosen penalty (primal and dual forms)
    for p in (5, 60):
        x = rng.standard_normal((30, p)).astype(np.float32)
        y = rng.standard_normal((30, 4)).astype(np.float32)
        m = fit_ridge(x, y, select="gcv")
        xs = (x - x.mean(0)) / x.std(0)
        w = np.linalg.solve(xs.T @ xs + m.alpha * np.eye(p), xs.T @ (y - y.mean(0)))
        np.testing.assert_allclose(m.weights, w, rtol=2e-3, atol=2e-4)


def test_sliding_window_peaks_at_component_latency(sim, tmp_path):
    _, pair = sim
    res = time_analysis(None, "sub-01", tmp_path, window_ms=100, step_ms=100, pair=pair)
    tmin, tmax = res.best_window
    assert tmin <= N1_LATENCY < tmax
    table = res.table
    late = table[table["tmin"] >= 0.5]  # no signal after the N1
    assert res.best_top1 > 3 * table["chance_top1"].iloc[0]
    assert res.best_top1 > late["top1"].mean() + 0.15
    assert res.csv.is_file() and res.figure.stat().st_size > 1000
    grow = time_analysis(None, "sub-01", tmp_path, step_ms=500, growing=True, pair=pair)
    assert grow.csv.name == "time_growing.csv" and len(grow.table) == 2


def test_region_analysis_ranks_posterior_first(sim, tmp_path):
    _, pair = sim
    res = region_analysis(None, "sub-01", tmp_path, window=(0.1, 0.3), pair=pair)
    top = res.table.set_index("region")["top1"]
    assert res.ranking[0] in ("occipito-parietal", "parietal", "occipital")
    assert top["occipito-parietal"] > top["frontal"] + 0.15
    assert res.figure.is_file() and len(res.table) == 7


class _RidgeEncoder(torch.nn.Module):
    """A fitted ridge map as an encoder over samples [start, stop)."""

    def __init__(self, fit, start, stop):
        super().__init__()
        self.start, self.stop = start, stop
        self.mean = torch.tensor(fit.mean)
        self.std = torch.tensor(fit.std)
        self.w = torch.tensor(fit.weights)
        self.b = torch.tensor(fit.offset)

    def forward(self, x, subject_ids=None):
        z = x[:, :, self.start:self.stop].flatten(1)
        return ((z - self.mean) / self.std) @ self.w + self.b


def test_occlusion_highlights_signal_channels(sim, tmp_path):
    _, (train, test) = sim
    start, stop = 30, 55  # 120-220 ms around N1
    model = fit_ridge(bin_window(train.eeg, start, stop, 1), train.features, groups=train.concepts)
    enc = _RidgeEncoder(model, start, stop)
    res = channel_importance(enc, test.eeg, test.features, test.ch_names, device="cpu")
    top5 = res.ranking()[:5]
    # the N1 blob is centred on PO7/PO8/P7/P8/PO3 and reaches the temporo-parietal sites
    signal = POSTERIOR | {"TP7", "TP8", "TP9", "TP10"}
    assert set(top5) <= signal, top5
    from eegvision.readers.channels import REGIONS

    t = res.table.set_index("channel")
    frontal = list(REGIONS["frontal"])
    assert t.loc[list(POSTERIOR), "occlusion_similarity_drop"].mean() > 5 * abs(
        t.loc[frontal, "occlusion_similarity_drop"].mean())
    grad_top = set(res.ranking("gradient_x_input")[:5])
    assert len(grad_top & signal) >= 4
    from eegvision.analysis import plot_topomaps

    assert plot_topomaps(res.table, tmp_path / "imp.png").stat().st_size > 1000


def test_rsa_identical_and_shuffled(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 8))
    same = rsa(x, x.copy(), n_permutations=200, seed=0)
    assert same.rho == pytest.approx(1.0, abs=1e-9) and same.p_value == pytest.approx(1 / 201)
    shuffled = rsa(x, x[rng.permutation(40)], n_permutations=200, seed=0)
    assert abs(shuffled.rho) < 0.1 and shuffled.p_value > 0.05
    # against scipy on the upper triangles
    from scipy.stats import spearmanr

    y = x + rng.standard_normal(x.shape)
    r = rsa(x, y, n_permutations=0)
    iu = np.triu_indices(40, 1)
    assert r.rho == pytest.approx(spearmanr(r.rdm_eeg[iu], r.rdm_image[iu])[0], abs=1e-10)
    out = rsa_analysis(x, y, tmp_path, n_permutations=50)
    assert out.csv.is_file() and out.figure.is_file()


def test_things_categories_table():
    t = things_categories()
    assert len(t) == 1854 and t.loc[1, "word"] == "aardvark" and t.loc[1854, "word"] == "zucchini"
    assert t.loc[1, "animal"] and not t.loc[1, "food"]
    tc = eeg2_test_categories()
    assert len(tc) == 200
    # every primary category is one of the concept's categories in test_images.tsv
    for cats, cat in zip(tc["categories27"], tc["category"]):
        assert cat in cats.split(";") or (cat == "uncategorized" and cats == "")
    assert tc.loc[tc["things_uniqueID"] == "antelope", "category"].item() == "animal"


def _fake_run(tmp_path, emb, feats):
    from safetensors.torch import save_file

    from eegvision.features.files import save_features
    from eegvision.training import FitConfig

    run = tmp_path / "run"
    run.mkdir()
    fpath = save_features(tmp_path / "test.safetensors", feats)
    cfg = FitConfig(data="", subjects=["sub-01"])
    (run / "config.json").write_text(json.dumps({"fit": cfg.to_dict(), "feature_files": {"test": str(fpath)}}))
    save_file({"sub-01": torch.as_tensor(emb, dtype=torch.float32)}, str(run / "test_embeddings.safetensors"))
    return run


def test_cli_rsa_and_tsne_on_run(tmp_path):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 16)) * 3
    lab = np.repeat(np.arange(3), 10)
    feats = centres[lab] + rng.standard_normal((30, 16))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    emb = feats + 0.3 * rng.standard_normal(feats.shape)
    run = _fake_run(tmp_path, emb, feats)
    labels = tmp_path / "labels.tsv"
    labels.write_text("label\n" + "\n".join(f"cat{i}" for i in lab) + "\n")
    r = CliRunner().invoke(app, ["analyze", "rsa", str(run), "--out", str(tmp_path / "o"), "--permutations", "99"])
    assert r.exit_code == 0, r.output
    import pandas as pd

    row = pd.read_csv(tmp_path / "o" / "rsa.csv").iloc[0]
    assert row["rho"] > 0.5 and row["p_value"] == pytest.approx(0.01)
    r = CliRunner().invoke(app, ["analyze", "tsne", str(run), "--out", str(tmp_path / "o"), "--labels", str(labels)])
    assert r.exit_code == 0, r.output
    t = pd.read_csv(tmp_path / "o" / "tsne.csv")
    assert len(t) == 30 and set(t["label"]) == {"cat0", "cat1", "cat2"}
    assert (tmp_path / "o" / "tsne.png").is_file()
    m = embedding_map(emb, [f"c{i}" for i in lab], tmp_path / "m")
    assert m.silhouette > 0.3


def test_cli_time_on_simulated_folder(sim, tmp_path):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    root, _ = sim
    r = CliRunner().invoke(app, ["analyze", "time", str(root), "--subject", "sub-01", "--out", str(tmp_path),
                                 "--window-ms", "200", "--step-ms", "200"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "time_sliding.csv").is_file() and (tmp_path / "time_sliding.png").is_file()
    bad = CliRunner().invoke(app, ["analyze", "time", str(root), "--subject", "sub-09", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "sub-09" in bad.output
