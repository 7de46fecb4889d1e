"""``fit --reference`` and reference subject rows (issue #14 A1, A5) against numbers of the reference code.

The loss numbers were computed in a scratch folder outside the repository with the reference's own
``ClipLoss`` (``models/loss.py`` of ``ncclab-sustech/EEG_Image_decode`` at 61fc9c3, world size 1) on the seeded
inputs built by :func:`_inputs`: ``0.99 * ClipLoss(eeg, img, s) + 0.01 * ClipLoss(eeg, txt, s)``
(``ATMS_retrieval.py:229-234``).
"""

import json
import math

import pytest
import torch
from decode_helpers import make_problem, patch_open_data

from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.losses import Objective
from eegvision.training.unit import torch_load_checkpoint

#: (logit scale, image ClipLoss, text ClipLoss, 0.99 image + 0.01 text), from the reference's ClipLoss
REFERENCE_LOSSES = [
    (math.log(1 / 0.07), 14.893644332885742, 8.15587043762207, 14.82626724243164),
    (-0.5, 1.8801313638687134, 3.443834066390991, 1.895768404006958),
]


def _inputs():
    g = torch.Generator().manual_seed(2024)
    eeg = torch.randn(6, 8, generator=g) * 3
    img = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    return eeg, img, txt


@pytest.mark.parametrize("scale,img_loss,txt_loss,total", REFERENCE_LOSSES)
def test_reference_objective_equals_the_reference_clip_loss(scale, img_loss, txt_loss, total):
    cfg = FitConfig(data="d", subjects=["sub-01"], reference=True)
    objective = Objective(cfg.objective, reference=cfg.reference_loss)
    with torch.no_grad():
        objective.logit_scale.log_scale.fill_(scale)
    out = objective(*_inputs())
    assert set(out.parts) == {"image_nce", "text_nce"}  # no MSE term
    assert out.parts["image_nce"].item() == pytest.approx(img_loss, rel=1e-6)
    assert out.parts["text_nce"].item() == pytest.approx(txt_loss, rel=1e-6)
    assert out.loss.item() == pytest.approx(total, rel=1e-6)


def test_reference_switch_sets_everything_and_refuses_contradictions():
    cfg = FitConfig(data="d", subjects=["sub-01"], reference=True)
    assert cfg.reference_loss and cfg.encoder_options == {"mode": "reference"} and cfg.batch_size == 64
    assert FitConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="mode='fixed' was given"):
        FitConfig(data="d", subjects=["sub-01"], reference=True, encoder_options={"mode": "fixed"})
    with pytest.raises(ValueError, match="has none"):
        FitConfig(data="d", subjects=["sub-01"], reference=True, encoder="stconv")
    with pytest.raises(ValueError, match="retrieval"):
        FitConfig(data="d", subjects=["sub-01"], reference=True, objective="generation")
    from eegvision.training.presets import get_preset, preset_config

    assert preset_config("atm-table8-within", reference=True).batch_size == 1024
    assert "reference script's default is 64" in get_preset("atm-table8-within").description


@pytest.fixture(scope="module")
def problem(tmp_path_factory):  # ATM-S needs >= 75 samples for its TSConv; subjects sub-01 ... sub-10
    return make_problem(tmp_path_factory.mktemp("refprob"), n_subjects=10, n_train_concepts=8, n_test=6,
                        train_reps=2, test_reps=2, n_times=75)


def test_reference_fit_uses_the_reference_rows_and_decays_every_parameter(problem, tmp_path, monkeypatch):
    store, data = problem
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-08", "sub-10"], protocol="joint", encoder="atms", epochs=1,
                    batch_size=8, val_fraction=0.25, eval_ks=[2], eval_methods=["exact"], reference=True,
                    encoder_options={"n_filters": 4})
    result = fit(cfg, tmp_path / "run")
    desc = json.loads((result.path / "config.json").read_text())
    assert desc["fit"]["reference"] is True and desc["fit"]["reference_loss"] is True
    assert desc["subject_ids"] == {"sub-08": 0, "sub-10": 1}
    # the reference (extract_id_from_string): sub-08 -> row 8; sub-10 -> 10, outside the 10-row table -> shared
    assert desc["reference_subject_rows"] == {"sub-08": 8, "sub-10": None}

    encoder = result.run.unit().load_encoder()
    assert encoder.config["subject_names"] == ["sub-08", "sub-10"] and encoder.config["mode"] == "reference"
    table = encoder.encoder.enc_embedding.subject_embedding
    with torch.no_grad():
        only_08 = table(torch.tensor([0, 0]), 2)
        with_10 = table(torch.tensor([0, 1]), 2)
    torch.testing.assert_close(only_08[:, 0], table.subject_embedding.weight[[8, 8]])
    torch.testing.assert_close(with_10[:, 0], table.shared_embedding.expand(2, -1))

    state = torch_load_checkpoint(result.path / "last.ckpt")
    groups = state["optimizer_states"][0]["param_groups"]
    n_params = len({id(p) for p in encoder.parameters()})  # the encoder's logit_scale is the loss's one
    assert [g["weight_decay"] for g in groups] == [0.01] and len(groups[0]["params"]) == n_params
    assert any(p.ndim < 2 for p in encoder.parameters())  # 1-D parameters are among them


def test_default_fit_exempts_one_dimensional_parameters():
    from eegvision.training.module import ContrastiveModule

    enc = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    feats = torch.randn(5, 3)
    groups = {g["weight_decay"]: len(g["params"]) for g in
              ContrastiveModule(enc, Objective(), feats, weight_decay=0.01).configure_optimizers().param_groups}
    assert groups == {0.01: 1, 0.0: 4}  # Linear weight decayed; its bias, the norm and the temperature not
    groups = {g["weight_decay"]: len(g["params"]) for g in ContrastiveModule(
        enc, Objective(), feats, weight_decay=0.01, decay_all_parameters=True).configure_optimizers().param_groups}
    assert groups == {0.01: 5}
