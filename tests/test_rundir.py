"""The run folder: its units come from config.json (0.1.0 layouts included), one history parser, one owner of
the run files' names."""

import json
import os
import re
from pathlib import Path

import pytest
import torch

from eegvision.evaluation.results import read_results
from eegvision.store.concepts import ConceptTable
from eegvision.training.config import FitConfig
from eegvision.training.rundir import RunFolder, UnitFolder

SRC = Path(__file__).resolve().parents[1] / "src" / "eegvision"
FIT = FitConfig(data="store", subjects=["sub-01", "sub-02"], protocol="loso").to_dict()


def _write(path: Path, obj: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(obj))


def _unit_desc(name, train, test):
    return {"fit": FIT, "unit": {"name": name, "train_subjects": train, "test_subjects": test},
            "subject_ids": {s: i for i, s in enumerate(train)}}


def test_units_of_a_0_1_0_several_unit_run(tmp_path):
    """0.1.0 wrote `units` + `unit_dirs` at the top and one config.json per unit folder."""
    run = tmp_path / "loso"
    _write(run, {"fit": FIT, "eegvision_version": "0.1.0", "units": ["sub-01", "sub-02"],
                 "unit_dirs": ["sub-01", "sub-02"], "feature_files": {"train": "a.pt", "test": "b.pt"}})
    _write(run / "sub-01", _unit_desc("sub-01", ["sub-02"], ["sub-01"]))
    _write(run / "sub-02", _unit_desc("sub-02", ["sub-01"], ["sub-02"]))
    (run / "stray").mkdir()  # a folder the config does not name is not a unit
    folder = RunFolder.open(run)
    assert folder.units() == [UnitFolder(run / "sub-01", "sub-01"), UnitFolder(run / "sub-02", "sub-02")]
    assert folder.unit("sub-02").path == run / "sub-02"
    assert folder.unit_for_subject("sub-01").read_config()["subject_ids"] == {"sub-02": 0}
    # 0.1.0 recorded plain paths: tried beside the run, then as given (here from the current folder)
    (run / "a.pt").write_bytes(b"")
    assert folder.feature_file("train") == run / "a.pt"
    with pytest.raises(FileNotFoundError, match=f"test feature file of run {run} is not at any recorded place "
                                                f"\\(tried {run}/b.pt, b.pt\\). Pass --image-features FILE"):
        folder.feature_files()
    assert folder.concepts("test") is None  # 0.1.0 recorded no concepts
    assert folder.fit_config().protocol == "loso"
    with pytest.raises(ValueError, match="has 2 units .*--unit"):
        folder.unit()
    with pytest.raises(ValueError, match="no unit 'sub-03'; it has \\['sub-01', 'sub-02'\\]"):
        folder.unit("sub-03")
    # a unit folder opened on its own is a run of that one unit
    assert RunFolder.open(run / "sub-02").units() == [UnitFolder(run / "sub-02", "sub-02")]


def test_one_unit_run_and_joint_unit_for_subject(tmp_path):
    _write(tmp_path / "within", {"fit": FIT, "units": ["sub-01"], "unit_dirs": [],
                                 "unit": {"name": "sub-01", "test_subjects": ["sub-01"]}})
    within = RunFolder.open(tmp_path / "within")
    assert within.units() == [UnitFolder(tmp_path / "within", "sub-01")]
    assert within.unit("sub-01") == within.unit() == within.unit_for_subject("sub-01")
    _write(tmp_path / "joint", {"fit": FIT, "units": ["joint"], "unit_dirs": [],
                                "unit": {"name": "joint", "test_subjects": ["sub-01", "sub-03"]}})
    joint = RunFolder.open(tmp_path / "joint")
    assert joint.unit_for_subject("sub-03").name == "joint"
    with pytest.raises(ValueError, match="no unit tested on 'sub-02'"):
        joint.unit_for_subject("sub-02")


def test_write_config_names_unit_folders_and_concepts(tmp_path):
    cfg = FitConfig(data="store", subjects=["sub-01", "sub-02"], encoder="atms")
    run = RunFolder(tmp_path / "new")
    assert not run.exists()
    table = ConceptTable.from_names(["cat", "dog"], split="test")
    run.write_config(cfg, ["sub-01", "sub-02"], {"train": Path("t.safetensors")}, concepts={"test": table})
    top = json.loads((tmp_path / "new" / "config.json").read_text())
    assert top["units"] == top["unit_dirs"] == ["sub-01", "sub-02"]
    cwd = Path.cwd()
    assert top["feature_files"] == {"train": {"relative": os.path.relpath(cwd / "t.safetensors", tmp_path / "new"),
                                              "absolute": str(cwd / "t.safetensors")}}
    assert top["data_path"] == {"relative": os.path.relpath(cwd / "store", tmp_path / "new"),
                                "absolute": str(cwd / "store")}
    assert run.concepts("test") == table and run.concepts("training") is None
    assert top["concepts"] == {"test": table.to_json()}
    assert run.units() == run.planned_units(["sub-01", "sub-02"])
    one = RunFolder(tmp_path / "one")
    one.write_config(cfg, ["sub-01"], {})
    assert one.units() == one.planned_units(["sub-01"]) == [UnitFolder(tmp_path / "one", "sub-01")]
    # a unit's description is merged into a one-unit run's config
    one.unit().write_config({"unit": {"name": "sub-01"}, "fit": cfg.replace(epochs=3).to_dict()})
    merged = one.read_config()
    assert merged["units"] == ["sub-01"] and merged["unit"] == {"name": "sub-01"} and merged["fit"]["epochs"] == 3


def test_history_metrics_embeddings_selection(tmp_path):
    unit = UnitFolder(tmp_path, "sub-01")
    assert unit.read_history() == [] and unit.read_selection() == {}
    unit.write_history([{"epoch": 0, "val_top1": 0.25, "temperature": None}, {"epoch": 1, "val_top1": 0.5}],
                       ["epoch", "val_top1", "temperature"])
    assert (tmp_path / "history.csv").read_text().splitlines() == ["epoch,val_top1,temperature", "0,0.25,", "1,0.5,"]
    assert unit.read_history() == [{"epoch": 0.0, "val_top1": 0.25, "temperature": None},
                                   {"epoch": 1.0, "val_top1": 0.5, "temperature": None}]
    unit.write_selection({"selected_epoch": 1})
    assert unit.read_selection() == {"selected_epoch": 1}
    rows = [{"subject": "sub-01", "modality": "image", "method": "exact", "k": 2, "top1": 0.75, "top5": 1.0}]
    assert unit.write_metrics(rows) == [tmp_path / "metrics.json", tmp_path / "metrics.csv"]
    assert unit.read_metrics()[0]["top1"] == 0.75 and read_results(tmp_path / "metrics.csv")[0]["k"] == 2
    emb = {"sub-01": torch.arange(6, dtype=torch.float32).reshape(3, 2)}
    unit.write_test_embeddings(emb, {"rows": "test condition order"})
    torch.testing.assert_close(unit.read_test_embeddings()["sub-01"], emb["sub-01"])


def test_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not an eegvision run folder"):
        RunFolder.open(tmp_path)
    unit = UnitFolder(tmp_path, "sub-01")
    with pytest.raises(FileNotFoundError, match="did not finish. Resume"):
        unit.read_test_embeddings()
    with pytest.raises(FileNotFoundError, match="has no encoder/"):
        unit.load_encoder()
    with pytest.raises(FileNotFoundError, match="eegvision evaluate RUN"):
        unit.read_metrics()


#: Folders whose own files are named where they are saved: the encoder folder (models/registry.py), the prior
#: (models/prior.py), the captioner (generation/captioner.py), the low-level regressor (generation/lowlevel.py)
#: and third-party model folders checked before loading (features/vision.py, features/backbones.py,
#: features/vae.py, metrics/captions.py).
MODEL_FOLDER_OWNERS = {"models/encoders/checkpoint.py", "models/prior.py", "generation/captioner.py", "generation/lowlevel.py",
                       "features/vision.py", "features/backbones.py", "features/vae.py", "metrics/captions.py"}
RUN_FILES = ("history.csv", "selection.json", "last.ckpt", "test_embeddings.safetensors", "finetune.json",
             "finetune_trials.tsv")


def test_run_file_names_are_spelled_only_in_rundir():
    hits: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text()
        for name in ("config.json", "metrics.json", "metrics.csv") + RUN_FILES:
            if re.search(rf"[\"']{re.escape(name)}[\"']", text):
                hits.setdefault(name, set()).add(rel)
    assert hits.pop("config.json") - MODEL_FOLDER_OWNERS == {"training/rundir.py"}
    assert hits.pop("metrics.json") == hits.pop("metrics.csv") == {"evaluation/results.py"}
    assert hits == {name: {"training/rundir.py"} for name in RUN_FILES}


def test_inputs_found_relative_to_the_run_then_absolute(tmp_path, monkeypatch):
    """A run records each input relative to itself and absolute: it is found from any folder, and after moving
    the run together with its inputs; when neither place holds it, the error names both."""
    (tmp_path / "project" / "store" / "features").mkdir(parents=True)
    feats = tmp_path / "project" / "store" / "features" / "test.safetensors"
    feats.write_bytes(b"")
    monkeypatch.chdir(tmp_path / "project")
    run = RunFolder(Path("runs") / "r1")
    run.write_config(FitConfig(data="store/", subjects=["sub-01"]), ["sub-01"],
                     {"test": Path("store/features/test.safetensors")})
    top = json.loads(run.config_path.read_text())
    assert top["feature_files"]["test"]["relative"] == "../../store/features/test.safetensors"
    assert top["data_path"] == {"relative": "../../store", "absolute": str(tmp_path / "project" / "store")}
    monkeypatch.chdir(tmp_path)  # elsewhere: the relative entry, read from the run folder, finds the file
    assert RunFolder(Path("project/runs/r1")).feature_file("test") == Path("project/runs/r1/../../store/features/"
                                                                            "test.safetensors")
    assert RunFolder(Path("project/runs/r1")).data_path().resolve() == tmp_path / "project" / "store"
    # moved with its inputs: found by the relative entry, though the absolute path is gone
    (tmp_path / "project").rename(tmp_path / "moved")
    assert RunFolder(tmp_path / "moved/runs/r1").feature_file("test").resolve() == \
        tmp_path / "moved/store/features/test.safetensors"
    # moved without them: the absolute entry finds them
    (tmp_path / "moved" / "runs").rename(tmp_path / "runs")
    (tmp_path / "moved").rename(tmp_path / "project")
    assert RunFolder(tmp_path / "runs/r1").feature_file("test") == feats
    feats.unlink()
    with pytest.raises(FileNotFoundError) as err:
        RunFolder(tmp_path / "runs/r1").feature_file("test")
    assert str(err.value) == (f"The test feature file of run {tmp_path}/runs/r1 is not at any recorded place (tried "
                              f"{tmp_path}/runs/r1/../../store/features/test.safetensors, {feats}). Pass "
                              "--image-features FILE (the test-split features).")
