"""A ``ridge`` run is a run like any other: the tiny simulated preset through the command line — simulate, convert,
import features, ``fit --encoder ridge --whiten mvnn``, ``evaluate``, ``embed``, ``prior fit``, ``reconstruct``
(tiny random SDXL + IP-Adapter) and ``report``."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from eegvision.cli.main import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_ridge_run_through_evaluate_embed_prior_reconstruct_and_report(tmp_path):
    from eegvision.evaluation.results import read_results
    from eegvision.features.files import load_features
    from eegvision.generation.tiny import tiny_sdxl_pipeline
    from eegvision.store.disk import open_store
    from eegvision.tensorfiles import load_safetensors
    from eegvision.training.run import load_run

    data, store, run = tmp_path / "data", tmp_path / "store", tmp_path / "run"
    _cli("simulate", data, "--preset", "tiny", "--subjects", "1", "--no-raw")
    _cli("convert", "things-eeg2", data, store)
    for split in ("train", "test"):
        _cli("import-features", data / f"sim_features_{split}.pt", store / "features" / f"{split}.safetensors",
             "--normalize", "--split", split, "--concepts", store)
    assert "ridge" in _cli("models").output

    fitted = json.loads(_cli("fit", "--data", store, "--subject", "sub-01", "--encoder", "ridge", "--whiten", "mvnn",
                             "--encoder-option", "cv=4", "--out", run, "--quiet", "--json").output)
    sel = json.loads((run / "selection.json").read_text())
    assert (sel["form"], sel["n_rows"], sel["whiten"], sel["scoring"], sel["cv_folds"]) == (
        "kernel", 40, "mvnn", "top1", 4)  # tiny: 20 concepts x 2 images; 63 channels x 25 bins > 40 rows
    assert sel["alpha"] in sel["alphas"] and len(sel["cv_scores"]["top1"]) == len(sel["alphas"])

    # evaluate recomputes exactly what fit wrote, from the stored test embeddings
    evaluated = json.loads(_cli("evaluate", run, "--json").output)
    assert evaluated["rows"] == fitted["rows"] == read_results(run / "metrics.json")
    emb = load_run(run).folder.read_test_embeddings()["sub-01"]
    feats = load_features(store / "features" / "test.safetensors").image
    sims = torch.nn.functional.normalize(emb, dim=1) @ feats.T
    top1 = float((sims.argmax(1) == torch.arange(len(sims))).float().mean())  # no ties among float cosines
    row = next(r for r in fitted["rows"] if r["method"] == "exact" and r["modality"] == "image" and r["k"] == 10)
    assert row["top1"] == pytest.approx(top1, abs=1e-6)
    sim = json.loads((data / "simulation.json").read_text())["ground_truth"]
    assert top1 >= 2 * sim["chance_top1"]  # 40 training images of 2 repetitions: the simulator's ridge gets 0.2 too

    # embed runs the saved encoder (whitening included) on the store: the same rows as the run's test embeddings
    _cli("embed", run, "--data", store, "--out", tmp_path / "emb.safetensors")
    torch.testing.assert_close(load_safetensors(tmp_path / "emb.safetensors", "Embeddings")["sub-01"], emb, rtol=1e-5, atol=1e-6)
    enc = load_run(run).encoder
    test_avg = np.asarray(open_store(store).array("sub-01", "test"), np.float32).mean(1)
    with torch.no_grad():
        torch.testing.assert_close(enc(torch.from_numpy(test_avg)), emb, rtol=1e-4, atol=1e-5)

    # the prior maps to raw (unnormalised) image features: the simulator's, scaled, stand in for them
    from eegvision.features.files import save_features

    raw = save_features(tmp_path / "raw_train.safetensors",
                        load_features(store / "features" / "train.safetensors").image * 3, normalized=False)
    _cli("prior", "fit", run, "--image-features", raw, "--epochs", "2", "--batch-size", "64", "--eval-steps", "2",
         "--device", "cpu")
    assert (run / "prior" / "training.json").is_file()
    sdxl = tiny_sdxl_pipeline(tmp_path / "sdxl", seed=0, image_embed_dim=feats.shape[1])
    _cli("reconstruct", run, "--generator", sdxl, "--samples", "1", "--steps", "1", "--prior-steps", "2",
         "--height", "32", "--width", "32", "--device", "cpu", "--out", tmp_path / "rec")
    manifest = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert manifest["concepts"]["concept"] == open_store(store).concepts("test")
    assert len(list((tmp_path / "rec").rglob("*.png"))) == 10

    _cli("report", run)
    page = (run / "report" / "index.html").read_text()
    assert "cv_top1" in page and f"{sel['best_val']:.3f}" in page
