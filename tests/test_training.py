"""End-to-end training on a tiny synthetic problem: fit, select, save/load, resume, LOSO, joint."""

import csv
import json

import numpy as np
import pytest
import torch
from decode_helpers import make_problem, patch_open_data
from safetensors.torch import load_file

from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.module import EpochBatchSampler
from eegvision.training.run import evaluate_run, load_run

KS = [2, 4, 10, 20]


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    return make_problem(tmp_path_factory.mktemp("problem"))


def config(data, **kw):
    base = dict(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=2, batch_size=16, lr=3e-3,
                val_fraction=0.2, eval_ks=KS, eval_methods=["exact", "csls"])
    base.update(kw)
    return FitConfig(**base)


def weights(run_dir):
    return load_file(str(run_dir / "encoder" / "model.safetensors"))


def test_fit_beats_chance_and_reloads(problem, tmp_path, monkeypatch):
    store, data = problem
    patch_open_data(monkeypatch, store)
    result = fit(config(data), tmp_path / "run")
    run = result.path
    assert result.units == ["sub-01"] and result.run.unit().path == run
    for name in ("config.json", "encoder/model.safetensors", "encoder/config.json", "last.ckpt", "history.csv",
                 "metrics.json", "metrics.csv", "test_embeddings.safetensors"):
        assert (run / name).is_file(), name
    with open(run / "history.csv") as f:
        hist = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in hist] == [0, 1]
    assert {"train_loss", "val_loss", "val_top1", "val_top5", "lr", "temperature"} <= set(hist[0])
    assert float(hist[-1]["val_top1"]) > 3 / 12  # 12 validation images (6 held-out concepts): chance 1/12
    desc = json.loads((run / "config.json").read_text())
    assert desc["subject_ids"] == {"sub-01": 0} and desc["data"]["n_chans"] == 6
    assert desc["data"]["n_val_conditions"] == 12 and desc["eegvision_version"]
    assert list(result.run.concepts("test").name) == [f"test_concept_{i}" for i in range(20)]
    assert list(result.run.concepts("test").index) == list(range(20))
    assert list(result.run.concepts("training").name) == [f"trai_concept_{i}" for i in range(30)]

    rows = json.loads((run / "metrics.json").read_text())["rows"]
    assert [r["top1"] for r in result.rows] == pytest.approx([r["top1"] for r in rows])
    got = {(r["modality"], r["method"], r["k"]) for r in rows}
    assert got == {(m, meth, k) for m in ("image", "text") for meth in ("exact", "csls") for k in KS}
    top1 = {(r["modality"], r["k"]): r["top1"] for r in rows if r["method"] == "exact"}
    assert top1[("image", 20)] > 0.3 and top1[("text", 20)] > 0.2  # chance 0.05
    assert all(r["encoder"] == "eegproject" and r["subject"] == "sub-01" and r["selection"] == "val_top1"
               for r in rows)

    # save -> load -> identical embeddings, and evaluate RUN reproduces metrics.json
    trained = load_run(run)
    emb = trained.embed(store, "sub-01")
    stored = load_file(str(run / "test_embeddings.safetensors"))["sub-01"]
    torch.testing.assert_close(emb, stored, rtol=0, atol=1e-6)
    again = evaluate_run(run, write=False)
    assert again.files == [] and [r["top1"] for r in again.rows] == pytest.approx([r["top1"] for r in rows])
    at20 = [r for r in rows if r["modality"] == "image" and r["method"] == "exact" and r["k"] == 20]
    assert again.summary["image"] == {"modality": "image", "method": "exact", "k": 20, "n_subjects": 1,
                                      "top1": at20[0]["top1"], "top5": at20[0]["top5"]}
    assert result.summary == again.summary["image"]


@pytest.mark.parametrize("mix", [False, True])
def test_resume_is_identical_to_uninterrupted(problem, tmp_path, monkeypatch, mix):
    store, data = problem
    patch_open_data(monkeypatch, store)
    # default dropout: exercises the per-epoch RNG reseeding; mix: repetition-mixing weights
    cfg = config(data, eval_methods=["exact"], mix_repetitions=mix)
    full = fit(cfg, tmp_path / "full").path
    part = fit(cfg.replace(epochs=1), tmp_path / "part").path
    assert not all(torch.equal(a, b) for a, b in zip(weights(full).values(), weights(part).values()))
    with pytest.raises(FileExistsError, match="--resume"):
        fit(cfg, tmp_path / "part")
    fit(cfg, tmp_path / "part", resume=True)
    wa, wb = weights(full), weights(part)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)
    assert (tmp_path / "full" / "history.csv").read_text() == (tmp_path / "part" / "history.csv").read_text()
    ra = json.loads((full / "metrics.json").read_text())["rows"]
    rb = json.loads((part / "metrics.json").read_text())["rows"]
    assert [r["top1"] for r in ra] == pytest.approx([r["top1"] for r in rb], abs=1e-9)


def test_different_run_in_out_dir_is_an_error(problem, tmp_path, monkeypatch):
    store, data = problem
    patch_open_data(monkeypatch, store)
    fit(config(data, epochs=1, eval_methods=["exact"]), tmp_path / "run")
    with pytest.raises(FileExistsError, match="different run.*lr"):
        fit(config(data, epochs=1, lr=1e-3, eval_methods=["exact"]), tmp_path / "run", resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an eegvision run"):
        fit(config(data, epochs=1), tmp_path / "other")


def test_loso_fresh_model_per_fold_and_no_leak(problem, tmp_path, monkeypatch):
    import eegvision.training.unit as unit_mod

    store, data = problem
    patch_open_data(monkeypatch, store)
    initial = []
    real_build = unit_mod.build_module

    def recording_build(*args, **kw):
        module = real_build(*args, **kw)
        initial.append({k: v.clone() for k, v in module.encoder.state_dict().items()})
        return module

    monkeypatch.setattr(unit_mod, "build_module", recording_build)
    cfg = config(data, protocol="loso", subjects=["sub-01", "sub-02"], epochs=1, eval_methods=["exact"])
    both = fit(cfg, tmp_path / "both")
    only = fit(cfg.replace(subjects=["sub-02"]), tmp_path / "only").path
    assert both.units == ["sub-01", "sub-02"] and [u.path for u in both.run.units()] == [
        both.path / "sub-01", both.path / "sub-02"]
    both = both.path
    # same seed -> the two folds start from the same weights, but train on different subjects
    assert all(torch.equal(initial[0][k], initial[1][k]) for k in initial[0])
    w1, w2 = weights(both / "sub-01"), weights(both / "sub-02")
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)
    # fold sub-02 is the same whether or not fold sub-01 ran before it in the same process
    w_only = weights(only)
    for k in w2:
        torch.testing.assert_close(w2[k], w_only[k], rtol=0, atol=1e-6)
    desc = json.loads((both / "sub-02" / "config.json").read_text())
    assert desc["subject_ids"] == {"sub-01": 0, "sub-03": 1} and desc["test_subject_ids"] == {"sub-02": -1}
    rows = json.loads((both / "metrics.json").read_text())["rows"]
    assert {r["subject"] for r in rows} == {"sub-01", "sub-02"} and {r["protocol"] for r in rows} == {"loso"}


def test_joint_uses_per_sample_subject_ids(problem, tmp_path, monkeypatch):
    store, data = problem
    patch_open_data(monkeypatch, store)
    seen = []
    from eegvision.models.encoders.eegproject import EEGProjectEncoder

    real_forward = EEGProjectEncoder.forward

    def spy(self, x, subject_ids=None):
        seen.append(subject_ids.clone())
        return real_forward(self, x, subject_ids)

    monkeypatch.setattr(EEGProjectEncoder, "forward", spy)
    run = fit(config(data, protocol="joint", subjects=["sub-01", "sub-03"], epochs=1, eval_methods=["exact"]),
              tmp_path / "joint").path
    ids = torch.cat(seen)
    assert set(ids.tolist()) == {0, 1}  # both subjects' own ids, not one id for every sample
    rows = json.loads((run / "metrics.json").read_text())["rows"]
    assert {r["subject"] for r in rows} == {"sub-01", "sub-03"}
    assert json.loads((run / "config.json").read_text())["subject_ids"] == {"sub-01": 0, "sub-03": 1}


def test_sampler_shards_one_permutation():
    single = list(EpochBatchSampler(40, 8, seed=3, world_size=1))
    ranks = [list(EpochBatchSampler(40, 4, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(single) == len(ranks[0]) == 5
    for i, batch in enumerate(single):
        assert sorted(batch.tolist()) == sorted(np.concatenate([ranks[0][i], ranks[1][i]]).tolist())
    s = EpochBatchSampler(40, 8, seed=3)
    s.set_epoch(1)
    assert not np.array_equal(np.concatenate(list(s)), np.concatenate(single))


def test_config_json_round_trip_and_errors(tmp_path):
    cfg = FitConfig(data="x", subjects=["sub-01"], encoder="atms", window=[0.0, 0.5], encoder_options={"dropout": 0.1})
    assert FitConfig.from_json(cfg.to_json()) == cfg
    (tmp_path / "c.json").write_text(json.dumps({"fit": cfg.to_dict()}))
    assert FitConfig.from_json(tmp_path / "c.json") == cfg
    with pytest.raises(ValueError, match=r"FitConfig field 'learning_rate' is not in FitConfig \(available: data, .* lr, "):
        FitConfig.from_dict({"learning_rate": 1.0})
    with pytest.raises(ValueError, match=r"FitConfig field 'epoch' is not in FitConfig .*\. Did you mean epochs\?"):
        FitConfig.from_dict({"epoch": 1})
    with pytest.raises(ValueError, match="subjects takes a list such as"):
        FitConfig(subjects="sub-01,sub-02")
    with pytest.raises(ValueError, match="protocol"):
        FitConfig(protocol="cross")
    assert cfg.differences(cfg.replace(epochs=99)) == {}
    assert "lr" in cfg.differences(cfg.replace(lr=1.0))
