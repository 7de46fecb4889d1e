"""Importing checkpoints of the ATM reference code (``eegvision.models.reference``).

Reference values: each reference class was built in a scratch environment outside the repository (torch
2.14.1 CPU; ``clip``, braindecode, wandb and the data loaders stubbed), filled with
``reference_layouts.seeded_state(<its own state_dict layout>, seed)`` (``pe`` buffers set to
``sinusoid_rows``), run in eval mode on ``torch.randn`` inputs from ``torch.Generator().manual_seed(...)``,
and summarised by ``summarise``. Commits: ``ncclab-sustech/EEG_Image_decode`` 61fc9c3 (``ATMS`` with its
sinusoidal channel encoding, ``NICE``, ``Projector``, ``DiffusionPriorUNet``) and 22c84ad (``ATMS`` without
it); ``Alljoined/EEG_Image_decode`` 3dd2d62 (``ATMS_50``). No reference code is in this repository.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from reference_layouts import (
    ATMS50_KEYS,
    ATMS_KEYS,
    NICE_KEYS,
    PRIOR_KEYS,
    PROJECTOR_KEYS,
    seeded_state,
    sinusoid_rows,
)

from eegvision.models import load_encoder, save_pretrained
from eegvision.models.prior import REFERENCE_PRIOR_CONFIG, DiffusionPrior, PriorUNet
from eegvision.models.reference import (
    PRIOR_RENAMES,
    ReferenceCheckpointError,
    from_reference_state_dict,
    identify_atms_layout,
    load_reference_checkpoint,
    prior_state_from_reference,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Reference outputs: first 4 values of each row, sum(out * linspace(-1, 1, 1024)) and L2 norm of each row.
ATMS_61FC9C3 = {  # rows (1, 5, 8), then (1, 5, 10): sub-10 in the batch gives every sample the shared token
    (1, 5, 8): ([[-0.5419381, -2.733373, 0.8747858, 0.6701909], [-1.014901, -2.849712, 1.033759, 0.3706542],
                 [-0.3510841, -2.822592, 1.045251, 0.4010567]], [13.62118, 13.09177, 18.28293],
                [32.0668, 32.02772, 32.10968]),
    (1, 5, 10): ([[-0.5414084, -2.729512, 0.8839329, 0.6709095], [-1.009611, -2.837172, 1.04657, 0.369919],
                  [-0.3542993, -2.82647, 1.050924, 0.4002921]], [13.52151, 13.02794, 18.1643],
                 [32.06498, 32.02528, 32.10873]),
}
ATMS_22C84AD = {
    (1, 5, 8): ([[-0.8394701, -2.635274, 0.9035069, 0.6316], [-1.405251, -2.526868, 1.335768, 0.4141347],
                 [-0.6512513, -2.621681, 1.296397, 0.5908709]], [0.5839887, 4.909395, 9.71961],
                [32.06844, 31.96552, 32.07181]),
    (1, 5, 10): ([[-0.8489892, -2.637959, 0.9271265, 0.6383091], [-1.401238, -2.506652, 1.368857, 0.4087418],
                  [-0.669079, -2.626267, 1.316498, 0.5922931]], [0.3673378, 4.69241, 9.345517],
                 [32.06517, 31.96019, 32.06921]),
}
ATMS50_OUT = ([[-0.9762127, 0.3657796, -0.4017084, 1.720704], [-0.7243122, 0.9720709, -0.5517441, 1.800094]],
              [-7.538268, -1.84021], [32.32078, 32.39476])
NICE_OUT = ([[0.6814511, -1.095048, 0.469592, -2.19009], [0.9247694, -0.3815682, 0.4513483, -2.171436]],
            [-9.780671, -15.10876], [32.48628, 32.57073])
PROJECTOR_OUT = ([[0.009739308, 0.01665242, -0.005332595, -0.004564548],
                  [-0.003880213, -0.0005891655, -0.006878623, -0.003717356]], [-0.8609241, -0.904562], [1.0, 1.0])
PRIOR_COND = ([[0.9747208, -0.2468593, -1.193333, -0.3489926], [0.2447252, -0.9202154, -1.198228, -0.5322828]],
              [6.732162, -2.675557], [29.51556, 30.43929])
PRIOR_UNCOND = ([[0.4574201, -1.173413, -1.313267, -0.9520153], [1.067864, -0.8751568, -1.117325, 0.243563]],
                [-8.612275, -26.30548], [28.89987, 29.76377])


def summarise(out: torch.Tensor):
    o = out.double()
    return o[:, :4], (o * torch.linspace(-1.0, 1.0, o.shape[1], dtype=torch.float64)).sum(1), o.norm(dim=1)


def assert_matches(out: torch.Tensor, expected, atol: float = 2e-5) -> None:
    head, wsum, norm = summarise(out)
    dt = torch.float64
    torch.testing.assert_close(head, torch.tensor(expected[0], dtype=dt), atol=atol, rtol=1e-5)
    torch.testing.assert_close(wsum, torch.tensor(expected[1], dtype=dt), atol=5 * atol, rtol=1e-5)
    torch.testing.assert_close(norm, torch.tensor(expected[2], dtype=dt), atol=5 * atol, rtol=1e-5)


def atms_state() -> dict[str, torch.Tensor]:
    state = seeded_state(ATMS_KEYS, 14)
    state["encoder.enc_embedding.position_embedding.pe"] = torch.cat(
        [sinusoid_rows(63, 250), torch.zeros(5000 - 63, 250)]).unsqueeze(0)
    return state


def atms50_state() -> dict[str, torch.Tensor]:
    state = seeded_state(ATMS50_KEYS, 50)
    state["attention_model.pos_encoder.pe"] = torch.cat([sinusoid_rows(250, 63), torch.zeros(5000 - 250, 63)])
    return state


def projector_state() -> dict[str, torch.Tensor]:
    """The reference Projector's file: 33 tensors, 32 of them saved twice (``projector.i.*``)."""
    state = seeded_state(PROJECTOR_KEYS, 30)
    stage = {"0": "input_layer", "1": "blocks", "2": "output_layer"}
    for key in PROJECTOR_KEYS:
        if key.startswith("projector."):
            index, rest = key.split(".", 2)[1:]
            state[key] = state[f"{stage[index]}.{rest}"]
    return state


def save(state, tmp_path, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(state, path)
    return path


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------ ATM-S
@pytest.mark.parametrize("pe,expected", [("sinusoidal", ATMS_61FC9C3), ("none", ATMS_22C84AD)])
def test_atms_forward_equals_reference_at_each_commit(pe, expected, tmp_path):
    model = load_reference_checkpoint(save(atms_state(), tmp_path), "atms", positional_encoding=pe)
    assert n_params(model) == 3_202_413 and not model.training
    assert model.config["mode"] == "reference" and model.config["positional_encoding"] is (pe == "sinusoidal")
    x = torch.randn(3, 63, 250, generator=torch.Generator().manual_seed(15))
    with torch.no_grad():  # eegvision ids 0, 4, 7 / 9 are sub-01, sub-05, sub-08 / sub-10: reference rows
        assert_matches(model(x, torch.tensor([0, 4, 7])), expected[(1, 5, 8)])
        assert_matches(model(x, torch.tensor([0, 4, 9])), expected[(1, 5, 10)])


def test_atms_subject_names_pick_reference_rows(tmp_path):
    model = load_reference_checkpoint(save(atms_state(), tmp_path), "atms", positional_encoding="sinusoidal",
                                      subject_names=["sub-08"])
    x = torch.randn(3, 63, 250, generator=torch.Generator().manual_seed(15))
    with torch.no_grad():
        out = model(x, torch.zeros(3, dtype=torch.long))  # every sample on row 8
    head, wsum, norm = (v[2:] for v in summarise(out))
    torch.testing.assert_close(head, torch.tensor(ATMS_61FC9C3[(1, 5, 8)][0][2:], dtype=torch.float64),
                               atol=2e-5, rtol=1e-5)
    assert model.n_subjects == 1


def test_atms_positional_encoding_is_a_required_choice(tmp_path):
    path = save(atms_state(), tmp_path)
    with pytest.raises(ReferenceCheckpointError, match="cannot tell") as err:
        load_reference_checkpoint(path, "atms")
    message = str(err.value)
    assert "'sinusoidal' for code 61fc9c3" in message and "'none' for code 22c84ad" in message
    assert str(path) in message
    with pytest.raises(ValueError, match="positional_encoding must be one of"):
        load_reference_checkpoint(path, "atms", positional_encoding=True)
    with pytest.raises(ValueError, match="kind='atms' only"):
        load_reference_checkpoint(save(seeded_state(NICE_KEYS, 40), tmp_path, "n.pth"), "nice",
                                  positional_encoding="none")


def test_atms_layouts_are_recognised_by_keys_and_shapes():
    assert identify_atms_layout(atms_state()) == "itransformer"
    assert identify_atms_layout(atms50_state()) == "atms50"
    assert identify_atms_layout({f"module.{k}": v for k, v in atms50_state().items()}) == "atms50"


def test_atms50_forward_equals_reference(tmp_path):
    model = load_reference_checkpoint(save(atms50_state(), tmp_path), "atms")
    assert n_params(model) == 3_246_741 and model.config["name"] == "atms50"
    x = torch.randn(2, 63, 250, generator=torch.Generator().manual_seed(51))
    with torch.no_grad():
        out = model(x)
        assert_matches(out, ATMS50_OUT, atol=1e-6)
        # the layer registered as attention_model.encoder_layer is a dead copy: changing it changes nothing
        model.attention_model.encoder_layer.linear1.weight.add_(1.0)
        torch.testing.assert_close(model(x), out, atol=0, rtol=0)
    with pytest.raises(ReferenceCheckpointError, match="always adds a sinusoidal encoding over time"):
        from_reference_state_dict(atms50_state(), "atms", positional_encoding="none")


def test_unknown_atms_layout_is_refused_with_the_key_difference():
    state = atms_state()
    del state["subject_wise_linear.1.bias"]
    state["encoder.extra.weight"] = torch.zeros(3)
    state["proj_eeg.2.bias"] = torch.zeros(512)
    with pytest.raises(ReferenceCheckpointError) as err:
        from_reference_state_dict(state, "atms", positional_encoding="none")
    message = str(err.value)
    assert message.startswith("Unknown ATM-S layout: 1 missing key: subject_wise_linear.1.bias; "
                              "1 unexpected key: encoder.extra.weight; 1 shape-mismatched key: "
                              "proj_eeg.2.bias (512,) (expected (1024,))")
    assert "closest known layout" in message and "ncclab-sustech 22c84ad/61fc9c3" in message
    joint = {k.replace("value_embedding.", "value_embedding.0."): v for k, v in atms_state().items()}
    with pytest.raises(ReferenceCheckpointError, match="joint-training ATMS"):
        identify_atms_layout(joint)
    with pytest.raises(ReferenceCheckpointError, match="ATMS_50"):
        identify_atms_layout({k: v for k, v in atms50_state().items() if "encoder_layer" not in k})


def test_wrong_kind_names_the_likely_one(tmp_path):
    with pytest.raises(ReferenceCheckpointError, match="try kind='atms'"):
        load_reference_checkpoint(save(atms_state(), tmp_path), "nice")


def test_imported_atms_keeps_its_positional_choice_through_save_and_load(tmp_path):
    model = load_reference_checkpoint(save(atms_state(), tmp_path), "atms", positional_encoding="none")
    save_pretrained(model, tmp_path / "enc")
    again = load_encoder(tmp_path / "enc")
    x = torch.randn(2, 63, 250, generator=torch.Generator().manual_seed(15))
    with torch.no_grad():
        torch.testing.assert_close(again(x, torch.tensor([0, 4])), model(x, torch.tensor([0, 4])), atol=0, rtol=0)
    assert again.config["positional_encoding"] is False


# ------------------------------------------------------------------------------------------------ NICE, Projector
def test_nice_forward_equals_reference(tmp_path):
    model = load_reference_checkpoint(save(seeded_state(NICE_KEYS, 40), tmp_path), "nice")
    assert n_params(model) == 2_630_913 and (model.n_chans, model.n_times) == (63, 250)
    x = torch.randn(2, 63, 250, generator=torch.Generator().manual_seed(41))
    with torch.no_grad():
        assert_matches(model(x), NICE_OUT, atol=1e-6)
    with pytest.raises(ReferenceCheckpointError, match=r"n_times=300 does not fit.*\[250, 251, 252, 253, 254\]"):
        load_reference_checkpoint(save(seeded_state(NICE_KEYS, 40), tmp_path), "nice", n_times=300)


def test_projector_alias_keys_are_dropped(tmp_path):
    state = projector_state()
    assert len(state) == 65 and sum(k.startswith("projector.") for k in state) == 32
    model = load_reference_checkpoint(save(state, tmp_path), "projector")
    assert len(model.state_dict()) == 33 and n_params(model) == 3_425_460
    x = torch.randn(2, 63, 250, generator=torch.Generator().manual_seed(31))
    with torch.no_grad():
        assert_matches(model(x), PROJECTOR_OUT, atol=1e-6)
    edited = dict(state)
    edited["projector.1.0.1.weight"] = edited["projector.1.0.1.weight"] + 1.0
    with pytest.raises(ReferenceCheckpointError, match="'projector.1.0.1.weight' differs from 'blocks.0.1.weight'"):
        from_reference_state_dict(edited, "projector")


def test_eegproject_sizes_from_the_file():
    torch.manual_seed(0)
    ubp = {"model.0.weight": torch.randn(8, 17 * 250), "model.0.bias": torch.randn(8),
           "model.1.f.1.weight": torch.randn(8, 8), "model.1.f.1.bias": torch.randn(8),
           "model.2.weight": torch.ones(8), "model.2.bias": torch.zeros(8), "logit_scale": torch.tensor(2.6)}
    model = from_reference_state_dict(ubp, "eegproject")
    assert (model.n_chans, model.n_times, model.n_outputs) == (17, 250, 8)
    assert torch.equal(model.model[1].fn[1].weight, ubp["model.1.f.1.weight"])
    with pytest.raises(ReferenceCheckpointError, match="not n_chans x n_times = 16 x 250"):
        from_reference_state_dict(ubp, "eegproject", n_chans=16, n_times=250)


# ------------------------------------------------------------------------------------------------ diffusion prior
def test_prior_rename_map_loads_the_reference_layout_strictly(tmp_path):
    assert len(PRIOR_KEYS) == 86 and sum(torch.Size(s).numel() for s in PRIOR_KEYS.values()) == 9_675_648
    renamed = prior_state_from_reference(seeded_state(PRIOR_KEYS, 20))
    own = DiffusionPrior(**REFERENCE_PRIOR_CONFIG)
    assert {k: tuple(v.shape) for k, v in renamed.items()} == {k: tuple(v.shape) for k, v in own.state_dict().items()}
    assert sum(old != new.removeprefix("net.") for old, new in PRIOR_RENAMES.items()) == 6
    prior = load_reference_checkpoint(save(seeded_state(PRIOR_KEYS, 20), tmp_path), "prior")
    assert isinstance(prior, DiffusionPrior) and n_params(prior) == 9_675_648 and not prior.training
    assert prior.config["clip_sample"] is True and prior.make_scheduler().config.clip_sample is True
    g = torch.Generator().manual_seed(21)
    x, c = torch.randn(2, 1024, generator=g), torch.randn(2, 1024, generator=g)
    t = torch.tensor([3, 617])
    with torch.no_grad():
        assert_matches(prior(x, t, c), PRIOR_COND, atol=1e-5)
        assert_matches(prior.net(x, t, None), PRIOR_UNCOND, atol=1e-5)  # the reference's c=None
        assert_matches(prior(x, t, c, cond_mask=torch.tensor([False, False])), PRIOR_UNCOND, atol=1e-5)
    prior.save_pretrained(tmp_path / "prior")
    assert DiffusionPrior.from_pretrained(tmp_path / "prior").config["clip_sample"] is True


def test_prior_import_does_not_follow_eegvision_defaults(monkeypatch):
    """Old reference checkpoints stay loadable whatever eegvision's default prior becomes."""
    monkeypatch.setattr(PriorUNet.__init__, "__defaults__", (16, 16, (16, 8), 8, 0.0))
    monkeypatch.setattr(DiffusionPrior.__init__, "__defaults__", (16, 16, "transformer", None, 10, "linear",
                                                                  1e-4, 0.02, None, None, False, True, True,
                                                                  2.0, 8, "sample"))
    prior = from_reference_state_dict(seeded_state(PRIOR_KEYS, 20), "prior")
    assert prior.config["architecture_options"]["hidden_dims"] == [1024, 512, 256, 128, 64]
    assert n_params(DiffusionPrior(**REFERENCE_PRIOR_CONFIG)) == 9_675_648
    g = torch.Generator().manual_seed(21)
    x, c = torch.randn(2, 1024, generator=g), torch.randn(2, 1024, generator=g)
    with torch.no_grad():
        assert_matches(prior(x, torch.tensor([3, 617]), c), PRIOR_COND, atol=1e-5)


def test_prior_other_layouts_are_refused():
    with pytest.raises(ReferenceCheckpointError, match="flat DiffusionPrior"):
        from_reference_state_dict({"hidden_layers.0.0.weight": torch.zeros(2, 2)}, "prior")
    state = seeded_state(PRIOR_KEYS, 20)
    state["decode_layers.9.0.weight"] = torch.zeros(2, 2)
    with pytest.raises(ReferenceCheckpointError, match=r"1 unexpected key: net\.dec_layers\.9\.0\.weight"):
        from_reference_state_dict(state, "prior")


# ------------------------------------------------------------------------------------------------ reading files
def test_corrupt_and_unsafe_files_give_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(ReferenceCheckpointError) as err:
        load_reference_checkpoint(bad, "atms", positional_encoding="none")
    assert "\n" not in str(err.value) and str(bad) in str(err.value) and "corrupt" in str(err.value)
    unsafe = tmp_path / "pickled.pt"
    unsafe.write_bytes(pickle.dumps(ReferenceCheckpointError("x"), protocol=2))
    with pytest.raises(ReferenceCheckpointError, match="holds Python objects other than tensors") as err:
        load_reference_checkpoint(unsafe, "nice")
    assert "\n" not in str(err.value)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ReferenceCheckpointError, match="is not a state dict"):
        load_reference_checkpoint(tmp_path / "list.pt", "nice")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_reference_checkpoint(tmp_path / "missing.pth", "nice")


def test_wrapped_dataparallel_and_safetensors_files(tmp_path):
    from safetensors.torch import save_file

    state = seeded_state(NICE_KEYS, 40)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    a = load_reference_checkpoint(save(wrapped, tmp_path), "nice")
    save_file(state, str(tmp_path / "nice.safetensors"))
    b = load_reference_checkpoint(tmp_path / "nice.safetensors", "nice")
    for key, value in state.items():
        assert torch.equal(a.state_dict()[key], value) and torch.equal(b.state_dict()[key], value)
