"""The simulator: exact on-disk layouts, determinism, signal placement, ceiling ordering."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest

from eegvision.readers.channels import THINGS_EEG2_CHANNELS
from eegvision.sim import (
    ForwardModel,
    ForwardParams,
    bayes_ceiling,
    eeg_layout,
    get_preset,
    make_world,
    meg_layout,
    simulate,
    topk_from_scores,
)
from eegvision.sim.scene import LATENT_DIM
from eegvision.sim.writers import PREPROCESSED_TIMES, write_preprocessed_eeg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "tiny"
    return simulate(out, preset="tiny", seed=3)


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def test_preprocessed_layout(tiny):
    pr = tiny.preset
    for sub in ("sub-01", "sub-02"):
        for split, shape in (("training", (pr.n_train, pr.train_reps, 63, 250)),
                             ("test", (pr.n_test_concepts, pr.test_reps, 63, 250))):
            d = _load(tiny.root / "Preprocessed_data_250Hz" / sub / f"preprocessed_eeg_{split}.npy")
            assert list(d) == ["preprocessed_eeg_data", "ch_names", "times"]
            x = d["preprocessed_eeg_data"]
            assert type(x) is np.ndarray and x.dtype == np.float64 and x.shape == shape
            assert np.isfinite(x).all() and 0.5 < x.std() < 5
            assert d["ch_names"] == list(THINGS_EEG2_CHANNELS) and isinstance(d["ch_names"], list)
            assert len(d["times"]) == 300
            np.testing.assert_allclose(d["times"][[0, 50, 299]], [-0.2, 0.0, 0.996])


#: sha256 (first 16 hex digits) of sub-01's files from ``simulate(out, preset="tiny", seed=3)``, written by the code
#: before simulator families existed (commit 99a91d7; numpy 2.4, torch 2.14): the default family must not move a
#: bit. Feature caches are compared by their tensors (``torch.save`` embeds a random record id).
BEFORE_FAMILIES = {
    "Preprocessed_data_250Hz/sub-01/preprocessed_eeg_training.npy": "2c9dc292e7293998",
    "Preprocessed_data_250Hz/sub-01/preprocessed_eeg_test.npy": "5f256f27dc1a20f8",
    "Raw_data/sub-01/ses-01/raw_eeg_training.npy": "e174ad1d0ccaea3b",
    # raw noise is mixed on one BLAS thread since 0.1.x (same bytes for any thread count); this file's value is
    # the one OMP_NUM_THREADS=1 gave before that change (the 2-thread run differed in 13 samples by 1e-20)
    "Raw_data/sub-01/ses-02/raw_eeg_test.npy": "3b3c6006a1b9e690",
    "captions_training.tsv": "2a8b7cd3cad53484",
    "captions_test.tsv": "1bb2b553efc80bf1",
    "simulation_latents.npz": "1b463e37bb989692",
    "sim_features_train.pt": "fd82abaf7abab10e",
    "sim_features_test.pt": "74fb6cc8bdc25a02",
}


def test_default_family_is_byte_identical_to_before_families(tiny):
    import hashlib

    import torch

    got = {}
    for rel in BEFORE_FAMILIES:
        if rel.endswith(".pt"):
            f = torch.load(tiny.root / rel, weights_only=True)
            data = f["img_features"].numpy().tobytes() + f["text_features"].numpy().tobytes()
        else:
            data = (tiny.root / rel).read_bytes()
        got[rel] = hashlib.sha256(data).hexdigest()[:16]
    assert got == BEFORE_FAMILIES
    meta = json.loads((tiny.root / "simulation.json").read_text())
    assert tiny.family == "eegvision" and meta["family"]["name"] == "eegvision"
    assert meta["ground_truth"]["known_model"]["exact_bayes"] is False
    assert meta["ground_truth"]["known_model"]["top1"] == meta["ground_truth"]["bayes_ceiling"]["top1"]
    assert 0.0 <= meta["ground_truth"]["whitened_ridge"]["top1"] <= 1.0


def test_streamed_pickle_is_byte_identical_to_pickle_dump(tmp_path):
    a = np.random.default_rng(0).standard_normal((5, 3, 63, 40))     # > 64 KiB: the streamed path
    p = write_preprocessed_eeg(tmp_path / "x.npy", a.shape, (a[i:i + 2] for i in range(0, 5, 2)),
                               THINGS_EEG2_CHANNELS)
    ref = pickle.dumps({"preprocessed_eeg_data": a, "ch_names": list(THINGS_EEG2_CHANNELS),
                        "times": PREPROCESSED_TIMES}, protocol=4)
    assert p.read_bytes() == ref


def test_raw_layout_and_events(tiny):
    pr = tiny.preset
    n_train_seen = np.zeros(pr.n_train, int)
    n_test_seen = np.zeros(pr.n_test_concepts, int)
    for ses in range(1, pr.n_sessions + 1):
        for split in ("training", "test"):
            d = _load(tiny.root / "Raw_data" / "sub-01" / f"ses-{ses:02d}" / f"raw_eeg_{split}.npy")
            assert list(d) == ["raw_eeg_data", "ch_names", "ch_types", "sfreq"]
            assert d["sfreq"] == 1000.0 and d["ch_names"][-1] == "stim" and d["ch_types"][-1] == "stim"
            assert sorted(d["ch_names"][:-1]) == sorted(THINGS_EEG2_CHANNELS)
            x = d["raw_eeg_data"]
            assert x.dtype == np.float64 and x.shape[0] == 64
            stim = x[-1]
            onsets = np.flatnonzero(np.diff(np.r_[0.0, stim]) > 0)
            codes = stim[onsets].astype(int)
            trials = codes[codes != 99999]
            assert (codes == 99999).sum() >= 1
            assert trials.min() >= 1
            counts = np.bincount(trials - 1, minlength=len(n_train_seen if split == "training" else n_test_seen))
            if split == "training":
                n_train_seen += counts
            else:
                n_test_seen += counts
            # every epoch -0.2 .. 1.0 s fits in the recording
            assert onsets.min() >= 200 and onsets.max() + 1000 <= x.shape[1]
            assert 1e-6 < x[:-1].std() < 1e-3          # volts
    assert (n_train_seen == pr.train_reps).all() and (n_test_seen == pr.test_reps).all()


def test_images_captions_features(tiny):
    import torch

    pr, world = tiny.preset, tiny.world
    for split, n_c, n_i in (("training", pr.n_train_concepts, pr.n_train_images), ("test", pr.n_test_concepts, 1)):
        root = tiny.root / f"{split}_images"
        folders = sorted(p for p in root.iterdir())
        assert len(folders) == n_c
        files = [f for d in folders for f in sorted(d.iterdir())]
        assert len(files) == n_c * n_i
        # sorted order == condition order: condition c <-> concept c // n_img
        for c in (0, len(files) - 1):
            assert folders[c // n_i].name.split("_", 1)[1] == world.images(split)[c].concept.name
        rows = (tiny.root / f"captions_{split}.tsv").read_text().splitlines()
        assert len(rows) == 1 + n_c * n_i and rows[1].split("\t")[3] == str(files[0].relative_to(tiny.root))
        spec = world.images(split)[0]
        assert spec.concept.colour in rows[1] and spec.concept.shape in rows[1]
    from PIL import Image

    img = np.asarray(Image.open(files[-1]))
    assert img.shape == (64, 64, 3)
    # the JPEG on disk is the render of the last test image
    ref = world.render(world.images("test")[-1])
    assert np.abs(img.astype(int) - ref.astype(int)).mean() < 6      # JPEG of the same render
    f = torch.load(tiny.root / "sim_features_train.pt", weights_only=True)
    assert set(f) == {"img_features", "text_features"}
    assert f["img_features"].shape == (pr.n_train, pr.feature_dim)
    assert f["text_features"].shape == (pr.n_train_concepts, pr.feature_dim)
    np.testing.assert_allclose(f["img_features"].norm(dim=1).numpy(), 1.0, atol=1e-5)
    meta = json.loads((tiny.root / "simulation.json").read_text())
    assert meta["seed"] == 3 and meta["ground_truth"]["bayes_ceiling"]["top1"] == tiny.ceiling["top1"]


def test_rendered_colour_matches_attribute():
    from eegvision.sim.scene import BACKGROUNDS, COLOURS

    world = make_world(40, 5, 1, 1, seed=1)
    hits = 0
    for spec in world.train_images:
        img = world.render(spec).reshape(-1, 3) / 255.0
        bg = np.asarray(BACKGROUNDS[spec.concept.background])
        obj = img[np.abs(img - bg).sum(1) > 0.3]
        obj = obj[obj.sum(1) >= np.quantile(obj.sum(1), 0.7)]     # untextured (brightest) object pixels
        names = list(COLOURS)
        dist = [np.abs(obj.mean(0) - np.asarray(COLOURS[n])).sum() for n in names]
        hits += names[int(np.argmin(dist))] == spec.concept.colour
    assert hits >= 36


def test_world_is_zero_shot_and_deterministic():
    a, b, c = make_world(30, 10, 2, 1, seed=5), make_world(30, 10, 2, 1, seed=5), make_world(30, 10, 2, 1, seed=6)
    assert not {x.name for x in a.train_concepts} & {x.name for x in a.test_concepts}
    assert [x.name for x in a.train_concepts] == sorted(x.name for x in a.train_concepts)
    np.testing.assert_array_equal(a.latents("training"), b.latents("training"))
    np.testing.assert_array_equal(a.render(a.test_images[0]), b.render(b.test_images[0]))
    assert [x.name for x in a.train_concepts] != [x.name for x in c.train_concepts]
    with pytest.raises(ValueError, match="2304 concepts"):
        make_world(2300, 10)


def test_simulation_deterministic(tmp_path, tiny):
    small = replace(get_preset("tiny"), n_subjects=1)
    a = simulate(tmp_path / "a", small, seed=3, write_raw=False, images=False)
    b = simulate(tmp_path / "b", small, seed=4, write_raw=False, images=False)
    rel = "Preprocessed_data_250Hz/sub-01/preprocessed_eeg_test.npy"
    assert (a.root / rel).read_bytes() == (tiny.root / rel).read_bytes()
    assert not np.allclose(_load(a.root / rel)["preprocessed_eeg_data"], _load(b.root / rel)["preprocessed_eeg_data"])
    with pytest.raises(FileExistsError, match="not empty"):
        simulate(tmp_path / "a", small, seed=3)
    with pytest.raises(ValueError, match=r"Preset 'demmo' is not in the presets of simulator family eegvision "
                                         r"\(available: tiny, demo, things, bench\)\. Did you mean demo\?"):
        simulate(tmp_path / "c", "demmo")


def test_signal_where_the_model_put_it():
    """Evoked power of the averaged epochs peaks at the components' latencies over posterior channels."""
    model = ForwardModel(eeg_layout(), ForwardParams(common=2.0), seed=0)
    subj = model.subject(0)
    z = make_world(50, 5, 4, 1, seed=0).latents("training")
    x = subj.trials(np.repeat(z, 10, axis=0), np.random.default_rng(0)).mean(0)     # grand average
    power_t = (x**2).mean(0)
    peak_ms = 1000 * np.argmax(power_t) / 250
    assert any(abs(peak_ms - 1000 * (c.latency + subj.latency)) < 30 for c in model.components)
    early = (x[:, 20:60] ** 2).mean(1)                                     # 80-240 ms
    names = list(THINGS_EEG2_CHANNELS)
    post = [names.index(n) for n in ("O1", "Oz", "O2", "PO7", "PO8", "POz")]
    front = [names.index(n) for n in ("Fp1", "Fp2", "AFz", "F7", "F8")]
    assert early[post].mean() > 10 * early[front].mean()


def test_noise_covariance_matches_samples():
    """The rFFT-domain covariance the Bayes decoder uses equals the empirical one of generated noise."""
    model = ForwardModel(eeg_layout(), seed=0)
    noise = model.noise(np.random.default_rng(1), 2000, 250, 250.0)
    spec = np.fft.rfft(noise, axis=-1)
    cov = model.noise_covariance(250, 250.0)
    for f in (3, 10, 40):
        emp = np.einsum("na,nb->ab", spec[:, :, f].real, spec[:, :, f].real) / len(spec)
        rel = np.linalg.norm(emp - cov[f]) / np.linalg.norm(cov[f])
        assert rel < 0.15, (f, rel)
    assert abs(noise.var() - 1.0) < 0.15          # bg 0.65 + alpha 0.25 + white 0.10 in 0-125 Hz


def test_topk_from_scores_brute_force():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((30, 30))
    ranks = [int((s[i] > s[i, i]).sum()) for i in range(30)]
    got = topk_from_scores(s)
    assert got["top1"] == np.mean([r < 1 for r in ranks]) and got["top5"] == np.mean([r < 5 for r in ranks])


def test_ceiling_beats_ridge_beats_chance(tmp_path):
    pr = replace(get_preset("tiny"), n_subjects=1, n_train_concepts=120, n_test_concepts=40, test_reps=10,
                 n_sessions=2, n_train_images=2)
    # a weaker, additive (ungated), more linear code than the default, so that ridge has something to learn
    params = ForwardParams(signal=0.8, nonlinearity=0.3, gated_components=[])
    res = simulate(tmp_path / "s", pr, seed=0, write_raw=False, images=False, params=params)
    chance = 1 / 40
    assert res.ceiling["top1"] > res.ridge["top1"] > 2 * chance
    assert res.ceiling["top1"] >= 0.8


@pytest.mark.slow  # several seconds; the default suite keeps the cheaper checks of the same module
def test_gain_modulation_hides_the_code_from_ridge_not_from_the_bayes_decoder(tmp_path):
    """Same data size and noise; gating the later components takes ridge to near chance, not the ceiling."""
    pr = replace(get_preset("tiny"), n_subjects=1, n_train_concepts=200, n_test_concepts=40, test_reps=10,
                 n_sessions=2, n_train_images=2)
    out = {}
    for name, gated in (("additive", []), ("gated", ["N1", "P2", "P3"])):
        params = ForwardParams(gated_components=gated)
        out[name] = simulate(tmp_path / name, pr, seed=0, write_raw=False, images=False, params=params)
    assert out["gated"].ceiling["top1"] >= 0.95 and out["additive"].ceiling["top1"] >= 0.95
    assert out["additive"].ridge["top1"] >= 0.3
    assert out["gated"].ridge["top1"] <= out["additive"].ridge["top1"] / 2


def test_gate_is_a_signed_gain_on_the_later_components_only():
    model = ForwardModel(eeg_layout(), ForwardParams(common=0.0), seed=0)
    z = np.zeros((2, LATENT_DIM))
    z[:, 3] = 1.0
    z[0, 0], z[1, 0] = 0.5, -0.5                      # opposite gates, same everything else but the gate axis
    flat = ForwardModel(eeg_layout(), ForwardParams(common=0.0, gated_components=[]), seed=0)
    a, b = model.amplitudes(z), flat.amplitudes(z)
    early = model.source_component == 0
    np.testing.assert_allclose(a[:, early], b[:, early])
    g = np.tanh(3.0 * 0.5)
    np.testing.assert_allclose(a[0, ~early], g * b[0, ~early])
    np.testing.assert_allclose(a[1, ~early], -g * b[1, ~early])
    with pytest.raises(ValueError, match="gated_components"):
        ForwardModel(eeg_layout(), ForwardParams(gated_components=["N2"]), seed=0)


@pytest.mark.slow  # several seconds; the default suite keeps the cheaper checks of the same module
def test_imagination_lower_ceiling():
    world = make_world(10, 100, 1, 1, seed=0)
    z = world.latents("test")
    out = {}
    for paradigm in ("viewing", "imagination"):
        subj = ForwardModel(eeg_layout(), ForwardParams(paradigm=paradigm), seed=0).subject(0)
        rng = np.random.default_rng(2)
        x = np.mean([subj.trials(z, rng) for _ in range(10)], axis=0)
        out[paradigm] = bayes_ceiling(subj, x, z, 10)["top1"]
    assert out["viewing"] > out["imagination"] + 0.2
    with pytest.raises(ValueError, match="paradigm"):
        ForwardModel(eeg_layout(), ForwardParams(paradigm="dreaming"))


def test_meg_shaped_variant():
    lay = meg_layout()
    model = ForwardModel(lay, seed=0)
    x = model.subject(1).trials(make_world(5, 3, 1, 1).latents("test"), np.random.default_rng(0))
    assert x.shape == (3, 271, 201) and lay.sfreq == 200.0
    np.testing.assert_allclose(np.linalg.norm(lay.positions, axis=1), 1.0)


def test_meg_epochs_writer_roundtrip(tmp_path):
    import mne

    from eegvision.sim.writers import write_meg_epochs

    lay = meg_layout()
    x = ForwardModel(lay, seed=0).subject(0).trials(make_world(5, 4, 1, 1).latents("test"), np.random.default_rng(0))
    events = np.c_[np.arange(4) * 300, np.zeros(4, int), [1, 2, 999999, 2]]
    p = write_meg_epochs(tmp_path / "preprocessed_P1-epo.fif", x * 1e-12, events, lay.ch_names, lay.sfreq, 0.0)
    ep = mne.read_epochs(p, verbose="error")
    assert ep.get_data().shape == (4, 271, 201) and list(ep.events[:, 2]) == [1, 2, 999999, 2]
    np.testing.assert_allclose(ep.get_data(), x * 1e-12, rtol=1e-5, atol=1e-20)
