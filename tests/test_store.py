"""The on-disk store: StoreWriter (streaming, atomic, idempotent) and open_store."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from eegvision.store import writer as store_mod
from eegvision.store.base import METADATA_COLUMNS
from eegvision.store.disk import open_store
from eegvision.store.writer import StoreWriter

CH = ["Fp1", "Cz", "Oz"]
TIMES = np.arange(10) / 100.0


def _meta(n_cond: int, names=("cat", "dog", "emu", "fox", "gnu")) -> pd.DataFrame:
    idx = np.arange(n_cond) // 2
    return pd.DataFrame({"concept_index": idx, "concept": [names[i] for i in idx],
                         "image_index": np.arange(n_cond) % 2,
                         "image_path": [f"/img/{i}.jpg" for i in range(n_cond)]})


def _writer(path, **kw) -> StoreWriter:
    args = dict(dataset="toy", ch_names=CH, sfreq=100.0, times=TIMES, dtype="float32")
    args.update(kw)
    return StoreWriter(path, **args)


def _data(seed=0, shape=(6, 2, 3, 10)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _final_files(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def test_roundtrip_metadata_and_manifest(tmp_path):
    src = tmp_path / "source.bin"
    src.write_bytes(b"raw recording bytes")
    data = _data()
    out = tmp_path / "store"
    with _writer(out, chunk_mb=0.0005) as w:  # ~500-byte chunks: many chunks for 6 conditions
        w.add("sub-01", "training", data, _meta(6), sources=[src])
        w.add("2", "test", data[:4, :1], _meta(4))
    s = open_store(out)
    assert s.subjects == ["sub-01", "sub-02"]
    arr = s.array("sub-01", "training")
    assert isinstance(arr, np.memmap) and not arr.flags.writeable
    np.testing.assert_array_equal(arr, data.astype(np.float32))
    meta = s.metadata("sub-01", "training")
    assert list(meta.columns) == list(METADATA_COLUMNS)
    assert len(meta) == 12
    np.testing.assert_array_equal(meta["condition"], np.repeat(np.arange(6), 2))
    np.testing.assert_array_equal(meta["repetition"], np.tile(np.arange(2), 6))
    assert meta["concept"].tolist()[:6] == ["cat", "cat", "cat", "cat", "dog", "dog"]
    assert s.concepts("training") == ["cat", "dog", "emu"]
    assert s.images("test") == [f"/img/{i}.jpg" for i in range(4)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["dataset"] == "toy"
    assert manifest["ch_names"] == CH and np.allclose(manifest["times"], TIMES)
    entry = manifest["subjects"]["sub-01"]["training"]
    assert entry["shape"] == [6, 2, 3, 10]
    assert entry["sources"][0]["size"] == src.stat().st_size
    assert entry["sources"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    info = s.info()
    assert info["subjects"]["sub-02"]["test"] == [4, 1, 3, 10] and info["dtype"] == "float32"


def test_float16_is_within_half_precision(tmp_path):
    data = _data(1) * 5
    with _writer(tmp_path / "s", dtype="float16") as w:
        w.add("sub-01", "training", data, _meta(6))
    arr = open_store(tmp_path / "s").array("sub-01", "training")
    assert arr.dtype == np.float16
    # float16 has an 11-bit significand: relative rounding error <= 2**-11
    np.testing.assert_array_less(np.abs(arr.astype(np.float64) - data), np.abs(data) * 2.0**-11 + 1e-7)


def test_memmap_source_is_streamed(tmp_path):
    data = _data(2, (9, 2, 3, 10))
    raw = tmp_path / "raw.bin"
    data.tofile(raw)
    mm = np.memmap(raw, dtype=np.float64, mode="r", shape=data.shape)
    with _writer(tmp_path / "s", chunk_mb=0.001) as w:
        w.add("sub-01", "training", mm, _meta(9))
        w.add("sub-01", "test", mm[3:7], _meta(4))  # a view: offset inside the file
    s = open_store(tmp_path / "s")
    np.testing.assert_array_equal(s.array("sub-01", "training"), data.astype(np.float32))
    np.testing.assert_array_equal(s.array("sub-01", "test"), data[3:7].astype(np.float32))


def test_nan_is_reported_and_nothing_is_written(tmp_path):
    data = _data()
    data[4, 1, 2, 3] = np.nan
    out = tmp_path / "s"
    with pytest.raises(ValueError, match=r"sub-01 training.*condition 4 holds NaN or Inf"):
        with _writer(out, chunk_mb=0.0005) as w:
            w.add("sub-01", "training", data, _meta(6))
    assert not out.exists()  # created by this run, removed on failure


def test_float16_overflow_is_reported(tmp_path):
    data = _data()
    data[2] *= 1e6
    with pytest.raises(ValueError, match=r"condition 2\) exceed the float16 range.*float32"):
        with _writer(tmp_path / "s", dtype="float16") as w:
            w.add("sub-01", "training", data, _meta(6))


def test_interruption_leaves_no_store(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        with _writer(out) as w:
            w.add("sub-01", "training", _data(), _meta(6))
            raise KeyboardInterrupt
    assert _final_files(out) == []  # no manifest, no final-name file, no temporary
    with pytest.raises(FileNotFoundError, match="not an eegvision store"):
        open_store(out)


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path):
    out = tmp_path / "s"
    (out / "sub-01").mkdir(parents=True)
    (out / "sub-01" / ".training.npy.x1y2.tmp").write_bytes(b"half")
    (out / ".manifest.json.abc.tmp").write_text("{")
    with _writer(out) as w:
        w.add("sub-01", "training", _data(), _meta(6))
    assert _final_files(out) == ["manifest.json", "sub-01/training.npy", "sub-01/training.tsv"]


def test_interrupted_commit_is_recovered(tmp_path):
    out = tmp_path / "s"
    with _writer(out) as w:
        w.add("sub-01", "training", _data(), _meta(6))
    # state after a crash in the commit window: marker, no manifest, files under final names
    (out / "manifest.json").unlink()
    (out / ".eegvision-commit").write_text("x")
    with _writer(out) as w:
        w.add("sub-02", "training", _data(3), _meta(6))
    assert open_store(out).subjects == ["sub-02"]


def test_different_store_and_foreign_files_are_refused(tmp_path):
    out = tmp_path / "s"
    with _writer(out, dtype="float32") as w:
        w.add("sub-01", "training", _data(), _meta(6))
    with pytest.raises(FileExistsError) as err:
        with _writer(out, dtype="float16"):
            pass
    assert "different eegvision store" in str(err.value) and "dtype" in str(err.value)
    assert "--overwrite" in str(err.value)
    with pytest.raises(FileExistsError, match="channel"):
        with _writer(out, ch_names=["A", "B", "C"]):
            pass
    # overwrite replaces it, and only once the new store is complete
    with _writer(out, dtype="float16", overwrite=True) as w:
        w.add("sub-02", "test", _data(), _meta(6))
    s = open_store(out)
    assert s.subjects == ["sub-02"] and s.dtype == np.float16
    assert not (out / "sub-01").exists()

    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("...")
    (foreign / "sub-05").mkdir()
    with pytest.raises(FileExistsError, match=r"not part of an eegvision store \(chapter1.tex\)"):
        with _writer(foreign):
            pass
    assert (foreign / "chapter1.tex").exists() and (foreign / "sub-05").is_dir()  # nothing touched


def test_is_current_and_adding_subjects(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"a" * 100)
    out = tmp_path / "s"
    with _writer(out) as w:
        assert not w.is_current("sub-01", "training", [src])
        w.add("sub-01", "training", _data(), _meta(6), sources=[src])
    with _writer(out) as w:
        assert w.is_current("sub-01", "training", [src])
        w.add("sub-02", "training", _data(1), _meta(6))
    assert open_store(out).subjects == ["sub-01", "sub-02"]  # earlier subjects kept
    src.write_bytes(b"b" * 100)  # same size, different content
    with _writer(out) as w:
        assert not w.is_current("sub-01", "training", [src])


def test_inconsistent_concepts_and_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="share one concept order"):
        with _writer(tmp_path / "a") as w:
            w.add("sub-01", "training", _data(), _meta(6))
            w.add("sub-02", "training", _data(), _meta(6, names=("cow", "dog", "emu", "fox", "gnu")))
    with pytest.raises(ValueError, match=r"expected 4-D"):
        with _writer(tmp_path / "b") as w:
            w.add("sub-01", "training", _data()[:, 0], _meta(6))
    with pytest.raises(ValueError, match="8 rows"):
        with _writer(tmp_path / "c") as w:
            w.add("sub-01", "training", _data(), _meta(8))


def test_unknown_subject_and_split_suggest_names(tmp_path):
    with _writer(tmp_path / "s") as w:
        w.add("sub-01", "training", _data(), _meta(6))
    s = open_store(tmp_path / "s")
    with pytest.raises(ValueError, match=r"'sub-10'.*Did you mean sub-01"):
        s.array("sub-10", "training")
    with pytest.raises(ValueError, match=r"'train'.*training"):
        s.metadata("sub-01", "train")
    np.testing.assert_array_equal(s.array(1, "training"), s.array("sub-01", "training"))


def test_release_pages_keeps_values(tmp_path):
    from eegvision.utils import release_mapped_pages

    data = _data(4, (8, 2, 3, 10))
    raw = tmp_path / "r.bin"
    data.tofile(raw)
    mm = np.memmap(raw, dtype=np.float64, mode="r", shape=data.shape)
    blocks = [np.array(b) for _, b in store_mod._iter_chunks(mm[1:], 7, 3)]
    np.testing.assert_array_equal(np.concatenate(blocks), data[1:])
    release_mapped_pages(mm[2:5])
    np.testing.assert_array_equal(mm, data)  # released pages are read again from the file


def test_info_names_an_interrupted_store_and_its_temporaries(tmp_path):
    """A killed conversion: `info` says it is an interrupted store, how to finish it, and reports what is left."""
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    out = tmp_path / "s"
    (out / "sub-01").mkdir(parents=True)
    (out / "sub-01" / ".training.npy.x1y2.tmp").write_bytes(b"h" * 2_000_000)
    res = CliRunner().invoke(app, ["info", str(out)])
    assert res.exit_code == 2 and "Preprocessed_data_250Hz" not in res.stderr
    assert (f"error: {out} is an interrupted eegvision store: its conversion stopped before writing manifest.json and "
            "left 1 hidden temporary file(s) (2.0 MB). Run the same `eegvision convert` command again to finish it "
            "(it removes them first), or delete the folder.") in res.stderr
    # a finished store with the temporaries of a later, killed addition
    (out / "sub-01" / ".training.npy.x1y2.tmp").unlink()
    with _writer(out) as w:
        w.add("sub-01", "training", _data(), _meta(6))
    (out / "sub-01" / ".test.npy.k9.tmp").write_bytes(b"h" * 1_500_000)
    res = CliRunner().invoke(app, ["info", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["temporary_files"] == ["sub-01/.test.npy.k9.tmp"] and doc["temporary_mb"] == 1.5
    assert doc["size_mb"] < 1.0  # the temporary is not counted as data
    assert ("note: 1 hidden temporary file(s) of an interrupted conversion (1.5 MB) are in "
            f"{out}: run the conversion again to finish it and remove them, or delete them "
            "(sub-01/.test.npy.k9.tmp).") in res.stderr
