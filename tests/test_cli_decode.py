"""CLI: fit / evaluate (both forms) / embed / benchmark on a tiny store written with StoreWriter."""

import json

import pytest
import torch
from decode_helpers import make_problem
from safetensors.torch import load_file
from typer.testing import CliRunner

from eegvision.cli.main import app
from eegvision.training.presets import PRESETS, get_preset, preset_config

runner = CliRunner()
KS = "2,4,10,20"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    _, data = make_problem(tmp_path_factory.mktemp("cli"), real_store=True)
    return data


def invoke(args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_fit_evaluate_embed(store_dir, tmp_path):
    run = tmp_path / "run"
    res = invoke(["fit", "--data", store_dir, "--subject", "sub-02", "--out", run, "--preset", "ubp-vanilla",
                  "--epochs", "2", "--batch-size", "16", "--lr", "3e-3", "--val-fraction", "0.2", "--quiet"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "config.json").read_text())["fit"]
    assert cfg["preset"] == "ubp-vanilla" and cfg["encoder"] == "eegproject" and cfg["average_train"] is True
    assert cfg["channels"] == "occipito-parietal" and cfg["epochs"] == 2
    # the run records its test concepts (0-based, row i = test embedding row i); reconstruct/caption read them
    from eegvision.cli._concepts import embedding_concepts

    recorded = json.loads((run / "config.json").read_text())["concepts"]["test"]
    assert recorded["split"] == "test" and recorded["concept_index"] == list(range(20))
    assert recorded["concept"][:2] == ["test_concept_0", "test_concept_1"] and recorded["image"][0] == "test/0.jpg"
    table = embedding_concepts(run, 20, None)
    assert table.index == tuple(range(20)) and table.name[19] == "test_concept_19"
    with pytest.raises(ValueError, match="lists 20 concepts but .* has 3 embedding rows"):
        embedding_concepts(run, 3, None)

    (run / "metrics.json").unlink()
    res = invoke(["evaluate", run, "--ks", KS])
    assert res.exit_code == 0, res.output
    rows = json.loads((run / "metrics.json").read_text())["rows"]
    assert (run / "metrics.csv").is_file()
    combos = {(r["modality"], r["method"], r["k"]) for r in rows}
    assert combos == {(m, meth, k) for m in ("image", "text") for meth in ("exact", "montecarlo", "csls")
                      for k in (2, 4, 10, 20)}
    top1 = {(r["modality"], r["method"], r["k"]): r["top1"] for r in rows}
    assert top1[("image", "exact", 20)] > 0.2  # chance 0.05
    assert top1[("image", "exact", 2)] > 0.75

    emb_file = tmp_path / "emb.safetensors"
    res = invoke(["embed", run, "--data", store_dir, "--out", emb_file])
    assert res.exit_code == 0, res.output
    emb = load_file(str(emb_file))["sub-02"]
    torch.testing.assert_close(emb, load_file(str(run / "test_embeddings.safetensors"))["sub-02"], rtol=0, atol=1e-6)

    # the second form: precomputed embeddings + feature files
    torch.save(emb, tmp_path / "emb.pt")
    res = invoke(["evaluate", "--eeg-embeds", tmp_path / "emb.pt", "--image-features",
                  store_dir / "features" / "test.safetensors", "--out", tmp_path / "ev", "--ks", KS,
                  "--methods", "exact"])
    assert res.exit_code == 0, res.output
    rows2 = json.loads((tmp_path / "ev" / "metrics.json").read_text())["rows"]
    exact = {(r["modality"], r["k"]): r["top1"] for r in rows if r["method"] == "exact"}
    assert {(r["modality"], r["k"]): r["top1"] for r in rows2} == pytest.approx(exact)

    # a RUN holding a different run is refused with a clear message (exit code 2)
    res = invoke(["fit", "--data", store_dir, "--subject", "sub-02", "--out", run, "--encoder", "nice", "--quiet"])
    assert res.exit_code == 2 and "different run" in res.output


def test_benchmark_table_and_summary(store_dir, tmp_path):
    out = tmp_path / "bench"
    res = invoke(["benchmark", "--data", store_dir, "--encoders", "eegproject,projector", "--subjects", "sub-01",
                  "--seeds", "0", "--out", out, "--epochs", "1", "--batch-size", "32", "--lr", "3e-3", "--quiet"])
    assert res.exit_code == 0, res.output
    import pandas as pd

    results = pd.read_csv(out / "results.csv")
    assert set(results["encoder"]) == {"eegproject", "projector"} and set(results["subject"]) == {"sub-01"}
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary.encoder == "eegproject") & (summary.modality == "image") & (summary.method == "exact")
                  & (summary.k == 2)]
    one = results[(results.encoder == "eegproject") & (results.modality == "image") & (results.method == "exact")
                  & (results.k == 2)]
    assert float(row["top1_mean"].iloc[0]) == pytest.approx(float(one["top1"].iloc[0]))
    assert (out / "comparisons.csv").is_file()


def test_help_has_examples_and_bad_input_is_clean(store_dir, tmp_path):
    for cmd in ("fit", "evaluate", "embed", "benchmark"):
        res = invoke([cmd, "--help"])
        assert res.exit_code == 0 and "Example:" in res.output
    res = invoke(["fit", "--data", store_dir, "--subject", "sub-1", "--out", tmp_path / "r", "--quiet"])
    assert res.exit_code == 2 and "sub-01" in res.output  # close-match hint
    res = invoke(["evaluate"])
    assert res.exit_code == 2 and "either a RUN" in res.output
    res = invoke(["fit", "--data", store_dir, "--subject", "sub-01", "--out", tmp_path / "r", "--preset", "ubp-vanila",
                  "--quiet"])
    assert res.exit_code == 2 and "ubp-vanilla" in res.output


def test_presets_document_their_source():
    for name, preset in PRESETS.items():
        assert preset.source and (not preset.reference or 0 < preset.reference["top1"] < preset.reference["top5"] < 1)
        # explicit fields override the preset (a preset with stages takes its length from them: svtl)
        length = {"stages": [{"epochs": 3, "lr": 1e-4}]} if "stages" in preset.requires else {"epochs": 3}
        cfg = preset_config(name, partial=True, data="d", subjects=["sub-01"], **length)
        assert cfg.preset.split("[")[0] == name and cfg.epochs == 3
    assert get_preset("atm-table8-loso").overrides["protocol"] == "loso"
    assert preset_config("atm-table8-within").batch_size == 1024
