"""``FitConfig.ridge_init``: a neural encoder trained on top of the ridge solution of the fitting conditions
(``ResidualEncoder``: ``ridge(x) + gate * encoder(x)``, gate 0 at the start)."""

import numpy as np
import pytest
import torch
from decode_helpers import make_problem, patch_open_data

from eegvision.models import create_encoder, load_encoder, save_pretrained
from eegvision.models.encoders.residual import ResidualEncoder
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit


def test_residual_starts_at_its_linear_part_and_reloads(tmp_path):
    torch.manual_seed(0)
    lin = create_encoder("ridge", n_chans=4, n_times=20, n_outputs=6, sfreq=100.0)
    with torch.no_grad():
        for p in lin.parameters():
            p.normal_()
    net = create_encoder("eegproject", n_chans=4, n_times=20, n_outputs=6, sfreq=100.0)
    comp = ResidualEncoder.around(lin, net).eval()
    x = torch.randn(5, 4, 20)
    torch.testing.assert_close(comp(x), lin.eval()(x), rtol=0, atol=0)
    with torch.no_grad():
        comp.gate.fill_(0.5)
    want = lin(x) + 0.5 * net.eval()(x)
    torch.testing.assert_close(comp(x), want)
    save_pretrained(comp, tmp_path / "enc")
    back = load_encoder(tmp_path / "enc")
    torch.testing.assert_close(back(x), want)
    assert back.config["linear"]["name"] == "ridge" and back.config["neural"]["name"] == "eegproject"
    assert back.module_groups()["head"] == ["linear.linear", "neural.model.1", "neural.model.2"]
    assert back.module_groups()["encoder"] == ["neural.model.0"]


def test_fit_starts_from_the_ridge_of_the_fitting_conditions_only(tmp_path, monkeypatch):
    import eegvision.training.unit as unit_mod
    from eegvision.data.splits import validation_split
    from eegvision.training.closed_form import solve_linear

    store, data = make_problem(tmp_path, n_subjects=1)
    patch_open_data(monkeypatch, store)
    seen = {}
    real_build = unit_mod.build_module

    def recording_build(config, data_, train_feats, test_feats, encoder=None):
        seen["encoder"] = {k: v.clone() for k, v in encoder.state_dict().items()}
        seen["feats"] = train_feats
        return real_build(config, data_, train_feats, test_feats, encoder=encoder)

    monkeypatch.setattr(unit_mod, "build_module", recording_build)
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=1, batch_size=16,
                    val_fraction=0.2, eval_ks=[2, 4], eval_methods=["exact"], ridge_init=True,
                    ridge_options={"cv": 3})
    fit(cfg, tmp_path / "run")
    start = seen["encoder"]
    assert float(start["gate"]) == 0.0
    unit = {"train_subjects": ["sub-01"], "test_subjects": ["sub-01"]}
    split = validation_split(store, "training", fraction=0.2, seed=0)
    fitting, _, _, _ = solve_linear(cfg, store, unit, seen["feats"], conditions=split.train_conditions,
                                    options={"cv": 3})
    every, _, _, _ = solve_linear(cfg, store, unit, seen["feats"], options={"cv": 3})
    for k, v in fitting.state_dict().items():
        torch.testing.assert_close(start[f"linear.{k}"], v)
    # the validation concepts were left out: the solution on every condition differs
    assert not torch.allclose(every.state_dict()["linear.weight"], start["linear.linear.weight"])
    assert len(np.unique(split.val_conditions)) > 0


def test_ridge_init_refusals():
    base = dict(data="x", subjects=["sub-01"], encoder="eegproject")
    with pytest.raises(ValueError, match="ensemble"):
        FitConfig(**base, ridge_init=True, ensemble=2).validate()
    with pytest.raises(ValueError, match="ridge_options"):
        FitConfig(**base, ridge_options={"cv": 3}).validate()
    with pytest.raises(ValueError, match="ridge_init"):
        FitConfig(data="x", subjects=["sub-01"], encoder="ridge", ridge_init=True).validate()
