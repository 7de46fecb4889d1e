"""``encoder="auto"``: both candidates fitted on the same validation split, the winner kept as a normal run."""

import json

import pytest
import torch
from decode_helpers import make_problem, patch_open_data
from safetensors.torch import load_file

from eegvision.training import auto
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.run import evaluate_run, load_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# a cheap neural candidate for the tiny problem (the real one is STConv, 40 epochs)
CHEAP = {"encoder": "eegproject", "epochs": 2, "batch_size": 16, "lr": 3e-3, "weight_decay": 0.01,
         "schedule": "none", "mix_repetitions": False, "patience": None}


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    return make_problem(tmp_path_factory.mktemp("problem"))


def _config(data, **kw):
    return FitConfig(**{"data": str(data), "subjects": ["sub-01"], "encoder": "auto", "val_fraction": 0.2,
                        "eval_ks": [2, 20], "eval_methods": ["exact"], **kw})


def _scores(monkeypatch, ridge_val):
    """Make the ridge candidate's validation score ``ridge_val`` (the neural one's is its own)."""
    monkeypatch.setitem(auto.AUTO_CANDIDATES, "stconv", CHEAP)
    monkeypatch.setattr(auto, "validation_top1", lambda *a, **k: ridge_val)


def test_neural_winner_is_copied_and_the_run_stays_an_auto_run(problem, tmp_path, monkeypatch):
    store, data = problem
    patch_open_data(monkeypatch, store)
    _scores(monkeypatch, -1.0)                       # below any top-1: the neural candidate must win
    result = fit(_config(data), tmp_path / "run")
    run = result.path
    record = json.loads((run / "auto.json").read_text())
    assert record["winner"] == "stconv" and record["val_top1"]["ridge"] == -1.0
    neural = run / "candidates" / "stconv"
    assert record["val_top1"]["stconv"] == json.loads((neural / "selection.json").read_text())["val_top1"]
    for name in ("encoder/model.safetensors", "test_embeddings.safetensors"):
        a, b = load_file(str(run / name)), load_file(str(neural / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    desc = json.loads((run / "config.json").read_text())
    assert desc["fit"]["encoder"] == "auto" and desc["auto_winner_fit"]["encoder"] == "eegproject"
    assert "units" in desc                           # the run-level keys of the one-unit run are kept
    again = evaluate_run(run, write=False)
    assert [r["top1"] for r in again.rows] == pytest.approx([r["top1"] for r in result.rows])
    torch.testing.assert_close(load_run(run).embed(store, "sub-01"),
                               load_file(str(run / "test_embeddings.safetensors"))["sub-01"], rtol=0, atol=1e-6)
    with pytest.raises(FileExistsError, match="--resume"):
        fit(_config(data), tmp_path / "run")         # same config: asks for --resume, not "differs"


def test_ridge_winner_equals_a_ridge_run(problem, tmp_path, monkeypatch):
    store, data = problem
    patch_open_data(monkeypatch, store)
    _scores(monkeypatch, 2.0)                        # above any top-1: ridge must win
    result = fit(_config(data), tmp_path / "auto")
    assert json.loads((result.path / "auto.json").read_text())["winner"] == "ridge"
    plain = fit(_config(data, encoder="ridge"), tmp_path / "ridge")
    a = load_file(str(result.path / "test_embeddings.safetensors"))["sub-01"]
    b = load_file(str(plain.path / "test_embeddings.safetensors"))["sub-01"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # refitted on all training conditions, like a ridge run
    assert [r["top1"] for r in result.rows] == [r["top1"] for r in plain.rows]


def test_auto_refuses_training_options_it_would_not_apply():
    with pytest.raises(ValueError, match=r"encoder 'auto'.*epochs=5.*--encoder stconv"):
        FitConfig(data="x", subjects=["sub-01"], encoder="auto", epochs=5)
    FitConfig(data="x", subjects=["sub-01"], encoder="auto", whiten="mvnn", align="euclidean", val_fraction=0.1)
