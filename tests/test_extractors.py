"""Any-layer feature targets: every backend (tiny random-weight models from configs, saved locally) against a
manual forward pass; image priors and UBP's blur levels against hand-computed values; caching and the CLI."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from eegvision.features.backbones import load_backbone, resolve_layer
from eegvision.features.files import load_features
from eegvision.features.image_priors import ImagePrior, fovea_mask, gaussian_blur, gaussian_kernel
from eegvision.features.targets import extract_targets

CONCEPTS = ["00001_aardvark", "00002_baton4"]
HF = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=32,
          patch_size=8)
OC_CFG = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 3, "width": 32, "patch_size": 8,
                                          "head_width": 16},
          "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs") / "test_images"
    rng = np.random.default_rng(1)
    for i, folder in enumerate(CONCEPTS):
        (root / folder).mkdir(parents=True)
        for j in range(2):
            Image.fromarray(rng.integers(0, 256, size=(36 + 8 * i, 44, 3), dtype=np.uint8)).save(
                root / folder / f"im_{j}.png")
    return root


def _paths(root):
    from eegvision.readers.images import scan_image_folder

    return scan_image_folder(root).paths


def _processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """Tiny CLIPVisionModel, SiglipVisionModel, Dinov2Model folders, each with its image processor."""
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        Dinov2Config,
        Dinov2Model,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    d = tmp_path_factory.mktemp("hfm")
    torch.manual_seed(0)
    for name, (cfg, cls) in {"clip": (CLIPVisionConfig, CLIPVisionModel), "siglip": (SiglipVisionConfig,
                             SiglipVisionModel), "dinov2": (Dinov2Config, Dinov2Model)}.items():
        cls(cfg(**HF)).save_pretrained(d / name)
        _processor().save_pretrained(d / name)
    return d


def _pixels(folder, root):
    from transformers import CLIPImageProcessor

    proc = CLIPImageProcessor.from_pretrained(folder)
    return proc(images=[Image.open(p).convert("RGB") for p in _paths(root)], return_tensors="pt")["pixel_values"]


def test_resolve_layer():
    assert [resolve_layer(s, 40) for s in (1, "-1", "2/3", "1/2", "final", -40)] == [1, 40, 27, 20, None, 1]
    assert resolve_layer("2/3", 12) == 8 and resolve_layer("1/3", 4) == 1  # 1.33 -> 1
    for bad in (0, 41, "-41", "3/2", "x"):
        with pytest.raises(ValueError, match="layer"):
            resolve_layer(bad, 40)


def test_load_errors_say_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        load_backbone("timm", tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="backend must be one of"):
        load_backbone("keras", tmp_path)
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="Supported: CLIP, SigLIP"):
        load_backbone("transformers", tmp_path / "bert")
    (tmp_path / "ckpt.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="needs its architecture"):
        load_backbone("timm", tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="one pooling for all layers or one per layer"):
        extract_targets(tmp_path, tmp_path / "o", backend="timm", weights=tmp_path / "ckpt.pt", layers=[1, 2, 3],
                        pooling=["cls", "mean"])


def test_transformers_clip_siglip_dinov2_match_manual(hf_models, images):
    for name in ("clip", "siglip", "dinov2"):
        bb = load_backbone("transformers", hf_models / name, device="cpu")
        px = _pixels(hf_models / name, images)
        net = bb.model
        with torch.no_grad():
            hs = net(pixel_values=px, output_hidden_states=True)
            norm = net.layernorm if name == "dinov2" else net.post_layernorm
            h2, h3 = norm(hs.hidden_states[2]), norm(hs.hidden_states[3])
            if name == "siglip":
                layers = bb.layers([2, -1, "final"], ["mean", "map", "mean"])
                ref = [h2.mean(1), net.head(h3), hs.pooler_output]
            else:
                layers = bb.layers(["2/3", 3, -1], ["cls", "mean", "cls+mean"])
                ref = [h2[:, 0], h3[:, 1:].mean(1), torch.cat([h3[:, 0], h3[:, 1:].mean(1)], 1)]
            got = bb.encode(px, layers)
        for g, r in zip(got, ref):
            assert g.shape == r.shape and torch.allclose(g, r, atol=1e-5), name
        assert not torch.allclose(got[0][:, :32], got[1][:, :32])
    assert torch.allclose(bb.encode(px, bb.layers(["final"]))[0], hs.pooler_output, atol=1e-6)  # DINOv2 cls
    with pytest.raises(ValueError, match="SigLIP has no class token"):
        load_backbone("transformers", hf_models / "siglip", device="cpu").layers([2], ["cls"])
    with pytest.raises(ValueError, match="attention-pool head"):
        load_backbone("transformers", hf_models / "siglip", device="cpu").layers([2], ["map"])


def test_transformers_clip_model_agrees_with_the_clip_path(tiny_hf_clip, images):
    """A full CLIPModel folder: final = projected embedding, block k = vision.py's --layer k (same numbers)."""
    from eegvision.features.vision import extract_image_features, load_vision_model

    vm = load_vision_model("tiny", tiny_hf_clip, backend="transformers", device="cpu")
    bb = load_backbone("transformers", tiny_hf_clip, device="cpu")
    paths = _paths(images)
    px = torch.stack([bb.preprocess(Image.open(p).convert("RGB")) for p in paths])
    final, l2 = bb.encode(px, bb.layers(["final", 2]))
    assert torch.allclose(final, extract_image_features(vm, paths, normalize=False), atol=1e-5)
    assert torch.allclose(l2, extract_image_features(vm, paths, layer=2, normalize=False), atol=1e-5)


def test_timm_vit_matches_manual_blocks(tmp_path, images):
    import timm
    from timm.models._hub import save_for_hf

    args = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_classes=0)
    torch.manual_seed(0)
    save_for_hf(timm.create_model("vit_tiny_patch16_224", pretrained=False, **args), str(tmp_path / "vit"),
                model_args=args, safe_serialization=True)
    bb = load_backbone("timm", tmp_path / "vit", device="cpu")
    assert bb.depth == 3 and bb.kind == "vit"
    px = torch.stack([bb.preprocess(Image.open(p).convert("RGB")) for p in _paths(images)])
    m = bb.model
    with torch.no_grad():
        x = m.norm_pre(m._pos_embed(m.patch_embed(px)))
        for blk in m.blocks[:2]:
            x = blk(x)
        ref = m.norm(x)
        got = bb.encode(px, bb.layers([2, 2, "final"], ["cls", "mean", "cls"]))
        final = m(px)  # num_classes=0: pooled pre-logits
    assert torch.allclose(got[0], ref[:, 0], atol=1e-5) and torch.allclose(got[1], ref[:, 1:].mean(1), atol=1e-5)
    assert torch.allclose(got[2], final, atol=1e-5)


def test_open_clip_layers_match_manual(tmp_path, images):
    import open_clip

    (tmp_path / "eegv-targets-tiny.json").write_text(json.dumps(OC_CFG))
    open_clip.add_model_config(tmp_path / "eegv-targets-tiny.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model("eegv-targets-tiny").state_dict(), tmp_path / "tiny.pt")
    bb = load_backbone("open_clip", tmp_path / "tiny.pt", model="eegv-targets-tiny", device="cpu")
    px = torch.stack([bb.preprocess(Image.open(p).convert("RGB")) for p in _paths(images)])
    v = bb.model.visual
    with torch.no_grad():
        x = v._embeds(px)
        for blk in v.transformer.resblocks[:2]:
            x = blk(x)
        ref = v.ln_post(x)
        got = bb.encode(px, bb.layers([2, "2/3", "final"], ["cls", "mean", "cls"]))
        final = bb.model.encode_image(px)
    assert torch.allclose(got[0], ref[:, 0], atol=1e-5) and torch.allclose(got[1], ref[:, 1:].mean(1), atol=1e-5)
    assert torch.allclose(got[2], final, atol=1e-5)
    # a ModifiedResNet tower: stage k is averaged over space (stage 1 = the stem, stage 2 = layer1)
    (tmp_path / "eegv-targets-rn.json").write_text(json.dumps({**OC_CFG, "vision_cfg": {
        "image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "head_width": 8}}))
    open_clip.add_model_config(tmp_path / "eegv-targets-rn.json")
    torch.save(open_clip.create_model("eegv-targets-rn").state_dict(), tmp_path / "rn.pt")
    rn = load_backbone("open_clip", tmp_path / "rn.pt", model="eegv-targets-rn", device="cpu")
    v = rn.model.visual
    with torch.no_grad():
        x = v.act1(v.bn1(v.conv1(px)))
        x = v.avgpool(v.act3(v.bn3(v.conv3(v.act2(v.bn2(v.conv2(x)))))))
        got = rn.encode(px, rn.layers([1, 2, "final"]))
        assert torch.allclose(got[0], x.mean((2, 3)), atol=1e-5)
        assert torch.allclose(got[1], v.layer1(x).mean((2, 3)), atol=1e-5)
        assert torch.allclose(got[2], rn.model.encode_image(px), atol=1e-5)
    assert rn.kind == "cnn" and rn.depth == 5
    with pytest.raises(ValueError, match="averaged over space"):
        rn.layers([2], ["cls"])


def test_vae_latent_matches_manual(tmp_path, images):
    from diffusers import AutoencoderKL

    from eegvision.features.vae import load_vae_backbone

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=4,
                  latent_channels=4, sample_size=16).save_pretrained(tmp_path / "vae")
    bb = load_vae_backbone(tmp_path / "vae", size=16, pool=4, device="cpu")
    px = torch.stack([bb.preprocess(Image.open(p).convert("RGB")) for p in _paths(images)])
    assert px.min() >= -1 and px.max() <= 1 and px.shape[-1] == 16
    with torch.no_grad():
        z = bb.model.encode(px).latent_dist.mean  # (n, 4, 8, 8)
        ref = z.view(4, 4, 4, 2, 4, 2).mean(dim=(3, 5)).flatten(1)  # 2x2 cells averaged by hand
        got = bb.encode(px, bb.layers(["final"]))[0]
    assert got.shape == (4, 64) and torch.allclose(got, ref, atol=1e-6)


def test_gaussian_blur_and_fovea_hand_values():
    assert gaussian_kernel(3).tolist() == [0.25, 0.5, 0.25]  # OpenCV's fixed taps for k <= 7
    t = gaussian_kernel(9)  # cv2 sigma for k=9: 0.3 * ((9 - 1) / 2 - 1) + 0.8 = 1.7
    assert float(t[5] / t[4]) == pytest.approx(math.exp(-1 / (2 * 1.7 ** 2)))
    assert float(t[8] / t[4]) == pytest.approx(math.exp(-16 / (2 * 1.7 ** 2))) and float(t.sum()) == pytest.approx(1)
    img = np.zeros((4, 4, 1))
    img[1, 1, 0] = 1.0
    out = gaussian_blur(img, 3)[..., 0]  # reflect-101: row -1 mirrors row 1, so (0, 0) gets taps 0 and 2
    assert out[0, 0] == pytest.approx(0.5 * 0.5) and out[1, 1] == pytest.approx(0.5 * 0.5)
    assert out[2, 2] == pytest.approx(0.25 * 0.25) and out[1, 2] == pytest.approx(0.5 * 0.25)
    assert out[3, 3] == 0 and out[0, 3] == 0
    m = fovea_mask(4, 4, system_g=3.0)  # centre (2, 2); d_max = sqrt(2)
    assert m[2, 2] == pytest.approx(0.5) and m[0, 0] == pytest.approx(0.5 * math.exp(-3))
    assert m[2, 3] == pytest.approx(0.5 * math.exp(-3 / math.sqrt(2)))


def test_priors_pixels():
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8))
    arr = np.asarray(im, dtype=np.float64)
    blur = ImagePrior("blur", size=0, blur_kernel=5, blur_shift=2)
    assert blur.views() == ["low", "medium", "high"] and blur.params("high")["kernel"] == 7
    got = np.asarray(blur.apply(im, "medium")[0], dtype=np.float64)
    m = fovea_mask(20, 20, 3.0)[..., None]
    blurred = np.clip(np.rint(gaussian_blur(arr, 5)), 0, 255)  # rounded to uint8 before blending, as UBP
    assert np.abs(got - np.clip(np.rint(m * arr + (1 - m) * blurred), 0, 255)).max() == 0
    assert not np.array_equal(got, np.asarray(blur.apply(im, "high")[0]))
    cpa = ImagePrior("cpa", size=0, cpa_mosaic=5, seed=3)
    views = [np.asarray(v) for v in cpa.apply(im, "cpa", index=1)]
    assert len(views) == 4 and all(v.shape == (20, 20, 3) for v in views)
    mosaic = views[3]  # 5x5 blocks of one colour
    assert (mosaic[:5, :5] == mosaic[0, 0]).all() and (mosaic[5:10, 5:10] == mosaic[5, 5]).all()
    assert len(np.unique(views[2].reshape(-1, 3), axis=0)) > 1  # low resolution: smooth, not constant
    again = [np.asarray(v) for v in cpa.apply(im, "cpa", index=1)]
    other = np.asarray(cpa.apply(im, "cpa", index=2)[1])
    assert np.array_equal(again[1], views[1]) and not np.array_equal(other, views[1])  # seeded per image
    with pytest.raises(ValueError, match="odd"):
        ImagePrior("blur", blur_kernel=50)


def test_ubp_blur_levels_hand_values():
    from eegvision.training.blur_prior import UBPBlurSchedule, select_blur_targets, ubp_blur_levels

    # running r = 0.3 s + 0.7 * 1 = [3.7, 0.7, 0.7, -2.3]; mean 0.7; std (ddof 1) sqrt(18 / 3) = 2.449490
    out = ubp_blur_levels(torch.tensor([10.0, 0.0, 0.0, -10.0]), torch.ones(4))
    z = 1.959963985
    assert out.upper == pytest.approx(0.7 + z * math.sqrt(6)) and out.lower == pytest.approx(0.7 - z * math.sqrt(6))
    assert out.levels.tolist() == [0, 1, 1, 2]
    assert torch.allclose(out.running, torch.tensor([3.7, 0.7, 0.7, -2.3]))
    # [10, 0, 0, 0]: r = [3.7, .7, .7, .7], mean 1.45, std 1.5 -> bounds -1.49 / 4.39: only the first leaves
    assert ubp_blur_levels(torch.tensor([10.0, 0, 0, 0]), torch.ones(4)).levels.tolist() == [0, 1, 1, 1]
    sched = UBPBlurSchedule(6)
    sched.update(torch.tensor([5, 0, 2, 3]), torch.tensor([10.0, 0.0, 0.0, -10.0]))
    assert sched.levels.tolist() == [1] * 6  # levels apply from the next epoch
    assert sched.end_epoch() == {"low": 1, "medium": 4, "high": 1}
    assert sched.levels.tolist() == [1, 1, 1, 2, 1, 0]
    assert torch.allclose(sched.running, torch.tensor([0.7, 1, 0.7, -2.3, 1, 3.7]))
    targets = torch.arange(3 * 6 * 2, dtype=torch.float32).view(3, 6, 2)
    rows = select_blur_targets(targets, torch.tensor([5, 3, 1]), sched.levels[[5, 3, 1]])
    assert rows.tolist() == [targets[0, 5].tolist(), targets[2, 3].tolist(), targets[1, 1].tolist()]


def test_extract_targets_files_cache_and_priors(hf_models, images, tmp_path):
    folder = hf_models / "dinov2"
    res = extract_targets(images, tmp_path / "t", backend="transformers", weights=folder, model="tiny-dino",
                          layers=["2/3", "final"], pooling=["cls+mean", "cls"], normalize=False, device="cpu")
    assert len(res.files) == 2 and res.n_computed == 2 and len({f.path for f in res.files}) == 2
    f = load_features(res.files[0].path, expect_normalized=False, expect_rows=4, expect_dim=64)
    meta = f.metadata
    assert meta["layer_index"] == "2" and meta["layer_depth"] == "3" and meta["pooling"] == "cls+mean"
    assert meta["backend"] == "transformers" and meta["prior"] == "none" and len(meta["weights_sha256"]) == 68
    assert meta["pretrained"] == str(folder) and "CLIPImageProcessor" in meta["transform"] and meta["embedding"] == ""
    assert load_features(res.files[1].path).metadata["embedding"].startswith("pooler_output (class token")
    assert f.concepts.name == ("aardvark", "baton4")
    bb = load_backbone("transformers", folder, device="cpu")
    with torch.no_grad():
        h = bb.model.layernorm(bb.model(pixel_values=_pixels(folder, images), output_hidden_states=True)
                               .hidden_states[2])
    assert torch.allclose(f.image, torch.cat([h[:, 0], h[:, 1:].mean(1)], 1), atol=1e-5)
    # same settings: nothing recomputed; other settings: other names
    again = extract_targets(images, tmp_path / "t", backend="transformers", weights=folder, model="tiny-dino",
                            layers=["2/3", "final"], pooling=["cls+mean", "cls"], normalize=False, device="cpu")
    assert again.n_computed == 0 and [g.path for g in again.files] == [g.path for g in res.files]
    blur = ImagePrior("blur", size=32, blur_kernel=5, blur_shift=2)
    b = extract_targets(images, tmp_path / "t", backend="transformers", weights=folder, model="tiny-dino",
                        layers=["2/3"], pooling=["cls+mean"], normalize=False, device="cpu", prior=blur)
    assert [g.view for g in b.files] == ["low", "medium", "high"] and b.n_computed == 3
    assert not {g.path for g in b.files} & {g.path for g in res.files}
    low, high = (load_features(g.path) for g in (b.files[0], b.files[2]))
    assert json.loads(low.metadata["prior_params"])["kernel"] == 3 and not torch.allclose(low.image, high.image)
    # the blurred view's features are those of the blurred pixels
    px = torch.stack([bb.preprocess(blur.apply(Image.open(p), "low")[0]) for p in _paths(images)])
    with torch.no_grad():
        h = bb.model.layernorm(bb.model(pixel_values=px, output_hidden_states=True).hidden_states[2])
    assert torch.allclose(low.image, torch.cat([h[:, 0], h[:, 1:].mean(1)], 1), atol=1e-5)
    # CPA: the mean of the four degraded views' raw features, then normalised
    cpa = ImagePrior("cpa", size=32, cpa_mosaic=4, seed=1)
    c = extract_targets(images, tmp_path / "cpa.safetensors", backend="transformers", weights=folder,
                        layers=["final"], prior=cpa, device="cpu", batch_size=3)
    views = [bb.preprocess(v) for i, p in enumerate(_paths(images)) for v in cpa.apply(Image.open(p), "cpa", i)]
    with torch.no_grad():
        ref = bb.model(pixel_values=torch.stack(views)).pooler_output.view(4, 4, -1).mean(1)
    assert torch.allclose(load_features(c.files[0].path, expect_normalized=True).image, F.normalize(ref, dim=1),
                          atol=1e-5)
    with pytest.raises(FileExistsError, match="other settings"):
        extract_targets(images, tmp_path / "cpa.safetensors", backend="transformers", weights=folder,
                        layers=["final"], device="cpu")


def test_cli_layers_and_prior(hf_models, images, tmp_path):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    args = ["features", str(images), str(tmp_path / "out"), "--backend", "transformers", "--pretrained",
            str(hf_models / "clip"), "--layers", "1,-1", "--pooling", "mean", "--device", "cpu", "--no-normalize",
            "--prior", "blur", "--blur-kernel", "5", "--blur-shift", "2", "--blur-levels", "low,high",
            "--prior-size", "32"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.output.count("wrote") == 4 and len(list((tmp_path / "out").glob("*_high_*.safetensors"))) == 2
    feats = [load_features(p) for p in sorted((tmp_path / "out").glob("*.safetensors"))]
    assert {(f.metadata["layer_index"], json.loads(f.metadata["prior_params"])["kernel"]) for f in feats} == {
        ("1", 3), ("1", 7), ("3", 3), ("3", 7)}
    assert all(f.metadata["pooling"] == "mean" and not f.normalized for f in feats)
    res = CliRunner().invoke(app, args)  # same settings: every file reused
    assert res.exit_code == 0 and res.output.count("cached") == 4, res.output
    with pytest.raises(ValueError, match="prior must be one of"):
        ImagePrior("smear")
