"""SAMGA's learned layer fusion (FitConfig.target_mode="learned") and SVTL's training stages (FitConfig.stages):
the fused target and its dropouts by hand, subject-agnostic evaluation, the per-epoch stage schedule by hand, an
exact resume in the middle of a stage, and the presets that use them."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from decode_helpers import make_problem, patch_open_data
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file
from typer.testing import CliRunner

from eegvision.cli.main import app
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.fusion import LayerFusion, stack_layer_targets
from eegvision.training.stages import stage_schedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Three layers of two images in 2-d: F[l][i]. Shared logits (ln 2, 0, 0) give weights (2, 1, 1) / 4; subject 1's
# offset (0, ln 3, 0) makes its logits (ln 2, ln 3, 0): weights (2, 3, 1) / 6.
F = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],
                  [[0.0, 2.0], [4.0, 0.0]],
                  [[-4.0, 0.0], [0.0, 8.0]]])
SHARED = [0.5, 0.25, 0.25]
SUBJECT1 = [1 / 3, 1 / 2, 1 / 6]


def _fusion(p=0.0, q=0.0):
    fusion = LayerFusion(3, 2, subject_dropout=p, layer_dropout=q)
    with torch.no_grad():
        fusion.logits.copy_(torch.tensor([math.log(2.0), 0.0, 0.0]))
        fusion.subject_offsets.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.0, math.log(3.0), 0.0]]))
    return fusion


def _by_hand(weights, image):
    return [sum(w * float(F[l, image, d]) for l, w in enumerate(weights)) for d in range(2)]


def test_fused_target_is_the_softmax_weighted_sum_with_and_without_the_router_offset():
    fusion = _fusion().train()
    # sample 0: image 1 of subject 0 (zero offset); sample 1: image 0 of subject 1; sample 2: image 1, unseen (-1)
    images, subjects = torch.tensor([1, 0, 1]), torch.tensor([0, 1, -1])
    out = fusion(F[:, images], subjects)
    # by hand: 0.5 (0, 1) + 0.25 (4, 0) + 0.25 (0, 8) = (1, 2.5); (1, 0) / 3 + (0, 2) / 2 + (-4, 0) / 6 = (-1/3, 1)
    expected = torch.tensor([[1.0, 2.5], [-1 / 3, 1.0], [1.0, 2.5]])
    torch.testing.assert_close(out, expected)
    assert _by_hand(SUBJECT1, 0) == pytest.approx([-1 / 3, 1.0])
    torch.testing.assert_close(fusion.weights(subjects, 3), torch.tensor([SHARED, SUBJECT1, SHARED]))


def test_the_training_step_trains_on_the_fused_target_and_its_gradient_reaches_the_logits():
    from eegvision.training.losses import Objective
    from eegvision.training.module import ContrastiveModule

    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 2)

        def forward(self, eeg, subject=None):
            return self.lin(eeg.flatten(1))

    torch.manual_seed(0)
    module = ContrastiveModule(Enc(), Objective("retrieval"), F[0], fusion=_fusion(), fusion_targets=F)
    module.log = lambda *a, **k: None
    batch = {"eeg": torch.randn(2, 2, 3), "subject": torch.tensor([0, 1]), "condition": torch.tensor([1, 0]),
             "concept": torch.tensor([1, 0])}
    emb = module(batch["eeg"], batch["subject"]).detach()
    target = torch.tensor([_by_hand(SHARED, 1), _by_hand(SUBJECT1, 0)])
    expected = module.objective(emb, target, None, batch["concept"]).loss
    loss = module.training_step(batch, 0)
    torch.testing.assert_close(loss.detach(), expected.detach())
    loss.backward()
    assert module.fusion.logits.grad.abs().sum() > 0 and module.fusion.subject_offsets.grad[1].abs().sum() > 0
    # evaluation: the shared weights for every image, whatever the subject
    module.eval()
    torch.testing.assert_close(module.train_images(), torch.tensor([_by_hand(SHARED, 0), _by_hand(SHARED, 1)]))
    assert {"fusion.logits", "fusion.subject_offsets"} <= set(module.state_dict())   # saved in checkpoints


def test_subject_and_layer_dropout_with_a_fixed_seed_by_hand():
    torch.manual_seed(0)
    assert torch.rand(2).tolist() == pytest.approx([0.4963, 0.7682], abs=1e-4)        # the subject draws
    assert torch.rand(2, 3).flatten().tolist() == pytest.approx([0.0885, 0.1320, 0.3074,    # then the layers'
                                                                 0.6341, 0.4901, 0.8964], abs=1e-4)
    subjects = torch.tensor([1, 1])
    # p = 0.5: sample 0 loses its offset (0.4963 < 0.5), sample 1 keeps it; q = 0.2: sample 0 drops layers 0 and 1
    # (0.0885, 0.1320 < 0.2) and keeps layer 2 alone, weight 1; sample 1 drops none
    torch.manual_seed(0)
    w = _fusion(p=0.5, q=0.2).train().weights(subjects, 2)
    torch.testing.assert_close(w, torch.tensor([[0.0, 0.0, 1.0], SUBJECT1]))
    # p = 0.8: both lose their offset (0.4963, 0.7682 < 0.8); q = 0.5: sample 0 would drop all three layers, so it
    # keeps them all (the shared weights); sample 1 drops layer 1 (0.4901 < 0.5): (2, 1, 1) / 4 -> (2, 0, 1) / 3
    torch.manual_seed(0)
    w = _fusion(p=0.8, q=0.5).train().weights(subjects, 2)
    torch.testing.assert_close(w, torch.tensor([SHARED, [2 / 3, 0.0, 1 / 3]]))
    # q = 0.95 drops every layer of both samples: a sample never loses them all, so both keep every layer
    torch.manual_seed(0)
    w = _fusion(p=0.5, q=0.95).train().weights(subjects, 2)
    torch.testing.assert_close(w, torch.tensor([SHARED, SUBJECT1]))


def test_evaluation_uses_the_shared_weights_for_every_subject():
    fusion = _fusion(p=0.5, q=0.5).eval()
    for ids in (torch.tensor([0, 1]), torch.tensor([1, 1]), torch.tensor([-1, 0]), None):
        torch.testing.assert_close(fusion.weights(ids, 2), torch.tensor([SHARED, SHARED]))
    torch.testing.assert_close(fusion.fuse_shared(F), torch.tensor([_by_hand(SHARED, 0), _by_hand(SHARED, 1)]))


def test_learned_fusion_is_refused_where_it_cannot_work():
    class Feats:
        def __init__(self, n, d):
            self.image = torch.ones(n, d)

    with pytest.raises(ValueError, match=r"one width; got a: 4, b: 3"):
        stack_layer_targets((Feats(2, 4), Feats(2, 4)), [(Feats(2, 3), Feats(2, 3))], ["a", "b"])
    with pytest.raises(ValueError, match="solved in closed form"):
        FitConfig(encoder="ridge", target_mode="learned")
    with pytest.raises(ValueError, match="ridge candidate"):
        FitConfig(target_mode="learned")
    with pytest.raises(ValueError, match="dropout of the learned layer fusion"):
        FitConfig(encoder="stconv", fusion_subject_dropout=0.1)
    with pytest.raises(ValueError, match=r"not combined with ensemble > 1, objective='generation' yet"):
        FitConfig(encoder="stconv", target_mode="learned", ensemble=2, objective="generation")


def test_the_stage_schedule_gives_lr_and_mmd_weight_per_epoch_by_hand():
    stages = [{"epochs": 3, "lr": 1e-3, "subject_mmd_weight": [0.9, 0.5]}, {"epochs": 2, "lr": 5e-4},
              {"epochs": 1, "lr": 1e-4, "subject_mmd_weight": [0.3, 0.0], "freeze": "encoder"}]
    plan = stage_schedule(stages, subject_mmd_weight=0.2)
    assert [p.stage for p in plan] == [0, 0, 0, 1, 1, 2]
    assert [p.lr for p in plan] == [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 1e-4]
    assert [p.subject_mmd_weight for p in plan] == pytest.approx([0.9, 0.7, 0.5, 0.2, 0.2, 0.3])
    assert [p.freeze for p in plan] == [(), (), (), (), (), ("encoder",)]
    cfg = FitConfig(encoder="stconv", stages=stages)
    assert (cfg.epochs, cfg.lr) == (6, 1e-3)
    with pytest.raises(ValueError, match=r"epochs=5 contradicts the stages.*\(6\)"):
        FitConfig(encoder="stconv", stages=stages, epochs=5)
    with pytest.raises(ValueError, match="schedule='cosine' and stages"):
        FitConfig(encoder="stconv", stages=stages, schedule="cosine")
    with pytest.raises(ValueError, match=r"Stage 2 subject_mmd_weight is a number or \[start, end\]"):
        FitConfig(encoder="stconv", stages=[{"epochs": 1, "lr": 1.0}, {"epochs": 1, "lr": 1, "subject_mmd_weight":
                                                                        [1, 2, 3]}])


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    store, data = make_problem(root, n_subjects=2, n_train_concepts=12, n_test=8, n_times=20)
    from eegvision.features.files import load_features, save_features

    rng = np.random.default_rng(3)
    train = load_features(data / "features" / "train.safetensors").image.numpy()
    test = load_features(data / "features" / "test.safetensors").image.numpy()
    for split, x in (("train", train), ("test", test)):
        y = x + 0.5 * rng.standard_normal(x.shape).astype(np.float32)
        save_features(root / f"layer2.{split}.safetensors", y / np.linalg.norm(y, axis=1, keepdims=True))
    return store, data, root


class _StopAfter(Callback):
    """Stop training at the end of epoch ``epoch`` (0-based): an interrupted run with its last checkpoint."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def test_resume_in_the_middle_of_a_stage_equals_an_uninterrupted_run(joint, tmp_path, monkeypatch):
    """Joint training of two subjects, stage I with a decaying subject MMD, stage II at a lower lr with the encoder
    group frozen, a learned fusion of two layers with its router and dropouts: interrupted after epoch 3 of 4 (the
    middle of stage II) and resumed, it gives the same weights, fusion record and history."""
    store, data, root = joint
    patch_open_data(monkeypatch, store)
    stages = [{"epochs": 2, "lr": 3e-3, "subject_mmd_weight": [0.9, 0.5]},
              {"epochs": 2, "lr": 1e-3, "subject_mmd_weight": 0.0, "freeze": ["encoder"]}]
    cfg = FitConfig(data=str(data), subjects=["sub-01", "sub-02"], protocol="joint", encoder="eegproject",
                    batch_size=16, val_fraction=0.2, eval_ks=[2, 8], eval_methods=["exact"], stages=stages,
                    target_mode="learned", targets=[{"train": str(root / "layer2.train.safetensors")}],
                    fusion_subject_dropout=0.3, fusion_layer_dropout=0.3)
    full = fit(cfg, tmp_path / "full").run.unit().path
    rows = list(csv.DictReader(open(full / "history.csv")))
    assert [float(r["lr"]) for r in rows] == [3e-3, 3e-3, 1e-3, 1e-3]
    assert [float(r["subject_mmd_weight"]) for r in rows] == pytest.approx([0.9, 0.5, 0.0, 0.0])
    assert [int(r["stage"]) for r in rows] == [1, 1, 2, 2]
    record = json.loads((full / "fusion.json").read_text())
    assert len(record["weights"]) == 2 and sum(record["weights"]) == pytest.approx(1.0)
    assert record["weights"] != [0.5, 0.5] and set(record["subject_weights"]) == {"sub-01", "sub-02"}
    fused = load_file(str(full / "fusion_test.safetensors"))["image"]
    assert fused.shape == (8, 16)

    fit(cfg, tmp_path / "part", callbacks=[_StopAfter(2)])
    assert len(list(csv.DictReader(open(tmp_path / "part" / "history.csv")))) == 3
    part = fit(cfg, tmp_path / "part", resume=True).run.unit().path
    wa, wb = load_file(str(full / "encoder" / "model.safetensors")), load_file(str(part / "encoder" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    assert (full / "history.csv").read_text() == (part / "history.csv").read_text()
    assert (full / "fusion.json").read_text() == (part / "fusion.json").read_text()
    torch.testing.assert_close(load_file(str(part / "fusion_test.safetensors"))["image"], fused, rtol=0, atol=0)
    # the unit is evaluated against its fused test features, by fit and by `evaluate` alike
    from eegvision.training.run import evaluate_run

    again = [r["top1"] for r in evaluate_run(tmp_path / "full", write=False).rows]
    assert again == [r["top1"] for r in json.loads((full / "metrics.json").read_text())["rows"]]


def test_the_encoder_group_frozen_in_a_stage_does_not_change(joint, tmp_path, monkeypatch):
    store, data, _ = joint
    patch_open_data(monkeypatch, store)
    seen = []

    class Snapshot(Callback):
        def on_train_epoch_end(self, trainer, module):
            seen.append({k: v.detach().clone() for k, v in module.encoder.named_parameters()})

    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", batch_size=16, val_fraction=0.2,
                    eval_ks=[2], eval_methods=["exact"],
                    stages=[{"epochs": 1, "lr": 3e-3}, {"epochs": 2, "lr": 3e-3, "freeze": ["encoder"]}])
    fit(cfg, tmp_path / "r", callbacks=[Snapshot()])
    first, _, last = seen
    encoder = {k for k in first if k.startswith("model.0.")}                          # eegproject's encoder group
    assert encoder and all(torch.equal(first[k], last[k]) for k in encoder)
    assert all(not torch.equal(first[k], last[k]) for k in set(first) - encoder)    # the head still trains


def test_a_stage_freezing_the_projector_fixes_both_projections_and_trains_the_rest(joint, tmp_path, monkeypatch):
    store, data, _ = joint
    patch_open_data(monkeypatch, store)
    seen = []

    class Snapshot(Callback):
        def on_train_epoch_end(self, trainer, module):
            seen.append({**{f"eeg.{k}": v.detach().clone() for k, v in module.encoder.named_parameters()},
                         **{f"img.{k}": v.detach().clone() for k, v in module.image_projector.named_parameters()}})

    stages = [{"epochs": 1, "lr": 3e-3}, {"epochs": 2, "lr": 3e-3, "freeze": ["projector"]}]
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", batch_size=16, val_fraction=0.2,
                    eval_ks=[2], eval_methods=["exact"], projector={"dim": 8}, stages=stages)
    fit(cfg, tmp_path / "r", callbacks=[Snapshot()])
    first, second, last = seen
    fixed = {"eeg.projection.weight", "eeg.projection.bias", "img.linear.weight", "img.linear.bias"}
    assert fixed <= set(first)
    assert all(torch.equal(first[k], last[k]) for k in fixed)                       # frozen in stage II
    moved = set(first) - fixed
    assert moved and all(not torch.equal(first[k], last[k]) for k in moved)          # the base encoder trains
    with pytest.raises(ValueError, match="freezes 'projector' but the run has no projector"):
        FitConfig(data="x", subjects=["sub-01"], encoder="eegproject", stages=stages).validate()


runner = CliRunner()


def test_samga_preset_is_met_and_fit_trains_it_without_partial(joint, tmp_path, monkeypatch):
    from eegvision.training.preset_types import unmet_requirements
    from eegvision.training.presets_published import PUBLISHED_PRESETS

    assert unmet_requirements(PUBLISHED_PRESETS["samga"]) == {}
    assert unmet_requirements(PUBLISHED_PRESETS["samga-loso"]) == {}
    assert unmet_requirements(PUBLISHED_PRESETS["svtl"]) == {}
    store, data, root = joint
    patch_open_data(monkeypatch, store)
    out = tmp_path / "samga"
    args = ["fit", "--data", str(data), "--subject", "sub-01", "--out", str(out), "--preset", "samga",
            "--epochs", "2", "--mmd-epochs", "1", "--batch-size", "16", "--val-fraction", "0.2", "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "trains on files only you can make: targets" in res.output and "--target" in res.output
    res = runner.invoke(app, [*args, "--target", str(root / "layer2.train.safetensors")])
    assert res.exit_code == 0, res.output
    recorded = json.loads((out / "config.json").read_text())["fit"]
    assert recorded["preset"] == "samga"
    assert (recorded["target_mode"], recorded["subject_router"], recorded["mmd_epochs"]) == ("learned", "gate", 1)
    assert (recorded["fusion_subject_dropout"], recorded["fusion_layer_dropout"]) == (0.1, 0.1)
    assert len(json.loads((out / "fusion.json").read_text())["weights"]) == 2


def test_stages_option_of_fit_reads_json_text_and_files(tmp_path):
    from eegvision.cli.decode_cmds import _stages_option

    text = '[{"epochs": 2, "lr": 0.001, "subject_mmd_weight": [0.9, 0.5]}]'
    (tmp_path / "stages.json").write_text(text)
    assert _stages_option(text) == _stages_option(str(tmp_path / "stages.json")) == json.loads(text)
    with pytest.raises(ValueError, match="neither"):
        _stages_option(str(tmp_path / "nope.json"))
