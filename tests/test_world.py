"""The world's trained models: shipped weights verified and measured on held-out concepts; training reruns."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from eegvision.sim.scene import make_world
from eegvision.sim.world import (
    ATTRIBUTES,
    SHIPPED_DIR,
    WorldTokenizer,
    demo_test_concepts,
    held_out_concepts,
    load_world_models,
    shipped_world_models,
    to_model_input,
    training_concepts,
)
from eegvision.sim.world.data import render_concepts

# Measured on the shipped weights (docs/world.md) with margin; see world.json "quality".
CLIP_TOP1_100 = 0.8         # image -> concept caption among 100 held-out concepts (measured 0.92; chance 0.01)
CLASSIFIER_MIN = {"colour": 0.95, "background": 0.95, "shape": 0.7, "texture": 0.6}  # measured 0.995, 1.0, 0.815, 0.73
# of 48 samples from true embeddings (10 DDIM steps); measured 46, 48, 22; chance 6, 8, 6
GEN_MIN_OF_48 = {"colour": 38, "background": 40, "shape": 13}


@pytest.fixture(scope="module")
def models():
    return shipped_world_models()


@pytest.fixture(scope="module")
def test_images():
    return render_concepts(demo_test_concepts()[::2], 1, seed=1, description="test images")


def test_held_out_split_is_disjoint_and_matches_simulator():
    held, train = set(held_out_concepts()), training_concepts()
    assert len(held) == 400 and len(train) == 8 * 8 * 6 * 6 - 400 and not held & set(train)
    assert demo_test_concepts() == make_world(250, 200, 1, 1, seed=0).test_concepts


def test_tokenizer_ids_by_hand():
    tok = WorldTokenizer()
    ids, mask = tok(["a red Circle, on a sky background", "zebra"])
    v = tok.index
    expect = [tok.bos_id, v["a"], v["red"], v["circle"], v[","], v["on"], v["a"], v["sky"], v["background"], tok.eos_id]
    assert ids[0, :10].tolist() == expect and ids[0, 10:].eq(0).all() and mask[0].sum() == 10
    assert ids[1, :3].tolist() == [tok.bos_id, 1, tok.eos_id]          # unknown word -> <unk>
    assert tok.eos_id == len(tok.vocab) - 1 == ids.max()


def test_to_model_input_area_downsamples():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    x = to_model_input(img)
    ref = img.astype(np.float64).reshape(2, 32, 2, 32, 2, 3).mean((2, 4)) / 127.5 - 1
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="batch of images"):
        to_model_input(np.zeros((32, 32, 3), np.uint8))


def test_shipped_manifest_verified_and_tamper_detected(tmp_path):
    meta = json.loads((SHIPPED_DIR / "world.json").read_text())
    total = sum(f["size"] for f in meta["files"].values())
    assert total < 15e6 and {"clip.safetensors", "classifier.safetensors", "generator.safetensors"} <= set(meta["files"])
    bad = tmp_path / "world"
    shutil.copytree(SHIPPED_DIR, bad)
    data = bytearray((bad / "classifier.safetensors").read_bytes())
    data[-1] ^= 1
    (bad / "classifier.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_world_models(bad)
    with pytest.raises(FileNotFoundError, match="world.json"):
        load_world_models(tmp_path)


def test_clip_retrieval_on_held_out_concepts(models, test_images):
    img = models.embed_images(test_images.images)
    txt = models.embed_texts([c.caption for c in test_images.concepts])
    np.testing.assert_allclose(img.norm(dim=1).numpy(), 1.0, atol=1e-5)
    sims = img.numpy().astype(np.float64) @ txt.numpy().T.astype(np.float64)
    # brute force: count concepts scoring higher than the true one
    true = sims[np.arange(len(sims)), test_images.concept_ids]
    top1 = float(np.mean([(row > t).sum() == 0 for row, t in zip(sims, true)]))
    assert top1 >= CLIP_TOP1_100, f"world-CLIP top-1 {top1:.3f} among {len(sims)} held-out concepts"


def test_classifier_accuracy_on_held_out_concepts(models, test_images):
    pred = models.classify(test_images.images)
    labels = test_images.labels
    for attr, floor in CLASSIFIER_MIN.items():
        acc = float((pred[attr] == labels[attr]).mean())
        assert acc >= floor, f"{attr} accuracy {acc:.3f} < {floor}"
    # attribute_match agrees with the brute-force count, whatever form the truth is given in
    by_concept = models.attribute_match(test_images.images, [s.concept for s in test_images.specs])
    by_name = models.attribute_match(test_images.images, {a: [ATTRIBUTES[a][i] for i in v] for a, v in labels.items()})
    for attr in ATTRIBUTES:
        ref = float((pred[attr] == labels[attr]).mean())
        assert by_concept[attr] == pytest.approx(ref) and by_name[attr] == pytest.approx(ref)
        assert by_concept[f"{attr}_chance"] == pytest.approx(1 / len(ATTRIBUTES[attr]))
    with pytest.raises(ValueError, match="Unknown colour"):
        models.attribute_match(test_images.images[:1], {"colour": ["mauve"]})


def test_generator_samples_have_the_concepts_colour_background_and_shape(models, test_images):
    idx = np.arange(48) * 2
    emb = models.embed_images(test_images.images[idx])
    a = models.generate(emb, steps=10, seed=0)
    b = models.generate(emb[:2], steps=10, seed=0)
    assert a.shape == (48, 3, 32, 32) and a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a[:2], b)                                # seeded, batch-independent noise
    pred = models.classify(a)
    hits = {k: int((pred[k] == test_images.labels[k][idx]).sum()) for k in GEN_MIN_OF_48}
    for k, floor in GEN_MIN_OF_48.items():
        assert hits[k] >= floor, f"{hits} of 48 samples right"


def test_simulate_with_world_clip_features(tmp_path, models):
    from eegvision.sim import simulate
    from eegvision.sim.scene import make_world as mw

    res = simulate(tmp_path / "sim", preset="tiny", n_subjects=1, write_raw=False, images=False,
                   feature_model="world-clip")
    feats = torch.load(tmp_path / "sim" / "sim_features_test.pt", weights_only=True)
    world = mw(res.preset.n_train_concepts, res.preset.n_test_concepts, res.preset.n_train_images, 1, seed=0)
    ref = models.embed_images(np.stack([world.render(s, 64) for s in world.images("test")]))
    torch.testing.assert_close(feats["img_features"], ref, atol=1e-5, rtol=0)
    ref_t = models.embed_texts([c.caption for c in world.concepts("test")])
    torch.testing.assert_close(feats["text_features"], ref_t, atol=1e-5, rtol=0)
    meta = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert meta["feature_map"]["kind"] == "world-clip" and meta["feature_map"]["dim"] == models.clip.dim
    with pytest.raises(ValueError, match="feature_model"):
        simulate(tmp_path / "sim2", preset="tiny", n_subjects=1, write_raw=False, images=False, feature_model="vit")


@pytest.mark.slow
def test_train_world_models_reduced_reproduces_loadable_models(tmp_path):
    from eegvision.sim.world.train import train_world_models

    meta = train_world_models(tmp_path / "w", seed=0, clip_steps=50, classifier_steps=50, generator_steps=20,
                              n_train_concepts=60, n_eval_samples=8, device="cpu")
    m = load_world_models(tmp_path / "w", device="cpu")
    assert meta["steps"] == {"clip": 50, "classifier": 50, "generator": 20}
    assert m.manifest["files"]["clip.safetensors"]["sha256"] == meta["files"]["clip.safetensors"]["sha256"]
    imgs = render_concepts(demo_test_concepts()[:4], 1, seed=1).images
    assert m.embed_images(imgs).shape == (4, m.clip.dim)
    assert m.generate(m.embed_images(imgs), steps=2).shape == (4, 3, 32, 32)
    # 50 steps already read the background colour far above chance (1/6)
    assert meta["quality"]["classifier"]["background"] > 0.4
    with pytest.raises(FileExistsError):
        train_world_models(tmp_path / "w", clip_steps=1, classifier_steps=1, generator_steps=1)


@pytest.mark.slow  # several seconds; the default suite keeps the cheaper checks of the same module
def test_world_train_reuse_keeps_the_reused_model_and_its_record(tmp_path):
    """--reuse clip: the CLIP file, its steps and training time are kept; the others are retrained."""
    from eegvision.sim.world.train import train_world_models
    from eegvision.utils import sha256_file

    out = tmp_path / "w"
    with pytest.raises(FileNotFoundError, match="without reuse"):
        train_world_models(out, clip_steps=1, classifier_steps=1, generator_steps=1, reuse=("clip",))
    first = train_world_models(out, clip_steps=2, classifier_steps=1, generator_steps=1, n_train_concepts=8,
                               n_eval_samples=2, device="cpu")
    clip_sha = sha256_file(out / "clip.safetensors")
    again = train_world_models(out, clip_steps=99, classifier_steps=3, generator_steps=2, n_train_concepts=8,
                               n_eval_samples=2, device="cpu", overwrite=True, reuse=("clip",))
    assert sha256_file(out / "clip.safetensors") == clip_sha == again["files"]["clip.safetensors"]["sha256"]
    assert again["steps"] == {"clip": 2, "classifier": 3, "generator": 2}
    assert again["training"]["clip_train_s"] == first["training"]["clip_train_s"]
    assert again["clip_options"] == first["clip_options"]
    assert not (out / ".generator-partial").exists()
    with pytest.raises(ValueError, match="reuse"):
        train_world_models(out, overwrite=True, reuse=("generator",))


@pytest.mark.slow  # ~5 s: trains a small CLIP; the shipped CLIP is checked by sha256 in the default suite
def test_clip_attribute_loss_separates_shapes_by_angle():
    """With the auxiliary attribute loss, images of one shape embed closer together than images of different
    shapes; without it (contrastive only, every other attribute varying) much less so."""
    from eegvision.sim.scene import BACKGROUNDS, COLOURS, Concept
    from eegvision.sim.world.clip_model import WorldTokenizer, clip_config, train_clip

    rng = np.random.default_rng(0)
    cols, bgs = list(COLOURS), list(BACKGROUNDS)
    concepts = [Concept(s, cols[rng.integers(len(cols))], "plain", bgs[rng.integers(len(bgs))])
                for s in ("circle", "cross") for _ in range(8)]
    data = render_concepts(concepts, 4, seed=0, description="images")
    tok = WorldTokenizer()
    cfg = clip_config(len(tok.vocab), tok.max_length, embed_dim=32, vision_width=32, vision_layers=1,
                      text_width=32, text_layers=1)

    def shape_margin(weight: float) -> float:
        clip = train_clip(data, steps=200, batch_size=32, seed=0, device="cpu", config=cfg, attribute_weight=weight)
        e = clip.embed_images(data.images).numpy()
        sim, lab = e @ e.T, data.labels["shape"]
        same = (lab[:, None] == lab[None, :]) & ~np.eye(len(lab), dtype=bool)
        return float(sim[same].mean() - sim[lab[:, None] != lab[None, :]].mean())

    with_loss, without = shape_margin(5.0), shape_margin(0.0)
    # measured 0.24 with the loss, 0.02 without
    assert with_loss > 0.15 and with_loss > without + 0.1, (with_loss, without)


def test_world_train_rejects_bad_clip_options(tmp_path):
    from eegvision.sim.world.train import train_world_models

    with pytest.raises(ValueError, match="patch_size must divide 32"):
        train_world_models(tmp_path / "w", clip_patch_size=5)
    with pytest.raises(ValueError, match="clip_attribute_weight"):
        train_world_models(tmp_path / "w", clip_attribute_weight=-1.0)


def _tiny_generator_config(cross_attention: bool) -> dict:
    from eegvision.sim.world.generator import unet_config

    cfg = unet_config(6, channels=(8, 16), cross_attention=cross_attention, cross_attention_dim=8)
    cfg.update(norm_num_groups=4, attention_head_dim=4)
    return cfg


@pytest.mark.slow
def test_generator_training_resumes_exactly_and_warm_starts(tmp_path):
    """Stopped after 2 checkpointed steps and run again, training ends with the weights of an uninterrupted
    4-step run (model, Adam moments and noise generator restored); a resume with other settings is refused.
    Warm-starting the cross-attention layout from a plain generator copies every matching tensor and zeroes the
    new attention blocks' output projections; the cross-attention layout reads the embedding through tokens."""
    from eegvision.sim.world.generator import _load_matching, build_unet, train_generator

    g = torch.Generator().manual_seed(0)
    x, e = torch.rand(6, 3, 32, 32, generator=g) * 2 - 1, torch.randn(6, 6, generator=g)
    kw = dict(batch_size=2, config=_tiny_generator_config(True), device="cpu", checkpoint_every=2, snr_gamma=5.0)
    full = train_generator(x, e, steps=4, checkpoint_dir=tmp_path / "a", **kw)
    train_generator(x, e, steps=2, checkpoint_dir=tmp_path / "b", **kw)
    assert json.loads((tmp_path / "b" / "train_state.json").read_text())["step"] == 2
    resumed = train_generator(x, e, steps=4, checkpoint_dir=tmp_path / "b", **kw)
    for (name, p), q in zip(full.unet.state_dict().items(), resumed.unet.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match="lr"):
        train_generator(x, e, steps=4, checkpoint_dir=tmp_path / "b", lr=5e-4, **kw)
    plain = train_generator(x, e, steps=1, batch_size=2, config=_tiny_generator_config(False), device="cpu")
    plain.save(tmp_path / "plain")
    warm = build_unet(_tiny_generator_config(True))
    new = _load_matching(warm, plain.unet.state_dict())
    own = warm.state_dict()
    for k, v in plain.unet.state_dict().items():
        if k in own and own[k].shape == v.shape:
            torch.testing.assert_close(own[k], v)
    outs = [k for k in new if k.endswith("proj_out.weight")]
    assert outs and all(own[k].abs().max() == 0 for k in outs)
    assert any(k.startswith("encoder_hid_proj.") for k in new)
