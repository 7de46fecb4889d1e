"""CLIP feature extraction with tiny random-weight open_clip and transformers models from local files."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from eegvision.features.files import load_features
from eegvision.features.vision import (
    extract_features,
    extract_image_features,
    extract_text_features,
    load_vision_model,
)

TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
CONCEPTS = ["00001_aardvark", "00002_aircraft_carrier", "00003_baton4"]


@pytest.fixture(scope="module")
def things_folder(tmp_path_factory):
    """THINGS layout: test_images/NNNNN_concept/<concept>_01b.jpg, random pictures of different sizes."""
    root = tmp_path_factory.mktemp("imgs") / "test_images"
    rng = np.random.default_rng(0)
    for i, folder in enumerate(CONCEPTS):
        (root / folder).mkdir(parents=True)
        for j in range(2):
            arr = rng.integers(0, 256, size=(40 + 8 * i, 52, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / folder / f"{folder.split('_', 1)[1]}_0{j + 1}b.jpg")
    return root


@pytest.fixture(scope="module")
def open_clip_weights(tmp_path_factory):
    """A tiny ViT CLIP registered under a custom name, its weights saved to a local file and a local-dir."""
    import open_clip
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("oc")
    (d / "eegv-test-tiny-vit.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(d / "eegv-test-tiny-vit.json")
    torch.manual_seed(0)
    model = open_clip.create_model("eegv-test-tiny-vit")
    torch.save(model.state_dict(), d / "tiny.pt")
    local = d / "local"
    local.mkdir()
    (local / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CFG, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(local / "open_clip_model.safetensors"))
    return d / "tiny.pt", local


@pytest.fixture(scope="module")
def hf_dir(tiny_hf_clip):
    return tiny_hf_clip


def _paths(root):
    from eegvision.readers.images import scan_image_folder

    return scan_image_folder(root).paths


def test_open_clip_matches_manual_forward(open_clip_weights, things_folder):
    import open_clip

    vm = load_vision_model("eegv-test-tiny-vit", open_clip_weights[0], device="cpu")
    paths = _paths(things_folder)
    feats = extract_image_features(vm, paths, batch_size=4)
    assert feats.shape == (6, 16) and feats.dtype == torch.float32
    assert torch.allclose(feats.norm(dim=1), torch.ones(6), atol=1e-5)
    # reference: the deterministic validation transform built independently, then encode_image
    tf = open_clip.image_transform(32, is_train=False)
    ref_model = open_clip.create_model("eegv-test-tiny-vit", pretrained=str(open_clip_weights[0])).eval()
    with torch.no_grad():
        px = torch.stack([tf(Image.open(p)) for p in paths])
        ref = ref_model.encode_image(px, normalize=True)
        # intermediate layer 2: class token after block 2, through ln_post, no projection
        v = ref_model.visual
        x = v._embeds(px)
        for blk in v.transformer.resblocks[:2]:
            x = blk(x)
        ref_l2 = v.ln_post(x)[:, 0]
    assert torch.allclose(feats, ref, atol=1e-5)
    # no random crop: the same images give the same features again, in any batch size
    assert torch.equal(feats, extract_image_features(vm, paths, batch_size=4))
    assert torch.allclose(feats, extract_image_features(vm, paths, batch_size=1), atol=1e-6)
    layer2 = extract_image_features(vm, paths, layer=2, normalize=False)
    assert layer2.shape == (6, 32) and torch.allclose(layer2, ref_l2, atol=1e-5)
    last = extract_image_features(vm, paths, layer=-1, normalize=False)
    assert not torch.allclose(last, layer2)
    raw = extract_image_features(vm, paths, normalize=False)
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=1), feats, atol=1e-6)
    text = extract_text_features(vm, ["This picture is aardvark", "This picture is baton4"])
    assert text.shape == (2, 16) and not torch.allclose(text[0], text[1])
    with pytest.raises(ValueError, match="layer must be 1..3"):
        extract_image_features(vm, paths, layer=7)


def test_open_clip_local_dir(open_clip_weights, things_folder):
    by_file = load_vision_model("eegv-test-tiny-vit", open_clip_weights[0], device="cpu")
    by_dir = load_vision_model("eegv-test-tiny-vit", open_clip_weights[1], device="cpu")
    paths = _paths(things_folder)[:3]
    assert torch.allclose(extract_image_features(by_file, paths), extract_image_features(by_dir, paths), atol=1e-6)


def test_transformers_backend(hf_dir, things_folder):
    vm = load_vision_model("tiny-hf", hf_dir, backend="transformers", device="cpu")
    paths = _paths(things_folder)
    feats = extract_image_features(vm, paths, batch_size=4)
    assert feats.shape == (6, 16)
    with torch.no_grad():
        px = torch.stack([vm.preprocess(Image.open(p).convert("RGB")) for p in paths])
        out = vm.model.vision_model(pixel_values=px, output_hidden_states=True)
        ref = torch.nn.functional.normalize(vm.model.visual_projection(out.pooler_output), dim=1)
        ref_l1 = vm.model.vision_model.post_layernorm(out.hidden_states[1])[:, 0]
    assert torch.allclose(feats, ref, atol=1e-5)
    assert torch.equal(feats, extract_image_features(vm, paths, batch_size=4))
    layer1 = extract_image_features(vm, paths, layer=1, normalize=False)
    assert torch.allclose(layer1, ref_l1, atol=1e-5)
    assert not torch.allclose(layer1, extract_image_features(vm, paths, layer=3, normalize=False))
    text = extract_text_features(vm, ["This picture is aardvark", "This picture is dog"])
    assert text.shape == (2, 16) and not torch.allclose(text[0], text[1])


def test_extract_features_file_and_cli(open_clip_weights, hf_dir, things_folder, tmp_path):
    out = extract_features(things_folder, tmp_path / "f.safetensors", model="eegv-test-tiny-vit",
                           pretrained=open_clip_weights[0], device="cpu", batch_size=4)
    f = load_features(out, expect_normalized=True, expect_dim=16, expect_rows=6)
    assert f.text.shape == (3, 16) and torch.allclose(f.text.norm(dim=1), torch.ones(3), atol=1e-5)
    meta = f.metadata
    assert meta["model"] == "eegv-test-tiny-vit" and meta["pretrained"] == str(open_clip_weights[0])
    assert meta["layer"] == "final" and meta["split"] == "test_images" and meta["normalized"] == "true"
    assert "CenterCrop" in meta["transform"] and "Random" not in meta["transform"]
    assert meta["prompt_template"] == "This picture is {concept}" and meta["backend"] == "open_clip"
    # the folder's concept table (sorted folders, 0-based; two images per folder, so none is the concept's image)
    assert f.concepts.index == (0, 1, 2) and f.concepts.split == "test_images" and "concepts" not in meta
    assert f.concepts.name == tuple(c.split("_", 1)[1] for c in CONCEPTS) and f.concepts.image == (None,) * 3

    from eegvision.cli.main import app

    runner = CliRunner()
    cli_out = tmp_path / "cli.safetensors"
    res = runner.invoke(app, ["features", str(things_folder), str(cli_out), "--model", "eegv-test-tiny-vit",
                              "--pretrained", str(open_clip_weights[0]), "--no-normalize", "--layer", "2",
                              "--device", "cpu", "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    g = load_features(cli_out, expect_normalized=False)
    assert g.image.shape == (6, 32) and g.text is None and g.metadata["layer"].startswith("2 (cls")
    res = runner.invoke(app, ["features", str(things_folder), str(tmp_path / "hf.safetensors"), "--backend",
                              "transformers", "--pretrained", str(hf_dir), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert load_features(tmp_path / "hf.safetensors").text.shape == (3, 16)
    res = runner.invoke(app, ["features", str(things_folder), str(cli_out), "--pretrained", "x"])
    assert res.exit_code == 2 and "--force" in res.output


def test_load_errors(tmp_path, hf_dir):
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        load_vision_model("ViT-H-14", tmp_path / "missing.bin", device="cpu")
    with pytest.raises(ValueError, match=r"Model 'ViT-H-41' is not in open_clip .* Did you mean ViT-H-14"):
        load_vision_model("ViT-H-41", tmp_path / "missing.bin", device="cpu")
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        load_vision_model("ViT-H-14", tmp_path, device="cpu")
    with pytest.raises(FileNotFoundError, match="not a transformers model folder"):
        load_vision_model("x", tmp_path, backend="transformers", device="cpu")
    with pytest.raises(ValueError, match="backend"):
        load_vision_model("x", hf_dir, backend="timm")
    with pytest.raises(ValueError, match="pretrained is required"):
        load_vision_model("ViT-H-14", None)
