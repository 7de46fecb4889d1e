"""EEGDataset: batches read from memory maps equal naive numpy indexing of the arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from eegvision.data import dataset as dataset_mod
from eegvision.data.dataset import EEGDataset, time_window_slice
from eegvision.readers.channels import OCCIPITO_PARIETAL_17, REGIONS, THINGS_EEG2_CHANNELS

SFREQ = 250.0
N_TIMES = 25
CONCEPTS = ["aardvark", "bagel", "cat", "drum"]


class FakeStore:
    """In-memory (or memory-mapped) store with the read interface of docs/design.md."""

    def __init__(self, tmp_path=None, seed=0, shapes=None):
        rng = np.random.default_rng(seed)
        shapes = shapes or {"training": (12, 4), "test": (4, 6)}
        self.subjects = ["sub-01", "sub-02", "sub-03"]
        self.ch_names = list(THINGS_EEG2_CHANNELS)
        self.sfreq = SFREQ
        self.times = np.arange(N_TIMES) / SFREQ
        self._arrays, self._meta = {}, {}
        for s in self.subjects:
            for split, (n_cond, n_rep) in shapes.items():
                a = rng.standard_normal((n_cond, n_rep, 63, N_TIMES)).astype(np.float16)
                if tmp_path is not None:  # exercise the real read-only memmap path
                    path = tmp_path / f"{s}_{split}.npy"
                    np.save(path, a)
                    a = np.load(path, mmap_mode="r")
                self._arrays[s, split] = a
                per = n_cond // len(CONCEPTS) if split == "training" else 1
                cond = np.repeat(np.arange(n_cond), n_rep)
                concept = cond // per
                self._meta[s, split] = pd.DataFrame({
                    "subject": s, "split": split, "condition": cond,
                    "repetition": np.tile(np.arange(n_rep), n_cond),
                    "concept_index": concept, "concept": [CONCEPTS[c % 4] for c in concept],
                    "image_index": cond, "image_path": [f"{split}/{c:05d}.jpg" for c in cond],
                })

    def splits(self, subject):
        return ["training", "test"]

    def array(self, subject, split):
        return self._arrays[subject, split]

    def metadata(self, subject, split):
        return self._meta[subject, split].copy()


@pytest.fixture
def store(tmp_path):
    return FakeStore(tmp_path)


def naive(store, subjects, split, items, k=None):
    """Expected eeg for (subject position, condition, group) triples, one by one."""
    out = []
    for s, c, g in items:
        a = store.array(subjects[s], split)
        if k is None:
            out.append(a[c, g].astype(np.float32))
        else:
            out.append(a[c, g * k:(g + 1) * k].astype(np.float32).mean(0))
    return np.stack(out)


def test_single_trial_batch_equals_naive_indexing(store):
    subjects = ["sub-02", "sub-01"]
    ds = EEGDataset(store, subjects, "training")
    assert len(ds) == 2 * 12 * 4
    idx = np.random.default_rng(1).integers(0, len(ds), 40)
    idx[5] = idx[6]  # duplicates are allowed
    batch = ds.get_batch(idx)
    # sample i -> subject i // 48, condition (i % 48) // 4, repetition i % 4
    items = [(i // 48, (i % 48) // 4, i % 4) for i in idx]
    expected = naive(store, subjects, "training", items)
    assert batch["eeg"].dtype == torch.float32
    assert batch["eeg"].shape == (40, 63, N_TIMES)
    np.testing.assert_array_equal(batch["eeg"].numpy(), expected)
    np.testing.assert_array_equal(batch["subject"].numpy(), [s for s, _, _ in items])
    np.testing.assert_array_equal(batch["condition"].numpy(), [c for _, c, _ in items])
    np.testing.assert_array_equal(batch["image"].numpy(), [c for _, c, _ in items])
    np.testing.assert_array_equal(batch["repetition"].numpy(), [r for _, _, r in items])
    np.testing.assert_array_equal(batch["concept"].numpy(), [c // 3 for _, c, _ in items])
    for key in ("subject", "condition", "concept", "image", "repetition"):
        assert batch[key].dtype == torch.int64
    np.testing.assert_array_equal(ds.concepts, np.tile(np.repeat(np.arange(4), 12), 2))
    one = ds[int(idx[3])]
    assert one["eeg"].shape == (63, N_TIMES)
    np.testing.assert_array_equal(one["eeg"].numpy(), expected[3])
    assert int(one["concept"]) == items[3][1] // 3


def test_contiguous_and_scattered_reads_agree(store, monkeypatch):
    ds = EEGDataset(store, ["sub-01", "sub-03"], "training")
    seq = ds.get_batch(np.arange(len(ds)))["eeg"].numpy()  # contiguous runs -> slices
    perm = np.random.default_rng(0).permutation(len(ds))
    scattered = ds.get_batch(perm)["eeg"].numpy()           # fancy indexing
    np.testing.assert_array_equal(scattered, seq[perm])
    a1, a3 = store.array("sub-01", "training"), store.array("sub-03", "training")
    full = np.concatenate([a1.reshape(-1, 63, N_TIMES), a3.reshape(-1, 63, N_TIMES)])
    np.testing.assert_array_equal(seq, full.astype(np.float32))
    assert ds.get_batch(np.array([], dtype=int))["eeg"].shape == (0, 63, N_TIMES)
    with pytest.raises(IndexError, match="out of range"):
        ds.get_batch([len(ds)])


@pytest.mark.parametrize("chunk_bytes", [1, 64 * 1024 * 1024])
def test_average_equals_numpy_mean(store, monkeypatch, chunk_bytes):
    monkeypatch.setattr(dataset_mod, "_CHUNK_BYTES", chunk_bytes)  # 1 byte: one item per chunk
    ds = EEGDataset(store, ["sub-01", "sub-02"], "test", average=True)
    assert len(ds) == 8
    idx = np.array([7, 0, 3, 4, 1])
    batch = ds.get_batch(idx)
    expected = np.stack([store.array(f"sub-0{1 + i // 4}", "test")[i % 4].astype(np.float32).mean(0)
                         for i in idx])
    np.testing.assert_allclose(batch["eeg"].numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(batch["repetition"].numpy(), -1)
    np.testing.assert_array_equal(batch["condition"].numpy(), idx % 4)
    np.testing.assert_array_equal(batch["concept"].numpy(), idx % 4)  # test: one image per concept


def test_average_groups_of_k(store):
    ds = EEGDataset(store, ["sub-03"], "test", group_size=4)  # 6 reps -> 1 group of 4, 2 dropped
    assert len(ds) == 4 and ds.group_size == 4 and ds.average is False
    ds2 = EEGDataset(store, ["sub-03"], "test", group_size=3)  # 2 groups of 3
    idx = np.array([3, 0, 7, 2])
    batch = ds2.get_batch(idx)
    items = [(0, i // 2, i % 2) for i in idx]
    np.testing.assert_allclose(batch["eeg"].numpy(), naive(store, ["sub-03"], "test", items, k=3),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(batch["repetition"].numpy(), idx % 2)
    b4 = ds.get_batch(np.arange(4))["eeg"].numpy()
    a = store.array("sub-03", "test")[:, :4].astype(np.float32).mean(1)
    np.testing.assert_allclose(b4, a, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="only 6 repetitions"):
        EEGDataset(store, ["sub-03"], "test", group_size=7)
    # one type per option: average is a bool, the group size an int, and they exclude each other
    with pytest.raises(ValueError, match="average is True .* or False; got 4. For the means of groups of k "
                                         "repetitions pass group_size=k"):
        EEGDataset(store, ["sub-03"], "test", average=4)
    with pytest.raises(ValueError, match="contradict each other"):
        EEGDataset(store, ["sub-03"], "test", average=True, group_size=2)
    assert EEGDataset(store, ["sub-03"], "test", group_size=1).group_size is None  # groups of 1: single trials


def test_channel_subset_picks_columns_in_preset_order(store):
    ds = EEGDataset(store, ["sub-01"], "training", channels="occipito-parietal")
    assert ds.n_chans == 17 and ds.ch_names == list(OCCIPITO_PARIETAL_17)
    cols = [THINGS_EEG2_CHANNELS.index(n) for n in OCCIPITO_PARIETAL_17]
    batch = ds.get_batch(np.array([5, 1]))
    a = store.array("sub-01", "training")
    expected = a[[1, 0], [1, 1]][:, cols].astype(np.float32)
    np.testing.assert_array_equal(batch["eeg"].numpy(), expected)
    names = EEGDataset(store, ["sub-01"], "test", channels=["Oz", "Fp1"], average=True)
    exp = store.array("sub-01", "test")[2][:, [61, 0]].astype(np.float32).mean(0)
    np.testing.assert_allclose(names[2]["eeg"].numpy(), exp, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError) as err:
        EEGDataset(store, ["sub-01"], "training", channels=["Ozz", "fp1"])  # case does not matter
    assert err.value.args[0].startswith("Channel 'Ozz' is not in the recording's 63 channels (available: Fp1, ")
    assert err.value.args[0].endswith("Did you mean Oz? Regions: " + ", ".join(REGIONS) + ".")
    with pytest.raises(ValueError, match="subjects takes a list"):
        EEGDataset(store, "sub-01", "training")


def test_time_window_selects_samples(store):
    ds = EEGDataset(store, ["sub-01"], "training", window=(0.02, 0.06))
    assert ds.n_times == 10  # samples 5..14: 0.020 s inclusive .. 0.060 s exclusive
    np.testing.assert_allclose(ds.times, np.arange(5, 15) / SFREQ)
    a = store.array("sub-01", "training")
    np.testing.assert_array_equal(ds.get_batch([6])["eeg"].numpy()[0],
                                  a[1, 2, :, 5:15].astype(np.float32))
    assert time_window_slice(store.times, (0.0, N_TIMES / SFREQ), SFREQ) == slice(0, N_TIMES)
    assert time_window_slice(store.times, (None, 0.012), SFREQ) == slice(0, 3)
    with pytest.raises(ValueError, match=r"valid range is \[0, 0.1\)"):
        EEGDataset(store, ["sub-01"], "training", window=(0.0, 0.5))
    with pytest.raises(ValueError, match="contains no sample"):
        EEGDataset(store, ["sub-01"], "training", window=(0.05, 0.05))


def test_subject_ids_conditions_and_errors(store):
    ds = EEGDataset(store, ["sub-01", "sub-03"], "training",
                    subject_ids={"sub-01": 4, "sub-03": -1},
                    conditions=[9, 2, 3])
    assert len(ds) == 2 * 3 * 4 and ds.n_subjects == 2
    batch = ds.get_batch(np.arange(len(ds)))
    np.testing.assert_array_equal(batch["subject"].numpy(), np.repeat([4, -1], 12))
    np.testing.assert_array_equal(batch["condition"].numpy(), np.tile(np.repeat([2, 3, 9], 4), 2))
    with pytest.raises(ValueError, match="Subject 'sub-1' is not in .* Did you mean sub-01"):
        EEGDataset(store, ["sub-1"], "training")
    with pytest.raises(ValueError, match="no split 'validation'"):
        EEGDataset(store, ["sub-01"], "validation")
    with pytest.raises(ValueError, match="out of range"):
        EEGDataset(store, ["sub-01"], "training", conditions=[12])
    with pytest.raises(ValueError, match="no id for"):
        EEGDataset(store, ["sub-01"], "training", subject_ids={"sub-02": 0})
    with pytest.raises(ValueError, match="group_size is the number of repetitions averaged per sample, an "
                                         "integer >= 1; got -2"):
        EEGDataset(store, ["sub-01"], "training", group_size=-2)


def test_dtype_and_pickling_drop_memmaps(store):
    ds = EEGDataset(store, ["sub-01"], "training", dtype=torch.float16)
    b = ds.get_batch([0, 1])
    assert b["eeg"].dtype == torch.float16
    np.testing.assert_array_equal(b["eeg"].numpy(), store.array("sub-01", "training")[0, :2])
    assert ds._arrays and ds.__getstate__()["_arrays"] == {}


def _epoch_keys(loader):
    return np.concatenate([(b["subject"] * 1000 + b["condition"] * 10 + b["repetition"]).numpy()
                           for b in loader])


def test_loader_seeded_order_reproducible(store):
    ds = EEGDataset(store, ["sub-01", "sub-02"], "training")
    expected_all = np.sort(_epoch_keys(ds.loader(batch_size=1000, shuffle=False)))
    a = ds.loader(batch_size=10, seed=3)
    assert len(a) == 10  # 96 samples -> 9 full batches + 1
    e0, e1 = _epoch_keys(a), _epoch_keys(a)
    np.testing.assert_array_equal(np.sort(e0), expected_all)  # every sample exactly once
    assert not np.array_equal(e0, e1)  # reshuffled per epoch
    b = ds.loader(batch_size=10, seed=3)
    np.testing.assert_array_equal(_epoch_keys(b), e0)
    b.set_epoch(1)
    np.testing.assert_array_equal(_epoch_keys(b), e1)  # a resumed run sees the same epoch 1
    assert not np.array_equal(_epoch_keys(ds.loader(batch_size=10, seed=4)), e0)
    d = ds.loader(batch_size=10, seed=3, drop_last=True)
    assert len(d) == 9 and len(_epoch_keys(d)) == 90
    first = next(iter(ds.loader(batch_size=7, shuffle=False)))
    assert first["eeg"].shape == (7, 63, N_TIMES)


def test_integration_with_store_writer(tmp_path):
    from eegvision.data.splits import validation_split
    from eegvision.store.disk import open_store
    from eegvision.store.writer import StoreWriter

    rng = np.random.default_rng(7)
    times = np.arange(N_TIMES) / SFREQ
    data = {s: rng.standard_normal((8, 3, 63, N_TIMES)) for s in ("sub-01", "sub-02")}
    per_condition = pd.DataFrame({"concept_index": np.arange(8) // 2,
                                  "concept": [CONCEPTS[c] for c in np.arange(8) // 2]})
    with StoreWriter(tmp_path / "store", dataset="test", ch_names=THINGS_EEG2_CHANNELS,
                     sfreq=SFREQ, times=times) as w:
        for s, a in data.items():
            w.add(subject=s, split="training", data=a, metadata=per_condition)
    store = open_store(tmp_path / "store")
    train, val = validation_split(store, n_val_concepts=1, seed=0)
    assert len(val) == 2 and len(train) == 6
    ds = EEGDataset(store, ["sub-02", "sub-01"], "training", conditions=train,
                    channels="occipital", window=(0.0, 0.04))
    assert len(ds) == 2 * 6 * 3
    idx = np.array([20, 3, 35, 0])
    batch = ds.get_batch(idx)
    cols = [THINGS_EEG2_CHANNELS.index(n) for n in ("O1", "Oz", "O2")]
    subs = ["sub-02", "sub-01"]
    expected = np.stack([data[subs[i // 18]][train[(i % 18) // 3], i % 3][cols, :10]
                         for i in idx]).astype(np.float16).astype(np.float32)  # stored as float16
    np.testing.assert_array_equal(batch["eeg"].numpy(), expected)
    np.testing.assert_array_equal(batch["concept"].numpy(), train[(idx % 18) // 3] // 2)
    avg = EEGDataset(store, ["sub-01"], "training", average=True).get_batch([5])["eeg"].numpy()[0]
    stored = store.array("sub-01", "training")[5].astype(np.float32).mean(0)
    np.testing.assert_allclose(avg, stored, rtol=1e-6, atol=1e-6)


def test_integration_with_things_eeg2_folder(tmp_path):
    """The in-place reader of the real pickles (float64 memmap) works the same way."""
    import pickle

    from eegvision.store.things_folder import open_things_eeg2

    a = np.random.default_rng(3).standard_normal((20, 2, 63, 250))
    folder = tmp_path / "Preprocessed_data_250Hz" / "sub-01"
    folder.mkdir(parents=True)
    with open(folder / "preprocessed_eeg_training.npy", "wb") as f:
        pickle.dump({"preprocessed_eeg_data": a, "ch_names": list(THINGS_EEG2_CHANNELS),
                     "times": np.round(np.arange(-50, 250) / 250.0, 3)}, f, protocol=4)
    store = open_things_eeg2(tmp_path)
    ds = EEGDataset(store, ["sub-01"], "training", window=(0.1, 0.2))
    assert ds.n_times == 25
    batch = ds.get_batch([39, 0, 21])
    np.testing.assert_array_equal(batch["eeg"].numpy(),
                                  a[[19, 0, 10], [1, 0, 1], :, 25:50].astype(np.float32))
    np.testing.assert_array_equal(batch["concept"].numpy(), [1, 0, 1])  # 10 images per concept


def test_strided_array_is_gathered_without_reshape():
    store = FakeStore()
    base = store.array("sub-01", "test")  # (4, 6, 63, T)
    rep_major = np.ascontiguousarray(base.transpose(1, 0, 2, 3))
    store._arrays["sub-01", "test"] = rep_major.transpose(1, 0, 2, 3)  # same values, strided
    assert not store.array("sub-01", "test").flags.c_contiguous
    for average, group, k in ((False, None, None), (True, None, 6), (False, 2, 2)):
        ds = EEGDataset(store, ["sub-01"], "test", average=average, group_size=group)
        idx = np.arange(len(ds))[::-1]
        got = ds.get_batch(idx)["eeg"].numpy()
        g = 6 // (k or 1) if k != 6 else 1
        items = [(0, i // g, i % g) for i in idx]
        expected = naive(store, ["sub-01"], "test", items, k=k)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_repetition_mix_is_a_convex_combination_of_one_conditions_repetitions(store):
    from eegvision.data.mixing import RepetitionMix

    trials = EEGDataset(store, ["sub-01", "sub-02"], "training", conditions=[0, 3, 7])
    mix = RepetitionMix(trials, seed=5)
    assert len(mix) == 6  # (subject, condition) pairs, 4 repetitions each
    idx = np.array([4, 0, 5])
    batch = mix.get_batch(idx)
    weights = mix.weights(idx)
    for row, (i, w) in enumerate(zip(idx, weights)):
        assert len(w) == 4 and np.all(w > 0) and w.sum() == pytest.approx(1.0, abs=1e-6)
        s, c = int(mix.subject_index[i]), int(mix.condition_index[i])
        expected = np.tensordot(w, store.array(["sub-01", "sub-02"][s], "training")[c].astype(np.float32), axes=1)
        np.testing.assert_allclose(batch["eeg"][row].numpy(), expected, rtol=1e-5, atol=1e-6)
        assert int(batch["condition"][row]) == c and int(batch["repetition"][row]) == -1
    # deterministic in (seed, batch), different across batches and seeds
    np.testing.assert_array_equal(mix.get_batch(idx)["eeg"], batch["eeg"])
    assert not np.allclose(mix.weights(np.array([4, 0, 1]))[0], weights[0])
    assert not np.allclose(RepetitionMix(trials, seed=6).weights(idx)[0], weights[0])
    with pytest.raises(ValueError, match="single-trial"):
        RepetitionMix(EEGDataset(store, ["sub-01"], "training", average=True))


def test_fit_config_refuses_averaging_and_mixing_together():
    from eegvision.training import FitConfig

    with pytest.raises(ValueError, match="mix_repetitions"):
        FitConfig(data="x", subjects=["sub-01"], average_train=True, mix_repetitions=True).validate()
