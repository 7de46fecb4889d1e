"""Files written by eegvision 0.1.0 (``tests/data/v0_1_0/``): what still loads, and what is refused with how to
redo it. 0.1.0 numbered concepts 1-based in reconstruction manifests (THINGS folders), made up names
(``concept1``...) when it had none, and recorded no concept table in runs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from decode_helpers import make_problem
from PIL import Image

from eegvision.cli._concepts import embedding_concepts, run_concepts
from eegvision.evaluation.results import read_results
from eegvision.metrics.pairing import read_manifest, scan_ground_truth, score_images
from eegvision.store.concepts import ConceptTable
from eegvision.training.config import FitConfig

V010 = Path(__file__).parent / "data" / "v0_1_0"
THINGS5 = ["aircraft_carrier", "antelope", "backscratcher", "balance_beam", "bamboo"]


def _ground_truth(root: Path) -> Path:
    """THINGS test layout for the first five concepts: 00001_aircraft_carrier/..., one image each."""
    rng = np.random.default_rng(0)
    for i, name in enumerate(THINGS5):
        (root / f"{i + 1:05d}_{name}").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"{i + 1:05d}_{name}" / "a.png")
    return root


def _with_images(src: Path, dst: Path, gt: Path) -> Path:
    """A copy of a 0.1.0 manifest folder, its images drawn again (the fixture keeps text files only)."""
    shutil.copytree(src, dst)
    for row in json.loads((dst / "manifest.json").read_text())["images"]:
        (dst / row["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(next((gt / f"{row['concept_index']:05d}_{row['concept']}").iterdir()), dst / row["file"])
    return dst


def test_fixture_is_what_0_1_0_wrote():
    things = json.loads((V010 / "recon_things" / "manifest.json").read_text())
    assert things["format_version"] == 1 and things["eegvision_version"] == "0.1.0" and "concepts" not in things
    assert [r["concept_index"] for r in things["images"]][::2] == [1, 2, 3, 4, 5]  # 1-based, THINGS folders
    generic = json.loads((V010 / "recon_generic" / "manifest.json").read_text())
    assert [r["concept"] for r in generic["images"]][::2] == ["concept1", "concept2", "concept3"]
    run = json.loads((V010 / "run" / "config.json").read_text())
    assert run["eegvision_version"] == "0.1.0" and "concepts" not in run


def test_0_1_0_manifest_with_names_is_scored_by_name(tmp_path):
    gt = _ground_truth(tmp_path / "test_images")
    table = ConceptTable(*(tuple(scan_ground_truth(gt)[c]) for c in ("concept_index", "concept", "path")))
    rows = read_manifest(V010 / "recon_things", concepts=table)
    assert rows["concept_index"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # 0-based, found by name
    assert set(rows["index_source"]) == {"concept name (manifest without concept table)"}
    # the images are their own ground truth: a perfect score shows every image met its concept
    res = score_images(gt, _with_images(V010 / "recon_things", tmp_path / "recon", gt), base_size=None)
    first = res.table[(res.table["rule"] == "first") & (res.table["subject"] == "sub-01")].set_index("metric")
    assert first.loc["PixCorr", "value"] == pytest.approx(1.0) and first.loc["SSIM", "value"] == pytest.approx(1.0)
    assert set(res.table["pairing"]) == {"concept name (manifest without concept table)"}
    assert res.protocol["pairing"] == "0-based concept_index from the concept name (manifest without concept table)"
    # the CSV alone is read the same way
    (tmp_path / "csv").mkdir()
    shutil.copy(V010 / "recon_things" / "manifest.csv", tmp_path / "csv" / "manifest.csv")
    assert read_manifest(tmp_path / "csv", concepts=table)["concept_index"].tolist()[::2] == [0, 1, 2, 3, 4]


def test_0_1_0_manifests_refused_with_how_to_redo(tmp_path):
    with pytest.raises(ValueError, match=r"records no concept table \(written by eegvision 0.1.0.*is not the 0-based "
                                         r"index. Read it with the concept table of its split.*or reconstruct again "
                                         r"with this eegvision \(`eegvision reconstruct RUN"):
        read_manifest(V010 / "recon_things")
    gt = _ground_truth(tmp_path / "test_images")
    with pytest.raises(ValueError, match=r"recon_generic/manifest.json names 3 concept\(s\) that are not in the ground "
                                         r"truth concept table \(5 concepts\): 'concept1'; 'concept2'; 'concept3'.*"
                                         r"reconstruct again with this eegvision"):
        score_images(gt, V010 / "recon_generic", base_size=None)


def test_0_1_0_run_loads_and_its_concepts_come_from_its_data(tmp_path):
    config = json.loads((V010 / "run" / "config.json").read_text())
    assert FitConfig.from_dict(config["fit"]).encoder == "eegproject"
    rows = read_results(V010 / "run" / "metrics.json")
    assert {r["modality"] for r in rows} == {"image", "text"} and all(0 <= r["top1"] <= 1 for r in rows)
    # the run records no concept table: its data defines it (the same tiny problem 0.1.0 was fitted on)
    _, data = make_problem(tmp_path / "p", real_store=True, n_subjects=1, n_test=5)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({**config, "fit": {**config["fit"], "data": str(data)}}))
    table = run_concepts(run)
    assert table.index == (0, 1, 2, 3, 4) and table.name[:2] == ("test_concept_0", "test_concept_1")
    assert embedding_concepts(run, 5, None) == table
    # the data is gone: refused, saying what to pass
    (run / "config.json").write_text(json.dumps({**config, "fit": {**config["fit"], "data": str(tmp_path / "gone")}}))
    with pytest.raises(ValueError, match=r"records no test concept table \(written by eegvision 0.1.0\) and its data "
                                         r".*gone cannot be read .*: pass --concepts with the table of its test split"):
        run_concepts(run)
    ConceptTable.from_names(table.name).write(tmp_path / "concepts.tsv")
    assert embedding_concepts(run, 5, tmp_path / "concepts.tsv") == ConceptTable.from_names(table.name, split="test")
