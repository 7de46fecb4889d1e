"""Export to MNE EpochsArray and a braindecode BaseConcatDataset view."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from eegvision.data.interop import infer_ch_types, to_braindecode, to_mne_epochs
from eegvision.readers.channels import THINGS_EEG2_CHANNELS

SFREQ = 100.0
N_TIMES = 12
CONCEPTS = ["aardvark", "bagel", "cat"]
META_COLUMNS = ["subject", "split", "condition", "repetition", "concept_index", "concept",
                "image_index", "image_path"]


class FakeStore:
    """Tiny in-memory store with the read interface of docs/design.md."""

    def __init__(self, ch_names=THINGS_EEG2_CHANNELS, ch_types=None, seed=0):
        rng = np.random.default_rng(seed)
        self.subjects = ["sub-01", "sub-02"]
        self.ch_names = list(ch_names)
        if ch_types is not None:
            self.ch_types = ch_types
        self.sfreq = SFREQ
        self.times = -0.02 + np.arange(N_TIMES) / SFREQ
        shapes = {"training": (6, 2), "test": (3, 4)}
        self._a, self._m = {}, {}
        for s in self.subjects:
            for split, (n_cond, n_rep) in shapes.items():
                self._a[s, split] = rng.standard_normal(
                    (n_cond, n_rep, len(self.ch_names), N_TIMES)).astype(np.float16)
                cond = np.repeat(np.arange(n_cond), n_rep)
                concept = cond // (n_cond // 3)
                self._m[s, split] = pd.DataFrame({
                    "subject": s, "split": split, "condition": cond,
                    "repetition": np.tile(np.arange(n_rep), n_cond), "concept_index": concept,
                    "concept": [CONCEPTS[c] for c in concept], "image_index": cond,
                    "image_path": [f"{split}/{c}.jpg" for c in cond]})

    def splits(self, subject):
        return ["training", "test"]

    def array(self, subject, split):
        return self._a[subject, split]

    def metadata(self, subject, split):
        return self._m[subject, split].copy()


@pytest.fixture(scope="module")
def store():
    return FakeStore()


def test_epochs_round_trip_single_trials(store):
    ep = to_mne_epochs(store, "sub-02", "training")
    a = store.array("sub-02", "training")
    assert len(ep) == 12
    np.testing.assert_array_equal(ep.get_data(), a.reshape(12, 63, N_TIMES).astype(np.float64))
    assert ep.info["sfreq"] == SFREQ and ep.ch_names == list(THINGS_EEG2_CHANNELS)
    assert ep.tmin == pytest.approx(-0.02)
    np.testing.assert_array_equal(ep.events[:, 2], np.repeat(np.arange(6), 2))
    assert list(ep.metadata.columns) == META_COLUMNS
    np.testing.assert_array_equal(ep.metadata["repetition"], np.tile([0, 1], 6))
    assert set(ep.get_channel_types()) == {"eeg"}
    oz = ep.info["chs"][ep.ch_names.index("Oz")]["loc"][:3]
    assert np.all(np.isfinite(oz)) and np.linalg.norm(oz) > 0.05  # metres from head centre
    assert ep.get_montage() is not None
    bagel = ep["bagel"]  # tag selection through event_id "<concept>/<condition>"
    np.testing.assert_array_equal(bagel.metadata["condition"], [2, 2, 3, 3])


def test_epochs_averaged_with_channels_and_window(store):
    ep = to_mne_epochs(store, "sub-01", "test", average=True, channels="occipital",
                       window=(0.0, 0.05))
    a = store.array("sub-01", "test")
    cols = [THINGS_EEG2_CHANNELS.index(n) for n in ("O1", "Oz", "O2")]
    expected = a[:, :, cols, 2:7].astype(np.float32).mean(1)
    assert ep.ch_names == ["O1", "Oz", "O2"] and ep.tmin == pytest.approx(0.0)
    np.testing.assert_allclose(ep.get_data(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ep.metadata["repetition"], -1)
    np.testing.assert_array_equal(ep.metadata["concept"], CONCEPTS)


def test_meg_channel_types_skip_montage():
    assert infer_ch_types(["MLC11-4408", "MZO01", "MEG 0111", "MEG0112", "Cz", "STI 014"]) == \
        ["mag", "mag", "mag", "grad", "eeg", "stim"]
    meg = FakeStore(ch_names=["MLC11", "MLC12", "MRO21"])
    ep = to_mne_epochs(meg, "sub-01", "test", average=True)
    assert set(ep.get_channel_types()) == {"mag"} and ep.get_montage() is None
    typed = FakeStore(ch_names=["A1", "A2"], ch_types=["eeg", "misc"])
    assert to_mne_epochs(typed, "sub-01", "test").get_channel_types() == ["eeg", "misc"]


def test_braindecode_view(store):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        concat = to_braindecode(store, ["sub-01", "sub-02"], "training", channels=["Oz", "Cz"])
    assert len(concat) == 24 and len(concat.datasets) == 2
    X, y, crop = concat[13]  # sub-02, condition 0, repetition 1
    a = store.array("sub-02", "training")
    cols = [THINGS_EEG2_CHANNELS.index("Oz"), THINGS_EEG2_CHANNELS.index("Cz")]
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, a[0, 1, cols].astype(np.float32))
    assert y == 0 and crop == [0, 0, N_TIMES]
    assert concat[23][1] == 2  # concept of condition 5
    md = concat.get_metadata()
    assert len(md) == 24 and set(md["subject"]) == {"sub-01", "sub-02"}
    assert list(concat.description["subject"]) == ["sub-01", "sub-02"]
    parts = concat.split("subject")
    assert sorted(parts) == ["sub-01", "sub-02"] and len(parts["sub-01"]) == 12
    concat.set_target("condition")
    assert concat[23][1] == 5
    # lazy view pickles without braindecode-import side effects and reads the same values
    again = pickle.loads(pickle.dumps(concat.datasets[1]))
    np.testing.assert_array_equal(again[1][0], X)
    # the eager variant (in-memory WindowsDataset) gives the same items
    eager = to_braindecode(store, ["sub-02"], "training", channels=["Oz", "Cz"], lazy=False)
    Xe, ye, crop_e = eager[1]
    np.testing.assert_array_equal(Xe, X)
    assert ye == 0 and crop_e == [0, 0, N_TIMES]
    assert concat.datasets[1].windows.get_data().shape == (12, 2, N_TIMES)
