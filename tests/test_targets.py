"""Multi-target training (issue #17): the fused target by hand, its PCA fitted on training rows only, target specs,
the weighted multi-head InfoNCE against a hand-written InfoNCE, the heads of the Lightning module, the config's
refusals, a fused ridge run (its recorded files reproduce ``evaluate``) and the per-subject layer choice."""

import json

import numpy as np
import pytest
import torch

from eegvision.features.files import load_features, save_features
from eegvision.features.fused import (
    FusedTarget,
    TargetSpec,
    fused_rows,
    parse_target,
    target_test_path,
)
from eegvision.training.config import FitConfig
from eegvision.training.losses import TargetHeads, info_nce, weighted_info_nce

pytestmark = pytest.mark.usefixtures("one_torch_thread")

A = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
B = np.array([[0.0, 0.0, 2.0], [1.0, 2.0, 2.0], [0.0, 3.0, 4.0]])


def test_fused_rows_of_two_tiny_tables_by_hand():
    """Weights 1 and 3: each row normalised per table, scaled by sqrt(1/4) = 0.5 and sqrt(3/4)."""
    f = fused_rows([A, B], [1.0, 3.0])
    r = np.sqrt(0.75)
    expected = np.array([[0.3, 0.4, 0.0, 0.0, r],
                         [0.5, 0.0, r / 3, 2 * r / 3, 2 * r / 3],
                         [0.0, 0.5, 0.0, 0.6 * r, 0.8 * r]])
    np.testing.assert_allclose(f, expected, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0)
    # inner product = weighted mean of the per-table cosines: 0.25 * 0.6 + 0.75 * 2/3 = 0.65
    assert f[0] @ f[1] == pytest.approx(0.65)
    with pytest.raises(ValueError, match="different numbers of rows"):
        fused_rows([A, B[:2]], [1.0, 1.0])


def test_fused_projection_is_fitted_on_training_rows_only():
    rng = np.random.default_rng(0)
    train = [rng.standard_normal((30, 4)), rng.standard_normal((30, 6))]
    test = [rng.standard_normal((5, 4)), rng.standard_normal((5, 6))]
    fused = FusedTarget.fit(train, [1.0, 2.0], dim=2)
    f = fused_rows(train, [1.0, 2.0])
    mean = f.mean(0)
    evals, evecs = np.linalg.eigh(np.cov((f - mean).T))           # principal axes by another route
    top = evecs[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(fused.axes.T @ top), np.eye(2), atol=1e-8)
    z = (fused_rows(test, [1.0, 2.0]) - mean) @ fused.axes
    np.testing.assert_allclose(fused.transform(test), z / np.linalg.norm(z, axis=1, keepdims=True), atol=1e-6)
    assert np.all(fused.axes[np.abs(fused.axes).argmax(0), [0, 1]] > 0)   # sign convention
    other = FusedTarget.fit(train, [1.0, 2.0], dim=2)                     # deterministic
    np.testing.assert_array_equal(other.axes, fused.axes)
    with pytest.raises(ValueError, match="target_dim must be between 1 and 10"):
        FusedTarget.fit(train, [1.0, 2.0], dim=11)


def test_target_specs_and_their_test_files(tmp_path):
    assert parse_target("feats/l6.train.safetensors:0.5") == TargetSpec("feats/l6.train.safetensors", 0.5)
    assert parse_target("feats/l6.train.safetensors").weight == 1.0
    assert target_test_path("x/sim_features_train.pt").name == "sim_features_test.pt"
    assert target_test_path("x/train_layer.train.safetensors").name == "train_layer.test.safetensors"
    with pytest.raises(ValueError, match="positive"):
        parse_target("a.train.safetensors:0")
    with pytest.raises(ValueError, match="holds no 'train'"):
        TargetSpec("layer6.safetensors").test_path
    cfg = FitConfig(data="d", encoder="eegproject", targets=["a.train.safetensors:2", {"train": "b_train.npy"}])
    assert cfg.targets == [{"train": "a.train.safetensors", "weight": 2.0, "test": None},
                           {"train": "b_train.npy", "weight": 1.0, "test": None}]
    assert FitConfig.from_dict(cfg.to_dict()).targets == cfg.targets
    with pytest.raises(ValueError, match="solved in closed form.*--target-mode fused"):
        FitConfig(data="d", encoder="ridge", targets=["a.train.safetensors"])
    with pytest.raises(ValueError, match="target_dim is the PCA dimension"):
        FitConfig(data="d", encoder="eegproject", target_dim=4)
    with pytest.raises(ValueError, match="target_mode"):
        FitConfig(data="d", target_mode="concat")


def _hand_info_nce(a, b, scale):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    logits = scale * a @ b.T

    def ce(m):
        m = m - m.max(1, keepdims=True)
        return -np.mean(np.diag(m) - np.log(np.exp(m).sum(1)))

    return 0.5 * (ce(logits) + ce(logits.T))


def test_weighted_multi_head_loss_equals_weighted_sum_of_hand_infonce():
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)),
             (torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g))]
    got = weighted_info_nce(pairs, [0.25, 2.0], 10.0)
    hand = [_hand_info_nce(a.numpy().astype(np.float64), b.numpy().astype(np.float64), 10.0) for a, b in pairs]
    assert float(got) == pytest.approx(0.25 * hand[0] + 2.0 * hand[1], rel=1e-5)
    assert float(info_nce(*pairs[0], 10.0)) == pytest.approx(hand[0], rel=1e-5)


def test_module_heads_add_weighted_infonce_terms_of_their_projections():
    from decode_helpers import TensorData

    from eegvision.training.losses import Objective
    from eegvision.training.module import ContrastiveModule

    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2 * 5, 4)

        def forward(self, eeg, subject=None):
            return self.lin(eeg.flatten(1))

    torch.manual_seed(0)
    enc = Enc()
    feats, extra = torch.randn(6, 4), [torch.randn(6, 3), torch.randn(6, 2)]
    data = TensorData(torch.randn(6, 2, 5), torch.arange(6), torch.arange(6))
    heads = TargetHeads(extra, [0.5, 2.0], primary_weight=0.7)
    module = ContrastiveModule(enc, Objective("retrieval"), feats, train_data=data, batch_size=6, heads=heads)
    assert [tuple(h.weight.shape) for h in module.heads] == [(3, 4), (2, 4)]
    batch = data.get_batch(np.array([4, 1, 0, 5]))
    emb = module(batch["eeg"], batch["subject"])
    scale = float(module.objective.logit_scale().detach())
    with torch.no_grad():
        got = float(module.heads_loss(emb, batch["condition"], batch["concept"]))
        outs = [h(emb).numpy().astype(np.float64) for h in module.heads]
    tg = [e[batch["condition"]].numpy().astype(np.float64) for e in extra]
    assert got == pytest.approx(0.5 * _hand_info_nce(outs[0], tg[0], scale)
                                + 2.0 * _hand_info_nce(outs[1], tg[1], scale), rel=1e-5)
    module.log = lambda *a, **k: None
    total = float(module.training_step(batch, 0).detach())
    primary = float(module.objective(emb, feats[batch["condition"]]).loss)
    assert total == pytest.approx(0.7 * primary + got, rel=1e-5)


def test_fused_ridge_run_records_its_target_and_evaluate_reproduces_it(tmp_path, monkeypatch):
    from decode_helpers import make_problem, patch_open_data

    from eegvision.training.fitting import fit
    from eegvision.training.run import evaluate_run

    store, data = make_problem(tmp_path, n_subjects=1, n_train_concepts=12, images_per_concept=2, n_test=8, dim=6)
    patch_open_data(monkeypatch, store)
    rng = np.random.default_rng(1)
    extra = {s: rng.standard_normal((n, 3)) for s, n in (("train", 24), ("test", 8))}
    for s, x in extra.items():
        save_features(tmp_path / f"px.{s}.safetensors", x.astype(np.float32))
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="ridge", eval_ks=[2, 8], eval_methods=["exact"],
                    encoder_options={"decim": 4, "alphas": [1.0, 100.0], "cv": 3},
                    targets=[f"{tmp_path / 'px.train.safetensors'}:3"], target_mode="fused")
    res = fit(cfg, tmp_path / "run")
    prim = {s: load_features(data / "features" / f"{s}.safetensors").image.numpy().astype(np.float64)
            for s in ("train", "test")}
    for s in ("train", "test"):
        hand = np.concatenate([0.5 * prim[s] / np.linalg.norm(prim[s], axis=1, keepdims=True),
                               np.sqrt(0.75) * extra[s] / np.linalg.norm(extra[s], axis=1, keepdims=True)], 1)
        recorded = load_features(res.run.feature_file(s)).image.numpy()
        np.testing.assert_allclose(recorded, hand, atol=1e-6)
    emb = res.run.unit().read_test_embeddings()["sub-01"]
    assert emb.shape == (8, 9)
    again = evaluate_run(tmp_path / "run", write=False)
    top = [r["top1"] for r in res.rows if r["k"] == 8]
    assert [r["top1"] for r in again.rows if r["k"] == 8 and r["method"] == "exact"] == top
    assert json.loads((tmp_path / "run" / "config.json").read_text())["fit"]["target_mode"] == "fused"


def test_layer_choice_prefers_the_layer_the_eeg_carries(tmp_path, monkeypatch):
    """Two candidate 'layers': the data's own features (which drive the simulated EEG) and random rows; the
    grouped cross-validation over training concepts picks the first."""
    from decode_helpers import make_problem, patch_open_data

    from eegvision.training.layer_select import select_layers

    store, data = make_problem(tmp_path, n_subjects=1, n_train_concepts=12, images_per_concept=2, n_test=8, dim=6,
                               noise=0.5)
    patch_open_data(monkeypatch, store)
    noise = tmp_path / "noise.train.safetensors"
    save_features(noise, np.random.default_rng(2).standard_normal((24, 6)).astype(np.float32))
    good = str(data / "features" / "train.safetensors")
    (choice,) = select_layers(FitConfig(data=str(data), subjects=["sub-01"]), [str(noise), good],
                              {"decim": 4, "alphas": [1.0, 100.0], "cv": 3})
    assert choice.chosen == good and choice.scores[good] > choice.scores[str(noise)]
    assert choice.subject == "sub-01" and set(choice.alphas) == {good, str(noise)}


@pytest.mark.slow
def test_target_recipe_cell_on_a_small_pixel_erp_simulation(tmp_path):
    """A multi-target benchmark cell end to end: world-CLIP block outputs and pixel features of the simulation's
    own images, the fused ridge run, and the cell's per-image ranks against the run's fused test file."""
    from eegvision.sim import simulate
    from eegvision.sim.generalization.cells import compute_cell, load_simulation
    from eegvision.sim.generalization.recipes import RECIPES

    simulate(tmp_path / "sim", family="pixel-erp", preset="small", seed=0)
    data = load_simulation(tmp_path / "sim")
    cell = compute_cell(RECIPES["ridge-clip-layers-pixels"], data, tmp_path / "run")
    fused = load_features(tmp_path / "run" / "features" / "fused.test.safetensors")
    assert fused.dim == 4 * 64 + 320 and len(fused) == 50 and cell["n_test"] == 50
    files = json.loads((tmp_path / "sim" / "targets" / "targets.json").read_text())
    assert set(files) == {"clip-embeddings", "clip-block1", "clip-block2", "clip-final", "pixels", "vae"}
    assert 0.0 <= cell["top1"] <= 1.0 and len(cell["ranks"]) == 50
    # the VAE target: the world VAE's scaled posterior mean of each rendered test image, flattened, unit rows
    import torch

    from eegvision.sim.scene import make_world
    from eegvision.sim.stimuli import render_images
    from eegvision.sim.world import load_world_models, to_model_input
    from eegvision.sim.world.vae import load_world_vae

    vae_rows = load_features(tmp_path / "sim" / "targets" / files["vae"]["test"]).image.numpy()
    meta = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    pr = meta["preset"]
    world = make_world(pr["n_train_concepts"], pr["n_test_concepts"], pr["n_train_images"], 1, seed=meta["seed"])
    test_images = render_images(world, pr.get("image_size", 64))["test"][:3]
    vae = load_world_vae(load_world_models().path, device="cpu")
    with torch.no_grad():
        mu = vae.encode(to_model_input(test_images)).latent_dist.mean.flatten(1).double().numpy()
    np.testing.assert_allclose(vae_rows[:3], mu / np.linalg.norm(mu, axis=1, keepdims=True), atol=1e-5)
    assert vae_rows.shape == (50, 256)
