"""THINGS-EEG2 preprocessed pickles (real layout) → in-place reader and store conversion."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eegvision.readers.channels import THINGS_EEG2_CHANNELS
from eegvision.readers.images import make_prompts, scan_image_folder
from eegvision.readers.pickle_values import TruncatedFileError, UnsafePickleError
from eegvision.readers.things_eeg2 import open_preprocessed, things_eeg2_concepts
from eegvision.store import writer as store_mod
from eegvision.store.concepts import ConceptTable
from eegvision.store.convert import convert_things_eeg2
from eegvision.store.disk import open_store
from eegvision.store.things_folder import open_things_eeg2

N_TRAIN, N_TEST, R_TRAIN, R_TEST = 20, 3, 2, 4  # 2 training concepts x 10 images, 3 test images
TIMES_300 = np.round(np.arange(-50, 250) / 250.0, 3)  # as saved: -0.2 ... 0.996 s
TRAIN_FOLDERS = ["00001_aircraft_carrier", "00002_baton4"]
TEST_FOLDERS = ["00001_antelope", "00002_chest2", "00003_pepper1"]


def _eeg(seed: int, n_cond: int, n_rep: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_cond, n_rep, 63, 250))


def _write(path: Path, content: dict, protocol: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=protocol)


def _content(data: np.ndarray, **extra) -> dict:
    return {"preprocessed_eeg_data": data, "ch_names": list(THINGS_EEG2_CHANNELS), "times": TIMES_300, **extra}


def make_things(root: Path, subjects=("sub-01", "sub-02"), protocol: int = 4, images: bool = True) -> dict:
    """THINGS-EEG2 layout: Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_*.npy and image folders."""
    arrays = {}
    for i, sub in enumerate(subjects):
        for split, (n, r) in {"training": (N_TRAIN, R_TRAIN), "test": (N_TEST, R_TEST)}.items():
            arrays[sub, split] = _eeg(10 * i + len(split), n, r)
            _write(root / "Preprocessed_data_250Hz" / sub / f"preprocessed_eeg_{split}.npy",
                   _content(arrays[sub, split]), protocol)
    if images:
        for split, folders, per in (("training", TRAIN_FOLDERS, 10), ("test", TEST_FOLDERS, 1)):
            for folder in folders:
                d = root / f"{split}_images" / folder
                d.mkdir(parents=True)
                for j in range(per):
                    (d / f"{folder.split('_', 1)[1]}_{j:02d}s.jpg").write_bytes(b"jpg")
    return arrays


@pytest.fixture
def forbid_unpickling(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the THINGS-EEG2 reader must never unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    yield
    monkeypatch.undo()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_open_preprocessed_maps_the_pickle(tmp_path, protocol, forbid_unpickling):
    data = _eeg(0, 5, 2)
    path = tmp_path / "preprocessed_eeg_test.npy"
    _write(path, _content(data), protocol)
    pf = open_preprocessed(path)
    np.testing.assert_array_equal(pf.data, data)
    assert not pf.data.flags.writeable
    if protocol >= 4:
        assert isinstance(pf.data, np.memmap) and Path(pf.data.filename).resolve() == path.resolve()
    assert pf.n_dropped_times == 50 and len(pf.times) == 250
    assert pf.times[0] == 0.0 and pf.times[-1] == pytest.approx(0.996)
    assert pf.sfreq == 250.0  # inferred from times
    assert pf.ch_names == list(THINGS_EEG2_CHANNELS)


def test_sfreq_key_and_times_list(tmp_path):
    path = tmp_path / "x.npy"
    _write(path, _content(_eeg(0, 2, 1), sfreq=500, times=list(np.arange(260) / 500)))
    pf = open_preprocessed(path)
    assert pf.sfreq == 500.0 and pf.n_dropped_times == 10 and pf.times[0] == pytest.approx(0.02)


def test_bad_files_get_clear_errors(tmp_path):
    path = tmp_path / "preprocessed_eeg_training.npy"
    _write(path, {"preprocessed_eeg_data": _eeg(0, 2, 1), "ch_names": list(THINGS_EEG2_CHANNELS)})
    with pytest.raises(ValueError, match=r"missing key\(s\) 'times'"):
        open_preprocessed(path)
    _write(path, _content(_eeg(0, 2, 1)[:, 0]))
    with pytest.raises(ValueError) as err:
        open_preprocessed(path)
    assert err.value.args[0] == (f"{path}: 'preprocessed_eeg_data' has shape (2, 63, 250); expected (conditions, "
                                 "repetitions, channels, times). The published files hold (16540, 4, 63, 250) for "
                                 "training and (200, 80, 63, 250) for test.")
    _write(path, _content(np.zeros((2, 1, 63, 250), dtype=np.int32)))
    with pytest.raises(ValueError, match="dtype int32; expected floating-point values"):
        open_preprocessed(path)
    names = list(THINGS_EEG2_CHANNELS)
    names[names.index("Oz")] = "OZ"
    names[names.index("Fp1")] = "EXG1"
    _write(path, {**_content(_eeg(0, 2, 1)), "ch_names": names})
    with pytest.raises(ValueError) as err:
        open_preprocessed(path)
    assert "missing Fp1, Oz" in str(err.value) and "unexpected EXG1, OZ" in str(err.value)
    swapped = list(THINGS_EEG2_CHANNELS)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    _write(path, {**_content(_eeg(0, 2, 1)), "ch_names": swapped})
    with pytest.raises(ValueError, match="another order"):
        open_preprocessed(path)
    assert open_preprocessed(path, expected_channels=None).ch_names == swapped


def test_truncated_download(tmp_path):
    path = tmp_path / "preprocessed_eeg_test.npy"
    _write(path, _content(_eeg(0, 4, 2)))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) - 300_000])
    with pytest.raises(TruncatedFileError, match="truncated"):
        open_preprocessed(path)


def test_malicious_subject_file_stops_conversion(tmp_path):
    make_things(tmp_path / "src", subjects=("sub-01",), images=False)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "src" / "Preprocessed_data_250Hz" / "sub-02" / "preprocessed_eeg_test.npy"
    _write(evil, {**_content(_eeg(0, 2, 1)), "times": Exploit()})
    with pytest.raises(UnsafePickleError) as err:
        convert_things_eeg2(tmp_path / "src", tmp_path / "store")
    assert f"{os.system.__module__}.system" in str(err.value) and str(evil) in str(err.value)
    assert not marker.exists() and not (tmp_path / "store").exists()


def test_folder_reader_matches_things_order(tmp_path, forbid_unpickling):
    arrays = make_things(tmp_path)
    src = open_things_eeg2(tmp_path)
    assert src.subjects == ["sub-01", "sub-02"] and src.splits("sub-01") == ["training", "test"]
    np.testing.assert_array_equal(src.array("sub-02", "training"), arrays["sub-02", "training"])
    meta = src.metadata("sub-01", "training")
    cond = np.repeat(np.arange(N_TRAIN), R_TRAIN)
    np.testing.assert_array_equal(meta["concept_index"], cond // 10)
    np.testing.assert_array_equal(meta["image_index"], cond % 10)
    assert src.concepts("training") == ["aircraft_carrier", "baton4"]
    assert src.concepts("test") == ["antelope", "chest2", "pepper1"]
    assert Path(meta["image_path"][2 * 13]).name == "baton4_03s.jpg"  # condition 13 = concept 1, image 3
    assert make_prompts(src.concepts("test")) == ["This picture is antelope", "This picture is chest2",
                                                  "This picture is pepper1"]
    test_table = src.concept_table("test")  # one image per test concept: each row carries its image
    assert test_table.index == (0, 1, 2) and test_table.name == ("antelope", "chest2", "pepper1")
    assert [Path(p).parent.name for p in test_table.image] == TEST_FOLDERS and test_table.split == "test"
    train_table = src.concept_table("training")  # ten images per concept: no single image
    assert train_table.name == ("aircraft_carrier", "baton4") and train_table.image == (None, None)
    # without images: names from the shipped THINGS-EEG2 tables
    plain = open_things_eeg2(tmp_path, with_images=False)
    assert plain.concepts("training") == ["aardvark", "abacus"] and plain.images("test") is None
    assert plain.metadata("sub-01", "test")["concept"].tolist()[::R_TEST] == things_eeg2_concepts("test")[:3]


def test_things_tables():
    train, test = things_eeg2_concepts("training"), things_eeg2_concepts("test")
    assert len(train) == 1654 and len(test) == 200
    assert train[0] == "aardvark" and test[0] == "aircraft_carrier"


def test_unknown_subject_suggests(tmp_path):
    make_things(tmp_path, images=False)
    with pytest.raises(ValueError) as err:
        open_things_eeg2(tmp_path, subjects=["sub-O1"])
    assert err.value.args[0] == (f"Subject 'sub-O1' is not in {tmp_path / 'Preprocessed_data_250Hz'} "
                                 "(available: sub-01, sub-02). Did you mean sub-01?")
    with pytest.raises(ValueError, match=r"subjects takes a list such as \['sub-01', 'sub-02'\]; got the text"):
        open_things_eeg2(tmp_path, subjects="sub-01,sub-02")  # comma lists are split by the command line
    assert open_things_eeg2(tmp_path, subjects=[2]).subjects == ["sub-02"]
    with pytest.raises(ValueError, match="contradict"):
        open_things_eeg2(tmp_path, images=tmp_path, with_images=False)


def test_image_count_mismatch(tmp_path):
    make_things(tmp_path, subjects=("sub-01",))
    missing = next((tmp_path / "training_images" / "00002_baton4").iterdir())
    missing.unlink()
    with pytest.raises(ValueError) as err:
        convert_things_eeg2(tmp_path, tmp_path / "store")
    msg = str(err.value)
    assert "found 19 images in 2 concept folders" in msg and "20 training conditions" in msg
    assert not (tmp_path / "store").exists()


def test_scan_image_folder_sorted(tmp_path):
    for folder, files in (("00002_b", ["z.jpg", "a.JPG"]), ("00001_a_b", ["m.png", ".hidden.jpg", "n.txt"])):
        (tmp_path / folder).mkdir()
        for f in files:
            (tmp_path / folder / f).write_bytes(b"")
    s = scan_image_folder(tmp_path)
    assert [p.name for p in s.paths] == ["m.png", "a.JPG", "z.jpg"]
    assert s.concepts == ["a_b", "b"] and s.concept_index.tolist() == [0, 1, 1]
    assert s.image_index.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="placeholder"):
        make_prompts(["a"], "A photo")
    assert make_prompts(["dog"], "a photo of a {concept}.") == ["a photo of a dog."]


def test_convert_store_contents(tmp_path):
    arrays = make_things(tmp_path / "src")
    for dtype, tol in (("float32", 2.0**-24), ("float16", 2.0**-11)):
        out = convert_things_eeg2(tmp_path / "src", tmp_path / dtype, dtype=dtype, chunk_mb=0.5)
        s = open_store(out)
        assert s.subjects == ["sub-01", "sub-02"] and s.dataset == "things-eeg2"
        for (sub, split), ref in arrays.items():
            got = s.array(sub, split)
            assert got.dtype == np.dtype(dtype) and got.shape == ref.shape
            np.testing.assert_array_less(np.abs(got.astype(np.float64) - ref), np.abs(ref) * tol + 1e-7)
        assert s.sfreq == 250.0 and len(s.times) == 250 and s.times[0] == 0.0
        assert s.concepts("training") == ["aircraft_carrier", "baton4"]
        assert Path(s.images("test")[1]).parent.name == "00002_chest2"
        # the store's table is the download's and the test image folder's (what `eegvision features` records)
        in_place = open_things_eeg2(tmp_path / "src").concept_table("test")
        assert s.concept_table("test") == in_place
        assert ConceptTable.from_image_set(scan_image_folder(tmp_path / "src" / "test_images"), "test") == in_place
        meta = s.metadata("sub-02", "training")
        assert len(meta) == N_TRAIN * R_TRAIN and set(meta["subject"]) == {"sub-02"}


def test_conversion_never_unpickles(tmp_path, monkeypatch):
    make_things(tmp_path / "src", subjects=("sub-01",), protocol=4)

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    convert_things_eeg2(tmp_path / "src", tmp_path / "store")
    monkeypatch.undo()
    assert open_store(tmp_path / "store").subjects == ["sub-01"]


def test_rerun_is_idempotent_and_store_conflicts(tmp_path, monkeypatch):
    make_things(tmp_path / "src")
    out = convert_things_eeg2(tmp_path / "src", tmp_path / "store")
    npy = out / "sub-01" / "training.npy"
    before = npy.stat().st_mtime_ns

    def no_work(*args, **kwargs):
        raise AssertionError("an up-to-date entry was converted again")

    monkeypatch.setattr(store_mod.StoreWriter, "add", no_work)
    convert_things_eeg2(tmp_path / "src", tmp_path / "store")
    monkeypatch.undo()
    assert npy.stat().st_mtime_ns == before
    with pytest.raises(FileExistsError, match=r"different eegvision store.*dtype.*--overwrite"):
        convert_things_eeg2(tmp_path / "src", tmp_path / "store", dtype="float32")
    convert_things_eeg2(tmp_path / "src", tmp_path / "store", dtype="float32", overwrite=True)
    assert open_store(out).dtype == np.float32


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    make_things(tmp_path / "src")
    calls = {"n": 0}
    real = store_mod._iter_chunks

    def interrupted(data, n_rows, rows):
        for item in real(data, n_rows, rows):
            calls["n"] += 1
            if calls["n"] == 3:  # mid-way through the first file
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(store_mod, "_iter_chunks", interrupted)
    out = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        convert_things_eeg2(tmp_path / "src", out, chunk_mb=0.3)
    assert not (out / "manifest.json").exists()
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]
    monkeypatch.undo()
    convert_things_eeg2(tmp_path / "src", out)  # the next run works
    assert open_store(out).subjects == ["sub-01", "sub-02"]


def test_nan_in_source_names_subject_and_condition(tmp_path):
    make_things(tmp_path / "src", subjects=("sub-01",), images=False)
    data = _eeg(5, N_TEST, R_TEST)
    data[2, 3, 10, 100] = np.inf
    _write(tmp_path / "src" / "Preprocessed_data_250Hz" / "sub-01" / "preprocessed_eeg_test.npy", _content(data))
    with pytest.raises(ValueError, match=r"sub-01 test \(from preprocessed_eeg_test.npy\): condition 2 holds NaN"):
        convert_things_eeg2(tmp_path / "src", tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_cli_convert_and_info(tmp_path):
    from eegvision.cli.main import app

    make_things(tmp_path / "src", subjects=("sub-01", "sub-02"))
    runner = CliRunner()
    out = tmp_path / "store"
    res = runner.invoke(app, ["convert", "things-eeg2", str(tmp_path / "src"), str(out), "--subjects", "sub-02",
                              "--dtype", "float32"])
    assert res.exit_code == 0, res.output
    assert open_store(out).subjects == ["sub-02"]
    res = runner.invoke(app, ["info", str(out)])
    assert res.exit_code == 0 and "sub-02" in res.output and "3 × 4 × 63 × 250" in res.output
    assert "250 Hz" in res.output and "float32" in res.output
    res = runner.invoke(app, ["convert", "things-eeg2", str(tmp_path / "src"), str(out), "--subjects", "sub-03"])
    assert res.exit_code == 2 and "sub-03" in res.output
    res = runner.invoke(app, ["convert", "things-eeg2", "--help"])
    assert "Example:" in res.output


def _simulated_layout(root: Path, n_concepts: int, per: int, n_rep: int = 2) -> np.ndarray:
    """A THINGS-layout dataset with ``per`` images per training concept (as the simulator writes)."""
    data = _eeg(7, n_concepts * per, n_rep)
    _write(root / "Preprocessed_data_250Hz" / "sub-01" / "preprocessed_eeg_training.npy", _content(data))
    _write(root / "Preprocessed_data_250Hz" / "sub-01" / "preprocessed_eeg_test.npy", _content(_eeg(8, 2, 2)))
    for c in range(n_concepts):
        d = root / "training_images" / f"{c + 1:05d}_thing{c}"
        d.mkdir(parents=True)
        for j in range(per):
            (d / f"thing{c}_{j + 1:02d}s.jpg").write_bytes(b"jpg")
    for c in range(2):
        d = root / "test_images" / f"{c + 1:05d}_probe{c}"
        d.mkdir(parents=True)
        (d / f"probe{c}_01s.jpg").write_bytes(b"jpg")
    return data


@pytest.mark.parametrize("per", [2, 4])
def test_images_per_concept_inferred_from_folders(tmp_path, per):
    from eegvision.readers.things_eeg2 import images_per_concept

    n_concepts = 3
    data = _simulated_layout(tmp_path, n_concepts, per)
    src = open_things_eeg2(tmp_path)
    assert images_per_concept("training", n_concepts * per, src.image_set("training")) == per
    assert src.concepts("training") == [f"thing{c}" for c in range(n_concepts)]
    meta = src.metadata("sub-01", "training")
    first = meta[meta.repetition == 0]
    # hand reference: condition c shows image c % per of concept c // per
    expect_concept = [c // per for c in range(n_concepts * per)]
    expect_image = [c % per for c in range(n_concepts * per)]
    assert first.concept_index.tolist() == expect_concept and first.image_index.tolist() == expect_image
    assert [Path(p).name for p in first.image_path] == [f"thing{c // per}_{c % per + 1:02d}s.jpg"
                                                        for c in range(n_concepts * per)]
    st = open_store(convert_things_eeg2(tmp_path, tmp_path / "store"))
    smeta = st.metadata("sub-01", "training")
    assert smeta.concept_index.tolist() == meta.concept_index.tolist()
    np.testing.assert_allclose(st.array("sub-01", "training"), data.astype(np.float16))


def test_images_per_concept_without_folders_keeps_things_ten():
    from eegvision.readers.things_eeg2 import images_per_concept

    assert len(things_eeg2_concepts("training")) == 1654
    assert images_per_concept("training", 16540) == 10 and images_per_concept("test", 200) == 1


def test_nonuniform_image_folders_are_refused(tmp_path):
    _simulated_layout(tmp_path, 3, 4)
    (tmp_path / "training_images" / "00002_thing1" / "thing1_01s.jpg").unlink()
    (tmp_path / "training_images" / "00003_thing2" / "thing2_99s.jpg").write_bytes(b"jpg")
    with pytest.raises(ValueError, match=r"00002_thing1 \(3\), 00003_thing2 \(5\)"):
        convert_things_eeg2(tmp_path, tmp_path / "store")
    assert not (tmp_path / "store").exists()
