"""``eegvision import-checkpoint`` then ``embed``, ``evaluate`` and ``reconstruct``'s prior (issue #14 A6).

The checkpoints are reference-layout state dicts (key lists of ``tests/reference_layouts.py``, seeded values) as
in ``tests/test_reference_import.py``, whose reference-computed outputs the imported run reproduces here through
the command path: the store holds the seeded input of that test as three test conditions.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from reference_layouts import PRIOR_KEYS, seeded_state
from safetensors.torch import load_file
from test_reference_import import ATMS_61FC9C3, assert_matches, atms_state
from typer.testing import CliRunner

from eegvision.cli.main import app
from eegvision.models.reference import load_reference_checkpoint
from eegvision.utils import sha256_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture()
def files(tmp_path):
    """A float32 store (sub-08, 3 test conditions of 1 repetition: the seeded input), test features and a
    reference ATMS checkpoint."""
    from eegvision.features.files import save_features
    from eegvision.store.disk import open_store
    from eegvision.store.writer import StoreWriter

    x = torch.randn(3, 63, 250, generator=torch.Generator().manual_seed(15))
    store = tmp_path / "store"
    meta = pd.DataFrame({"concept_index": [0, 1, 2], "concept": ["ant", "bee", "cat"], "image_index": [0, 1, 2],
                         "image_path": ["a.jpg", "b.jpg", "c.jpg"]})
    with StoreWriter(store, dataset="tiny", ch_names=[f"E{i}" for i in range(63)], sfreq=250.0,
                     times=np.arange(250) / 250.0, dtype="float32") as w:
        w.add(subject="sub-08", split="test", data=x.numpy()[:, None], metadata=meta)
    image = torch.randn(3, 1024, generator=torch.Generator().manual_seed(3))
    feats = save_features(tmp_path / "test.safetensors", image / image.norm(dim=1, keepdim=True), normalized=True,
                          model="fake", pretrained="none", layer="final", transform="none", split="test",
                          concepts=open_store(store).concept_table("test"))
    ckpt = tmp_path / "40.pth"
    torch.save(atms_state(), ckpt)
    return {"x": x, "store": store, "features": feats, "ckpt": ckpt}


def test_import_embed_evaluate_equals_the_imported_module(files, tmp_path):
    run = tmp_path / "run"
    _cli("import-checkpoint", files["ckpt"], "--kind", "atms", "--positional-encoding", "sinusoidal",
         "--subject", "sub-08", "--out", run)
    config = json.loads((run / "config.json").read_text())
    assert config["imported"]["sha256"] == sha256_file(files["ckpt"]) and config["imported"]["kind"] == "atms"
    assert config["imported"]["positional_encoding"] == "sinusoidal"
    assert config["imported"]["source"] == str(files["ckpt"].resolve())
    assert config["subject_ids"] == {"sub-08": 0} and config["reference_subject_rows"] == {"sub-08": 8}
    assert not (run / "history.csv").exists() and not list(run.glob("*.ckpt"))

    _cli("embed", run, "--data", files["store"], "--out", tmp_path / "emb.safetensors")
    emb = load_file(str(tmp_path / "emb.safetensors"))["sub-08"]
    module = load_reference_checkpoint(files["ckpt"], "atms", positional_encoding="sinusoidal",
                                       subject_names=["sub-08"])
    with torch.no_grad():
        direct = module(files["x"], torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(emb, direct, rtol=0, atol=1e-5)
    # the reference's own output for the third input on row 8 (sub-08), computed with its ATMS class
    assert_matches(emb[2:], [ATMS_61FC9C3[(1, 5, 8)][0][2:], ATMS_61FC9C3[(1, 5, 8)][1][2:],
                             ATMS_61FC9C3[(1, 5, 8)][2][2:]])

    stored = load_file(str(run / "test_embeddings.safetensors"))["sub-08"]
    torch.testing.assert_close(stored, emb, rtol=0, atol=0)
    _cli("evaluate", run, "--image-features", files["features"], "--ks", "2,3", "--methods", "exact")
    rows = json.loads((run / "metrics.json").read_text())["rows"]
    from eegvision.evaluation.embeddings import evaluate_embeddings
    from eegvision.features.files import load_features

    feats = load_features(files["features"])
    expected = evaluate_embeddings(direct, feats.image, None, ks=[2, 3], tops=[1, 5], methods=["exact"], seed=0)
    assert [r["k"] for r in rows] == [r["k"] for r in expected] == [2, 3]
    assert [r["top1"] for r in rows] == pytest.approx([r["top1"] for r in expected])
    assert all(r["subject"] == "sub-08" and r["encoder"] == "atms" for r in rows)

    prior_file = tmp_path / "diffusion_prior.pt"
    torch.save(seeded_state(PRIOR_KEYS, 7), prior_file)
    _cli("import-checkpoint", prior_file, "--kind", "prior", "--out", run)
    from eegvision.models.prior import DiffusionPrior
    from eegvision.training.rundir import RunFolder

    folder = RunFolder.open(run)
    assert DiffusionPrior.is_saved(folder.prior_dir)  # where `reconstruct RUN` looks for it
    assert folder.read_config()["imported_prior"]["sha256"] == sha256_file(prior_file)
    assert list(folder.concepts("test").name) == ["ant", "bee", "cat"]  # reconstruct's concept of each row
    reference = load_reference_checkpoint(prior_file, "prior")
    saved = DiffusionPrior.from_pretrained(folder.prior_dir)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(saved.state_dict()[key], value, rtol=0, atol=0)


def test_import_refusals_say_what_to_do(files, tmp_path):
    from eegvision.training.imported import import_checkpoint

    with pytest.raises(FileNotFoundError, match="existing run"):
        import_checkpoint(files["ckpt"], "prior", tmp_path / "nowhere")
    run = tmp_path / "run"
    import_checkpoint(files["ckpt"], "atms", run, positional_encoding="none")
    with pytest.raises(FileExistsError, match="new --out"):
        import_checkpoint(files["ckpt"], "atms", run, positional_encoding="none")
    result = CliRunner().invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 2 and "--image-features" in result.output


def test_imported_run_reconstructs_through_its_imported_prior(files, tmp_path):
    """The rest of A6: `reconstruct RUN` on an imported ATM-S run uses the imported prior (RUN/prior) and the
    run's recorded test concepts, and draws one image per concept with a (tiny, random) SDXL + IP-Adapter."""
    from eegvision.generation.tiny import tiny_sdxl_pipeline

    run = tmp_path / "run"
    _cli("import-checkpoint", files["ckpt"], "--kind", "atms", "--positional-encoding", "sinusoidal",
         "--subject", "sub-08", "--out", run)
    _cli("embed", run, "--data", files["store"], "--out", tmp_path / "emb.safetensors")
    prior_file = tmp_path / "diffusion_prior.pt"
    torch.save(seeded_state(PRIOR_KEYS, 7), prior_file)
    _cli("import-checkpoint", prior_file, "--kind", "prior", "--out", run)
    sdxl = tiny_sdxl_pipeline(tmp_path / "sdxl", seed=0, image_embed_dim=1024)
    _cli("reconstruct", run, "--generator", sdxl, "--samples", "1", "--steps", "1",
         "--prior-steps", "2", "--height", "32", "--width", "32", "--device", "cpu", "--out", tmp_path / "rec")
    manifest = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert manifest["concepts"]["concept"] == ["ant", "bee", "cat"]
    images = sorted((tmp_path / "rec").rglob("*.png"))
    assert len(images) == 3
