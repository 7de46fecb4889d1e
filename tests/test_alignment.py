"""Per-subject alignment (Euclidean, centring, both): the reference covariance, the aligned view, and a LOSO run
that records and reuses its alignments (computed from training splits only)."""

import json

import numpy as np
import pytest
import torch
from decode_helpers import make_problem, patch_open_data

from eegvision.data.alignment import (
    AlignedStore,
    ChannelMixedArray,
    SubjectAlignment,
    alignment_matrices,
    euclidean_reference,
    subject_alignments,
)
from eegvision.data.dataset import EEGDataset
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.run import load_run


def test_euclidean_reference_is_the_mean_trial_covariance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 4, 7)) + 2.0  # offsets per sample: centring must remove them per trial
    want = np.zeros((4, 4))
    for c in range(5):
        for r in range(3):
            t = x[c, r] - x[c, r].mean(1, keepdims=True)
            want += t @ t.T / 7
    want /= 15
    np.testing.assert_allclose(euclidean_reference(x), want, rtol=1e-12)
    # read in chunks of one condition: the same
    np.testing.assert_allclose(euclidean_reference(x, chunk_bytes=1), want, rtol=1e-12)


def test_aligned_subject_has_identity_mean_covariance_and_dataset_sees_it(tmp_path):
    store, _ = make_problem(tmp_path, n_subjects=2)
    mats = alignment_matrices(store, ["sub-01", "sub-02"])
    aligned = AlignedStore(store, mats)
    for s in ("sub-01", "sub-02"):
        ref = euclidean_reference(aligned.array(s, "training"))
        np.testing.assert_allclose(ref, np.eye(6), atol=1e-4)
    # the dataset's averaged test trial = W @ mean over repetitions, channel subset after mixing
    raw = store.array("sub-02", "test")
    ds = EEGDataset(aligned, ["sub-02"], "test", average=True, channels=["Pz", "Oz"])
    want = (mats["sub-02"] @ raw[3].astype(np.float64).mean(0))[[2, 5]]
    np.testing.assert_allclose(ds[3]["eeg"].numpy(), want, rtol=1e-4, atol=1e-5)
    assert aligned.ch_names == store.ch_names  # everything else is the wrapped store's


def test_channel_mixed_array_refuses_a_channel_index_and_a_wrong_matrix():
    base = np.zeros((2, 2, 3, 4), np.float32)
    arr = ChannelMixedArray(base, np.eye(3))
    with pytest.raises(IndexError, match="channel axis with ':'"):
        arr[0, 0, 1]
    with pytest.raises(ValueError, match=r"\(3, 3\)|3 channels"):
        ChannelMixedArray(base, np.eye(4))
    with pytest.raises(KeyError, match="No alignment matrix for 'sub-09'"):
        AlignedStore(object(), {"sub-01": np.eye(3)}).array("sub-09", "test")


def test_loso_alignment_recorded_from_training_splits_and_reused(tmp_path, monkeypatch):
    store, data = make_problem(tmp_path, n_subjects=3)
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-02"], protocol="loso", encoder="eegproject", epochs=1,
                    batch_size=16, val_fraction=0.2, eval_ks=[2, 4], eval_methods=["exact"], align="euclidean")
    run = fit(cfg, tmp_path / "run").path
    trained = load_run(run)
    recorded = trained.folder.read_alignment()
    assert sorted(recorded) == ["sub-01", "sub-02", "sub-03"]
    want = alignment_matrices(store, ["sub-02"])["sub-02"]
    np.testing.assert_allclose(recorded["sub-02"].matrix, want, rtol=1e-12)
    assert recorded["sub-02"].mean is None
    # the held-out subject's matrix ignores its test EEG
    original = store._arrays[("sub-02", "test")]
    store._arrays[("sub-02", "test")] = original * 5.0 + 1.0
    assert np.allclose(alignment_matrices(store, ["sub-02"])["sub-02"], want)
    store._arrays[("sub-02", "test")] = original
    # embedding through the run applies the recorded matrix: encoder(W @ x)
    emb = trained.embed(store, "sub-02", device="cpu")
    x = store.array("sub-02", "test").astype(np.float64).mean(1)
    xa = torch.tensor(np.matmul(want, x), dtype=torch.float32)
    with torch.no_grad():
        direct = trained.encoder(xa, subject_ids=torch.full((len(xa),), -1))
    torch.testing.assert_close(emb, direct, rtol=1e-4, atol=1e-5)
    stored = trained.folder.read_test_embeddings()["sub-02"]
    torch.testing.assert_close(emb, stored, rtol=1e-4, atol=1e-5)
    desc = json.loads((run / "config.json").read_text())
    assert desc["fit"]["align"] == "euclidean"


def test_align_is_checked():
    with pytest.raises(ValueError, match="align"):
        FitConfig(data="x", subjects=["sub-01"], align="riemann").validate()


def test_centring_subtracts_each_subjects_mean_trial_and_centre_euclidean_whitens_the_rest(tmp_path):
    store, _ = make_problem(tmp_path, n_subjects=2)
    raw = store.array("sub-01", "training").astype(np.float64)              # (cond, rep, C, T)
    n_cond, n_rep, n_chans, n_times = raw.shape
    mean = raw.reshape(-1, n_chans, n_times).mean(0)
    centre = subject_alignments(store, ["sub-01"], "centre")["sub-01"]
    np.testing.assert_allclose(centre.matrix, np.eye(n_chans))
    np.testing.assert_allclose(centre.mean, mean, rtol=1e-10, atol=1e-12)
    # the aligned trials are the raw ones minus the mean trial, and a time window takes the mean's columns
    aligned = AlignedStore(store, {"sub-01": centre})
    np.testing.assert_allclose(aligned.array("sub-01", "training")[2, 1], raw[2, 1] - mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(aligned.array("sub-01", "test")[0, :, :, 3:7],
                               store.array("sub-01", "test")[0, :, :, 3:7] - mean[:, 3:7], rtol=1e-5, atol=1e-5)
    # the training trials of every aligned subject average to zero
    np.testing.assert_allclose(np.asarray(aligned.array("sub-01", "training"), np.float64).mean((0, 1)), 0.0,
                               atol=1e-5)
    # centre-euclidean: R^{-1/2} of the centred trials' mean covariance, by hand (each trial centred over time)
    both = subject_alignments(store, ["sub-01"], "centre-euclidean")["sub-01"]
    ref = np.zeros((n_chans, n_chans))
    for x in (raw - mean).reshape(-1, n_chans, n_times):
        xc = x - x.mean(1, keepdims=True)
        ref += xc @ xc.T / n_times
    ref /= n_cond * n_rep
    w, v = np.linalg.eigh(ref)
    np.testing.assert_allclose(both.matrix, (v / np.sqrt(w)) @ v.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(both.mean, mean, rtol=1e-10, atol=1e-12)
    centred = AlignedStore(store, {"sub-01": both}).array("sub-01", "training")
    np.testing.assert_allclose(euclidean_reference(centred), np.eye(n_chans), atol=1e-4)
    with pytest.raises(ValueError, match=r"mean is \(2, 3\)"):
        ChannelMixedArray(raw, np.eye(n_chans), np.zeros((2, 3)))


def test_loso_centring_is_recorded_and_reused_for_a_new_subject(tmp_path, monkeypatch):
    store, data = make_problem(tmp_path, n_subjects=3)
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-02"], protocol="loso", encoder="eegproject", epochs=1,
                    batch_size=16, val_fraction=0.2, eval_ks=[2, 4], eval_methods=["exact"], align="centre")
    trained = load_run(fit(cfg, tmp_path / "run").path)
    recorded = trained.folder.read_alignment()["sub-02"]
    assert isinstance(recorded, SubjectAlignment)
    raw = store.array("sub-02", "training").astype(np.float64)
    np.testing.assert_allclose(recorded.mean, raw.reshape(-1, *raw.shape[2:]).mean(0), rtol=1e-10, atol=1e-12)
    # the test embeddings are the encoder of the averaged test trials minus the training-split mean trial
    x = store.array("sub-02", "test").astype(np.float64).mean(1) - recorded.mean
    with torch.no_grad():
        direct = trained.encoder(torch.tensor(x, dtype=torch.float32), subject_ids=torch.full((len(x),), -1))
    torch.testing.assert_close(trained.embed(store, "sub-02", device="cpu"), direct, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(trained.folder.read_test_embeddings()["sub-02"], direct, rtol=1e-4, atol=1e-5)
