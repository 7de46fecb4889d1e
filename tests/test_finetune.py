"""Fine-tuning a trained encoder on a new subject/paradigm, freezing, trial budgets, transfer curves."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch
from decode_helpers import FakeStore, make_problem, patch_open_data
from safetensors.torch import load_file, save_file

from eegvision.training.config import FinetuneConfig, FitConfig
from eegvision.training.finetune import (
    add_subject_row,
    finetune,
    frozen_parameter_names,
    parameter_groups,
)
from eegvision.training.fitting import fit
from eegvision.training.run import evaluate_run, load_run
from eegvision.training.rundir import RunFolder

KS = [2, 4, 20]


def read_test_embeddings(run_dir):
    return RunFolder.open(run_dir).unit().read_test_embeddings()


def _long(store):
    """The fake store with every sample repeated 4x in time (80 samples): room for conv/attention encoders."""
    arrays = {k: np.repeat(v, 4, axis=-1) for k, v in store._arrays.items()}
    return FakeStore(arrays, store._meta, store._concepts, sfreq=400.0, n_times=80)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    store, data = make_problem(root, n_subjects=3)
    long = _long(store)
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        patch_open_data(mp, store)
        cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=2, batch_size=16, lr=3e-3,
                        val_fraction=0.2, eval_ks=KS, eval_methods=["exact"])
        runs["eegproject"] = fit(cfg, root / "parent-eegproject").path
        patch_open_data(mp, long)
        cfg = cfg.replace(encoder="atms", epochs=1, encoder_options={"d_ff": 32, "n_filters": 8})
        runs["atms"] = fit(cfg, root / "parent-atms").path
    return {"store": store, "long": long, "data": data, "runs": runs, "root": root}


def weights(run_dir):
    return load_file(str(run_dir / "encoder" / "model.safetensors"))


def trials(run_dir):
    with open(run_dir / "finetune_trials.tsv", newline="") as f:
        return [(int(r["condition"]), int(r["repetition"])) for r in csv.DictReader(f, delimiter="\t")]


def test_freeze_encoder_budget_and_run_format(fake, tmp_path, monkeypatch):
    patch_open_data(monkeypatch, fake["store"])
    parent = fake["runs"]["eegproject"]
    cfg = FinetuneConfig(data=str(fake["data"]), subject="sub-02", freeze=["encoder"], epochs=2, min_steps=4, lr=3e-3,
                         seed=1)
    small = finetune(parent, cfg.replace(n_trials=10), tmp_path / "n10").path
    result = finetune(parent, cfg.replace(n_trials=40), tmp_path / "n40")
    big = result.path

    # frozen input projection bit for bit; the head changed
    w0, w1 = weights(parent), weights(big)
    assert w0.keys() == w1.keys()
    rec = json.loads((big / "finetune.json").read_text())
    assert rec == json.loads(json.dumps(result.record()))  # the typed result is what finetune.json holds
    assert rec["frozen_parameters"] == result.frozen_parameters == ["model.0.weight", "model.0.bias"]
    for name in w0:
        if name.startswith("model.0."):
            assert torch.equal(w0[name], w1[name]), name
        else:
            assert not torch.equal(w0[name], w1[name]), name
    assert rec["n_frozen"] == w0["model.0.weight"].numel() + w0["model.0.bias"].numel()

    # budgets: exactly N distinct training trials, none from the validation concepts, nested across N
    t10, t40 = trials(small), trials(big)
    assert len(t10) == 10 and len(set(t40)) == 40 and set(t10) <= set(t40)
    assert rec["n_trials"] == 40 and rec["n_trials_requested"] == 40
    from eegvision.data.splits import validation_split

    val = set(validation_split(fake["store"], "training", fraction=0.2, seed=1).val_conditions.tolist())
    assert not val & {c for c, _ in t40}
    assert rec["parent"] == str(parent.resolve()) and rec["subject_token"] == "shared" and rec["subject_id"] == -1

    # the new run is a normal run: loads, embeds the stored embeddings, evaluates to its metrics
    run = load_run(big)
    assert run.subject_id("sub-02") == -1
    torch.testing.assert_close(run.embed(fake["store"], "sub-02"), read_test_embeddings(big)["sub-02"],
                               rtol=0, atol=1e-6)
    rows = json.loads((big / "metrics.json").read_text())["rows"]
    assert [r["top1"] for r in evaluate_run(big, write=False).rows] == pytest.approx([r["top1"] for r in rows])
    assert {r["subject"] for r in rows} == {"sub-02"}

    assert [r["top1"] for r in result.rows] == pytest.approx([r["top1"] for r in rows])
    assert result.steps == rec["steps"] == 2 * (40 // 16)  # 2 epochs of 40 trials in batches of 16
    with pytest.raises(FileExistsError, match="not empty"):
        finetune(parent, cfg.replace(n_trials=10), big)
    with pytest.raises(ValueError, match="n_trials=100000"):
        finetune(parent, cfg.replace(n_trials=100000), tmp_path / "x")
    with pytest.raises(ValueError, match="no 'attention'"):
        finetune(parent, cfg.replace(n_trials=10, freeze=["attention"]), tmp_path / "y")
    with pytest.raises(ValueError, match="not both or neither"):
        finetune(parent, cfg.replace(init="eegproject"), tmp_path / "z")


def test_zero_trials_is_the_parent_zero_shot(fake, tmp_path, monkeypatch):
    patch_open_data(monkeypatch, fake["store"])
    parent = fake["runs"]["eegproject"]
    zs = finetune(parent, FinetuneConfig(data=str(fake["data"]), subject="sub-03", n_trials=0), tmp_path / "zs").path
    assert all(torch.equal(a, b) for a, b in zip(weights(parent).values(), weights(zs).values()))
    # reference: the parent's own embedding of the new subject (shared-token id), evaluated independently
    ref = load_run(parent).embed(fake["store"], "sub-03")
    torch.testing.assert_close(read_test_embeddings(zs)["sub-03"], ref, rtol=0, atol=1e-6)
    from eegvision.evaluation.kway import kway_exact
    from eegvision.features.files import load_features

    feats = load_features(fake["data"] / "features" / "test.safetensors")
    sims = torch.nn.functional.normalize(ref, dim=-1) @ torch.nn.functional.normalize(feats.image, dim=-1).T
    want = kway_exact(sims, np.arange(len(ref)), ks=[20], tops=[1]).get(20, 1)
    rows = json.loads((zs / "metrics.json").read_text())["rows"]
    got = [r["top1"] for r in rows if r["modality"] == "image" and r["k"] == 20][0]
    assert got == pytest.approx(want)
    assert json.loads((zs / "finetune.json").read_text())["n_trials"] == 0


def test_atms_attention_freeze_and_new_subject_row(fake, tmp_path, monkeypatch):
    patch_open_data(monkeypatch, fake["long"])
    parent = fake["runs"]["atms"]
    cfg = FinetuneConfig(data=str(fake["data"]), subject="sub-02", freeze=["attention"], n_trials=48,
                         subject_token="new", epochs=1, min_steps=3, lr=3e-3)
    out = finetune(parent, cfg, tmp_path / "att").path
    w0, w1 = weights(parent), weights(out)
    rec = json.loads((out / "finetune.json").read_text())
    frozen = set(rec["frozen_parameters"])
    assert frozen and all(n.startswith("encoder.") and "subject_embedding" not in n for n in frozen)
    for name in frozen:
        assert torch.equal(w0[name], w1[name]), name
    assert not torch.equal(w0["proj_eeg.0.weight"], w1["proj_eeg.0.weight"])
    assert not torch.equal(w0["enc_eeg.0.tsconv.0.weight"], w1["enc_eeg.0.tsconv.0.weight"])
    # the new subject got its own row (id 1 of a 2-row table); the parent's row gets no gradient, so
    # AdamW only applies its decoupled weight decay: 3 steps of (1 - lr * weight_decay)
    key = "encoder.enc_embedding.subject_embedding.subject_embedding.weight"
    assert w1[key].shape[0] == 2 and rec["steps"] == 3
    torch.testing.assert_close(w1[key][0], w0[key][0] * (1 - 3e-3 * 0.01) ** 3, rtol=1e-6, atol=1e-7)
    run = load_run(out)
    assert run.subject_id("sub-02") == 1 and run.encoder.n_subjects == 2
    assert rec["subject_token"] == "new" and rec["subject_id"] == 1


def test_add_subject_row_starts_from_shared_token(fake):
    enc = load_run(fake["runs"]["atms"]).encoder
    new, sid = add_subject_row(enc, "shared")
    assert sid == 1 and new.n_subjects == 2
    x = torch.randn(3, enc.n_chans, enc.n_times)
    with torch.no_grad():
        for old_id, new_id in ((0, 0), (-1, 1), (-1, -1)):  # old rows kept; new row == shared token
            a = enc(x, torch.full((3,), old_id))
            b = new(x, torch.full((3,), new_id))
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    mean, _ = add_subject_row(enc, "mean")
    table = enc.encoder.enc_embedding.subject_embedding.subject_embedding.weight
    torch.testing.assert_close(mean.encoder.enc_embedding.subject_embedding.subject_embedding.weight[1], table[0])


@pytest.mark.parametrize("name", ["atms", "nice", "eegproject", "braindecode:EEGNet"])
def test_parameter_groups_partition(name):
    from eegvision.models import create_encoder

    enc = create_encoder(name, n_chans=8, n_times=100, n_outputs=16, n_subjects=2)
    groups = parameter_groups(enc)
    names = [n for n, _ in enc.named_parameters()]
    flat = [n for ns in groups.values() for n in ns]
    assert sorted(flat) == sorted(names)  # a partition
    assert groups["head"] and groups["encoder"]
    keep = set(names) - set(frozen_parameter_names(enc, ["all-but-head"]))
    assert keep == set(groups["head"])
    if name == "atms":
        assert groups["attention"] and groups["subject"]
        assert all(n.startswith("proj_eeg.") for n in groups["head"])
    with pytest.raises(ValueError) as err:
        frozen_parameter_names(enc, ["encodr"])
    assert err.value.args[0] == ("Freeze group 'encodr' is not in the groups eegvision can freeze (available: "
                                 "encoder, attention, subject, head, none, all-but-head). Did you mean encoder?")
    with pytest.raises(ValueError, match="none and all-but-head stand alone"):
        frozen_parameter_names(enc, ["none", "encoder"])
    assert frozen_parameter_names(enc, ["none"]) == frozen_parameter_names(enc, []) == []


def test_labram_pretrained_start(fake, tmp_path, monkeypatch):
    from eegvision.models import create_encoder
    from eegvision.models.encoders.braindecode_head import braindecode_model_names

    if "Labram" not in braindecode_model_names():
        pytest.skip("this braindecode has no Labram")
    patch_open_data(monkeypatch, fake["long"])
    kwargs = {"patch_size": 40, "embed_dim": 40, "num_layers": 1, "num_heads": 2}
    store = fake["long"]
    torch.manual_seed(123)
    donor = create_encoder("braindecode:Labram", n_chans=6, n_times=80, n_outputs=16, sfreq=400.0,
                           ch_names=list(store.ch_names), model_kwargs=kwargs)
    state = {k: v.contiguous() for k, v in donor.backbone.state_dict().items()}
    save_file(state, str(tmp_path / "labram.safetensors"))
    cfg = FinetuneConfig(data=str(fake["data"]), subject="sub-01", init="braindecode:Labram",
                         pretrained=tmp_path / "labram.safetensors", encoder_options={"model_kwargs": kwargs},
                         freeze=["encoder"], n_trials=32, epochs=1, min_steps=2, lr=1e-3)
    out = finetune(None, cfg, tmp_path / "lab").path
    w = weights(out)
    rec = json.loads((out / "finetune.json").read_text())
    assert rec["init"] == "braindecode:Labram" and rec["frozen_parameters"]
    for name in rec["frozen_parameters"]:  # loaded from the file and kept
        assert torch.equal(w[name], state[name.removeprefix("backbone.")]), name
    assert not torch.equal(w["backbone.final_layer.weight"], state["final_layer.weight"])  # the head trained
    assert load_run(out).encoder.config["model_kwargs"] == kwargs


def test_cli_finetune_and_transfer_curve(fake, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from eegvision.analysis.transfer import run_accuracy
    from eegvision.cli.main import app

    patch_open_data(monkeypatch, fake["store"])
    parent = str(fake["runs"]["eegproject"])
    runner = CliRunner()
    res = runner.invoke(app, ["finetune", parent, "--data", str(fake["data"]), "--subject", "sub-02", "--out",
                              str(tmp_path / "ft"), "--n-trials", "0"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ft" / "finetune.json").is_file()
    res = runner.invoke(app, ["finetune", parent, "--data", str(fake["data"]), "--subject", "sub-09", "--out",
                              str(tmp_path / "bad")])
    assert res.exit_code == 2 and "sub-09" in res.output

    res = runner.invoke(app, ["transfer-curve", parent, "--data", str(fake["data"]), "--subjects", "sub-02,sub-03",
                              "--n-trials", "0,all", "--out", str(tmp_path / "tc"), "--epochs", "2", "--min-steps",
                              "6", "--lr", "3e-3"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "tc" / "transfer_curve.csv")
    assert len(table) == 4 and set(table["n_trials_requested"].astype(str)) == {"0", "all"}
    for _, r in table.iterrows():
        assert r["top1"] == pytest.approx(run_accuracy(tmp_path / "tc" / r["run"])["top1"])
    summary = pd.read_csv(tmp_path / "tc" / "transfer_summary.csv")
    for budget, grp in table.groupby(table["n_trials_requested"].astype(str)):
        row = summary[summary["n_trials_requested"].astype(str) == budget].iloc[0]
        assert row["mean"] == pytest.approx(grp["top1"].mean())
        assert row["sem"] == pytest.approx(grp["top1"].std(ddof=1) / np.sqrt(2))
    assert (tmp_path / "tc" / "transfer_curve.png").stat().st_size > 5000


def test_finetuning_beats_zero_shot_on_simulated_imagination(tmp_path):
    """Viewing-trained decoder → imagination of the same world: near chance zero-shot, clearly better fine-tuned."""
    from eegvision.analysis.transfer import transfer_curve
    from eegvision.sim import ForwardParams, Preset, simulate

    pr = Preset("ft", n_subjects=2, n_train_concepts=40, n_train_images=2, train_reps=4, n_test_concepts=10,
                test_reps=8, n_sessions=2, feature_dim=32, write_raw=False)
    fp = ForwardParams(signal=8.0, gated_components=[])  # a strong additive code: this test is about transfer
    simulate(tmp_path / "view", preset=pr, seed=3, images=False, write_raw=False, params=fp, n_subjects=1)
    simulate(tmp_path / "imag", preset=pr, seed=3, paradigm="imagination", trial_seed=4, images=False,
             write_raw=False, params=fp)
    feats = {"features_train": str(tmp_path / "view" / "sim_features_train.pt"),
             "features_test": str(tmp_path / "view" / "sim_features_test.pt"), "features_normalized": True}
    cfg = FitConfig(data=str(tmp_path / "view"), subjects=["sub-01"], encoder="eegproject", epochs=10,
                    batch_size=32, lr=1e-3, val_fraction=0.2, eval_ks=[2, 10], eval_methods=["exact"],
                    channels="occipito-parietal", window=[0.0, 0.8], **feats)
    parent = fit(cfg, tmp_path / "viewing-run").path
    viewing = {r["k"]: r["top1"] for r in json.loads((parent / "metrics.json").read_text())["rows"]
               if r["modality"] == "image"}
    assert viewing[2] > 0.85  # the parent decodes viewing well

    table = transfer_curve(parent, tmp_path / "imag", ["sub-01", "sub-02"], [0, None], tmp_path / "curve",
                           epochs=15, min_steps=30, lr=1e-3)
    zero = table[table["n_trials"] == 0]
    full = table[table["n_trials"] > 0]
    assert zero["top1_2way"].mean() < 0.65           # zero-shot near chance (0.5) on imagination (10 concepts)
    assert full["top1_2way"].mean() > zero["top1_2way"].mean() + 0.15
    assert full["top1"].mean() > zero["top1"].mean()  # 10-way: the largest budget beats n=0


def test_parent_trained_with_repetition_mixing_records_what_finetuning_used(fake, tmp_path, monkeypatch):
    """Fine-tuning budgets count single trials: a parent's mix_repetitions is not carried into the record."""
    patch_open_data(monkeypatch, fake["store"])
    cfg = FitConfig(data=str(fake["data"]), subjects=["sub-01"], encoder="eegproject", epochs=1, batch_size=16,
                    lr=3e-3, val_fraction=0.2, eval_ks=KS, eval_methods=["exact"], mix_repetitions=True)
    parent = fit(cfg, tmp_path / "parent").path
    assert json.loads((parent / "config.json").read_text())["fit"]["mix_repetitions"] is True
    cfg = FinetuneConfig(data=str(fake["data"]), subject="sub-02", n_trials=12, epochs=1, min_steps=1, lr=1e-3)
    out = finetune(parent, cfg, tmp_path / "ft").path
    assert json.loads((out / "config.json").read_text())["fit"]["mix_repetitions"] is False
    assert len(trials(out)) == 12


def test_finetune_config_validates_and_round_trips(tmp_path):
    cfg = FinetuneConfig(data=tmp_path / "imagery", subject="sub-01", freeze=["encoder", "attention"], n_trials=50,
                         eval_ks=[2, 200], encoder_options={"head": "projector"}, init="braindecode:EEGNet",
                         pretrained=tmp_path / "w.safetensors")
    assert cfg.data == str(tmp_path / "imagery") and cfg.pretrained == str(tmp_path / "w.safetensors")  # Paths -> str
    assert FinetuneConfig.from_json(cfg.to_json()) == cfg
    (tmp_path / "ft.json").write_text(cfg.to_json())
    assert FinetuneConfig.from_json(tmp_path / "ft.json") == cfg
    assert cfg.replace(n_trials=None).to_dict()["n_trials"] is None
    bad = [({"subject_token": "newest"}, "subject_token must be one of shared, new, mean; got 'newest'"),
           ({"n_trials": 5, "n_conditions": 2}, "n_trials or n_conditions, not both"),
           ({"n_trials": -1}, "n_trials must be >= 0, got -1"),
           ({"epochs": 0}, "epochs must be >= 1, got 0"),
           ({"lr": 0.0}, "lr must be > 0"),
           ({"batch_size": 0}, "batch_size must be >= 1"),
           ({"val_fraction": 1.5}, r"val_fraction must be in \(0, 1\)"),
           ({"freeze": ["encodr"]}, "Freeze group 'encodr' is not in the groups eegvision can freeze"),
           ({"freeze": "encoder,attention"}, "freeze takes a list"),
           ({"pretrained": "w.pt"}, "need init"),
           ({"subject": ""}, "subject must be a subject name")]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            FinetuneConfig(**{"data": "d", "subject": "sub-01", **change})
    with pytest.raises(ValueError, match="FinetuneConfig field 'n_trial' is not in FinetuneConfig"):
        FinetuneConfig.from_dict({"data": "d", "subject": "sub-01", "n_trial": 3})
