"""SVTL's trainable multi-view image target (FitConfig.multi_view_target, eegvision.models.multi_view): its forward
pass against a hand computation, its settings and refusals, and a tiny fit on token files whose saved run scores,
re-evaluates and re-embeds in the module's space."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from decode_helpers import make_problem, patch_open_data

from eegvision.features.files import load_features, save_features
from eegvision.models.multi_view import MultiViewTarget, check_multi_view, load_image_module
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.preset_types import unmet_requirements
from eegvision.training.presets_published import PUBLISHED_PRESETS
from eegvision.training.run import embed_run, evaluate_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


def test_forward_equals_a_hand_computation():
    """2-d tokens, 1 head, identity q/k/v/out projections: every step by hand."""
    m = MultiViewTarget(2, 2, [20, 20, 24], views=4, blocks=2, heads=1, routing_temperature=0.5)
    with torch.no_grad():
        for lin in (m.q_proj, m.k_proj, m.v_proj, m.out_proj):
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
        m.layer_embedding.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))  # layer 20, layer 24
        m.queries.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]]))
        m.view_score.weight.copy_(torch.tensor([[1.0, 0.0]]))  # s_v = first channel of view v
        m.view_score.bias.zero_()
        m.block_score.weight.copy_(torch.tensor([[0.0, 1.0]]))  # s_b = second channel of block b
        m.block_score.bias.fill_(3.0)  # a constant: no effect on the softmax
        m.head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        m.head.bias.copy_(torch.tensor([0.0, 1.0]))
    tokens = torch.tensor([[[3.0, 1.0], [0.0, 2.0], [5.0, 4.0]]])
    # LayerNorm of a 2-d token (a, b) is sign(a - b) (1, -1); token 3 (layer 24) gets the embedding (1, 0) added
    x = [(1.0, -1.0), (-1.0, 1.0), (2.0, -1.0)]
    views = []
    for q in ((1, 0), (0, 1), (0, 0), (1, 1)):
        w = _softmax([(q[0] * t[0] + q[1] * t[1]) / math.sqrt(2) for t in x])
        views.append(tuple(sum(wi * t[c] for wi, t in zip(w, x)) for c in range(2)))
    assert views[2] == pytest.approx((2 / 3, -1 / 3))  # the zero query averages the tokens
    blocks = []
    for pair in (views[:2], views[2:]):
        a = _softmax([v[0] / 0.5 for v in pair])
        blocks.append(tuple((pair[0][c] + pair[1][c]) / 2 + a[0] * pair[0][c] + a[1] * pair[1][c] for c in range(2)))
    b = _softmax([blk[1] / 0.5 for blk in blocks])
    pooled = [(blocks[0][c] + blocks[1][c]) / 2 + b[0] * blocks[0][c] + b[1] * blocks[1][c] for c in range(2)]
    expected = torch.tensor([[pooled[0], 2 * pooled[1] + 1]])
    torch.testing.assert_close(m(tokens), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(m.make_views(tokens)[0], torch.tensor(views), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"reads token features \(images, 3, 2\)"):
        m(torch.ones(1, 4, 2))


def test_settings_and_refusals():
    assert check_multi_view({"views": 6, "blocks": 3}) == {"views": 6, "blocks": 3, "heads": 8,
                                                           "routing_temperature": 0.7}
    with pytest.raises(ValueError, match="multiple of blocks"):
        FitConfig(encoder="nice", multi_view_target={"views": 12, "blocks": 5})
    with pytest.raises(ValueError, match="multi_view_target key 'queries' is not in"):
        FitConfig(encoder="nice", multi_view_target={"queries": 12})
    with pytest.raises(ValueError, match="routing_temperature must be a number above 0"):
        FitConfig(encoder="nice", multi_view_target={"routing_temperature": 0})
    for bad, why in (({"encoder": "ridge"}, "closed-form encoder"), ({}, "encoder 'auto'"),
                     ({"encoder": "nice", "ensemble": 2}, "ensemble > 1"),
                     ({"encoder": "nice", "ema_decay": 0.99}, "ema_decay"),
                     ({"encoder": "nice", "targets": [{"train": "a.train.safetensors"}]}, "extra targets")):
        with pytest.raises(ValueError, match=f"multi_view_target trains .*{why}"):
            FitConfig(**bad, multi_view_target={})
    with pytest.raises(ValueError, match="must divide the token width 10"):
        MultiViewTarget(10, 4, [1], heads=4)
    from eegvision.cli.decode_cmds import _multi_view

    assert _multi_view("12,4,0.7") == {"views": 12, "blocks": 4, "routing_temperature": 0.7}
    assert _multi_view('{"views": 6}') == {"views": 6} and _multi_view(None) is None
    with pytest.raises(ValueError, match="VIEWS,BLOCKS"):
        _multi_view("12")


def test_svtl_multi_view_and_projector_are_met():
    svtl = PUBLISHED_PRESETS["svtl"]
    assert svtl.requires["multi_view_target"] == {"views": 12, "blocks": 4, "routing_temperature": 0.7}
    assert svtl.requires["projector"] == {"dim": 512}
    assert unmet_requirements(svtl) == {}  # with the stages and their MMD schedule, nothing is left


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    """The decode helpers' tiny problem (16-d image features) with token files: 4 tokens per image from layers
    5 and 7, each the image's feature plus noise."""
    root = tmp_path_factory.mktemp("mv")
    store, data = make_problem(root, n_subjects=1, n_train_concepts=12, n_test=8, n_times=20)
    rng = np.random.default_rng(0)
    for split, name in (("training", "train"), ("test", "test")):
        img = load_features(data / "features" / f"{name}.safetensors").image
        tok = img[:, None] + 0.1 * torch.from_numpy(rng.standard_normal((len(img), 4, 16)).astype(np.float32))
        save_features(root / f"tok.{name}.safetensors", tok, layers=[5, 5, 7, 7], split=split, model="tiny",
                      concepts=store.concept_table(split))
    return store, data, root


def test_fit_on_token_files_scores_saves_and_reloads_in_the_modules_space(problem, monkeypatch):
    store, data, root = problem
    patch_open_data(monkeypatch, store)
    base = dict(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=2, batch_size=8, lr=3e-3,
                val_fraction=0.2, eval_ks=[2, 8], eval_methods=["exact"], average_train=True)
    toks = dict(features_train=str(root / "tok.train.safetensors"), features_test=str(root / "tok.test.safetensors"))
    with pytest.raises(ValueError, match="must be token files"):
        fit(FitConfig(**base, multi_view_target={"views": 4, "blocks": 2, "heads": 2}), root / "r2d")
    with pytest.raises(ValueError, match="holds token features"):
        fit(FitConfig(**base, **toks), root / "rtok")
    cfg = FitConfig(**base, **toks, multi_view_target={"views": 4, "blocks": 2, "heads": 2}, projector={"dim": 4})
    result = fit(cfg, root / "run")
    unit = result.run.unit()
    saved = json.loads((unit.path / "image_projector" / "config.json").read_text())
    assert saved["name"] == "multi_view_target" and saved["token_layers"] == [5, 5, 7, 7] and saved["dim"] == 4
    module = load_image_module(unit.path / "image_projector")
    assert isinstance(module, MultiViewTarget) and module.layer_embedding.shape == (2, 16)
    # the recorded test features are the saved module applied to the test tokens
    tokens = load_features(root / "tok.test.safetensors", tokens=True).image
    with torch.no_grad():
        expected = module(tokens)
    recorded = load_features(unit.test_features_path)
    torch.testing.assert_close(recorded.image, expected, rtol=1e-5, atol=1e-6)
    assert recorded.image.shape == (8, 4) and "kind" not in recorded.metadata and recorded.text is None
    # the fit's top-1 is that of the saved embeddings against them; evaluate and embed reproduce the run
    emb = unit.read_test_embeddings()["sub-01"]
    sims = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(expected, dim=1).T
    fitted = {(r["k"], r["modality"]): r["top1"] for r in result.rows}
    assert fitted[(8, "image")] == pytest.approx(float((sims.argmax(1) == torch.arange(8)).float().mean()))
    assert {(r["k"], r["modality"]): r["top1"] for r in evaluate_run(root / "run", write=False).rows} == fitted
    out = embed_run(root / "run", data, root / "emb.safetensors")
    torch.testing.assert_close(out.embeddings["sub-01"], emb, rtol=1e-5, atol=1e-6)
    # the module was trained with the encoder: its layer embeddings start at zero and were moved by the loss
    assert module.layer_embedding.abs().max() > 1e-4
    # without a projector the module maps to the EEG embedding's size, the token width (16), and the encoder has no
    # projection
    alone = fit(cfg.replace(projector=None, epochs=1), root / "run-alone").run.unit()
    assert load_image_module(alone.path / "image_projector").head.weight.shape == (16, 16)
    assert load_features(alone.test_features_path).image.shape == (8, 16)
    assert alone.load_encoder().n_outputs == 16 and alone.read_test_embeddings()["sub-01"].shape == (8, 16)
