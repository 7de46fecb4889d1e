"""Presets of the post-ATM methods (UBP, NeuroBridge, SAMGA, SVTL, BrainHiVE): listing, requirements, the EEG
modules at the authors' sizes, one smoke fit per required preset, and (slow) end-to-end runs."""

import json

import numpy as np
import pytest
import torch
from decode_helpers import make_problem, patch_open_data
from typer.testing import CliRunner

from eegvision.cli.main import app
from eegvision.models import create_encoder
from eegvision.readers.channels import OCCIPITO_PARIETAL_17, REGIONS
from eegvision.training import fit
from eegvision.training.config import FitConfig
from eegvision.training.preset_types import Preset, unmet_requirements
from eegvision.training.presets import PRESETS, preset_config

runner = CliRunner()
REQUIRED = ("ubp", "neurobridge", "samga", "svtl")

# Parameter counts measured by instantiating the authors' modules at the authors' sizes (17 or 63 channels x 250
# samples -> 1024-d, the RN50 embedding) in a scratch folder outside the repository, with this venv's torch 2.14.1:
#   UBP   HaitaoWuTJU/Uncertainty-aware-Blur-Prior@89d8b832ea6709e46fb537ee7c8c0e36bff8c8cc
#         base/eeg_backbone.py EEGProjectLayer(z_dim=1024, c_num=17, timesteps=[0, 250])       5,404,673 (with logit_scale)
#   NB    feroooooo/NeuroBridge@6144203acbcb425dcfe9004d8cf165cf31c55815
#         module/eeg_encoder/model.py EEGProject(1024, 250, 17)                                  5,404,672
#         module/eeg_encoder/model.py TSConv(1024, 250, 63)                                      2,630,912
#         module/projector.py ProjectorLinear(1024, 512)                                           524,800
#   BH    ssshamiii/Brain-HIVE@f06db69fcc4a029439e369c5c3dba6099e57560e
#         main/models_brain.py BrainEncoder("brain_mlp", 17, 250, hidden_size=1024, dropout=0.1)  6,452,224
# With their weights loaded into ours (keys renamed), the forward passes on random input agreed exactly for EEGProject
# (UBP, NeuroBridge) and BrainMLP, and to 1.7e-6 for TSConv after permuting the first Linear's input columns
# (NeuroBridge flattens filter-major, NICE/ATM time-major).
# (the UBP, TSConv and BrainMLP counts are asserted with the forward-pass checks below, on the same models)


def test_neurobridge_eegproject_has_the_authors_parameter_count():
    assert create_encoder("eegproject", n_chans=17, n_times=250, n_outputs=1024).n_parameters() == 5_404_672


# Forward-pass fingerprints computed with the authors' modules (same commits, eval mode) after filling each entry of
# their state dict, in their order (index i), by the rule of `_fill` below (running BN statistics left at 0 and 1),
# on the input `_fingerprint_input`: outputs at dimensions 0, 1, 2, 511, 1023 of both samples, and each sample's sum.
# The key lists are the authors' state-dict layouts (names and shapes, in order).
_UBP_KEYS = [("logit_scale", ()), ("model.0.weight", (1024, 4250)), ("model.0.bias", (1024,)),
             ("model.1.f.1.weight", (1024, 1024)), ("model.1.f.1.bias", (1024,)), ("model.2.weight", (1024,)),
             ("model.2.bias", (1024,))]
_TSCONV_KEYS = [("tsconv.0.weight", (40, 1, 1, 25)), ("tsconv.0.bias", (40,)), ("tsconv.2.weight", (40,)),
                ("tsconv.2.bias", (40,)), ("tsconv.2.running_mean", (40,)), ("tsconv.2.running_var", (40,)),
                ("tsconv.2.num_batches_tracked", ()), ("tsconv.4.weight", (40, 40, 63, 1)), ("tsconv.4.bias", (40,)),
                ("tsconv.5.weight", (40,)), ("tsconv.5.bias", (40,)), ("tsconv.5.running_mean", (40,)),
                ("tsconv.5.running_var", (40,)), ("tsconv.5.num_batches_tracked", ()),
                ("projection.weight", (40, 40, 1, 1)), ("projection.bias", (40,)), ("proj_eeg.0.weight", (1024, 1440)),
                ("proj_eeg.0.bias", (1024,)), ("proj_eeg.1.f.1.weight", (1024, 1024)), ("proj_eeg.1.f.1.bias", (1024,)),
                ("proj_eeg.2.weight", (1024,)), ("proj_eeg.2.bias", (1024,))]
_BRAINMLP_KEYS = [("proj_in.weight", (1024, 4250)), ("proj_in.bias", (1024,)),
                  ("block.layers.0.ff.w1.weight", (1024, 1024)), ("block.layers.0.ff.w2.weight", (1024, 1024)),
                  ("block.layers.0.norm.weight", (1024,)), ("block.layers.0.norm.bias", (1024,))]
FINGERPRINTS = {
    "ubp": ([[2.118121, 0.874035, 0.268136, 0.787143, 1.601608],
             [0.678455, 1.961589, -0.754211, 0.251631, 0.628785]], [6.35737, 6.054]),
    "tsconv": ([[1.598201, 1.517148, -0.042178, 1.22454, 0.790836],
                [1.599467, 1.514439, -0.038794, 1.232736, 0.793287]], [7.20882, 7.21213]),
    "brainmlp": ([[0.609831, -0.379903, 0.663257, -1.205142, 1.315557],
                  [-1.426333, 1.745745, -0.829098, -1.096013, -0.106081]], [4.19217, 3.68678]),
}


AUTHORS_COUNTS = {"ubp": 5_404_673, "tsconv": 2_630_912, "brainmlp": 6_452_224}  # measured with their code (above)


def _fill(keys):
    """Entry i, element k (flat): w = sin(0.37 ((k + i) mod 101)); biases 0.1 w, 1-D weights 1 + 0.1 w, matrices and
    kernels sqrt(3 / fan_in) w; BN running statistics 0 and 1."""
    import math

    base = torch.sin(0.37 * torch.arange(101, dtype=torch.float64)).float()
    state = {}
    for i, (key, shape) in enumerate(keys):
        n = math.prod(shape)
        start = i % 101
        wave = base.repeat((start + n) // 101 + 1)[start:start + n].reshape(shape)  # base[(k + i) mod 101]
        if key.endswith("running_mean") or key.endswith("num_batches_tracked"):
            wave = torch.zeros(shape)
        elif key.endswith("running_var"):
            wave = torch.ones(shape)
        elif len(shape) >= 2:
            wave = wave * math.sqrt(3.0 / (n // shape[0]))
        elif key.endswith("weight"):
            wave = 1.0 + 0.1 * wave
        else:
            wave = 0.1 * wave
        state[key] = wave.long() if key.endswith("num_batches_tracked") else wave.float()
    return state


def _fingerprint_input(n_chans):
    k = torch.arange(2 * n_chans * 250, dtype=torch.float64)
    return torch.sin(1e-3 * k * k).reshape(2, n_chans, 250).float()


def _check_fingerprint(model, state, n_chans, which, atol):
    assert model.n_parameters() == AUTHORS_COUNTS[which]
    model.load_state_dict(state)
    with torch.no_grad():
        out = model.eval()(_fingerprint_input(n_chans))
    values, sums = FINGERPRINTS[which]
    torch.testing.assert_close(out[:, [0, 1, 2, 511, 1023]], torch.tensor(values), atol=atol, rtol=0)
    torch.testing.assert_close(out.sum(1), torch.tensor(sums), atol=20 * atol, rtol=0)


def test_eegproject_forward_matches_ubp_and_neurobridge_code():
    # UBP's EEGProjectLayer and NeuroBridge's EEGProject share this layout (NeuroBridge without logit_scale)
    model = create_encoder("eegproject", n_chans=17, n_times=250, n_outputs=1024, logit_scale="raw")
    _check_fingerprint(model, _fill(_UBP_KEYS), 17, "ubp", atol=2e-5)


def test_nice_forward_matches_neurobridge_tsconv_up_to_the_flatten_order():
    state = {}
    for key, value in _fill(_TSCONV_KEYS).items():
        if key.startswith("tsconv."):
            state["enc_eeg.0." + key] = value
        elif key.startswith("projection."):
            state["enc_eeg.0.projection.0." + key.split(".", 1)[1]] = value
        else:
            state[key.replace("proj_eeg.1.f.", "proj_eeg.1.fn.")] = value
    # TSConv flattens (filter, step), NICE/ATM (step, filter): reorder the first Linear's input columns
    w = state["proj_eeg.0.weight"]
    state["proj_eeg.0.weight"] = w.view(1024, 40, 36).transpose(1, 2).reshape(1024, 1440)
    model = create_encoder("nice", n_chans=63, n_times=250, n_outputs=1024)
    _check_fingerprint(model, state, 63, "tsconv", atol=2e-5)
    state["proj_eeg.0.weight"] = w  # without the reordering the outputs differ
    model.load_state_dict(state)
    with torch.no_grad():
        assert not torch.allclose(model(_fingerprint_input(63))[:, 0], torch.tensor(FINGERPRINTS["tsconv"][0])[:, 0],
                                  atol=1e-4)


def test_brainmlp_forward_matches_brainhive_code():
    state = {key.replace("block.layers.", "blocks.").replace(".ff.", "."): v for key, v in _fill(_BRAINMLP_KEYS).items()}
    model = create_encoder("brainmlp", n_chans=17, n_times=250, n_outputs=1024)
    _check_fingerprint(model, state, 17, "brainmlp", atol=2e-5)


def test_brainmlp_forward_by_hand():
    # 1 channel x 2 samples -> 3: the input projection gives h = (1, 0, -1); W1 = W2 = identity, so the block adds
    # GELU(h) = (0.841345, 0, -0.158655): z = (1.841345, 0, -1.158655), mean 0.227563, variance 1.525920 (biased);
    # LayerNorm (eps 1e-6) gives (1.306419, -0.184221, -1.122198); then weight (2, 1, 1) and bias (0, 0.5, 0).
    model = create_encoder("brainmlp", n_chans=1, n_times=2, n_outputs=3).eval()
    block = model.blocks[0]
    with torch.no_grad():
        model.proj_in.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, -1.0]]))
        model.proj_in.bias.zero_()
        block.w1.weight.copy_(torch.eye(3))
        block.w2.weight.copy_(torch.eye(3))
        block.norm.weight.copy_(torch.tensor([2.0, 1.0, 1.0]))
        block.norm.bias.copy_(torch.tensor([0.0, 0.5, 0.0]))
        out = model(torch.tensor([[[1.0, 1.0]]]))
    torch.testing.assert_close(out, torch.tensor([[2.612839, 0.315779, -1.122198]]), atol=1e-5, rtol=0)
    assert block.w1.bias is None and block.w2.bias is None and block.norm.eps == 1e-6


def test_brainmlp_dropout_sits_between_the_hidden_maps():
    torch.manual_seed(0)
    model = create_encoder("brainmlp", n_chans=2, n_times=3, n_outputs=4, dropout=0.5).train()
    block = model.blocks[0]
    x = torch.randn(1, 2, 3)
    torch.manual_seed(1)
    out = model(x)
    h = model.proj_in(x.reshape(1, 6))
    torch.manual_seed(1)
    mask = torch.nn.functional.dropout(torch.ones(1, 4), 0.5, training=True)  # same draw as the model's
    expected = block.norm(h + torch.nn.functional.gelu(h @ block.w1.weight.T) * mask @ block.w2.weight.T)
    torch.testing.assert_close(out, expected)


def test_presets_command_lists_the_required_presets_with_their_numbers():
    res = runner.invoke(app, ["presets"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    for line in ("published 200-way top-1 0.509, top-5 0.797, within-subject (UBP",
                 "published 200-way top-1 0.632, top-5 0.899, within-subject (NeuroBridge",
                 "published 200-way top-1 0.913, top-5 0.988, within-subject (SAMGA",
                 "published 200-way top-1 0.353, top-5 0.656, leave-one-subject-out (SVTL",
                 "needs your files: --target FILE (repeat): the training features of CLIP-ViT-B-32-laion2B-s34B-b79K",
                 "needs your files: --target FILE (repeat for each layer): the InternViT-6B training features",
                 "needs your files: --blur-levels LOW,HIGH: the RN50 features of the kernel-45 and kernel-57 "
                 "fovea-blurred",
                 "protocol: 63 channels (all), averaged training trials"):
        assert line in out, line
    doc = json.loads(runner.invoke(app, ["presets", "--json"]).stdout)
    assert set(REQUIRED) <= set(doc)
    assert doc["samga"]["targets"]["layers"] == [20, 24, 28, 32, 36]
    assert doc["ubp"]["targets"]["prior"]["kernels"] == {"low": 45, "medium": 51, "high": 57}
    assert doc["svtl"]["unmet_requirements"] == {} and doc["svtl"]["requires"]["projector"] == {"dim": 512}
    assert doc["samga"]["unmet_requirements"] == {} and doc["samga"]["requires"]["target_mode"] == "learned"
    assert doc["atm-table8-within"]["unmet_requirements"] == {} and doc["atm-table8-within"]["targets"] == {}
    assert doc["brainhive"]["unmet_requirements"] == {} and doc["brainhive"]["requires"]["fusion_encoder"] == {
        "hidden": 1024, "blocks": 1, "dropout": 0.1}
    assert "requires (not in eegvision yet" not in out  # no published preset lacks an option any more


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_consistent(name):
    p = PRESETS[name]
    FitConfig(**p.overrides)  # only existing fields, valid values
    if p.protocol:
        region = p.overrides.get("channels")
        assert p.protocol["channels"] == (region or "all")
        n_channels = len(REGIONS[region]) if region else 63
        assert p.protocol["n_channels"] == n_channels
        assert p.protocol["average_train"] == p.overrides.get("average_train", False)
    assert 0 < p.reference.get("top1", 0.5) < p.reference.get("top5", 1.0) <= 1


def test_the_17_channels_are_the_papers_list():
    # UBP configs/eeg/ubp.yaml selected_ch, NeuroBridge intra-subjects.sh SELECTED_CHANNELS, BrainHiVE scripts
    assert OCCIPITO_PARIETAL_17 == ("P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "PO7", "PO3", "POz",
                                    "PO4", "PO8", "O1", "Oz", "O2")


def test_fit_refuses_a_preset_with_unmet_requirements(tmp_path, monkeypatch):
    # no published preset lacks an option any more: a preset needing one that does not exist stands in
    from eegvision.training import presets

    lacking = Preset("t-lacking", "", "", {}, "", {"encoder": "stconv"}, requires={"no_such_option": 1})
    assert unmet_requirements(lacking) == {"no_such_option": "not an eegvision training option yet"}
    monkeypatch.setitem(presets.PRESETS, "t-lacking", lacking)
    with pytest.raises(ValueError, match=r"Preset 't-lacking' needs training options .*: no_such_option=1 \(not an "
                                         r"eegvision training option yet\).*--partial-preset"):
        preset_config("t-lacking", data="x", subjects=["sub-01"])
    assert preset_config("t-lacking", partial=True, data="x", subjects=["sub-01"]).preset == \
        "t-lacking[partial: without no_such_option]"
    res = runner.invoke(app, ["fit", "--data", str(tmp_path), "--subject", "sub-01", "--out", str(tmp_path / "r"),
                              "--preset", "t-lacking"])
    assert res.exit_code == 2 and "no_such_option" in res.output
    assert not (tmp_path / "r").exists()
    res = runner.invoke(app, ["fit", "--data", str(tmp_path), "--subject", "sub-01", "--out", str(tmp_path / "r"),
                              "--encoder", "nice", "--partial-preset"])
    assert res.exit_code == 2 and "--partial-preset applies to a --preset" in res.output


def test_partial_preset_config_records_what_it_leaves_out():
    cfg = preset_config("ubp", partial=True, data="x", subjects=["sub-01"], epochs=3)
    assert cfg.preset == "ubp[partial: without blur_levels]"
    assert (cfg.encoder, cfg.channels, cfg.average_train, cfg.lr, cfg.epochs) == (
        "eegproject", "occipito-parietal", True, 1e-4, 3)
    assert (cfg.logit_scale_mode, cfg.normalize_embeddings, cfg.blur_levels) == ("softplus", "image", [])
    cfg = preset_config("samga", partial=True, data="x", subjects=["sub-01"])
    assert cfg.preset == "samga[partial: without targets]"   # its requirements are met: only its layer files lack
    assert (cfg.target_mode, cfg.subject_router, cfg.mmd_epochs) == ("learned", "gate", 5)
    cfg = preset_config("svtl", data="x", subjects=["sub-01"])                # complete: no partial needed
    assert cfg.preset == "svtl"
    assert (cfg.epochs, cfg.lr, [s["subject_mmd_weight"] for s in cfg.stages]) == (50, 1e-4, [[0.9, 0.5], 0.0])
    assert [s.get("freeze", []) for s in cfg.stages] == [[], ["projector"]]
    assert cfg.projector == {"dim": 512} and (cfg.multi_view_target["views"], cfg.multi_view_target["blocks"]) == (12, 4)


def test_neurobridge_fixed_temperature_is_met_and_kept_in_training(tiny, monkeypatch):
    store, data, root = tiny
    assert unmet_requirements(PRESETS["neurobridge"]) == {} == unmet_requirements(PRESETS["neurobridge-loso"])
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=2, batch_size=16, lr=3e-2,
                    val_fraction=0.2, eval_ks=[2, 8], eval_methods=["exact"], learn_temperature=False)
    result = fit(cfg, root / "run-fixed-t")
    temps = [float(line.split(",")[6]) for line in
             (result.run.unit().path / "history.csv").read_text().splitlines()[1:]]
    assert temps == pytest.approx([0.07, 0.07], abs=1e-7)
    learned = fit(cfg.replace(learn_temperature=True), root / "run-learned-t")
    temps = [float(line.split(",")[6]) for line in
             (learned.run.unit().path / "history.csv").read_text().splitlines()[1:]]
    assert abs(temps[-1] - 0.07) > 1e-4


def test_a_requirement_is_met_once_fitconfig_accepts_it():
    met = Preset("t", "", "", {}, "", {"encoder": "stconv"}, requires={"schedule": "cosine"})
    assert unmet_requirements(met) == {}
    bad = Preset("t", "", "", {}, "", {"encoder": "stconv"}, requires={"schedule": "warmup", "router": {"k": 1}})
    unmet = unmet_requirements(bad)
    assert unmet["router"] == "not an eegvision training option yet"
    assert unmet["schedule"].startswith("FitConfig does not accept 'warmup' for it (schedule must be one of")
    from eegvision.training import presets

    presets.PRESETS["t-met"] = met
    try:
        assert preset_config("t-met", data="x", subjects=["s"]).schedule == "cosine"  # passed on as the field
    finally:
        del presets.PRESETS["t-met"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("sota")
    store, data = make_problem(root, n_subjects=2, n_train_concepts=12, n_test=8, n_times=80)
    return store, data, root


# Encoder sizes on the fake store's 6 occipito-parietal channels x 80 samples -> 16-d features, by hand:
# eegproject: Linear(480, 16) 7,696 + Linear(16, 16) 272 + LayerNorm 32 = 8,000;
# nice: TSConv conv(1, 25) 1,040 + BN 80 + conv(6, 1) 9,640 + BN 80 + 1x1 conv 1,640 = 12,480, leaving
# (80 - 25 + 1 - 51) // 5 + 1 = 2 steps, so Linear(80, 16) 1,296 + 272 + 32: 14,080;
# samga: eegproject inside the gate router, 4 adapters 16 x 16 (1,024) and a gate of 1 subject x 4 (4): 9,028;
# neurobridge adds its EEG projection Linear(16, 512): 8,192 + 512 = 8,704, so 16,704 (its image projection,
# Linear(16, 512), is saved beside the encoder); so does svtl (nice: 14,080 + 8,704 = 22,784; its multi-view
# target module is saved beside the encoder).
SMOKE = {"ubp": ("eegproject", 8_000), "neurobridge": ("eegproject", 16_704), "samga": ("eegproject", 9_028),
         "svtl": ("nice", 22_784)}
#: What a run of each required preset records as its preset when built with partial=True (neurobridge and svtl are
#: complete; ubp and samga lack the files only the user can make).
PARTIAL_LABEL = {"ubp": "ubp[partial: without ", "neurobridge": "neurobridge", "samga": "samga[partial: without ",
                 "svtl": "svtl"}


def test_ubp_preset_trains_as_published_once_given_its_blur_files(tiny, monkeypatch):
    """UBP's whole recipe (softplus logit scale, raw EEG / normalised image logits, per-image blur levels): refused
    without the blur files, trained with them and recorded as the preset itself (not partial)."""
    from eegvision.features.files import load_features, save_features

    store, data, root = tiny
    patch_open_data(monkeypatch, store)
    with pytest.raises(ValueError, match=r"Preset 'ubp' trains on files only you can make: blur_levels .*--blur-levels"):
        preset_config("ubp", data=str(data), subjects=["sub-01"])
    train = load_features(data / "features" / "train.safetensors").image.numpy()
    rng = np.random.default_rng(0)
    files = []
    for name, sd in (("low", 0.2), ("high", 1.0)):
        x = train + sd * rng.standard_normal(train.shape).astype(np.float32)
        files.append(str(root / f"ubp-{name}.train.safetensors"))
        save_features(files[-1], x / np.linalg.norm(x, axis=1, keepdims=True))
    cfg = preset_config("ubp", data=str(data), subjects=["sub-01"], blur_levels=files, epochs=2, batch_size=16,
                        val_fraction=0.2, eval_ks=[2, 8], eval_methods=["exact"])
    assert cfg.preset == "ubp" and cfg.logit_scale_mode == "softplus" and cfg.normalize_embeddings == "image"
    result = fit(cfg, root / "run-ubp-full")
    history = (result.run.unit().path / "history.csv").read_text().splitlines()
    assert history[0].split(",")[-3:] == ["blur_high", "blur_low", "blur_medium"] and len(history) == 3
    assert json.loads((root / "run-ubp-full" / "config.json").read_text())["fit"]["preset"] == "ubp"


def _token_files(data, root, store) -> dict:
    """Token files (2 tokens per image, layers 20 and 24, both the image's features) of the fake store's features,
    as --features-train/--features-test."""
    from eegvision.features.files import load_features, save_features

    out = {}
    for split, name in (("training", "train"), ("test", "test")):
        img = load_features(data / "features" / f"{name}.safetensors").image
        path = root / f"tokens.{name}.safetensors"
        save_features(path, torch.stack([img, img], dim=1), layers=[20, 24], concepts=store.concept_table(split))
        out[f"features_{name}"] = str(path)
    return out


@pytest.mark.parametrize("name", REQUIRED)
def test_smoke_one_epoch_of_each_required_preset(name, tiny, monkeypatch):
    store, data, root = tiny
    patch_open_data(monkeypatch, store)
    extra = {}
    if name == "svtl":  # its multi-view target reads token files; one short stage of its two
        extra = {**_token_files(data, root, store), "stages": [{"epochs": 1, "lr": 1e-4, "subject_mmd_weight": [0.9, 0.5]}]}
    cfg = preset_config(name, partial=True, data=str(data), subjects=["sub-01"], epochs=1, batch_size=16,
                        val_fraction=0.2, eval_ks=[2, 8], eval_methods=["exact"], **extra)
    result = fit(cfg, root / f"run-{name}")
    recorded = json.loads((root / f"run-{name}" / "config.json").read_text())["fit"]
    assert recorded["preset"].startswith(PARTIAL_LABEL[name]) and recorded["encoder"] == SMOKE[name][0]
    assert (recorded["preset"] == "neurobridge") == (name == "neurobridge")
    assert result.run.unit().load_encoder().n_parameters() == SMOKE[name][1]
    tops = [r["top1"] for r in result.rows if r.get("k") == 8]
    assert tops and all(0.0 <= t <= 1.0 for t in tops)


@pytest.mark.slow
@pytest.mark.parametrize("name", REQUIRED)
def test_end_to_end_partial_preset_run_beats_chance(name, tmp_path):
    """The CLI path: a store on disk, `fit --preset NAME --partial-preset` with the preset's own recipe (only
    the epochs cut), then `evaluate`; the tiny problem is linear, so every encoder should beat chance."""
    store, data = make_problem(tmp_path, real_store=True, n_subjects=3, n_train_concepts=40, n_test=20, n_times=80,
                               noise=0.5)
    run = tmp_path / "run"
    schedule = ["--epochs", "30", "--lr", "1e-3"]
    extra = []
    if name == "svtl":  # its token files and its two stages, shortened
        extra = [f"--{k.replace('_', '-')}={v}" for k, v in _token_files(data, tmp_path, store).items()]
        schedule = ["--stages", json.dumps([{"epochs": 12, "lr": 1e-3, "subject_mmd_weight": [0.9, 0.5]},
                                            {"epochs": 18, "lr": 5e-4, "subject_mmd_weight": 0.0,
                                             "freeze": ["projector"]}])]
    res = runner.invoke(app, ["fit", "--data", str(data), "--subject", "sub-02", "--out", str(run), "--preset", name,
                              *extra, "--partial-preset", *schedule, "--batch-size", "32", "--val-fraction", "0.2",
                              "--quiet"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "config.json").read_text())["fit"]
    assert cfg["preset"].startswith(PARTIAL_LABEL[name]) and cfg["protocol"] == PRESETS[name].overrides["protocol"]
    rows = json.loads((run / "metrics.json").read_text())["rows"]
    top1 = [r["top1"] for r in rows if r["modality"] == "image" and r["method"] == "exact" and r["k"] == 20]
    assert top1 and min(top1) > 0.15  # chance 0.05
