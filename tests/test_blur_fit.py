"""UBP's blur prior in training (FitConfig.blur_levels): the targets a batch trains on follow each image's level,
the running similarities are updated from the matched-pair logits as UBP's code does, the levels change only
between epochs, identical levels reproduce a plain fit, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from decode_helpers import make_problem, patch_open_data
from safetensors.torch import load_file

from eegvision.features.files import load_features, save_features
from eegvision.training.blur_prior import HIGH, LOW, MEDIUM
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    root = tmp_path_factory.mktemp("blur")
    store, data = make_problem(root, n_subjects=1)
    train = load_features(data / "features" / "train.safetensors").image.numpy()
    rng = np.random.default_rng(5)
    files = {}
    for name, scale in (("low", 0.3), ("high", 1.5)):
        x = train + scale * rng.standard_normal(train.shape).astype(np.float32)
        files[name] = root / f"{name}.train.safetensors"
        save_features(files[name], x / np.linalg.norm(x, axis=1, keepdims=True))
    files["same"] = data / "features" / "train.safetensors"
    return store, data, files


def _config(data, **kw):
    base = dict(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=1, batch_size=16, lr=3e-3,
                val_fraction=0.2, eval_ks=[2, 20], eval_methods=["exact"])
    return FitConfig(**{**base, **kw})


def test_training_step_uses_each_images_level_and_updates_its_running_similarity():
    from eegvision.training.losses import Objective
    from eegvision.training.module import ContrastiveModule

    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(10, 4)

        def forward(self, eeg, subject=None):
            return self.lin(eeg.flatten(1))

    torch.manual_seed(0)
    feats = F.normalize(torch.randn(6, 4), dim=-1)
    stack = torch.stack([F.normalize(torch.randn(6, 4), dim=-1), feats, F.normalize(torch.randn(6, 4), dim=-1)])
    module = ContrastiveModule(Enc(), Objective("retrieval"), feats, blur_targets=stack)
    module.log = lambda *a, **k: None
    sched = module.blur_schedule
    sched.levels[torch.tensor([0, 3])] = torch.tensor([LOW, HIGH])   # as if set by an earlier epoch
    cond = torch.tensor([0, 3, 5, 2])
    batch = {"eeg": torch.randn(4, 2, 5), "subject": torch.zeros(4, dtype=torch.long), "condition": cond,
             "concept": cond}
    emb = module(batch["eeg"], batch["subject"]).detach()
    img = torch.stack([stack[LOW, 0], stack[HIGH, 3], feats[5], feats[2]])
    scale = float(module.objective.logit_scale().detach())
    expected_loss = float(module.objective(emb, img, None, cond).loss.detach())
    loss = float(module.training_step(batch, 0).detach())
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    s = scale * (F.normalize(emb, dim=-1) * img).sum(-1)
    torch.testing.assert_close(sched.running[cond], 0.3 * s + 0.7, rtol=1e-5, atol=1e-6)
    assert sched.running[[1, 4]].tolist() == [1.0, 1.0]
    # the levels this epoch trains on are unchanged until the next epoch starts
    assert sched.levels[cond].tolist() == [LOW, HIGH, MEDIUM, MEDIUM]
    pending = sched.pending.clone()
    module.on_train_epoch_start()
    assert torch.equal(sched.levels, pending)
    # with UBP's loss (image side normalised only) the running similarity reads the same raw-EEG logits
    raw = ContrastiveModule(Enc(), Objective("retrieval", normalize="image"), feats, blur_targets=stack)
    raw.log = lambda *a, **k: None
    emb = raw(batch["eeg"], batch["subject"]).detach()
    img = feats[cond]                                  # every level starts at medium: the primary rows
    raw.training_step(batch, 0)
    s = float(raw.objective.logit_scale().detach()) * (emb * img).sum(-1)
    torch.testing.assert_close(raw.blur_schedule.running[cond], 0.3 * s + 0.7, rtol=1e-5, atol=1e-6)


def test_identical_levels_reproduce_a_plain_fit(problem, tmp_path, monkeypatch):
    store, data, files = problem
    patch_open_data(monkeypatch, store)
    plain = fit(_config(data, epochs=2), tmp_path / "plain").run.unit().path
    same = str(files["same"])
    blur = fit(_config(data, epochs=2, blur_levels=[same, same]), tmp_path / "blur").run.unit().path
    wa, wb = load_file(str(plain / "encoder" / "model.safetensors")), load_file(str(blur / "encoder" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)


def test_blur_fit_records_levels_and_resumes_exactly(problem, tmp_path, monkeypatch):
    import csv

    store, data, files = problem
    patch_open_data(monkeypatch, store)
    cfg = _config(data, epochs=3, blur_levels=[str(files["low"]), str(files["high"])])
    full = fit(cfg, tmp_path / "full").run.unit().path
    rows = list(csv.DictReader(open(full / "history.csv")))
    n_images = len(load_features(files["same"]).image)
    assert len(rows) == 3
    for r in rows:
        counts = [int(r["blur_low"]), int(r["blur_medium"]), int(r["blur_high"])]
        assert sum(counts) == n_images
    assert any(int(r["blur_medium"]) < n_images for r in rows)     # some images left the medium level
    fit(cfg.replace(epochs=2), tmp_path / "part")
    part = fit(cfg, tmp_path / "part", resume=True).run.unit().path
    wa, wb = load_file(str(full / "encoder" / "model.safetensors")), load_file(str(part / "encoder" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    assert (full / "history.csv").read_text() == (part / "history.csv").read_text()


def test_blur_levels_are_refused_where_they_cannot_apply(problem):
    _, data, files = problem
    with pytest.raises(ValueError, match="LOW and HIGH"):
        _config(data, blur_levels=[str(files["low"])])
    with pytest.raises(ValueError, match="closed form"):
        _config(data, encoder="ridge", blur_levels=[str(files["low"]), str(files["high"])])
    with pytest.raises(ValueError, match="ridge candidate"):
        _config(data, encoder="auto", blur_levels=[str(files["low"]), str(files["high"])])


def test_a_missing_blur_file_is_named_before_training(problem, tmp_path, monkeypatch):
    store, data, files = problem
    patch_open_data(monkeypatch, store)
    with pytest.raises(FileNotFoundError, match=r"high-blur feature file .*nope.train.safetensors .*--prior blur"):
        fit(_config(data, blur_levels=[str(files["low"]), str(tmp_path / "nope.train.safetensors")]), tmp_path / "r")
    assert not (tmp_path / "r").exists()
