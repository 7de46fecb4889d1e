"""Stage II with tiny random-weight diffusers pipelines built from configs and loaded back by path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from eegvision.generation.generator import load_generator
from eegvision.generation.lowlevel import (
    LatentRegressor,
    encode_images_to_latents,
    fit_latent_regressor,
    predict_latents,
)
from eegvision.generation.reconstruct import (
    ReconstructionSettings,
    image_seed,
    merge_manifests,
    reconstruct,
)
from eegvision.generation.tiny import tiny_sdxl_pipeline, tiny_unclip_pipeline
from eegvision.metrics.pairing import read_manifest
from eegvision.models.prior import DiffusionPrior
from eegvision.store.concepts import ConceptTable

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D = 16  # image-embedding size of the tiny IP-Adapter / unCLIP




@pytest.fixture(scope="module")
def sdxl_path(tmp_path_factory):
    return tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl-turbo", image_embed_dim=D)


@pytest.fixture(scope="module")
def sdxl(sdxl_path):
    return load_generator(sdxl_path, device="cpu")


@pytest.fixture(scope="module")
def unclip(tmp_path_factory):
    return load_generator(tiny_unclip_pipeline(tmp_path_factory.mktemp("unclip") / "tiny-unclip",
                                               image_embed_dim=D), device="cpu")


def _arr(images):
    return np.stack([np.asarray(im, dtype=np.float32) for im in images])


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_sdxl_ip_adapter_seed_and_embedding(sdxl, guidance):
    assert sdxl.kind == "ip_adapter" and sdxl.embed_dim == D
    emb = torch.randn(D, generator=torch.Generator().manual_seed(0)) * 5
    kw = dict(num_inference_steps=2, guidance_scale=guidance, height=32, width=32)
    a = _arr(sdxl.generate(emb, [1, 2, 3], **kw))
    b = _arr(sdxl.generate(emb, [1, 2, 3], **kw))
    assert a.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(a, b)                              # same seed → same image
    c = _arr(sdxl.generate(emb, [2], **kw))                           # an image does not depend on its batch
    assert np.abs(c[0] - a[1]).max() <= 1.0
    d = _arr(sdxl.generate(-emb, [1, 2, 3], **kw))                    # other embedding → other image
    assert np.abs(d - a).mean() > 1.0
    assert np.abs(a[0] - a[1]).mean() > 1.0                           # other seed → other image
    with pytest.raises(ValueError, match=r"\(16,\)"):
        sdxl.generate(torch.zeros(7), [0, 1])


def test_ip_adapter_embeds_reach_the_unet_as_diffusers_expects(sdxl):
    """What the UNet's image projection receives: our embedding for every image, the zero negative first."""
    seen = []
    hook = sdxl.pipe.unet.encoder_hid_proj.register_forward_pre_hook(lambda m, args: seen.append(args[0][0]))
    emb = torch.randn(D)
    try:
        sdxl.generate(emb, [0, 1], num_inference_steps=1, guidance_scale=2.0, height=32, width=32)
    finally:
        hook.remove()
    x = seen[0]
    assert x.shape == (4, 1, D)                                       # [neg, neg, pos, pos] for 2 images
    torch.testing.assert_close(x[2:, 0], emb.expand(2, D))
    assert torch.all(x[:2] == 0)


def test_unclip_generator(unclip):
    assert unclip.kind == "unclip" and unclip.embed_dim == D
    emb = torch.randn(D)
    kw = dict(num_inference_steps=2, guidance_scale=1.0, height=32, width=32)
    a, b = _arr(unclip.generate(emb, [0, 1], **kw)), _arr(unclip.generate(emb, [0, 1], **kw))
    np.testing.assert_array_equal(a, b)
    assert np.abs(_arr(unclip.generate(emb * -3, [0, 1], **kw)) - a).mean() > 0.5
    with pytest.raises(ValueError, match="IP-Adapter"):
        unclip.generate(emb, [0, 1], init_latents=torch.zeros(4, 16, 16), **kw)


def test_load_generator_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_generator(tmp_path)
    path = tiny_sdxl_pipeline(tmp_path / "p", image_embed_dim=D)
    with pytest.raises(FileNotFoundError, match="ip-adapter_sdxl_vit-h"):
        load_generator(path, ip_adapter=tmp_path / "nowhere", device="cpu")


def _prior(cond_dim=12):
    torch.manual_seed(0)
    return DiffusionPrior(embed_dim=D, cond_dim=cond_dim,
                          architecture_options={"hidden_dims": [16, 8], "time_embed_dim": 8, "dropout": 0.0}).eval()


def test_whole_path_eeg_prior_images_manifest(sdxl, tmp_path):
    eeg = torch.randn(3, 12, generator=torch.Generator().manual_seed(1))
    concepts = ConceptTable.from_names(["aircraft carrier", "antelope", "backscratcher"], split="test")
    settings = ReconstructionSettings(samples=2, seed=5, steps=2, prior_steps=3, batch_size=4, height=32, width=32)
    out = tmp_path / "rec"
    manifest = reconstruct(eeg, concepts, sdxl, out, prior=_prior(), settings=settings, subject="sub-08")
    files = sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png"))
    assert files == [f"images/{i:05d}_{c}/{s}.png" for i, c in
                     [(0, "aircraft_carrier"), (1, "antelope"), (2, "backscratcher")] for s in (0, 1)]
    written = json.loads(manifest.read_text())
    assert written["format_version"] == 2
    assert written["concepts"] == {"split": "test", "concept_index": [0, 1, 2], "image": None,
                                   "concept": ["aircraft carrier", "antelope", "backscratcher"]}
    rows = written["images"]
    assert len(rows) == 6 and {r["subject"] for r in rows} == {"sub-08"}
    r = rows[3]
    assert (r["concept_index"], r["concept"], r["sample"]) == (1, "antelope", 1)  # 0-based, from the table
    assert r["seed"] == image_seed(5, 1, 1) and r["prior"] is True and r["prior_steps"] == 3
    csv = pd.read_csv(out / "manifest.csv")
    assert list(csv["file"]) == [x["file"] for x in rows]
    from PIL import Image

    with Image.open(out / rows[0]["file"]) as im:
        assert im.size == (32, 32)
    # rerun: same seeds → identical files; the manifest protects the folder
    with pytest.raises(FileExistsError, match="--resume"):
        reconstruct(eeg, concepts, sdxl, out, prior=_prior(), settings=settings)
    out2 = tmp_path / "rec2"
    reconstruct(eeg, concepts, sdxl, out2, prior=_prior(), settings=settings, subject="sub-08")
    for f in files:
        np.testing.assert_array_equal(np.asarray(Image.open(out / f)), np.asarray(Image.open(out2 / f)))
    # a different EEG embedding for concept 1 changes its images only
    eeg3 = eeg.clone()
    eeg3[0] = -3 * eeg[0]
    out3 = tmp_path / "rec3"
    reconstruct(eeg3, concepts, sdxl, out3, prior=_prior(), settings=settings, subject="sub-08")
    diff = [np.abs(np.asarray(Image.open(out / f), dtype=float) - np.asarray(Image.open(out3 / f))).mean()
            for f in files]
    assert diff[0] > 1.0 and diff[2] == 0.0
    back = read_manifest(out)
    assert back["path"].map(lambda p: p.endswith(".png")).all()
    assert back["concept_index"].tolist() == [0, 0, 1, 1, 2, 2] and set(back["index_source"]) == {"concept table"}
    with pytest.raises(ValueError, match="2 concepts"):
        reconstruct(eeg, concepts.select([0, 1]), sdxl, tmp_path / "rec4", settings=settings)


def test_cli_concepts_travel_from_the_store_to_the_scores(sdxl_path, tmp_path):
    """The store's test table names the reconstructions (0-based) and pairs them with the ground truth."""
    from decode_helpers import make_problem
    from PIL import Image
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    _, data = make_problem(tmp_path / "p", real_store=True, n_subjects=1, n_test=4, dim=D)
    torch.save(torch.randn(4, D, generator=torch.Generator().manual_seed(0)), tmp_path / "emb.pt")
    args = ["reconstruct", str(tmp_path / "emb.pt"), "--generator", str(sdxl_path), "--no-prior", "--samples", "1",
            "--steps", "1", "--height", "32", "--width", "32", "--device", "cpu"]
    runner = CliRunner()
    res = runner.invoke(app, args + ["--out", str(tmp_path / "rec")])
    assert res.exit_code == 2 and "holds embeddings only" in res.output  # no table, no made-up names
    res = runner.invoke(app, args + ["--out", str(tmp_path / "rec"), "--concepts", str(data)])
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert written["concepts"]["concept"] == [f"test_concept_{i}" for i in range(4)]
    assert [(r["concept_index"], r["file"]) for r in written["images"]][:2] == [
        (0, "images/00000_test_concept_0/0.png"), (1, "images/00001_test_concept_1/0.png")]
    # ground truth in THINGS layout (folders numbered from 1): the reconstructions themselves, so scores are 1
    for i, r in enumerate(written["images"]):
        (tmp_path / "gt" / f"{i + 1:05d}_test_concept_{i}").mkdir(parents=True)
        Image.open(tmp_path / "rec" / r["file"]).save(tmp_path / "gt" / f"{i + 1:05d}_test_concept_{i}" / "a.png")
    res = runner.invoke(app, ["score-images", str(tmp_path / "gt"), str(tmp_path / "rec"), "--no-resize-256",
                              "--out", str(tmp_path / "scores.csv")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "scores.csv")
    first = table[(table["rule"] == "first") & (table["subject"] == "sub-01")].set_index("metric")
    assert first.loc["PixCorr", "value"] == pytest.approx(1.0) and set(table["pairing"]) == {"concept table"}


def test_sharded_ranks_merge_to_the_single_run(sdxl, tmp_path):
    eeg = torch.randn(3, D)
    args = (ConceptTable((10, 11, 12), ("a", "b", "c")), sdxl)
    settings = ReconstructionSettings(samples=1, steps=1, height=32, width=32)
    reconstruct(eeg, *args, tmp_path / "one", settings=settings)
    for rank in (0, 1):
        reconstruct(eeg, *args, tmp_path / "two", settings=settings, rank=rank, world_size=2)
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())["images"]
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())["images"]
    assert [r["file"] for r in one] == [r["file"] for r in two] and [r["seed"] for r in one] == [r["seed"] for r in
                                                                                                  two]
    merge_manifests(tmp_path / "two", 2)  # idempotent


def test_low_level_init(sdxl, tmp_path):
    """Regressor → latents → img2img with strength; the diffusers pipeline adds noise at the start timestep."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 32, 32, generator=g)
    latents = encode_images_to_latents(sdxl.pipe.vae, images)
    assert latents.shape == (6, 4, 16, 16)
    eeg = torch.randn(6, 5, 20, generator=g)
    model, losses = fit_latent_regressor(eeg, latents, epochs=15, batch_size=3, widths=[16, 8, 8, 8],
                                         n_features=4, device="cpu")
    assert losses[-1] < losses[0]
    model.save_pretrained(tmp_path / "ll")
    back = LatentRegressor.from_pretrained(tmp_path / "ll")
    pred = predict_latents(back, eeg[:2])
    torch.testing.assert_close(pred, predict_latents(model, eeg[:2]))
    emb = torch.randn(2, D)
    kw = dict(num_inference_steps=4, guidance_scale=0.0, height=32, width=32)
    plain = _arr(sdxl.generate(emb[0], [0, 1], **kw))
    low = _arr(sdxl.generate(emb[0], [0, 1], init_latents=pred[0], strength=0.5, **kw))
    low2 = _arr(sdxl.generate(emb[0], [0, 1], init_latents=pred[0], strength=0.5, **kw))
    np.testing.assert_array_equal(low, low2)
    assert np.abs(low - plain).mean() > 1.0
    with pytest.raises(ValueError, match="strength"):
        sdxl.generate(emb[0], [0, 1], init_latents=pred[0], strength=0.1, **kw)
    # reconstruct() records the low-level settings
    out = reconstruct(emb, ConceptTable.from_names(["a", "b"]), sdxl, tmp_path / "rec", init_latents=pred,
                      settings=ReconstructionSettings(samples=1, steps=4, height=32, width=32, strength=0.5))
    rows = json.loads(out.read_text())["images"]
    assert rows[0]["low_level"] is True and rows[0]["strength"] == 0.5 and rows[0]["prior"] is False


def test_cli_reconstruct_low_level_run_equals_its_latents_file(sdxl_path, tmp_path):
    """`reconstruct --low-level-run DIR` feeds the regressor's latents of the averaged test EEG (computed here by hand)
    to img2img: the same images as `--low-level FILE` holding those latents."""
    from decode_helpers import make_problem
    from PIL import Image
    from safetensors.torch import save_file
    from typer.testing import CliRunner

    from eegvision.cli.main import app
    from eegvision.generation.lowlevel import RidgeLatentRegressor
    from eegvision.store.disk import open_store

    _, data = make_problem(tmp_path / "p", real_store=True, n_subjects=1, n_test=3, dim=D, n_times=4)
    test = np.asarray(open_store(data).array("sub-01", "test"), dtype=np.float32).mean(1)
    n_ch = test.shape[1]
    g = torch.Generator().manual_seed(0)
    model = RidgeLatentRegressor(n_ch, 4, [4, 16, 16], time_bin=2)
    model.weight.copy_(0.3 * torch.randn(model.weight.shape, generator=g))
    model.bias.copy_(torch.randn(model.bias.shape, generator=g))
    model.save_pretrained(tmp_path / "ll")
    (tmp_path / "ll" / "lowlevel.json").write_text(json.dumps(
        {"subject": "sub-01", "data_path": {"relative": "../missing", "absolute": str(data)}}))
    x = test.reshape(3, n_ch, 2, 2).mean(-1).reshape(3, -1)
    latents = torch.from_numpy(x @ model.weight.numpy() + model.bias.numpy()).reshape(3, 4, 16, 16)
    save_file({"latents": latents.contiguous()}, str(tmp_path / "lat.safetensors"))
    torch.save(torch.randn(3, D, generator=g), tmp_path / "emb.pt")
    args = ["reconstruct", str(tmp_path / "emb.pt"), "--generator", str(sdxl_path), "--no-prior", "--samples", "1",
            "--steps", "2", "--height", "32", "--width", "32", "--device", "cpu", "--concepts", str(data)]
    runner = CliRunner()
    res = runner.invoke(app, args + ["--out", str(tmp_path / "a"), "--low-level-run", str(tmp_path / "ll")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, args + ["--out", str(tmp_path / "b"), "--low-level", str(tmp_path / "lat.safetensors")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "a" / "manifest.json").read_text())["images"]
    assert len(rows) == 3 and all(r["low_level"] is True and r["strength"] == 0.5 for r in rows)
    for r in rows:
        a = np.asarray(Image.open(tmp_path / "a" / r["file"]), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "b" / r["file"]), dtype=np.int16)
        assert np.abs(a - b).max() <= 1
    res = runner.invoke(app, args + ["--out", str(tmp_path / "c"), "--low-level", str(tmp_path / "lat.safetensors"),
                                     "--low-level-run", str(tmp_path / "ll")])
    assert res.exit_code != 0 and "pass one of them" in res.output
