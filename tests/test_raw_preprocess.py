"""THINGS-EEG2 raw preprocessing (eegvision.preprocess.raw_sessions, .raw_things_eeg2, .mvnn).

The fixture writes raw files in the exact THINGS-EEG2 layout (``sub-XX/ses-0S/raw_eeg_*.npy``,
pickled dicts at 1000 Hz with a ``stim`` channel). Its background noise has the spatial structure
of a real BioSemi recording (tests/data/eeg_meg_fixtures), resampled to 1000 Hz and mapped onto
the THINGS channel names it shares; known ERPs are added per condition, plus DC offsets, target
events (99999) and an extra channel that must be dropped.
"""

from __future__ import annotations

import pickle
import warnings

import mne
import numpy as np
import pytest
import scipy.linalg
from scipy.signal import lfilter

from eegvision.preprocess.mvnn import inverse_sqrt, ledoit_wolf_covariances, mvnn_covariance, whiten
from eegvision.preprocess.raw_sessions import (
    TARGET_CODE,
    epoch_session,
    find_raw_files,
    load_raw_recording,
)
from eegvision.preprocess.raw_things_eeg2 import (
    merge_sessions,
    preprocess_things_eeg2,
    write_eeg_pickle,
)
from eegvision.readers.channels import THINGS_EEG2_CHANNELS

SF = 1000
N_TRAIN, N_TEST = 6, 3  # conditions
REPS = {"training": 2, "test": 5}  # per session (real data: 2 and 20)
SOA = 1.25  # s
CH = list(THINGS_EEG2_CHANNELS)


def _erp_waveform(t: np.ndarray) -> np.ndarray:
    return np.exp(-((t - 0.17) / 0.04) ** 2) - 0.6 * np.exp(-((t - 0.35) / 0.08) ** 2)


def _background_mixing(data_dir) -> np.ndarray:
    """63 x 63 spatial mixing from a real BioSemi recording (its 59 THINGS channels; 4 independent)."""
    raw = mne.io.read_raw_bdf(data_dir / "eeg_meg_fixtures" / "mne_biosemi64_2048Hz_1s.bdf", preload=True,
                              verbose=False)
    raw.resample(SF, verbose=False)
    shared = [c for c in CH if c in raw.ch_names]
    x = raw.get_data(picks=shared) * 1e6  # µV
    x = x - x.mean(axis=1, keepdims=True)
    c = np.cov(x)
    w, v = np.linalg.eigh(c)
    sqrt_c = (v * np.sqrt(np.clip(w, w.max() * 1e-4, None))) @ v.T
    sqrt_c /= np.sqrt(np.mean(np.diag(c)))  # unit average variance
    mix = np.eye(len(CH))
    idx = [CH.index(s) for s in shared]
    mix[np.ix_(idx, idx)] = sqrt_c
    return mix


def _make_recording(rng, mix, patterns, partition, extra_scale=1.0):
    """One raw_eeg_{partition}.npy dict: events in random order, targets, ERPs, correlated noise."""
    n_cond = N_TRAIN if partition == "training" else N_TEST
    codes = np.repeat(np.arange(1, n_cond + 1), REPS[partition])
    codes = np.concatenate([codes, [TARGET_CODE, TARGET_CODE]])
    rng.shuffle(codes)
    n = int((len(codes) * SOA + 2.0) * SF)
    white = rng.standard_normal((len(CH), n))
    noise = mix @ lfilter([1.0], [1.0, -0.9], white, axis=1) * 4.0 * extra_scale  # spatially correlated, 1/f-ish
    dc = rng.normal(0, 40, (len(CH), 1))  # electrode offsets (baseline removes them)
    drift = np.cumsum(rng.normal(0, 0.05, (len(CH), n)), axis=1)
    eeg = noise + dc + drift
    stim = np.zeros(n)
    onsets = (np.arange(len(codes)) * SOA * SF + 0.5 * SF).astype(int)
    t = np.arange(int(0.8 * SF)) / SF
    wave = _erp_waveform(t)
    for code, on in zip(codes, onsets):
        stim[on : on + 5] = code
        if code != TARGET_CODE:
            eeg[:, on : on + len(t)] += 6.0 * np.outer(patterns[partition][code - 1], wave)
        else:
            eeg[:, on : on + len(t)] += 50.0  # targets are loud: they must not leak into any condition
    order = rng.permutation(len(CH) + 1)  # file channel order differs from the THINGS order
    names = CH + ["Fz"]
    data = np.vstack([eeg, rng.standard_normal((1, n))])[order]
    names = [names[i] for i in order]
    return {
        "raw_eeg_data": np.vstack([data, stim[None]]),
        "ch_names": names + ["stim"],
        "ch_types": ["eeg"] * len(names) + ["stim"],
        "sfreq": SF,
    }


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("things_eeg2") / "Raw_data"
    rng = np.random.default_rng(7)
    mix = _background_mixing(data_dir)
    patterns = {"training": rng.standard_normal((N_TRAIN, len(CH))),
                "test": rng.standard_normal((N_TEST, len(CH)))}
    for ses in (1, 2):
        folder = root / "sub-01" / f"ses-{ses:02d}"
        folder.mkdir(parents=True)
        for part in ("training", "test"):
            rec = _make_recording(rng, mix, patterns, part, extra_scale=1.0 if part == "training" else 1.8)
            with open(folder / f"raw_eeg_{part}.npy", "wb") as f:
                pickle.dump(rec, f, protocol=4)
    return root


@pytest.fixture(scope="module")
def patterns():
    """The ERP spatial patterns the fixture injected (same generator draws as raw_root)."""
    rng = np.random.default_rng(7)
    return {"training": rng.standard_normal((N_TRAIN, len(CH))), "test": rng.standard_normal((N_TEST, len(CH)))}


@pytest.fixture(scope="module")
def sessions(raw_root):
    """Per session and partition, the data before MVNN (our pipeline) and the raw dict."""
    out = {}
    for ses in (1, 2):
        for part in ("training", "test"):
            rec = load_raw_recording(raw_root / "sub-01" / f"ses-{ses:02d}" / f"raw_eeg_{part}.npy")
            out[ses, part] = (rec, epoch_session(rec, session=ses, partition=part))
    return out


@pytest.fixture(scope="module")
def preprocessed(raw_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep")
    preprocess_things_eeg2(raw_root.parent, out)
    return {part: pickle.load(open(out / "sub-01" / f"preprocessed_eeg_{part}.npy", "rb"))
            for part in ("training", "test")}


# ------------------------------------------------------------------------------------------------


def test_output_layout_shapes_and_times(preprocessed):
    train, test = preprocessed["training"], preprocessed["test"]
    assert set(train) == {"preprocessed_eeg_data", "ch_names", "times"}
    assert train["preprocessed_eeg_data"].shape == (N_TRAIN, 2 * REPS["training"], 63, 250)
    assert test["preprocessed_eeg_data"].shape == (N_TEST, 2 * REPS["test"], 63, 250)
    assert train["preprocessed_eeg_data"].dtype == np.float64
    assert train["ch_names"] == CH
    times = np.asarray(train["times"])
    assert times.shape == (300,)  # like the real files: the baseline's 50 samples are listed too
    np.testing.assert_allclose(times[[0, 50, -1]], [-0.2, 0.0, 0.996], atol=1e-9)


def test_epoching_matches_plain_mne_reference(sessions):
    """Lazy chunked epoching == the reference's preload-everything MNE pipeline, per condition."""
    rec, ses = sessions[1, "training"]
    raw = mne.io.RawArray(np.array(rec["raw_eeg_data"]), mne.create_info(rec["ch_names"], SF, rec["ch_types"]),
                          verbose=False)
    events = mne.find_events(raw, stim_channel="stim", verbose=False)
    raw.pick(CH)
    raw.reorder_channels(CH)
    events = events[events[:, 2] != TARGET_CODE]
    ep = mne.Epochs(raw, events, tmin=-0.2, tmax=1.0, baseline=(None, 0), preload=True, verbose=False)
    ep.resample(250, verbose=False)
    ref = ep.get_data()[..., 50:]
    np.testing.assert_array_equal(ses.codes, np.arange(1, N_TRAIN + 1))
    assert ses.data.shape == (N_TRAIN, 2, 63, 250)
    for i, code in enumerate(ses.codes):
        mine = ses.data[i]
        theirs = ref[events[:, 2] == code]
        # same epochs, in some repetition order
        d = np.abs(mine[:, None] - theirs[None]).max(axis=(2, 3))
        assert np.all(d.min(axis=1) < 1e-9)
        assert sorted(d.argmin(axis=1)) == list(range(len(theirs)))


def test_targets_dropped_and_baseline_applied(sessions):
    rec, _ = sessions[1, "test"]
    full = epoch_session(rec, session=1, partition="test")
    assert TARGET_CODE not in full.codes
    assert full.data.shape[:2] == (N_TEST, REPS["test"])
    # A target adds +50 µV to every channel after its onset: no kept epoch looks like that.
    assert np.abs(full.data.mean(axis=(2, 3))).max() < 20
    # Baseline: the pre-stimulus mean is ~0 despite electrode offsets of ~40 µV and drifts.
    whole = epoch_session(rec, session=1, partition="test", crop=False)
    assert whole.crop_start == 50 and whole.data.shape[-1] == 300 and len(whole.times) == 300
    np.testing.assert_array_equal(whole.data[..., 50:], full.data)  # the crop is the only difference
    pre = whole.data[..., :50].mean(axis=-1)
    assert np.abs(pre).max() < 0.15 * whole.data.std()  # FFT resampling leaves a small edge ripple
    eeg_rows = [rec["ch_names"].index(c) for c in CH]
    assert np.abs(np.asarray(rec["raw_eeg_data"][eeg_rows]).mean(axis=1)).mean() > 20  # offsets were there


def _reference_mvnn(train: np.ndarray, test: np.ndarray, use: str) -> np.ndarray:
    """Brute force: one scikit-learn call per epoch, scipy's fractional power (the reference's tools)."""
    from sklearn.covariance import ledoit_wolf
    from sklearn.preprocessing import StandardScaler

    def cov(x):  # sklearn.discriminant_analysis._cov(x, "auto") with public pieces
        sc = StandardScaler().fit(x)
        s = ledoit_wolf(sc.transform(x))[0]
        return sc.scale_[:, None] * s * sc.scale_[None, :]

    def part(d):
        return np.mean([np.mean([cov(d[c, r].T) for r in range(d.shape[1])], axis=0) for c in range(d.shape[0])],
                       axis=0)

    sigma = part(train) if use == "train" else (part(train) + part(test)) / 2
    return np.real(scipy.linalg.fractional_matrix_power(sigma, -0.5))


def test_ledoit_wolf_batch_equals_sklearn():
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 120, 9)) * rng.uniform(0.1, 50, 9) + rng.normal(0, 5, (4, 1, 9))
    x[..., 1] += 0.8 * x[..., 0]
    got = ledoit_wolf_covariances(x, standardize=False)
    for i in range(4):
        np.testing.assert_allclose(got[i], ledoit_wolf(x[i])[0], rtol=1e-10, atol=1e-12)
    try:  # the reference's private estimator, when this scikit-learn still has it
        from sklearn.discriminant_analysis import _cov
    except ImportError:  # pragma: no cover
        return
    got = ledoit_wolf_covariances(x)
    for i in range(4):
        np.testing.assert_allclose(got[i], _cov(x[i], shrinkage="auto"), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("use", ["train", "both"])
def test_mvnn_matches_brute_force_reference(sessions, use):
    train, test = sessions[1, "training"][1].data, sessions[1, "test"][1].data
    w = inverse_sqrt(mvnn_covariance({"training": train, "test": test}, use=use))
    w_ref = _reference_mvnn(train, test, use)
    np.testing.assert_allclose(w, w_ref, rtol=1e-6, atol=1e-9 * np.abs(w_ref).max())
    np.testing.assert_allclose(w, w.T, atol=1e-12)
    # whitening == the reference's (time x chan) @ sigma^-1/2, epoch by epoch
    got = whiten(np.array(test[:2]), w)
    ref = np.einsum("crtj,jk->crkt", test[:2].transpose(0, 1, 3, 2), w_ref)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8 * np.abs(ref).max())


def test_whitened_training_noise_covariance_is_identity(sessions):
    train, test = sessions[2, "training"][1].data, sessions[2, "test"][1].data
    w = inverse_sqrt(mvnn_covariance({"training": train, "test": test}))
    white = whiten(np.array(train), w)

    def mean_cov(d):
        x = d.reshape(-1, 63, d.shape[-1])
        x = x - x.mean(axis=-1, keepdims=True)
        return np.einsum("bct,bdt->cd", x, x) / (x.shape[0] * x.shape[-1])

    before, after = mean_cov(np.asarray(train)), mean_cov(white)

    def mean_abs_corr(m):
        d = np.sqrt(np.diag(m))
        return np.abs((m / np.outer(d, d))[~np.eye(63, dtype=bool)]).mean()

    assert np.linalg.cond(before) > 1000 and mean_abs_corr(before) > 0.2  # BioSemi-like correlated noise
    assert mean_abs_corr(after) < 0.03
    eig = np.linalg.eigvalsh(after)
    # ~identity: Ledoit-Wolf shrinks each epoch's covariance towards its diagonal, so the smallest
    # noise directions are slightly under-whitened (eigenvalues a little below 1), never above.
    assert 0.3 < eig[0] and eig[-1] < 1.1 and np.linalg.cond(after) < 3


def test_train_and_both_differ_and_seed_determinism(raw_root, preprocessed, tmp_path):
    same = tmp_path / "same"
    preprocess_things_eeg2(raw_root, same, subjects=["sub-01"])
    again = pickle.load(open(same / "sub-01" / "preprocessed_eeg_training.npy", "rb"))
    np.testing.assert_array_equal(again["preprocessed_eeg_data"], preprocessed["training"]["preprocessed_eeg_data"])

    other = tmp_path / "seed"
    preprocess_things_eeg2(raw_root, other, seed=1)
    a = preprocessed["training"]["preprocessed_eeg_data"]
    b = pickle.load(open(other / "sub-01" / "preprocessed_eeg_training.npy", "rb"))["preprocessed_eeg_data"]
    assert not np.array_equal(a, b)  # another repetition order ...
    np.testing.assert_allclose(np.sort(a, axis=1), np.sort(b, axis=1))  # ... of the very same epochs

    both = tmp_path / "both"
    preprocess_things_eeg2(raw_root, both, mvnn_covariance="both")
    c = pickle.load(open(both / "sub-01" / "preprocessed_eeg_training.npy", "rb"))["preprocessed_eeg_data"]
    # the fixture's test recordings are noisier, so their covariance changes the whitening
    assert np.abs(np.sort(c, axis=1) - np.sort(a, axis=1)).max() > 0.05 * np.abs(a).max()


def test_erp_survives_whitening(preprocessed, patterns):
    t = np.arange(250) / 250
    wave = _erp_waveform(t)
    for part, n in (("training", N_TRAIN), ("test", N_TEST)):
        data = preprocessed[part]["preprocessed_eeg_data"]
        for c in range(n):
            evoked = data[c].mean(axis=0)  # (63, 250)
            # whitening mixes channels (evoked = W a_c s(t) + noise): its leading time course is s(t)
            u, s, vt = np.linalg.svd(evoked - evoked.mean(axis=1, keepdims=True), full_matrices=False)
            r = abs(np.corrcoef(vt[0], wave)[0, 1])
            assert r > 0.9, (part, c, r)
    # and conditions stay distinguishable: nearest class mean (leave one repetition out)
    data = preprocessed["test"]["preprocessed_eeg_data"]
    hits = 0
    for c in range(N_TEST):
        for r in range(data.shape[1]):
            means = [np.delete(data[k], r, axis=0).mean(0) if k == c else data[k].mean(0) for k in range(N_TEST)]
            d = [np.linalg.norm(data[c, r] - m) for m in means]
            hits += int(np.argmin(d) == c)
    assert hits / (N_TEST * data.shape[1]) > 0.9


def test_merge_sessions_like_things_eeg2():
    """4 sessions; each training condition in 2 of them with 2 reps; test in all with 3 reps."""
    rng = np.random.default_rng(0)
    n_cond = 10
    parts_train, parts_test = [], []
    where = {c: sorted(rng.choice(4, 2, replace=False).tolist()) for c in range(1, n_cond + 1)}
    for s in range(4):
        codes = np.array([c for c in range(1, n_cond + 1) if s in where[c]])
        vals = s * 1000 + codes[:, None] * 10 + np.arange(2)[None]  # unique id per epoch
        parts_train.append((codes, np.broadcast_to(vals[..., None, None], (*vals.shape, 2, 3)).astype(float)))
        tcodes = np.arange(1, 4)
        tvals = s * 1000 + tcodes[:, None] * 10 + np.arange(3)[None]
        parts_test.append((tcodes, np.broadcast_to(tvals[..., None, None], (*tvals.shape, 2, 3)).astype(float)))
    codes, merged = merge_sessions(parts_train, seed=3, chunk=4)
    np.testing.assert_array_equal(codes, np.arange(1, n_cond + 1))
    assert merged.shape == (n_cond, 4, 2, 3)
    for i, c in enumerate(codes):
        expected = sorted(s * 1000 + c * 10 + r for s in where[c] for r in range(2))
        assert sorted(merged[i, :, 0, 0].tolist()) == expected
    # the shuffle is independent per condition (not one permutation for all), and chunking-free
    sessions_of_rep0 = merged[:, 0, 0, 0] // 1000
    _, merged_b = merge_sessions(parts_train, seed=3, chunk=64)
    np.testing.assert_array_equal(merged, merged_b)
    tcodes, tmerged = merge_sessions(parts_test, seed=3, partition="test")
    assert tmerged.shape == (3, 12, 2, 3)
    for i, c in enumerate(tcodes):
        assert sorted(tmerged[i, :, 0, 0].tolist()) == sorted(s * 1000 + c * 10 + r for s in range(4) for r in range(3))
    assert len({tuple((tmerged[i, :, 0, 0] // 1000).tolist()) for i in range(3)}) > 1
    assert sessions_of_rep0.size == n_cond
    # sessions left out: unequal totals -> smallest total kept, with a warning
    with pytest.warns(UserWarning, match="unequal repetition totals"):
        _, partial = merge_sessions(parts_train[:3], seed=3)
    assert partial.shape[1] == 2


def test_write_eeg_pickle_is_byte_identical_to_pickle_dump(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((7, 4, 63, 25))  # 353 KB: streamed path
    times = np.linspace(-0.2, 0.996, 300)
    obj = {"preprocessed_eeg_data": data, "ch_names": CH, "times": times}
    write_eeg_pickle(tmp_path / "a.npy", data, CH, times)
    assert (tmp_path / "a.npy").read_bytes() == pickle.dumps(obj, protocol=4)
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float64, shape=data.shape)
    mm[:] = data
    write_eeg_pickle(tmp_path / "b.npy", mm, CH, times)
    assert (tmp_path / "b.npy").read_bytes() == pickle.dumps(obj, protocol=4)
    small = data[:1, :1, :2]  # small arrays take pickle.dump itself
    write_eeg_pickle(tmp_path / "c.npy", small, CH, times)
    assert (tmp_path / "c.npy").read_bytes() == pickle.dumps(
        {"preprocessed_eeg_data": small, "ch_names": CH, "times": times}, protocol=4)
    # and eegvision's safe reader memory-maps the streamed file in place
    from eegvision.readers.safe_pickle import parse_data_pickle

    ref = parse_data_pickle(tmp_path / "a.npy")["preprocessed_eeg_data"]
    np.testing.assert_array_equal(ref.memmap(), data)


def test_store_output_with_things_names(raw_root, preprocessed, tmp_path):
    from eegvision.store.disk import open_store

    store = open_store(preprocess_things_eeg2(raw_root, tmp_path / "store", to_store=True, dtype="float32"))
    assert store.dataset == "things-eeg2" and store.subjects == ["sub-01"] and store.ch_names == CH
    assert store.sfreq == 250 and len(store.times) == 250 and store.times[0] == 0.0
    for part in ("training", "test"):
        np.testing.assert_allclose(store.array("sub-01", part), preprocessed[part]["preprocessed_eeg_data"],
                                   rtol=1e-6, atol=1e-5)
    meta = store.metadata("sub-01", "test")
    assert meta["concept"].iloc[0] == "aircraft_carrier" and meta["event_code"].tolist()[::10] == [1, 2, 3]
    train = store.metadata("sub-01", "training")
    assert set(train["concept"]) == {"aardvark"} and train["image_index"].tolist()[::4] == list(range(6))


def test_errors_name_the_problem(raw_root, tmp_path):
    rec = load_raw_recording(raw_root / "sub-01" / "ses-01" / "raw_eeg_test.npy")
    keep = [i for i, n in enumerate(rec["ch_names"]) if n not in ("Oz", "TP9")]
    broken = {**rec, "raw_eeg_data": np.asarray(rec["raw_eeg_data"])[keep],
              "ch_names": [rec["ch_names"][i] for i in keep], "ch_types": [rec["ch_types"][i] for i in keep]}
    with pytest.raises(ValueError, match=r"2 of the 63 THINGS-EEG2 channels are missing: TP9, Oz"):
        epoch_session(broken, session=1, partition="test")
    no_stim = {**rec, "ch_names": [("trigger" if n == "stim" else n) for n in rec["ch_names"]]}
    with pytest.raises(ValueError, match="no 'stim' channel"):
        epoch_session(no_stim, session=1, partition="test")
    with pytest.raises(ValueError, match=r"Subject 'sub-1' is not in .*\(available: sub-01\)\. Did you mean sub-01\?"):
        find_raw_files(raw_root, subjects=["sub-1"])
    with pytest.raises(FileNotFoundError, match=r"session\(s\) \[3\] not found"):
        find_raw_files(raw_root, sessions=[3])
    with pytest.raises(ValueError, match=r"^mvnn_covariance must be one of train, both; got 'test'\.$"):
        preprocess_things_eeg2(raw_root, tmp_path / "x", mvnn_covariance="test")
    flat = np.array(rec["raw_eeg_data"])
    flat[rec["ch_names"].index("Cz")] = 0.0
    with pytest.warns(UserWarning, match=r"channel\(s\) Cz are flat"):
        s = epoch_session({**rec, "raw_eeg_data": flat}, session=1, partition="test")
    white = whiten(np.array(s.data), inverse_sqrt(mvnn_covariance({"training": s.data}), CH))
    assert np.abs(white[:, :, CH.index("Cz")]).max() < 1e-9 * np.abs(white).max() and np.isfinite(white).all()
    singular = np.eye(4)
    singular[3, 3] = 0.0
    with pytest.raises(ValueError, match="not positive definite.*'d'"):
        inverse_sqrt(singular, ["a", "b", "c", "d"])


def test_pickle_layout_needs_every_condition(raw_root, tmp_path):
    import shutil

    root = tmp_path / "raw"
    shutil.copytree(raw_root, root)
    rec = pickle.load(open(root / "sub-01" / "ses-02" / "raw_eeg_training.npy", "rb"))
    stim = rec["raw_eeg_data"][-1]
    stim[stim == 1] = 7  # ses-02 shows condition 7 instead of 1: union 1..7 has one condition in 1 session
    pickle.dump(rec, open(root / "sub-01" / "ses-02" / "raw_eeg_training.npy", "wb"), protocol=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preprocess_things_eeg2(root, tmp_path / "ok")  # codes 1..7 contiguous: fine, 2 reps each kept
    out = pickle.load(open(tmp_path / "ok" / "sub-01" / "preprocessed_eeg_training.npy", "rb"))
    assert out["preprocessed_eeg_data"].shape[:2] == (7, 2)
    stim[stim == 7] = 9
    pickle.dump(rec, open(root / "sub-01" / "ses-02" / "raw_eeg_training.npy", "wb"), protocol=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="not 1..9 contiguously"):
            preprocess_things_eeg2(root, tmp_path / "bad")
    assert not (tmp_path / "bad" / "sub-01" / "preprocessed_eeg_training.npy").exists()


def test_cli_preprocess(raw_root, preprocessed, tmp_path):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["preprocess", "things-eeg2", str(raw_root), str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    got = pickle.load(open(tmp_path / "out" / "sub-01" / "preprocessed_eeg_test.npy", "rb"))
    np.testing.assert_array_equal(got["preprocessed_eeg_data"], preprocessed["test"]["preprocessed_eeg_data"])
    res = runner.invoke(app, ["preprocess", "things-eeg2", str(raw_root), str(tmp_path / "out")])
    assert res.exit_code == 2 and "exists" in res.output  # no silent overwrite
    assert "Example:" in runner.invoke(app, ["preprocess", "things-eeg2", "--help"]).output
