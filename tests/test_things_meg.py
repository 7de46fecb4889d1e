"""THINGS-MEG reader (eegvision.readers.things_meg) on small -epo.fif files in the real layout.

Miniature THINGS: 6 concepts x 4 images (image_concept_index.csv with 24 lines, image_paths.csv).
Per participant: the first image of concepts 1 and 2 is a test image shown 12 times; every other image
is shown once (those of concepts 1 and 2 must be excluded from training); 3 catch trials (999999).
6 'mag' sensors + 1 reference sensor + a stim channel, 200 Hz, -0.1 ... 1.3 s (281 samples), in tesla.
"""

from __future__ import annotations

import mne
import numpy as np
import pandas as pd
import pytest

from eegvision.readers.things_meg import CATCH_CODE, split_things_meg_events
from eegvision.store.convert import convert_things_meg
from eegvision.store.disk import open_store

N_CONCEPTS, N_IMAGES = 6, 4
CONCEPTS = ["aardvark", "abacus", "accordion", "acorn", "air_conditioner", "airplane"]
TEST_IMAGES = [1, 5]  # THINGS image numbers (1-based), concepts 1 and 2


def _events(rng):
    codes = [c for c in TEST_IMAGES for _ in range(12)]
    codes += [i for i in range(1, N_CONCEPTS * N_IMAGES + 1) if i not in TEST_IMAGES]
    codes += [CATCH_CODE] * 3
    codes = np.array(codes)
    rng.shuffle(codes)
    return codes


@pytest.fixture(scope="module")
def meg_src(tmp_path_factory):
    src = tmp_path_factory.mktemp("things_meg")
    rng = np.random.default_rng(3)
    info = mne.create_info([f"MLC{i}" for i in range(6)] + ["BG1", "UPPT001"], 200.0,
                           ["mag"] * 6 + ["ref_meg", "stim"])
    truth = {}
    for p in (1, 2):
        codes = _events(rng)
        data = rng.normal(0, 2e-13, (len(codes), 8, 281))
        data[:, :6] += codes[:, None, None] * 1e-14  # each epoch carries its code: checks the bookkeeping
        events = np.c_[np.arange(len(codes)) * 400, np.zeros(len(codes), int), codes]
        ep = mne.EpochsArray(data, info, events=events, tmin=-0.1, event_id=None, verbose=False)
        ep.save(src / f"preprocessed_P{p}-epo.fif", verbose=False)
        truth[f"sub-{p:02d}"] = (codes, mne.read_epochs(src / f"preprocessed_P{p}-epo.fif", verbose=False).get_data())
    concept_index = np.repeat(np.arange(1, N_CONCEPTS + 1), N_IMAGES)
    pd.Series(concept_index).to_csv(src / "image_concept_index.csv", index=False, header=False)
    paths = [f"images/{CONCEPTS[c - 1]}/{CONCEPTS[c - 1]}_{k + 1:02d}b.jpg"
             for c, k in zip(concept_index, np.tile(np.arange(N_IMAGES), N_CONCEPTS))]
    pd.Series(paths).to_csv(src / "image_paths.csv", index=False, header=False)
    return src, truth, paths


@pytest.fixture(scope="module")
def meg_store(meg_src, tmp_path_factory):
    src, _, _ = meg_src
    return open_store(convert_things_meg(src, tmp_path_factory.mktemp("s") / "store", dtype="float32"))


def test_counts_shapes_and_crop(meg_store):
    s = meg_store
    assert s.dataset == "things-meg" and s.subjects == ["sub-01", "sub-02"]
    assert s.ch_names == [f"MLC{i}" for i in range(6)]  # reference sensor and stim left out
    assert s.ch_types == ["mag"] * 6
    assert len(s.times) == 201 and s.times[0] == 0.0 and s.times[-1] == pytest.approx(1.0)
    assert s.sfreq == 200.0
    for sub in s.subjects:
        assert s.array(sub, "test").shape == (2, 12, 6, 201)
        # 16 images of the 4 non-test concepts; the 6 other images of test concepts are excluded
        assert s.array(sub, "training").shape == (16, 1, 6, 201)


def test_values_order_and_exclusion(meg_store, meg_src):
    _, truth, paths = meg_src
    for sub, (codes, data) in truth.items():
        for split in ("training", "test"):
            meta = meg_store.metadata(sub, split)
            arr = np.asarray(meg_store.array(sub, split), dtype=np.float64)
            cond_codes = meta.loc[meta.repetition == 0, "event_code"].to_numpy()
            assert list(cond_codes) == sorted(cond_codes)  # conditions sorted by event code
            for i, code in enumerate(cond_codes):
                expected = data[codes == code][:, :6, 20:221] * 1e15  # 0..1 s, in fT
                np.testing.assert_allclose(arr[i], expected, rtol=1e-5, atol=1e-3)
        train = meg_store.metadata(sub, "training")
        assert set(train["event_code"]) == set(range(9, 25))  # concepts 3..6 only
        assert CATCH_CODE not in set(train["event_code"])
        test = meg_store.metadata(sub, "test")
        assert test["event_code"].tolist()[::12] == TEST_IMAGES
        assert test["concept"].tolist()[::12] == ["aardvark", "abacus"]
        assert train["concept"].tolist()[::4] == CONCEPTS[2:]
        assert train["image_index"].tolist() == [0, 1, 2, 3] * 4
        assert train["concept_index"].tolist() == list(np.repeat(np.arange(4), 4))
        assert train["image_path"].tolist()[0] == paths[8]


def test_split_rule_matches_brute_force():
    rng = np.random.default_rng(0)
    concept = rng.integers(1, 30, 300)
    codes = rng.integers(9, 301, 500)  # 7 and 8 are the test images
    codes = np.concatenate([codes, np.repeat([7, 8], 12), [CATCH_CODE] * 5])
    is_test, is_train = split_things_meg_events(codes, concept)
    counts = {c: (codes == c).sum() for c in set(codes.tolist())}
    test_codes = {c for c, n in counts.items() if n == 12 and c != CATCH_CODE}
    test_concepts = {concept[c - 1] for c in test_codes}
    for k, c in enumerate(codes):
        assert is_test[k] == (c in test_codes)
        assert is_train[k] == (c != CATCH_CODE and c not in test_codes and concept[c - 1] not in test_concepts)


def test_subset_names_and_tables_fallback(meg_src, tmp_path):
    src, _, _ = meg_src
    no_paths = tmp_path / "src"
    no_paths.mkdir()
    for f in ("preprocessed_P2-epo.fif", "image_concept_index.csv"):
        (no_paths / f).symlink_to(src / f)
    s = open_store(convert_things_meg(no_paths, tmp_path / "store", subjects=["P2"]))
    assert s.subjects == ["sub-02"]
    meta = s.metadata("sub-02", "test")
    # without image_paths.csv: THINGS uniqueIDs from eegvision's tables (THINGS concepts 1, 2)
    assert meta["concept"].tolist()[::12] == ["aardvark", "abacus"] and set(meta["image_path"]) == {""}
    assert s.array("sub-02", "test").dtype == np.float16
    assert np.abs(np.asarray(s.array("sub-02", "test"), dtype=np.float32)).max() > 10  # fT, not 0


def test_errors(meg_src, tmp_path):
    src, _, _ = meg_src
    with pytest.raises(ValueError) as err:
        convert_things_meg(src, tmp_path / "a", subjects=["P7"])
    assert err.value.args[0] == f"Subject 'sub-07' is not in {src} (available: sub-01, sub-02). Did you mean sub-01 or sub-02?"
    short = tmp_path / "short.csv"
    pd.Series(np.arange(1, 11)).to_csv(short, index=False, header=False)
    with pytest.raises(ValueError, match=r"image_paths.csv lists 24 images but .*short.csv 10"):
        convert_things_meg(src, tmp_path / "b", concept_index_csv=short)
    with pytest.raises(ValueError, match=r"event code\(s\) \[11, 12\] are not THINGS image numbers 1..10"):
        split_things_meg_events(np.array([1, 11, 12, CATCH_CODE]), np.ones(10, dtype=int))
    assert not (tmp_path / "b").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="No preprocessed_P<N>-epo.fif"):
        convert_things_meg(empty, tmp_path / "c")


def test_failure_in_a_later_subject_leaves_no_store(meg_src, tmp_path):
    src, _, _ = meg_src
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in ("preprocessed_P1-epo.fif", "image_concept_index.csv"):
        (mixed / f).symlink_to(src / f)
    info = mne.create_info(["MLC0"], 200.0, ["mag"])
    codes = np.arange(1, 11)  # no image repeated 12 times: no test set
    ep = mne.EpochsArray(np.zeros((10, 1, 281)), info, events=np.c_[np.arange(10) * 400, np.zeros(10, int), codes],
                         tmin=-0.1, verbose=False)
    ep.save(mixed / "preprocessed_P2-epo.fif", verbose=False)
    with pytest.raises(ValueError, match="no image occurs exactly 12 times"):
        convert_things_meg(mixed, tmp_path / "store")
    assert not (tmp_path / "store" / "manifest.json").exists()
    assert not any((tmp_path / "store").rglob("*.npy")) if (tmp_path / "store").exists() else True


def test_cli_convert_things_meg(meg_src, tmp_path):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    src, _, _ = meg_src
    res = CliRunner().invoke(app, ["convert", "things-meg", str(src), str(tmp_path / "store"), "--subjects", "P1"])
    assert res.exit_code == 0, res.output
    assert open_store(tmp_path / "store").array("sub-01", "test").shape == (2, 12, 6, 201)
    res = CliRunner().invoke(app, ["convert", "things-meg", str(src), str(tmp_path / "s2"), "--subjects", "P9"])
    assert res.exit_code == 2 and "Subject 'sub-09' is not in" in res.output
