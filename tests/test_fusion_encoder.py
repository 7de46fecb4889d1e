"""BrainHiVE's trainable fusion encoder (``FitConfig.fusion_encoder``, :mod:`eegvision.models.fusion_encoder`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from decode_helpers import make_problem, patch_open_data

from eegvision.features.files import load_features, save_features
from eegvision.models.fusion_encoder import FusionEncoder, check_fusion_encoder
from eegvision.models.multi_view import load_image_module
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.preset_types import unmet_requirements
from eegvision.training.presets_published import PUBLISHED_PRESETS
from eegvision.training.run import embed_run, evaluate_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gelu(v):
    return 0.5 * v * (1 + math.erf(v / math.sqrt(2)))


def test_forward_equals_a_hand_computation():
    # two inputs (widths 1 and 2) -> hidden 2, one residual layer
    m = FusionEncoder([1, 2], hidden=2, blocks=1, dropout=0.5).eval()
    with torch.no_grad():
        m.inputs[0].weight.copy_(torch.tensor([[1.0], [2.0]]))
        m.inputs[0].bias.copy_(torch.tensor([0.5, 0.0]))
        m.inputs[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        m.inputs[1].bias.copy_(torch.tensor([0.0, 1.0]))
        m.blocks[0].w1.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        m.blocks[0].w2.weight.copy_(torch.tensor([[0.0, 1.0], [-1.0, 0.0]]))
        m.blocks[0].norm.weight.copy_(torch.tensor([2.0, 1.0]))
        m.blocks[0].norm.bias.copy_(torch.tensor([0.0, 3.0]))
    a, b0, b1 = 0.2, -0.5, 0.3
    s = [1 * a + 0.5 + b0, 2 * a + 0 - b1 + 1]                          # summed projections: [0.2, 1.1]
    g = [_gelu(s[0]), _gelu(s[0] + s[1])]                                # gelu(W1 s), erf form
    r = [g[1] + s[0], -g[0] + s[1]]                                      # W2 g + s
    mean, var = sum(r) / 2, ((r[0] - r[1]) / 2) ** 2
    n = [(v - mean) / math.sqrt(var + 1e-6) for v in r]
    expected = torch.tensor([[2 * n[0], n[1] + 3]])
    torch.testing.assert_close(m(torch.tensor([[a, b0, b1]])), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"widths \[1, 2\] concatenated \(3 columns\)"):
        m(torch.ones(1, 4))


def test_parameter_count_at_brainhives_dimensions():
    # Brain-HIVE@f06db69 main/layers.py FusionEncoder(hidden_size=1024, intermediate_size=1024, num_layers=1,
    # proj_meta={synclr 768, CLIP B/32 512, vae 1024}): Linear(768/512/1024, 1024) with bias = 2304*1024 + 3*1024,
    # w1 and w2 1024x1024 without bias, LayerNorm(1024) 2*1024: 2362368 + 2097152 + 2048 = 4461568 (their module,
    # built with torch in a scratch folder, counts 4461568 too, and gives the same output for the same weights).
    m = FusionEncoder([768, 512, 1024], hidden=1024, blocks=1, dropout=0.1)
    assert sum(p.numel() for p in m.parameters()) == 4461568


def test_settings_and_refusals():
    assert check_fusion_encoder({"hidden": 8}) == {"hidden": 8, "blocks": 1, "dropout": 0.1}
    assert check_fusion_encoder(None) is None
    with pytest.raises(ValueError, match="fusion_encoder key 'width' is not in"):
        FitConfig(encoder="nice", fusion_encoder={"width": 8})
    with pytest.raises(ValueError, match="fusion_encoder dropout"):
        FitConfig(encoder="nice", fusion_encoder={"dropout": 1.0})
    t = [{"train": "a.train.safetensors"}]
    for bad, why in (({"encoder": "ridge"}, "closed-form encoder"), ({}, "encoder 'auto'"),
                     ({"encoder": "nice", "ensemble": 2}, "ensemble > 1"),
                     ({"encoder": "nice", "ema_decay": 0.99}, "ema_decay"),
                     ({"encoder": "nice", "projector": {"dim": 4}}, "projector"),
                     ({"encoder": "nice", "targets": t, "target_mode": "fused"}, "target_mode 'fused'"),
                     ({"encoder": "nice", "targets": [{"train": "a.train.safetensors", "weight": 2}]},
                      "target weights")):
        with pytest.raises(ValueError, match=f"fusion_encoder trains .*{why}"):
            FitConfig(**bad, fusion_encoder={})
    FitConfig(encoder="nice", targets=t, fusion_encoder={})  # the targets are its inputs, not heads
    from eegvision.cli.decode_cmds import _fusion_encoder

    assert _fusion_encoder("1024,1,0.1") == {"hidden": 1024, "blocks": 1, "dropout": 0.1}
    assert _fusion_encoder('{"hidden": 8}') == {"hidden": 8} and _fusion_encoder(None) is None
    with pytest.raises(ValueError, match="HIDDEN"):
        _fusion_encoder("1,2,3,4")


def test_brainhive_requirement_is_met():
    bh = PUBLISHED_PRESETS["brainhive"]
    assert bh.requires["fusion_encoder"] == {"hidden": 1024, "blocks": 1, "dropout": 0.1}
    assert unmet_requirements(bh) == {}


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    """The decode helpers' tiny problem (16-d primary features) and a second, 6-d feature file (a random
    projection of the primary plus noise)."""
    root = tmp_path_factory.mktemp("fe")
    store, data = make_problem(root, n_subjects=1, n_train_concepts=12, n_test=8, n_times=20)
    rng = np.random.default_rng(0)
    mix = torch.from_numpy(rng.standard_normal((16, 6)).astype(np.float32))
    for split, name in (("training", "train"), ("test", "test")):
        img = load_features(data / "features" / f"{name}.safetensors").image
        other = img @ mix + 0.1 * torch.from_numpy(rng.standard_normal((len(img), 6)).astype(np.float32))
        save_features(root / f"other.{name}.safetensors", other, split=split, model="other",
                      concepts=store.concept_table(split))
    return store, data, root


def test_fit_with_two_feature_files_scores_saves_and_reloads_in_the_modules_space(problem, monkeypatch):
    store, data, root = problem
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=2, batch_size=8, lr=3e-3,
                    val_fraction=0.2, eval_ks=[2, 8], eval_methods=["exact"], average_train=True,
                    targets=[{"train": str(root / "other.train.safetensors")}],
                    fusion_encoder={"hidden": 5, "blocks": 1, "dropout": 0.1})
    result = fit(cfg, root / "run")
    unit = result.run.unit()
    saved = json.loads((unit.path / "image_projector" / "config.json").read_text())
    assert {k: saved[k] for k in ("name", "widths", "hidden", "blocks", "dropout")} == {
        "name": "fusion_encoder", "widths": [16, 6], "hidden": 5, "blocks": 1, "dropout": 0.1}
    module = load_image_module(unit.path / "image_projector")
    assert isinstance(module, FusionEncoder)
    # the recorded test features are the saved module applied to the concatenated test features (primary first)
    concat = torch.cat([load_features(data / "features" / "test.safetensors").image,
                        load_features(root / "other.test.safetensors").image], dim=1)
    with torch.no_grad():
        expected = module(concat)
    recorded = load_features(unit.test_features_path)
    torch.testing.assert_close(recorded.image, expected, rtol=1e-5, atol=1e-6)
    assert recorded.image.shape == (8, 5) and recorded.text is None
    torch.testing.assert_close(load_features(result.run.feature_file("test")).image, concat)
    # the EEG encoder maps to the module's hidden size; top-1 is that of the saved embeddings against its output
    emb = unit.read_test_embeddings()["sub-01"]
    assert unit.load_encoder().n_outputs == 5 and emb.shape == (8, 5)
    sims = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(expected, dim=1).T
    fitted = {(r["k"], r["modality"]): r["top1"] for r in result.rows}
    assert fitted[(8, "image")] == pytest.approx(float((sims.argmax(1) == torch.arange(8)).float().mean()))
    assert {(r["k"], r["modality"]): r["top1"] for r in evaluate_run(root / "run", write=False).rows} == fitted
    out = embed_run(root / "run", data, root / "emb.safetensors")
    torch.testing.assert_close(out.embeddings["sub-01"], emb, rtol=1e-5, atol=1e-6)


def test_fit_preset_brainhive_refuses_without_targets_and_trains_with_them(problem, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    store, data, root = problem
    patch_open_data(monkeypatch, store)
    out = tmp_path / "bh"
    args = ["fit", "--data", str(data), "--subject", "sub-01", "--out", str(out), "--preset", "brainhive",
            "--epochs", "1", "--batch-size", "8", "--val-fraction", "0.2", "--quiet"]
    runner = CliRunner()
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "trains on files only you can make: targets" in res.output and "--target" in res.output
    assert not out.exists()
    res = runner.invoke(app, [*args, "--target", str(root / "other.train.safetensors")])
    assert res.exit_code == 0, res.output
    recorded = json.loads((out / "config.json").read_text())["fit"]
    assert recorded["preset"] == "brainhive" and recorded["encoder"] == "brainmlp"
    assert recorded["fusion_encoder"] == {"hidden": 1024, "blocks": 1, "dropout": 0.1}
    saved = json.loads((out / "image_projector" / "config.json").read_text())
    assert saved["widths"] == [16, 6] and saved["hidden"] == 1024
