"""Noise whitening for any encoder (``FitConfig.whiten="mvnn"``): the matrix comes from the fitting training
conditions only, is stored in the encoder and applied in its forward pass."""

import numpy as np
import pytest
import scipy.linalg
import torch

from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hand_whitener(epochs: np.ndarray) -> np.ndarray:
    """MVNN by brute force: each epoch's residual around its condition mean, one scikit-learn Ledoit-Wolf call per
    (time x channel) residual on standardised channels (THINGS-EEG2's estimator), mean x R/(R-1), scipy's power."""
    from sklearn.covariance import ledoit_wolf
    from sklearn.preprocessing import StandardScaler

    resid = epochs - epochs.mean(1, keepdims=True)
    covs = []
    for r in resid.reshape(-1, *epochs.shape[2:]):
        sc = StandardScaler().fit(r.T)
        covs.append(sc.scale_[:, None] * ledoit_wolf(sc.transform(r.T))[0] * sc.scale_[None, :])
    n_rep = epochs.shape[1]
    return np.real(scipy.linalg.fractional_matrix_power(np.mean(covs, 0) * n_rep / (n_rep - 1), -0.5))


def _write_store(path, arrays, metadata, ch_names, sfreq, times):
    from eegvision.store.disk import open_store
    from eegvision.store.writer import StoreWriter

    with StoreWriter(path, dataset="fake", ch_names=ch_names, sfreq=sfreq, times=times) as w:
        for (subject, split), arr in sorted(arrays.items()):
            table = metadata[(subject, split)].drop_duplicates("condition")
            w.add(subject=subject, split=split, data=arr,
                  metadata=table[["concept_index", "concept", "image_index", "image_path"]].reset_index(drop=True))
    return open_store(path)


def test_whitening_does_not_depend_on_the_test_eeg(tmp_path):
    """Two stores that differ only in their test EEG: the same whitening matrix (bit for bit) in the ridge run
    and from noise_whitener, while the test embeddings differ."""
    import shutil

    from decode_helpers import make_problem

    from eegvision.training.rundir import RunFolder
    from eegvision.training.whitening import noise_whitener

    store, data = make_problem(tmp_path / "a", n_subjects=1, n_train_concepts=20, images_per_concept=2, n_test=10,
                               train_reps=3)
    rng = np.random.default_rng(5)
    stores = {}
    for name, test_scale in (("a", 1.0), ("b", 4.0)):
        arrays = {k: store.array(*k) for k in (("sub-01", "training"), ("sub-01", "test"))}
        if test_scale != 1.0:  # other test EEG: rescaled, with strongly correlated channels added
            t = arrays[("sub-01", "test")].astype(np.float32)
            arrays[("sub-01", "test")] = (test_scale * t + 3 * rng.standard_normal(t.shape[:2] + (1, t.shape[3])))
        meta = {k: store.metadata(*k) for k in arrays}
        stores[name] = _write_store(tmp_path / name / "data", arrays, meta, store.ch_names, store.sfreq, store.times)
        shutil.copytree(data / "features", tmp_path / name / "data" / "features")
    assert not np.array_equal(np.asarray(stores["a"].array("sub-01", "test")),
                              np.asarray(stores["b"].array("sub-01", "test")))
    assert np.array_equal(np.asarray(stores["a"].array("sub-01", "training")),
                          np.asarray(stores["b"].array("sub-01", "training")))

    mats, embs = {}, {}
    for name in stores:
        cfg = FitConfig(data=str(tmp_path / name / "data"), subjects=["sub-01"], encoder="ridge", whiten="mvnn",
                        eval_ks=[2], eval_methods=["exact"], encoder_options={"cv": 3, "decim": 4})
        unit = RunFolder.open(fit(cfg, tmp_path / name / "run").path).unit()
        mats[name] = unit.load_encoder().whitening_matrix().numpy()
        embs[name] = unit.read_test_embeddings()["sub-01"].numpy()
        w = noise_whitener(stores[name], ["sub-01"], np.arange(15))
        mats[name + "-direct"] = w
    assert np.array_equal(mats["a"], mats["b"]) and np.array_equal(mats["a-direct"], mats["b-direct"])
    assert not np.allclose(embs["a"], embs["b"])
    train = np.asarray(stores["a"].array("sub-01", "training"), np.float64)
    np.testing.assert_allclose(mats["a"], _hand_whitener(train), rtol=1e-5, atol=1e-6)  # all 40 training conditions
    np.testing.assert_allclose(mats["a-direct"], _hand_whitener(train[:15]), rtol=1e-9, atol=1e-12)


def test_whitened_neural_run_applies_the_fitting_conditions_whitener(tmp_path, monkeypatch):
    """A gradient-trained encoder with whiten="mvnn": its whitener is the MVNN matrix of the fitting training
    conditions (validation concepts left out), computed by hand; it is recorded in the config and loads back;
    and the encoder's output equals the unwhitened network applied to W x."""
    from decode_helpers import make_problem, patch_open_data

    from eegvision.data.splits import validation_split
    from eegvision.models import EEGEncoder
    from eegvision.training.run import load_run

    store, data = make_problem(tmp_path, n_subjects=1, n_train_concepts=20, images_per_concept=2, n_test=10)
    # correlated channels, so that W is far from a multiple of the identity
    arr = store._arrays[("sub-01", "training")].astype(np.float32)
    arr[:, :, 1] += 0.8 * arr[:, :, 0]
    store._arrays[("sub-01", "training")] = arr.astype(np.float16)
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", whiten="mvnn", epochs=1, batch_size=32,
                    val_fraction=0.2, eval_ks=[2], eval_methods=["exact"])
    run = load_run(fit(cfg, tmp_path / "run").path)
    fitting = validation_split(store, "training", fraction=0.2, seed=0).train_conditions
    assert len(fitting) == 32  # 4 of 20 concepts held out
    w_hand = _hand_whitener(store.array("sub-01", "training")[fitting].astype(np.float64))
    enc = run.encoder
    assert enc.config["whitening"] == "mvnn" and run.config.whiten == "mvnn"
    np.testing.assert_allclose(enc.whitening_matrix().numpy(), w_hand, rtol=1e-4, atol=1e-5)

    plain_config = {k: v for k, v in enc.config.items() if k != "whitening"}
    plain = EEGEncoder.from_config(plain_config).eval()
    assert plain.whitening_matrix() is None
    plain.load_state_dict({k: v for k, v in enc.state_dict().items() if k != "whitener"})
    x = torch.randn(4, enc.n_chans, enc.n_times, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(enc(x).numpy(), plain(torch.from_numpy(w_hand).float() @ x).numpy(),
                                   rtol=1e-4, atol=1e-4)


def test_whitening_refusals(tmp_path, monkeypatch):
    from decode_helpers import make_problem, patch_open_data

    with pytest.raises(ValueError, match="whiten must be one of mvnn; got 'zca'"):
        FitConfig(data="x", subjects=["sub-01"], whiten="zca")
    with pytest.raises(ValueError, match="'ridge' is fitted in closed form .* mix_repetitions cannot apply"):
        FitConfig(data="x", subjects=["sub-01"], encoder="ridge", mix_repetitions=True)
    store, data = make_problem(tmp_path, n_subjects=1, n_train_concepts=10, train_reps=1)
    patch_open_data(monkeypatch, store)
    with pytest.raises(ValueError, match="sub-01's training split has 1 repetition per condition. Drop --whiten"):
        fit(FitConfig(data=str(data), subjects=["sub-01"], encoder="ridge", whiten="mvnn",
                      encoder_options={"cv": 3}), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    from eegvision.models import create_encoder

    enc = create_encoder("stconv", n_chans=6, n_times=20, n_outputs=4, sfreq=100.0)
    with pytest.raises(ValueError, match=r"The whitening matrix has shape \(5, 5\); expected \(6, 6\)"):
        enc.set_whitening(np.eye(5))
    assert "whitening" not in enc.config
    enc.set_whitening(np.eye(6) * 2)
    assert enc.config["whitening"] == "mvnn"


def test_whitening_with_ensembles_alignment_and_closed_form_refusals(tmp_path, monkeypatch):
    """Each member of a seed ensemble carries the same fitting-conditions whitener; a ridge unit with Euclidean
    alignment whitens the aligned data (hand: align each trial by the recorded matrix, then MVNN) and its test
    embeddings are its encoder on the aligned test averages; gradient-only options are refused for ridge."""
    from decode_helpers import make_problem, patch_open_data

    from eegvision.data.splits import validation_split
    from eegvision.training.run import load_run

    store, data = make_problem(tmp_path, n_subjects=1, n_train_concepts=20, images_per_concept=2, n_test=10)
    patch_open_data(monkeypatch, store)
    ens = load_run(fit(FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", whiten="mvnn", epochs=1,
                                 batch_size=32, val_fraction=0.2, ensemble=2, eval_ks=[2], eval_methods=["exact"]),
                       tmp_path / "ens").path)
    fitting = validation_split(store, "training", fraction=0.2, seed=0).train_conditions
    w_hand = _hand_whitener(store.array("sub-01", "training")[fitting].astype(np.float64))
    assert len(ens.encoder.members) == 2
    for member in ens.encoder.members:
        np.testing.assert_allclose(member.whitening_matrix().numpy(), w_hand, rtol=1e-4, atol=1e-5)

    run = load_run(fit(FitConfig(data=str(data), subjects=["sub-01"], encoder="ridge", whiten="mvnn",
                                 align="euclidean", eval_ks=[2], eval_methods=["exact"],
                                 encoder_options={"cv": 3, "decim": 4}), tmp_path / "ridge").path)
    a = run.folder.read_alignment()["sub-01"].matrix
    train = store.array("sub-01", "training").astype(np.float64)
    np.testing.assert_allclose(run.encoder.whitening_matrix().numpy(), _hand_whitener(np.matmul(a, train)),
                               rtol=1e-4, atol=1e-5)
    test_avg = np.matmul(a, store.array("sub-01", "test").astype(np.float64).mean(1)).astype(np.float32)
    with torch.no_grad():
        torch.testing.assert_close(run.encoder(torch.from_numpy(test_avg)),
                                   run.folder.read_test_embeddings()["sub-01"], rtol=1e-4, atol=1e-5)

    with pytest.raises(ValueError, match=r"'ridge' is fitted in closed form .* time_shift, ensemble cannot apply to "
                                         r"it\. Drop --time-shift, --ensemble\.$"):
        FitConfig(data="x", subjects=["sub-01"], encoder="ridge", ensemble=3, time_shift=5)
