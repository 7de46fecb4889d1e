"""Parameter groups and freezing from the parts each encoder declares (no module names in training/)."""

import pytest
import torch

from eegvision.models import create_encoder, list_models
from eegvision.training.freeze import (
    apply_freeze,
    frozen_parameter_names,
    parameter_groups,
    parse_freeze,
)

#: The head parameters of some encoders, written out (8 channels x 100 samples, 16 outputs, 2 subjects).
HEADS = {
    "atms": ["proj_eeg.0.weight", "proj_eeg.0.bias", "proj_eeg.1.fn.1.weight", "proj_eeg.1.fn.1.bias",
             "proj_eeg.2.weight", "proj_eeg.2.bias"],
    "nice": ["proj_eeg.0.weight", "proj_eeg.0.bias", "proj_eeg.1.fn.1.weight", "proj_eeg.1.fn.1.bias",
             "proj_eeg.2.weight", "proj_eeg.2.bias"],
    "eegproject": ["model.1.fn.1.weight", "model.1.fn.1.bias", "model.2.weight", "model.2.bias"],
    "stconv": ["head.2.weight", "head.2.bias", "head.5.weight", "head.5.bias"],
    "projector": ["output_layer.0.weight", "output_layer.0.bias", "output_layer.1.weight", "output_layer.1.bias",
                  "output_layer.5.weight", "output_layer.5.bias", "output_layer.6.weight", "output_layer.6.bias"],
    "braindecode:EEGNet": ["backbone.final_layer.conv_classifier.weight", "backbone.final_layer.conv_classifier.bias"],
}
#: braindecode models whose constructor downloads files (channel positions): not built in tests.
DOWNLOADS = {"braindecode:REVE"}


def _declared(encoder, group):
    names = encoder.module_groups()[group]
    return [n for n, _ in encoder.named_parameters() if any(n == m or n.startswith(m + ".") for m in names)]


@pytest.mark.parametrize("name", list(HEADS))
def test_all_but_head_leaves_the_written_head_trainable(name):
    enc = create_encoder(name, n_chans=8, n_times=100, n_outputs=16, n_subjects=2)
    frozen = frozen_parameter_names(enc, ["all-but-head"])
    apply_freeze(enc, frozen)
    assert [n for n, p in enc.named_parameters() if p.requires_grad] == HEADS[name]
    assert parameter_groups(enc)["head"] == HEADS[name]


def _build_any(name):
    """``name`` at 22 channels x 1000 samples (a shape most braindecode models take), on the meta device when
    the constructor allows (no memory, no initialisation), else on the CPU; None if it cannot be built so."""
    kwargs = {"n_chans": 22, "n_times": 1000, "n_outputs": 4, "n_subjects": 2}
    try:
        with torch.device("meta"):
            return create_encoder(name, **kwargs)
    except ValueError:
        try:
            return create_encoder(name, **kwargs)
        except ValueError:
            return None


@pytest.mark.parametrize("name", list_models())
def test_every_encoder_freezes_all_but_its_declared_head(name):
    if name in DOWNLOADS:
        pytest.skip(f"{name} downloads files when built")
    enc = _build_any(name)
    if enc is None:
        pytest.skip(f"{name} needs more than n_chans/n_times to be built (e.g. channel positions)")
    groups = parameter_groups(enc)
    names = [n for n, _ in enc.named_parameters()]
    assert sorted(n for ns in groups.values() for n in ns) == sorted(names)  # a partition
    present = {n for n, _ in enc.named_modules()} | set(names)
    assert all(m in present for ms in enc.module_groups().values() for m in ms)
    head = _declared(enc, "head")
    assert head == groups["head"]
    if not head:  # e.g. a braindecode backbone without a final_layer: nothing to keep
        with pytest.raises(ValueError, match="no projector head to keep trainable"):
            frozen_parameter_names(enc, ["all-but-head"])
        return
    apply_freeze(enc, frozen_parameter_names(enc, ["all-but-head"]))
    assert [n for n, p in enc.named_parameters() if p.requires_grad] == head
    if name.startswith("braindecode:"):
        assert _declared(enc, "subject") == ["subject_embedding.shared_embedding",
                                             "subject_embedding.subject_embedding.weight"]


def test_groups_of_atms_and_a_braindecode_transformer():
    atms = create_encoder("atms", n_chans=8, n_times=100, n_outputs=16, n_subjects=2, mode="reference")
    groups = parameter_groups(atms)
    table = "encoder.enc_embedding.subject_embedding."
    assert groups["subject"] == [table + "shared_embedding", table + "mask_embedding",
                                 table + "subject_embedding.weight"]
    assert groups["other"] == ["logit_scale"]
    assert all(n.startswith("enc_eeg.") for n in groups["encoder"]) and groups["encoder"]
    assert {n.split(".")[0] for n in groups["attention"]} == {"encoder", "subject_wise_linear"}
    assert not any(n.startswith(table) for n in groups["attention"])

    atcnet = create_encoder("braindecode:ATCNet", n_chans=22, n_times=1000, n_outputs=16, head="projector",
                            feature_dim=8)
    groups = parameter_groups(atcnet)
    assert groups["head"] == [n for n, _ in atcnet.named_parameters() if n.startswith("head.")] != []
    assert atcnet.module_groups()["attention"] == ["backbone.attention_blocks"]
    assert groups["attention"] and all(n.startswith("backbone.attention_blocks.") for n in groups["attention"])
    assert groups["encoder"][0] == "backbone.conv_block.conv1.weight"
    # with a projector head the backbone's final layer belongs to the backbone
    assert {n for n in groups["encoder"] if n.startswith("backbone.final_layer.")}


def test_freeze_specs():
    assert parse_freeze([]) == parse_freeze(["none"]) == []
    assert parse_freeze(["all-but-head"]) == ["all-but-head"]
    assert parse_freeze(["encoder", "attention"]) == ["encoder", "attention"]
    with pytest.raises(ValueError, match="Freeze group 'encodr' is not in the groups eegvision can freeze"):
        parse_freeze(["encodr"])
    for spec in (["none", "encoder"], ["all-but-head", "subject"]):
        with pytest.raises(ValueError, match="none and all-but-head stand alone"):
            parse_freeze(spec)
    with pytest.raises(ValueError, match="freeze takes a list"):
        parse_freeze("encoder,attention")
    enc = create_encoder("nice", n_chans=8, n_times=100, n_outputs=16)
    with pytest.raises(ValueError, match=r"'nice' has no 'attention' parameters to freeze; it has \['encoder', "
                                         r"'head'\]"):
        frozen_parameter_names(enc, ["attention"])
    frozen = frozen_parameter_names(enc, ["encoder"])
    modules = apply_freeze(enc, frozen)
    assert modules == [enc.enc_eeg] and all(n.startswith("enc_eeg.") for n in frozen)
    assert [n for n, p in enc.named_parameters() if not p.requires_grad] == frozen
    with pytest.raises(TypeError, match="need an eegvision encoder .*got Linear"):
        parameter_groups(torch.nn.Linear(2, 2))
