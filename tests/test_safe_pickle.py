"""The restricted pickle parser: reads what numpy/pickle write, refuses code, never unpickles."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from eegvision.readers import safe_pickle
from eegvision.readers.pickle_values import (
    ArrayRef,
    PickleFormatError,
    TruncatedFileError,
    UnsafePickleError,
)
from eegvision.readers.safe_pickle import load_data_pickle, parse_data_pickle


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    """Any call to the real unpicklers during a test is a failure."""

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle.load / np.load must never be called by the safe parser")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(np, "load", forbidden)


def _sample(rng: np.random.Generator) -> dict:
    data = rng.standard_normal((5, 3, 4, 7))
    return {
        "preprocessed_eeg_data": data,
        "ch_names": ["Fp1", "Fp2", "Oz", "O2"],
        "times": np.round(np.arange(-2, 7) / 250.0, 3),
        "sfreq": 250.0,
        "np_sfreq": np.float64(250.0),
        "n": np.int64(-3),
        "fortran": np.asfortranarray(data[0, 0]),
        "strided": data[:, ::2],
        "big_endian": data.astype(">f4"),
        "names": np.array(["ab", "cde"]),
        "objects": np.array(["x", 1, None], dtype=object),
        "flags": np.array([True, False]),
        "empty": np.zeros((0, 3)),
        "misc": (1, 2.5, "é", b"yz", None, True, 2**70, [1, [2]]),
    }


def _check(parsed: dict, original: dict) -> None:
    assert set(parsed) == set(original)
    for key, ref in original.items():
        got = parsed[key]
        if isinstance(got, ArrayRef):
            assert got.dtype == ref.dtype and got.shape == ref.shape, key
            np.testing.assert_array_equal(got.memmap(), ref)
            np.testing.assert_array_equal(got.read(), ref)
        elif isinstance(ref, np.ndarray):
            assert got.dtype == ref.dtype
            assert list(got.ravel()) == list(ref.ravel())
        else:
            assert got == ref and type(got) is type(ref), key


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_roundtrip_every_protocol(tmp_path, protocol):
    original = _sample(np.random.default_rng(protocol))
    path = tmp_path / f"p{protocol}.npy"
    with open(path, "wb") as f:
        pickle.dump(original, f, protocol=protocol)
    _check(parse_data_pickle(path), original)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_array_is_mapped_in_place_at_the_reported_offset(tmp_path, protocol):
    data = np.random.default_rng(0).standard_normal((6, 2, 63, 25))
    path = tmp_path / "x.npy"
    with open(path, "wb") as f:
        pickle.dump({"preprocessed_eeg_data": data}, f, protocol=protocol)
    ref = parse_data_pickle(path)["preprocessed_eeg_data"]
    assert ref.in_place and ref.order == "C"
    raw = path.read_bytes()[ref.offset: ref.offset + ref.nbytes]
    assert raw == data.tobytes()  # the offset points at the raw buffer itself
    mm = ref.memmap()
    assert isinstance(mm, np.memmap) and Path(mm.filename).resolve() == path.resolve() and not mm.flags.writeable
    np.testing.assert_array_equal(mm, data)


class _CountingFile:
    """File proxy that counts the bytes a reader actually reads."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def read(self, n=-1):
        out = self.f.read(n)
        self.n += len(out)
        return out

    def readline(self, n=-1):
        out = self.f.readline(n)
        self.n += len(out)
        return out

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_large_buffers_are_skipped_not_read(tmp_path, monkeypatch):
    data = np.zeros((40, 4, 63, 250))  # 20 MB
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:
        pickle.dump({"preprocessed_eeg_data": data, "ch_names": ["a"]}, f, protocol=4)
    opened = []

    def counting_open(*args, **kwargs):
        opened.append(_CountingFile(io.open(*args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr(safe_pickle, "open", counting_open, raising=False)
    ref = parse_data_pickle(path)["preprocessed_eeg_data"]
    assert ref.shape == data.shape
    assert sum(f.n for f in opened) < 10_000  # a few hundred bytes of opcodes, not 20 MB


def _numpy1_pickle(obj, protocol: int) -> bytes:
    """The pickle numpy 1.x writes: same opcodes with ``numpy.core`` module names (no frames)."""
    buf = io.BytesIO()
    pickler = pickle._Pickler(buf, protocol)
    pickler.framer.start_framing = lambda: None  # frames are optional; keep byte edits simple
    pickler.dump(obj)
    data = buf.getvalue()
    if protocol == 2:
        return data.replace(b"numpy._core.", b"numpy.core.")
    for new, old in ((b"numpy.core.multiarray", b"numpy._core.multiarray"),
                     (b"numpy.core.numeric", b"numpy._core.numeric")):
        data = data.replace(b"\x8c" + bytes([len(old)]) + old, b"\x8c" + bytes([len(new)]) + new)
    return data


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy1_module_names(tmp_path, protocol):
    original = {"preprocessed_eeg_data": np.arange(24.0).reshape(2, 3, 4), "s": np.float32(1.5),
                "t": np.linspace(0, 1, 5)}
    blob = _numpy1_pickle(original, protocol)
    assert b"numpy.core" in blob and b"numpy._core" not in blob
    path = tmp_path / "np1.npy"
    path.write_bytes(blob)
    _check(parse_data_pickle(path), original)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_code_execution_is_refused(tmp_path, protocol):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.npy"
    payload = {"preprocessed_eeg_data": np.zeros((2, 1, 3, 4)), "ch_names": ["a"], "times": _Exploit(marker)}
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(UnsafePickleError) as err:
        parse_data_pickle(path)
    msg = str(err.value)
    assert f"{os.system.__module__}.system" in msg  # posix.system on Linux
    assert str(path) in msg
    assert not marker.exists()  # nothing ran


def test_other_callables_and_objects_are_refused(tmp_path):
    path = tmp_path / "eval.npy"
    path.write_bytes(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x041+1\x85R.")
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        parse_data_pickle(path)
    path.write_bytes(pickle.dumps({"x": {1, 2}}, protocol=4))
    with pytest.raises(UnsafePickleError, match="set"):
        parse_data_pickle(path)
    path.write_bytes(pickle.dumps(_Plain(), protocol=4))
    with pytest.raises(UnsafePickleError, match=r"test_safe_pickle\._Plain"):
        parse_data_pickle(path)


class _Plain:
    pass


def test_out_of_band_buffers_are_refused(tmp_path):
    buffers = []
    path = tmp_path / "oob.npy"
    path.write_bytes(pickle.dumps({"x": np.zeros(10)}, protocol=5, buffer_callback=buffers.append))
    assert buffers  # the data really is out of band
    with pytest.raises(UnsafePickleError, match="out-of-band"):
        parse_data_pickle(path)


def test_truncated_buffer_and_missing_stop(tmp_path):
    data = np.random.default_rng(0).standard_normal((4, 2, 63, 250))
    blob = pickle.dumps({"preprocessed_eeg_data": data, "ch_names": ["a"]}, protocol=4)
    path = tmp_path / "cut.npy"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(TruncatedFileError) as err:
        parse_data_pickle(path)
    assert "truncated" in str(err.value) and str(path) in str(err.value) and "bytes missing" in str(err.value)
    path.write_bytes(blob[:-1])  # everything but STOP
    with pytest.raises(TruncatedFileError, match="STOP"):
        parse_data_pickle(path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "plain.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.zeros(3))
    with pytest.raises(PickleFormatError, match="plain .npy array"):
        parse_data_pickle(path)
    path.write_bytes(b"")
    with pytest.raises(PickleFormatError, match="empty"):
        parse_data_pickle(path)
    with pytest.raises(FileNotFoundError):
        parse_data_pickle(tmp_path / "missing.npy")


def test_load_data_pickle_materialises_small_arrays(tmp_path):
    big = np.ones((600, 300))  # 1.44 MB
    small = np.linspace(-0.2, 1.0, 300)
    path = tmp_path / "x.npy"
    path.write_bytes(pickle.dumps({"big": big, "times": small}, protocol=4))
    out = load_data_pickle(path)
    assert isinstance(out["big"], ArrayRef)
    assert isinstance(out["times"], np.ndarray)
    np.testing.assert_array_equal(out["times"], small)


def test_protocol2_large_array_is_decoded_in_blocks(tmp_path):
    data = np.random.default_rng(3).standard_normal((300, 600))  # 1.44 MB: stored as latin-1 text
    path = tmp_path / "p2.npy"
    path.write_bytes(pickle.dumps({"x": data}, protocol=2))
    ref = parse_data_pickle(path)["x"]
    assert ref.encoding == "latin1" and not ref.in_place
    np.testing.assert_array_equal(ref.memmap(), data)
