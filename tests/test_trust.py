"""Trust for a new user (issue #13, items 1, 2, 6, 11): runs found from anywhere, inputs refused before training,
Ctrl-C and --resume, clean failures, reproducible files, k values fitted to the test set."""

import json
import shlex

import numpy as np
import pytest
import torch
from decode_helpers import make_problem, patch_open_data
from lightning.pytorch.callbacks import Callback
from safetensors.torch import save_file
from typer.testing import CliRunner

from eegvision.cli.main import app
from eegvision.features.files import load_features, save_features
from eegvision.training.config import FitConfig, eval_ks_for
from eegvision.training.fitting import fit

runner = CliRunner()
FAST = ["--encoder", "eegproject", "--epochs", "2", "--batch-size", "16", "--lr", "3e-3", "--val-fraction", "0.2",
        "--quiet"]


def invoke(args):
    return runner.invoke(app, [str(a) for a in args])


class _CtrlCAfterFirstEpoch(Callback):
    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_resume_and_evaluate_from_another_folder(tmp_path, monkeypatch):
    """A run trained with relative paths is interrupted, resumed with the printed command, evaluated from another
    folder, and evaluated against given test features once its own are gone."""
    import eegvision.training.unit as unit_mod

    make_problem(tmp_path / "project", real_store=True, n_subjects=1)
    monkeypatch.chdir(tmp_path / "project")
    real_trainer = unit_mod.make_trainer
    monkeypatch.setattr(unit_mod, "make_trainer", lambda c, r, cbs, **kw: real_trainer(
        c, r, [*cbs, _CtrlCAfterFirstEpoch()], **kw))
    res = invoke(["fit", "--data", "store", "--subject", "sub-01", "--out", "runs/r1", *FAST])
    assert res.exit_code == 130, res.output
    command = res.output.strip().splitlines()[-1].strip()
    assert command == ("eegvision fit --data store --subject sub-01 --encoder eegproject --out runs/r1 --epochs 2 "
                       "--batch-size 16 --lr 0.003 --val-fraction 0.2 --quiet --resume")
    monkeypatch.setattr(unit_mod, "make_trainer", real_trainer)
    res = invoke(shlex.split(command)[1:])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "project/runs/r1/metrics.json").read_text())["rows"]
    # 20 test concepts: the default k list ends with the all-way k
    assert sorted({r["k"] for r in rows}) == [2, 4, 10, 20]

    monkeypatch.chdir(tmp_path)
    (tmp_path / "project/runs/r1/metrics.json").unlink()
    res = invoke(["evaluate", "project/runs/r1", "--methods", "exact"])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "project/runs/r1/metrics.json").read_text())["rows"]
    exact = {(r["modality"], r["k"]): r["top1"] for r in rows if r["method"] == "exact"}
    assert {(r["modality"], r["k"]): r["top1"] for r in again} == pytest.approx(exact)

    feats = tmp_path / "project/store/features/test.safetensors"
    feats.rename(tmp_path / "test.safetensors")
    res = invoke(["evaluate", "project/runs/r1", "--methods", "exact"])
    assert res.exit_code == 2
    flat = "".join(res.output.split())  # the console wraps long lines
    assert f"(triedproject/runs/r1/../../store/features/test.safetensors,{feats}).Pass--image-featuresFILE" in flat
    res = invoke(["evaluate", "project/runs/r1", "--methods", "exact", "--image-features", "test.safetensors"])
    assert res.exit_code == 0, res.output
    assert {(r["modality"], r["k"]): r["top1"] for r in
            json.loads((tmp_path / "project/runs/r1/metrics.json").read_text())["rows"]} == pytest.approx(exact)


def test_wrong_inputs_are_refused_before_training(tmp_path, monkeypatch):
    import eegvision.training.unit as unit_mod

    store, data = make_problem(tmp_path / "p", n_subjects=2)
    patch_open_data(monkeypatch, store)
    monkeypatch.setattr(unit_mod, "train_and_select", lambda *a, **k: pytest.fail("training started"))
    base = dict(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=1)
    good = load_features(data / "features" / "test.safetensors")
    short = save_features(tmp_path / "short.safetensors", good.image[:3], normalized=True)
    with pytest.raises(ValueError, match=f"The test features {short} hold 3 image rows but sub-01's test split in "
                                         f"{data} has 20 conditions; .* Pass --features-test"):
        fit(FitConfig(**base, features_test=str(short)), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    wide = save_features(tmp_path / "wide.safetensors", torch.nn.functional.normalize(torch.randn(20, 8), dim=1))
    with pytest.raises(ValueError, match="have size 8 but the training features .* have size 16"):
        fit(FitConfig(**base, features_test=str(wide)), tmp_path / "run")
    raw = save_features(tmp_path / "raw.safetensors", good.image * 3, normalized=False)
    with pytest.raises(ValueError, match="are raw \\(unnormalised\\) but the training features .* are L2-normalised"):
        fit(FitConfig(**base, features_test=str(raw)), tmp_path / "run")
    nan = good.image.clone()
    nan[4, 2] = float("nan")
    bad = save_features(tmp_path / "nan.safetensors", nan)
    with pytest.raises(ValueError, match=f"The image features of feature file {bad} holds 1 NaN and 0 infinite "
                                         "value\\(s\\), the first at index \\(4, 2\\)"):
        fit(FitConfig(**base, features_test=str(bad)), tmp_path / "run")
    eeg = store._arrays[("sub-01", "training")]
    eeg[7, 1, 3, 5] = np.inf
    with pytest.raises(ValueError, match="The EEG of sub-01 \\(training split, conditions 0-59\\) holds 0 NaN and 1 "
                                         "infinite value\\(s\\), the first at index \\(7, 1, 3, 5\\)"):
        fit(FitConfig(**base), tmp_path / "run")
    eeg[7, 1, 3, 5] = 0
    # an existing empty --out is kept, with nothing added
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="hold 3 image rows"):
        fit(FitConfig(**base, features_test=str(short)), tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(FileNotFoundError, match=f"Nothing to resume: {tmp_path}/typo holds no run"):
        fit(FitConfig(**base), tmp_path / "typo", resume=True)
    assert not (tmp_path / "typo").exists()


def test_cli_refuses_short_test_features_and_empty_resume(tmp_path):
    _, data = make_problem(tmp_path / "p", real_store=True, n_subjects=1)
    good = load_features(data / "features" / "test.safetensors")
    short = save_features(tmp_path / "short.safetensors", good.image[:3], normalized=True)
    res = invoke(["fit", "--data", data, "--subject", "sub-01", "--out", tmp_path / "run", "--features-test", short,
                  *FAST])
    assert res.exit_code == 2 and "hold3imagerowsbutsub-01'stestsplit" in "".join(res.output.split())
    assert not (tmp_path / "run").exists()
    res = invoke(["fit", "--data", data, "--subject", "sub-01", "--out", tmp_path / "rnu", "--resume", *FAST])
    assert res.exit_code == 2 and "Nothing to resume" in res.output and not (tmp_path / "rnu").exists()


def test_identical_runs_give_identical_embedding_files(tmp_path, monkeypatch):
    store, data = make_problem(tmp_path / "p", n_subjects=1)
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=1, batch_size=16,
                    val_fraction=0.2, eval_methods=["exact"])
    a, b = fit(cfg, tmp_path / "a").run, fit(cfg, tmp_path / "b").run
    assert a.unit().test_embeddings_path.read_bytes() == b.unit().test_embeddings_path.read_bytes()


def test_eval_ks_for():
    assert eval_ks_for([2, 4, 10, 50, 100, 200], 50) == [2, 4, 10, 50]
    assert eval_ks_for([2, 4, 10, 50, 100, 200], 120) == [2, 4, 10, 50, 100, 120]
    assert eval_ks_for([2, 4, 10, 50, 100, 200], 1654) == [2, 4, 10, 50, 100, 200]
    assert eval_ks_for([2, 30], 20) == [2, 30]  # the user's choice is kept (and skipped with a warning)


def test_subject_keyed_embeddings_fill_the_subject_column(tmp_path):
    from eegvision.evaluation.embeddings import evaluate_embedding_files

    feats = torch.nn.functional.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    save_features(tmp_path / "f.safetensors", feats)
    save_file({"sub-01": feats.clone(), "sub-02": feats.flip(0).contiguous()}, str(tmp_path / "e.safetensors"))
    rows = evaluate_embedding_files(tmp_path / "e.safetensors", tmp_path / "f.safetensors", ks=[2, 6]).rows
    top1 = {(r["subject"], r["k"]): r["top1"] for r in rows}
    assert top1[("sub-01", 6)] == 1.0 and top1[("sub-02", 6)] < 1.0 and len(top1) == 4


def test_import_features_model_comes_from_the_name(tmp_path):
    for name, model in (("ViT-L-14_features_test.pt", "ViT-L-14"), ("my_cache_test.pt", "unknown")):
        torch.save({"img_features": torch.randn(4, 8), "text_features": torch.randn(4, 8)}, tmp_path / name)
        out = tmp_path / f"{model}.safetensors"
        res = invoke(["import-features", tmp_path / name, out, "--normalize"])
        assert res.exit_code == 0, res.output
        meta = load_features(out).metadata
        assert (meta["model"], meta["pretrained"]) == (model, "unknown")
