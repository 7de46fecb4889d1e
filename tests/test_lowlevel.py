"""The low-level path end to end: closed-form EEG → VAE-latent regressor, ``eegvision lowlevel fit`` on a store with a
tiny random AutoencoderKL, the world VAE (resumable training, shipped with its sha256) and the world generator's
img2img."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from eegvision.generation.lowlevel import load_latent_regressor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ridge_by_hand(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Centred ridge: W = (Xcᵀ Xc + α I)⁻¹ Xcᵀ Yc, b = ȳ − x̄ W."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return w, my - mx @ w


def test_ridge_regressor_is_the_closed_form_and_round_trips(tmp_path):
    from eegvision.training.lowlevel_fit import fit_ridge_latents

    rng = np.random.default_rng(0)
    eeg = torch.from_numpy(rng.standard_normal((24, 3, 9)).astype(np.float32))
    lat = torch.from_numpy(rng.standard_normal((24, 2, 2, 3)).astype(np.float32))
    model, res = fit_ridge_latents(eeg, lat, np.arange(24) // 2, time_bin=2, alphas=[3.0], n_splits=3)
    # time bins of 2 samples: the 9th sample is dropped, 4 bins per channel, channel-major
    x = eeg.numpy()[..., :8].reshape(24, 3, 4, 2).mean(-1).reshape(24, 12).astype(np.float64)
    w, b = _ridge_by_hand(x, lat.numpy().reshape(24, -1).astype(np.float64), 3.0)
    np.testing.assert_allclose(model.weight.numpy(), w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.bias.numpy(), b, rtol=1e-4, atol=1e-5)
    new = torch.from_numpy(rng.standard_normal((5, 3, 9)).astype(np.float32))
    xn = new.numpy()[..., :8].reshape(5, 3, 4, 2).mean(-1).reshape(5, 12)
    want = (xn @ w + b).reshape(5, 2, 2, 3)
    np.testing.assert_allclose(model(new).detach().numpy(), want, rtol=1e-4, atol=1e-5)
    assert res.alpha == 3.0 and model.config["alpha"] == 3.0
    model.save_pretrained(tmp_path / "r")
    again = load_latent_regressor(tmp_path / "r")
    np.testing.assert_array_equal(again(new).detach().numpy(), model(new).detach().numpy())
    with pytest.raises(ValueError, match=r"Expected EEG of shape \(n, 3, 9\)"):
        model(torch.zeros(2, 3, 8))


def _tiny_vae_dir(path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 8), latent_channels=2,
                        norm_num_groups=4, layers_per_block=1, sample_size=16, scaling_factor=0.5)
    vae.save_pretrained(path)
    return vae.eval()


def test_lowlevel_fit_cli_from_a_store(quick_demo, tmp_path):
    """`eegvision lowlevel fit`: cached latents are the VAE's scaled posterior means of the store's training images;
    the saved ridge is the closed form on the repetition-averaged EEG with the recorded penalty; a refit reads the
    cache; predict_split_latents gives the regressor's output on the averaged test EEG."""
    from PIL import Image
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from eegvision.cli.main import app
    from eegvision.store.disk import open_store
    from eegvision.training.lowlevel_fit import predict_split_latents

    store_dir = quick_demo.out / "store"
    vae = _tiny_vae_dir(tmp_path / "vae")
    args = ["lowlevel", "fit", str(store_dir), "--vae", str(tmp_path / "vae"), "--out", str(tmp_path / "ll"),
            "--time-bin", "50", "--alphas", "10,1000", "--folds", "3", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["latent_shape"] == [2, 8, 8] and out["subject"] == "sub-01" and out["alpha"] in (10.0, 1000.0)
    store = open_store(store_dir)
    paths = store.images("training")
    cached = load_file(tmp_path / "ll" / "latents" / "training.safetensors")["latents"]
    assert cached.shape == (len(paths), 2, 8, 8)
    with Image.open(paths[3]) as im:   # the 4th training image, by hand: resize, [-1, 1], posterior mean x 0.5
        x = torch.from_numpy(np.asarray(im.convert("RGB").resize((16, 16), Image.BICUBIC), dtype=np.float32))
    with torch.no_grad():
        want = vae.encode((x.permute(2, 0, 1)[None] / 255) * 2 - 1).latent_dist.mean * 0.5
    torch.testing.assert_close(cached[3:4], want, rtol=1e-4, atol=1e-5)
    eeg = np.asarray(store.array("sub-01", "training"), dtype=np.float32).mean(1)
    feats = eeg[..., :250].reshape(len(eeg), eeg.shape[1], 5, 50).mean(-1).reshape(len(eeg), -1)
    w, b = _ridge_by_hand(feats.astype(np.float64), cached.reshape(len(eeg), -1).double().numpy(), out["alpha"])
    model = load_latent_regressor(tmp_path / "ll")
    np.testing.assert_allclose(model.weight.numpy(), w, rtol=2e-3, atol=1e-5)
    test_eeg = np.asarray(store.array("sub-01", "test"), dtype=np.float32).mean(1)
    tf = test_eeg[..., :250].reshape(len(test_eeg), test_eeg.shape[1], 5, 50).mean(-1).reshape(len(test_eeg), -1)
    pred = predict_split_latents(tmp_path / "ll")
    np.testing.assert_allclose(pred.reshape(len(tf), -1).numpy(), tf @ w + b, rtol=2e-3, atol=1e-4)
    record = json.loads((tmp_path / "ll" / "lowlevel.json").read_text())
    assert record["latents_cached"] is False and record["test"]["n_images"] == len(tf)
    res = CliRunner().invoke(app, args[:-3] + ["--json"])   # refit with the default folds: the cache is read
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ll" / "lowlevel.json").read_text())["latents_cached"] is True
    (tmp_path / "empty").mkdir()
    bad = CliRunner().invoke(app, ["lowlevel", "fit", str(store_dir), "--vae", str(tmp_path / "empty"), "--out",
                                   str(tmp_path / "x")])
    assert bad.exit_code != 0 and "No VAE in" in bad.output


def test_world_vae_training_resumes_exactly(tmp_path):
    from eegvision.sim.world.vae import train_world_vae, vae_config

    images = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cfg = vae_config(widths=(4, 8), latent_channels=2, norm_groups=2)
    straight = train_world_vae(images, steps=4, batch_size=3, seed=1, config=cfg)
    train_world_vae(images, steps=4, batch_size=3, seed=1, config=cfg, checkpoint_every=2,
                    checkpoint_dir=tmp_path)   # leaves the step-2 checkpoint
    assert json.loads((tmp_path / "vae_state.json").read_text())["step"] == 2
    resumed = train_world_vae(images, steps=4, batch_size=3, seed=1, config=cfg, checkpoint_dir=tmp_path,
                              resume=True)
    for k, v in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0)
    assert resumed.config.scaling_factor == straight.config.scaling_factor
    with pytest.raises(ValueError, match="other settings"):
        train_world_vae(images, steps=5, batch_size=3, seed=1, config=cfg, checkpoint_dir=tmp_path, resume=True)


def test_shipped_world_vae_is_listed_with_its_sha256():
    from eegvision.sim.world.assets import SHIPPED_DIR
    from eegvision.sim.world.vae import load_world_vae
    from eegvision.utils import sha256_file

    manifest = json.loads((SHIPPED_DIR / "world.json").read_text())
    for name in ("vae.safetensors", "vae.json"):
        assert manifest["files"][name]["sha256"] == sha256_file(SHIPPED_DIR / name)
    assert (SHIPPED_DIR / "vae.safetensors").stat().st_size < 4_000_000
    vae = load_world_vae(device="cpu")
    assert manifest["vae"]["latent_shape"] == [4, 8, 8]
    assert vae.config.scaling_factor == pytest.approx(manifest["vae"]["scaling_factor"])
    assert manifest["vae"]["quality"]["pixcorr"] > 0.7   # held-out reconstructions keep the layout and colours


def _alphas_cumprod_cosine(t: int, n: int = 1000) -> float:
    """ᾱ(t) of the squaredcos_cap_v2 schedule by hand: prod over i ≤ t of 1 − min(1 − f(i+1)/f(i), 0.999)."""
    f = lambda u: math.cos((u / n + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    return float(np.prod([1 - min(1 - f(i + 1) / f(i), 0.999) for i in range(t + 1)]))


def test_world_img2img_runs_the_tail_from_the_noised_init():
    from eegvision.sim.world.generator import WorldGenerator, build_unet, unet_config
    from eegvision.sim.world.img2img import generate_from_images, img2img_timesteps

    torch.manual_seed(0)
    cfg = unet_config(6, channels=(8, 8))
    gen = WorldGenerator(build_unet(cfg), cfg, device="cpu")
    calls = []
    predict = gen._predict
    gen._predict = lambda x, t, c: (calls.append((x.clone(), int(t))), predict(x, t, c))[1]
    emb = torch.randn(2, 6)
    init = torch.rand(2, 3, 32, 32) * 2 - 1
    out = generate_from_images(gen, emb, init, strength=0.3, steps=10, guidance_scale=1.0, seed=5)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    # the last 3 of 10 trailing DDIM timesteps (999, 899, ..., 99): 299, 199, 99
    assert [t for _, t in calls] == [299, 199, 99] == img2img_timesteps(10, 0.3, gen.sched_config).tolist()
    a = _alphas_cumprod_cosine(299)
    noise = torch.randn(init.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(calls[0][0], math.sqrt(a) * init + math.sqrt(1 - a) * noise, rtol=1e-4, atol=1e-4)
    again = generate_from_images(gen, emb, init, strength=0.3, steps=10, guidance_scale=1.0, seed=5)
    torch.testing.assert_close(again, out, rtol=0, atol=0)
    with pytest.raises(ValueError, match="at least one denoising step"):
        generate_from_images(gen, emb, init, strength=0.04, steps=10)
    with pytest.raises(ValueError, match="init_images"):
        generate_from_images(gen, emb, init[:1], strength=0.5, steps=10)
