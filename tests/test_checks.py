"""eegvision.checks: every check passes good input through and words bad input exactly as written here."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np
import pytest

from eegvision import checks
from eegvision.checks import (
    check_choice,
    check_dtype,
    check_file,
    check_finite,
    check_list,
    check_name,
    check_names,
    check_positive,
    check_shape,
    close_matches,
    name_error,
    show_list,
)


def _message(exc_info) -> str:
    return str(exc_info.value.args[0])


def test_close_matches_keeps_only_the_nearest():
    assert close_matches("sub-O1", ["sub-01", "sub-02", "sub-20"]) == ["sub-01"]
    assert close_matches("eegnet", ["EEGNetv4", "atms", "nice"]) == ["EEGNetv4"]  # case is ignored
    assert close_matches("atm", ["atms", "atm-s", "nice"]) == ["atms"]  # 0.86; atm-s 0.75 is not close enough
    assert close_matches("lr", ["lr", "epochs"], n=1) == ["lr"]
    assert close_matches("x", []) == []


def test_show_list_shortens_long_lists():
    assert show_list([]) == "none"
    assert show_list(["a", "b"]) == "a, b"
    assert show_list([str(i) for i in range(25)], limit=3) == "0, 1, 2, ... (25 in all)"


def test_check_choice():
    assert check_choice("dtype", "float32", ("float16", "float32")) == "float32"
    with pytest.raises(ValueError) as err:
        check_choice("dtype", "float61", ("float16", "float32"))
    assert _message(err) == "dtype must be one of float16, float32; got 'float61'. Did you mean float16?"
    with pytest.raises(ValueError) as err:
        check_choice("--protocol", 3, ("within", "loso"), hint="See `eegvision fit --help`.")
    assert _message(err) == "--protocol must be one of within, loso; got 3. See `eegvision fit --help`."


def test_check_name_and_names():
    assert check_name("Subject", "sub-01", ["sub-01"], "store s") == "sub-01"
    with pytest.raises(ValueError) as err:
        check_name("Subject", "sub-O1", ["sub-01", "sub-02"], "store /data/eeg")
    assert _message(err) == ("Subject 'sub-O1' is not in store /data/eeg (available: sub-01, sub-02). "
                             "Did you mean sub-01?")
    with pytest.raises(ValueError) as err:
        check_name("Split", "val", [], "sub-01")
    assert _message(err) == "Split 'val' is not in sub-01 (available: none)."

    err = name_error("Encoder", "atmz", ["atms", "nice"], "eegvision", hint="See list_models().")
    assert isinstance(err, ValueError)
    assert err.args[0] == ("Encoder 'atmz' is not in eegvision (available: atms, nice). Did you mean atms? "
                           "See list_models().")

    assert check_names("Channel", ["oz", "O1"], ["O1", "Oz"], "the recording", ignore_case=True) == ["oz", "O1"]
    with pytest.raises(ValueError) as err:
        check_names("Channel", ["Oz", "Pz"], ["O1", "Oz", "P1"], "the recording")
    assert _message(err) == "Channel 'Pz' is not in the recording (available: O1, Oz, P1). Did you mean Oz or P1?"
    with pytest.raises(ValueError) as err:
        check_names("Channel", ["O11", "Cz", "XYZ"], ["O1", "Oz", "Cz"], "the recording")
    assert _message(err) == ("Channel names 'O11', 'XYZ' are not in the recording (available: O1, Oz, Cz). "
                             "Did you mean O1 for 'O11'?")


def test_check_list_refuses_text():
    assert check_list("subjects", ("sub-01", 2), "['sub-01']") == ["sub-01", 2]
    with pytest.raises(ValueError) as err:
        check_list("subjects", "sub-01,sub-02", "['sub-01', 'sub-02']")
    assert _message(err) == ("subjects takes a list such as ['sub-01', 'sub-02']; got the text 'sub-01,sub-02'. "
                             "Split it into a list first.")
    with pytest.raises(ValueError) as err:
        check_list("seeds", 3, "[0, 1]")
    assert _message(err) == "seeds takes a list such as [0, 1]; got 3 (int). Split it into a list first."


def test_check_positive():
    assert check_positive("lr", 1e-3) == 1e-3
    assert check_positive("min_steps", 0, allow_zero=True) == 0
    for bad, text in ((0, "0"), (-1.5, "-1.5"), (float("nan"), "nan"), (True, "True"), ("3", "'3'")):
        with pytest.raises(ValueError) as err:
            check_positive("lr", bad)
        assert _message(err) == f"lr must be a number above 0; got {text}."
    with pytest.raises(ValueError) as err:
        check_positive("min_steps", -1, allow_zero=True)
    assert _message(err) == "min_steps must be a number 0 or more; got -1."


def test_check_shape():
    x = np.zeros((4, 63, 250))
    assert check_shape("eeg", x, (None, 63, 250)) is x
    with pytest.raises(ValueError) as err:
        check_shape("eeg", np.zeros((4, 64, 250)), (None, 63, 250))
    assert _message(err) == "eeg has shape (4, 64, 250); expected (any, 63, 250)."
    with pytest.raises(ValueError) as err:
        check_shape("times", np.zeros((2, 3)), (None,), hint="Give one time per sample.")
    assert _message(err) == "times has shape (2, 3); expected (any,). Give one time per sample."
    with pytest.raises(ValueError) as err:
        check_shape("x", np.zeros(5), (4,))
    assert _message(err) == "x has shape (5,); expected (4,)."


def test_check_dtype():
    x = np.zeros(3, dtype=np.float16)
    assert check_dtype("eeg", x, "f") is x
    assert check_dtype("ids", [1, 2], "iu") == [1, 2]
    with pytest.raises(ValueError) as err:
        check_dtype("eeg", np.zeros(3, dtype=np.int32), "f")
    assert _message(err) == "eeg has dtype int32; expected floating-point values."
    with pytest.raises(ValueError) as err:
        check_dtype("data", np.array(["a"]), "fiu", hint="Convert it to numbers.")
    assert _message(err) == "data has dtype <U1; expected numeric values. Convert it to numbers."


def test_check_finite_counts_and_locates():
    ok = np.ones((2, 2))
    assert check_finite("scores", ok) is ok
    assert check_finite("ids", np.arange(3)) is not None  # integers cannot hold NaN
    bad = np.ones((3, 4))
    bad[1, 2] = np.nan
    bad[2, 0] = np.inf
    bad[2, 1] = np.nan
    with pytest.raises(ValueError) as err:
        check_finite("scores", bad, where="run r1", hint="Check the embeddings.")
    assert _message(err) == ("scores of run r1 holds 2 NaN and 1 infinite value(s), the first at index (1, 2). "
                             "Check the embeddings.")
    with pytest.raises(ValueError) as err:
        check_finite("times", np.array([0.0, 0.1, -np.inf]))
    assert _message(err) == "times holds 0 NaN and 1 infinite value(s), the first at index 2."


def test_check_file(tmp_path):
    f = tmp_path / "a.safetensors"
    f.write_bytes(b"")
    assert check_file(f, "Feature file", "Run `eegvision features`.") == f
    with pytest.raises(FileNotFoundError) as err:
        check_file(tmp_path / "b.safetensors", "Feature file", "Run `eegvision features`.")
    assert _message(err) == f"Feature file {tmp_path / 'b.safetensors'} does not exist. Run `eegvision features`."
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path} is a folder, not a file.")):
        check_file(tmp_path, "Config", "Pass config.json.")
    assert isinstance(check_file(str(f), "x", "y"), Path)


def test_docstring_examples_hold():
    result = doctest.testmod(checks)
    assert result.attempted == 9 and result.failed == 0
