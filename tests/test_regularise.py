"""Training that resists overfitting: augmentations, EMA weights, early stopping, seed ensembles."""

import json

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from decode_helpers import LinearEncoder, TensorData, make_problem, patch_open_data
from safetensors.torch import load_file

from eegvision.data.augment import Augment, drop_channels, scale_amplitude, shift_time
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.losses import Objective
from eegvision.training.module import ContrastiveModule
from eegvision.training.regularise import stop_early


# ----------------------------------------------------------------------------- augmentations
def test_shift_moves_samples_by_exactly_k_with_zero_padding():
    x = torch.arange(1.0, 13.0).reshape(2, 1, 6)  # sample 0: 1..6, sample 1: 7..12
    out = shift_time(x, torch.tensor([2, -1]))
    assert out.tolist() == [[[0, 0, 1, 2, 3, 4]], [[8, 9, 10, 11, 12, 0]]]
    assert torch.equal(shift_time(x, torch.tensor([0, 0])), x)
    assert scale_amplitude(x, torch.tensor([2.0, -1.0])).tolist() == [[[2, 4, 6, 8, 10, 12]],
                                                                      [[-7, -8, -9, -10, -11, -12]]]
    keep = torch.tensor([[True, False], [False, True]])
    y = drop_channels(torch.ones(2, 2, 3), keep)
    assert y[:, :, 0].tolist() == [[1, 0], [0, 1]]


def test_augment_equals_the_hand_computation_from_its_draws():
    x = torch.randn(5, 3, 8, generator=torch.Generator().manual_seed(1))
    aug = Augment(time_shift=3, amplitude_scale=0.2, channel_dropout=0.3, noise=0.5, seed=7)
    d = aug.draws(tuple(x.shape), epoch=2, batch=4)
    assert set(d) == {"shifts", "factors", "keep", "z"} and d["shifts"].abs().max() <= 3
    expected = torch.zeros_like(x)
    for i in range(5):
        k = int(d["shifts"][i])
        for t in range(8):
            if 0 <= t - k < 8:
                expected[i, :, t] = x[i, :, t - k]
        expected[i] *= d["factors"][i]
        expected[i] *= d["keep"][i].float()[:, None]
    expected += 0.5 * x.std(unbiased=False) * d["z"]
    torch.testing.assert_close(aug(x, epoch=2, batch=4), expected)
    # the factors are log-normal with the requested sd; the noise has sd 0.5 x the batch's sd
    big = Augment(amplitude_scale=0.2, channel_dropout=0.25, seed=0).draws((20000, 4, 2), epoch=0, batch=0)
    assert torch.log(big["factors"]).std().item() == pytest.approx(0.2, rel=0.03)
    assert 1 - big["keep"].float().mean().item() == pytest.approx(0.25, abs=0.01)
    x = torch.randn(64, 8, 50, generator=torch.Generator().manual_seed(2)) * 3.0
    added = Augment(noise=0.5, seed=0)(x, epoch=0, batch=0) - x
    assert added.std().item() == pytest.approx(0.5 * x.std().item(), rel=0.03)


def test_augment_is_seeded_by_seed_epoch_and_batch_only():
    x = torch.randn(6, 4, 20, generator=torch.Generator().manual_seed(0))
    aug = Augment(time_shift=4, amplitude_scale=0.3, channel_dropout=0.2, noise=0.4, seed=1)
    torch.testing.assert_close(aug(x, epoch=3, batch=2), aug(x.clone(), epoch=3, batch=2), rtol=0, atol=0)
    for other in (dict(epoch=3, batch=1), dict(epoch=4, batch=2)):
        assert not torch.equal(aug(x, **other), aug(x, epoch=3, batch=2))
    assert not torch.equal(Augment(noise=0.4, seed=2)(x, epoch=3, batch=2), Augment(noise=0.4, seed=1)(x, epoch=3, batch=2))
    # each augmentation has its own stream: switching others on does not change its draws
    alone = Augment(noise=0.4, seed=1).draws(tuple(x.shape), epoch=3, batch=2)["z"]
    torch.testing.assert_close(aug.draws(tuple(x.shape), epoch=3, batch=2)["z"], alone, rtol=0, atol=0)
    assert Augment()(x, epoch=0, batch=0) is x
    with pytest.raises(ValueError, match=r"channel_dropout must be a number in \[0, 1\); got 1.5"):
        FitConfig(channel_dropout=1.5)
    with pytest.raises(ValueError, match="time_shift must be a whole number of 0 or more; got 2.5"):
        Augment(time_shift=2.5)


# ----------------------------------------------------------------------------- EMA and early stopping
def _tiny_module(**kw):
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(12, 4, generator=g), dim=1)
    cond = torch.arange(12).repeat(2)
    eeg = feats[cond] @ torch.randn(4, 10, generator=g) + 0.5 * torch.randn(24, 10, generator=g)
    torch.manual_seed(1)
    return ContrastiveModule(LinearEncoder(10, 4), Objective("retrieval"), feats,
                             train_data=TensorData(eeg.reshape(24, 2, 5), cond, cond), batch_size=8, lr=0.05, **kw)


def test_ema_weights_equal_the_hand_computed_average_after_two_steps():
    module = _tiny_module(ema_decay=0.8)
    seen = [{k: v.clone() for k, v in module.encoder.state_dict().items()}]

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append({k: v.detach().clone() for k, v in pl_module.encoder.state_dict().items()})

    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
                         num_sanity_val_steps=0)
    trainer.fit(module)
    assert len(seen) == 3
    w0, w1, w2 = seen
    assert not torch.equal(w1["proj.weight"], w0["proj.weight"])
    for k in w0:
        hand = 0.8 * (0.8 * w0[k] + 0.2 * w1[k]) + 0.2 * w2[k]
        torch.testing.assert_close(module.ema_encoder.state_dict()[k], hand, rtol=1e-6, atol=1e-7)
    assert not any(p.requires_grad for p in module.ema_encoder.parameters())
    module.adopt_ema()
    torch.testing.assert_close(module.encoder.proj.weight, 0.8 * (0.8 * w0["proj.weight"] + 0.2 * w1["proj.weight"])
                               + 0.2 * w2["proj.weight"])


def test_stop_early_rule():
    curve = [{"val_top1": v, "val_loss": 1 - v} for v in (0.1, 0.3, 0.2, 0.25, 0.3)]
    assert [stop_early(curve[:n], "val_top1", 2) for n in range(1, 6)] == [False, False, False, True, True]
    assert [stop_early(curve[:n], "val_loss", 3) for n in range(1, 6)] == [False, False, False, False, True]
    assert not stop_early(curve, "val_top1", None)


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    return make_problem(tmp_path_factory.mktemp("reg"), n_subjects=1)


def _config(data, **kw):
    base = dict(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=1, batch_size=16, lr=3e-3,
                val_fraction=0.2, eval_ks=[2, 20], eval_methods=["exact"])
    return FitConfig(**{**base, **kw})


def test_early_stopping_stops_at_the_right_epoch_on_a_scripted_curve(problem, tmp_path, monkeypatch, one_torch_thread):
    import eegvision.training.module as module_mod

    store, data = problem
    patch_open_data(monkeypatch, store)
    curve = iter([0.1, 0.3, 0.2, 0.25, 0.3, 0.1])
    monkeypatch.setattr(module_mod, "validation_topk", lambda *a: (lambda v: {1: v, 5: v})(next(curve)))
    cfg = _config(data, epochs=6, patience=2)
    result = fit(cfg, tmp_path / "run")
    unit = result.run.unit()
    history = unit.read_history()
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3]  # no gain for 2 epochs after epoch 1
    assert [r["val_top1"] for r in history] == [0.1, 0.3, 0.2, 0.25]
    selection = unit.read_selection()
    assert selection["selected_epoch"] == 1 and selection["val_top1"] == 0.3
    # resuming the stopped run trains no further (the rule reads the history kept in the checkpoint)
    fit(cfg, tmp_path / "run", resume=True)
    assert [int(r["epoch"]) for r in unit.read_history()] == [0, 1, 2, 3]


def test_fit_with_ema_and_augmentation_saves_the_selected_average(problem, tmp_path, monkeypatch, one_torch_thread):
    from eegvision.data import augment as augment_mod

    store, data = problem
    patch_open_data(monkeypatch, store)
    calls = []
    real_call = augment_mod.Augment.__call__

    def spy(self, eeg, *, epoch, batch, rank=0):
        calls.append((epoch, batch))
        return real_call(self, eeg, epoch=epoch, batch=batch, rank=rank)

    monkeypatch.setattr(augment_mod.Augment, "__call__", spy)
    result = fit(_config(data, epochs=2, ema_decay=0.9, noise=0.1, time_shift=1), tmp_path / "run")
    unit = result.run.unit()
    n_batches = len(calls) // 2
    assert calls == [(e, b) for e in range(2) for b in range(n_batches)]  # training batches only, never validation
    best = next(unit.path.glob("best-*.ckpt"))
    state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    saved = load_file(str(unit.encoder_dir / "model.safetensors"))
    for k, v in saved.items():
        torch.testing.assert_close(v, state[f"ema_encoder.{k}"], rtol=0, atol=0)
    assert any(not torch.equal(v, state[f"encoder.{k}"]) for k, v in saved.items())


def test_ensemble_embedding_is_the_mean_of_its_members_normalised_embeddings(problem, tmp_path, monkeypatch,
                                                                             one_torch_thread):
    from eegvision.data import splits
    from eegvision.training.run import load_run

    store, data = problem
    patch_open_data(monkeypatch, store)
    split_seeds = []
    real_split = splits.validation_split

    def recording_split(*args, seed, **kw):
        split_seeds.append(seed)
        return real_split(*args, seed=seed, **kw)

    monkeypatch.setattr(splits, "validation_split", recording_split)
    result = fit(_config(data, seed=3, ensemble=2), tmp_path / "run")
    assert split_seeds == [3, 3]  # the members share the run's validation split
    unit = result.run.unit()
    members = unit.members()
    assert [m.path.name for m in members] == ["seed-3", "seed-4"]
    assert [m.fit_config().seed for m in members] == [3, 4] and {m.fit_config().ensemble for m in members} == {1}
    own = [m.read_test_embeddings()["sub-01"] for m in members]
    assert not torch.allclose(own[0], own[1])
    mean = (F.normalize(own[0], dim=-1) + F.normalize(own[1], dim=-1)) / 2
    stored = unit.read_test_embeddings()["sub-01"]
    torch.testing.assert_close(stored, mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(load_run(result.path).embed(store, "sub-01"), stored, rtol=0, atol=1e-6)
    sel = unit.read_selection()
    assert sel["member_epochs"] == [m.read_selection()["selected_epoch"] for m in members]
    assert 0 <= sel["val_top1"] <= 1 and json.loads(unit.config_path.read_text())["fit"]["ensemble"] == 2
    assert result.rows[0]["top1"] == pytest.approx(json.loads((unit.path / "metrics.json").read_text())["rows"][0]["top1"])


def test_resume_with_ema_and_augmentations_is_identical_to_uninterrupted(problem, tmp_path, monkeypatch,
                                                                         one_torch_thread):
    store, data = problem
    patch_open_data(monkeypatch, store)
    cfg = _config(data, epochs=2, ema_decay=0.7, time_shift=2, amplitude_scale=0.1, channel_dropout=0.1, noise=0.2)
    full = fit(cfg, tmp_path / "full").path
    fit(cfg.replace(epochs=1), tmp_path / "part")
    part = fit(cfg, tmp_path / "part", resume=True).path
    wa, wb = load_file(str(full / "encoder" / "model.safetensors")), load_file(str(part / "encoder" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    assert (full / "history.csv").read_text() == (part / "history.csv").read_text()
