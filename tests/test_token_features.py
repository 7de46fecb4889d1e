"""Token feature files (images x tokens x dim): round trip, refusal where one vector per image is needed, and their
extraction (`features --pooling tokens`) against a tiny random-weight ViT's own hidden states."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from eegvision.features.files import load_features, save_features
from eegvision.features.tokens import extract_tokens, pool_token_grid

CONCEPTS = ["00001_aardvark", "00002_baton4"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def test_token_file_round_trip_and_refusal(tmp_path):
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    path = save_features(tmp_path / "t.safetensors", x, layers=[5, 5, 7], model="m", split="test")
    with pytest.raises(ValueError, match=r"holds token features \(image \(2, 3, 4\).*--pooling cls"):
        load_features(path)
    f = load_features(path, tokens=True)
    assert f.is_tokens and torch.equal(f.image, x) and f.dim == 4 and len(f) == 2
    assert f.token_layers == [5, 5, 7] and f.metadata["kind"] == "tokens" and not f.normalized
    assert json.loads(f.metadata["layers"]) == [5, 5, 7]
    # (n, 1, dim) is still one vector per image, not a token file
    flat = load_features(save_features(tmp_path / "f.safetensors", x[:, :1]))
    assert not flat.is_tokens and flat.image.shape == (2, 4) and flat.token_layers is None
    with pytest.raises(ValueError, match="3 tokens but 2 layers"):
        save_features(tmp_path / "b.safetensors", x, layers=[1, 2])
    with pytest.raises(ValueError, match="image tokens only"):
        save_features(tmp_path / "b.safetensors", x, torch.ones(2, 4), layers=[1, 1, 1])
    with pytest.raises(ValueError, match=r"must be 3-D \(rows, tokens, dim\)"):
        save_features(tmp_path / "b.safetensors", x[:, 0], layers=[1])


def test_pool_token_grid_by_hand():
    t = torch.arange(16, dtype=torch.float32).reshape(1, 16, 1)  # a 4 x 4 grid, row-major
    # 2 x 2 grid: top-left = mean of patches 0, 1, 4, 5 = 2.5; top-right 2, 3, 6, 7 = 4.5; then 10.5, 12.5
    assert pool_token_grid(t, 2).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    assert pool_token_grid(t, 0) is t and pool_token_grid(t, 1).item() == 7.5
    with pytest.raises(ValueError, match="square grid"):
        pool_token_grid(torch.ones(1, 15, 1), 2)
    with pytest.raises(ValueError, match="1..4"):
        pool_token_grid(t, 5)


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    d = tmp_path_factory.mktemp("tok")
    root = d / "test_images"
    rng = np.random.default_rng(1)
    for folder in CONCEPTS:
        (root / folder).mkdir(parents=True)
        for j in range(2):
            Image.fromarray(rng.integers(0, 256, size=(40, 44, 3), dtype=np.uint8)).save(root / folder / f"{j}.png")
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                     num_attention_heads=2, image_size=32, patch_size=8)).save_pretrained(d / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d / "clip")
    return d, root


def test_extracted_tokens_are_the_models_hidden_states(vit, tmp_path):
    from transformers import CLIPImageProcessor, CLIPVisionModel
    from typer.testing import CliRunner

    from eegvision.cli.main import app
    from eegvision.readers.images import scan_image_folder

    d, root = vit
    res = extract_tokens(root, tmp_path / "tok.safetensors", backend="transformers", weights=d / "clip",
                         layers=[1, -1], device="cpu")
    assert res.layers == [1, 3] and not res.cached
    f = load_features(res.path, tokens=True)
    net = CLIPVisionModel.from_pretrained(d / "clip").eval()
    proc = CLIPImageProcessor.from_pretrained(d / "clip")
    px = proc(images=[Image.open(p).convert("RGB") for p in scan_image_folder(root).paths],
              return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        hs = net(pixel_values=px, output_hidden_states=True).hidden_states  # [0] = embeddings, [k] = after block k
    ref = torch.cat([net.post_layernorm(hs[k])[:, 1:] for k in (1, 3)], dim=1)  # class token left out
    assert f.image.shape == (4, 32, 32) and torch.allclose(f.image, ref, atol=1e-5)
    assert f.token_layers == [1] * 16 + [3] * 16 and f.concepts.name == ("aardvark", "baton4")
    assert extract_tokens(root, tmp_path / "tok.safetensors", backend="transformers", weights=d / "clip",
                          layers=[1, -1], device="cpu").cached
    # the CLI, 2 x 2 grid, normalised tokens: token 0 of layer 3 = the mean of its patches 0, 1, 4, 5, then L2
    out = tmp_path / "grid"
    cli = CliRunner().invoke(app, ["features", str(root), str(out), "--backend", "transformers", "--pretrained",
                                   str(d / "clip"), "--layers", "3", "--pooling", "tokens", "--token-grid", "2",
                                   "--device", "cpu"])
    assert cli.exit_code == 0, cli.output
    g = load_features(next(out.glob("*.safetensors")), tokens=True)
    l3 = ref[:, 16:]
    first = torch.nn.functional.normalize(l3[:, [0, 1, 4, 5]].mean(1), dim=-1)
    assert g.image.shape == (4, 4, 32) and torch.allclose(g.image[:, 0], first, atol=1e-5) and g.normalized
    assert g.metadata["pooling"] == "tokens-grid2" and g.token_layers == [3] * 4
    with pytest.raises(ValueError, match="blocks of the tower"):
        extract_tokens(root, tmp_path / "x.safetensors", backend="transformers", weights=d / "clip",
                       layers=["final"])
