"""Encoder registry, shapes (EEG, channel subsets, MEG), subject conditioning, save/load, braindecode."""

import json

import pytest
import torch

from eegvision.models import create_encoder, describe, list_models, load_encoder, save_pretrained
from eegvision.models.encoders.layers import SubjectEmbedding, tsconv_n_steps, tsconv_out_features

NATIVE = ["atms", "atms50", "brainmlp", "eegproject", "nice", "projector", "ridge", "stconv"]  # alphabetical
BRAINDECODE = ["braindecode:EEGNet", "braindecode:ShallowFBCSPNet", "braindecode:EEGConformer",
               "braindecode:ATCNet", "braindecode:EEGITNet"]
# every eegvision encoder in each mode, plus a representative set of braindecode backbones
SAVE_LOAD_CASES = [
    ("atms", {}), ("atms", {"mode": "reference"}), ("nice", {}), ("nice", {"mode": "reference"}),
    ("eegproject", {}), ("brainmlp", {}), ("brainmlp", {"n_blocks": 2, "hidden": 8}), ("projector", {}), ("projector", {"mode": "reference"}), ("stconv", {}),
    ("atms50", {}), ("ridge", {}), ("ridge", {"whiten": True, "rank": 4, "decim": 5}),
    ("braindecode:EEGNet", {}), ("braindecode:EEGNet", {"head": "projector", "feature_dim": 32}),
    ("braindecode:ShallowFBCSPNet", {}), ("braindecode:EEGConformer", {}), ("braindecode:ATCNet", {}),
    ("braindecode:EEGITNet", {}),
]


def _x(batch, n_chans, n_times, seed=0):
    return torch.randn(batch, n_chans, n_times, generator=torch.Generator().manual_seed(seed))


def test_list_models_completeness():
    names = list_models()
    assert names[:len(NATIVE)] == NATIVE
    assert set(BRAINDECODE) <= set(names) and "braindecode:Labram" in names
    assert list_models(braindecode=False) == NATIVE
    tested = {name for name, _ in SAVE_LOAD_CASES}
    assert set(list_models(braindecode=False)) <= tested, "every eegvision encoder needs a save/load case"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"Encoder 'atmz' is not in eegvision \(list_models\(\) lists them\) "
                                         r"\(available: atms, .*\)\. Did you mean atms\?"):
        create_encoder("atmz", n_chans=63, n_times=250)
    with pytest.raises(ValueError, match="EEGNet"):
        create_encoder("braindecode:EEGNett", n_chans=63, n_times=250)
    with pytest.raises(ValueError, match=r"Option 'chanel_slice' is not in the options of encoder atms .*"
                                         r"Did you mean channel_slice\?"):
        create_encoder("atms", n_chans=63, n_times=250, chanel_slice="fixed")
    with pytest.raises(ValueError) as err:
        create_encoder("atms", n_chans=63, n_times=250, channel_slice="drop")
    assert err.value.args[0] == "channel_slice must be one of reference, fixed; got 'drop'."


def test_aliases_and_bare_braindecode_names():
    assert create_encoder("ATM-S", n_chans=8, n_times=100, n_outputs=16).config["name"] == "atms"
    assert create_encoder("EEGNet", n_chans=8, n_times=100, n_outputs=16).config["name"] == "braindecode:EEGNet"


def test_tsconv_output_size_formula():
    for t in (75, 100, 201, 250, 1000):
        assert tsconv_n_steps(t) == (t - 25 + 1 - 51) // 5 + 1
    assert tsconv_out_features(250) == 1440 and tsconv_out_features(201) == 1040
    with pytest.raises(ValueError, match="at least 75"):
        tsconv_n_steps(60)


@pytest.mark.parametrize("name", NATIVE)
@pytest.mark.parametrize("shape", [(63, 250), (17, 250), (271, 201)])
def test_fixed_mode_shapes_eeg_subsets_meg(name, shape):
    n_chans, n_times = shape
    torch.manual_seed(0)
    model = create_encoder(name, n_chans=n_chans, n_times=n_times, n_outputs=64, n_subjects=2).eval()
    with torch.no_grad():
        out = model(_x(2, n_chans, n_times), torch.tensor([0, -1]))
    assert out.shape == (2, 64) and out.dtype == torch.float32 and torch.isfinite(out).all()
    if name == "atms":
        assert model.encoder.enc_embedding.value_embedding.in_features == n_times
        assert model.enc_eeg[0].tsconv[4].kernel_size == (n_chans, 1)
        assert model.proj_eeg[0].in_features == tsconv_out_features(n_times)


def test_wrong_input_shape_is_a_clear_error():
    model = create_encoder("atms", n_chans=17, n_times=250, n_outputs=32)
    with pytest.raises(ValueError, match=r"n_chans=17, n_times=250\), got \(2, 63, 250\)"):
        model(torch.randn(2, 63, 250))
    with pytest.raises(ValueError, match="subject_ids must be an integer tensor"):
        model(torch.randn(2, 17, 250), torch.tensor([0.0, 1.0]))


def test_atms_subject_tokens_per_sample_and_shared():
    torch.manual_seed(0)
    model = create_encoder("atms", n_chans=17, n_times=250, n_outputs=32, n_subjects=3).eval()
    x = _x(1, 17, 250).expand(6, -1, -1)
    ids = torch.tensor([0, 1, 2, -1, 3, 99])
    with torch.no_grad():
        out = model(x, ids)
        alone = torch.cat([model(x[:1], ids[i : i + 1]) for i in range(6)])
        none = model(x[:1], None)
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)  # per-sample, batch-independent
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    assert not torch.allclose(out[0], out[3])  # known subject != shared token
    torch.testing.assert_close(out[3], out[4])  # id -1 == id >= n_subjects == shared token
    torch.testing.assert_close(out[3], out[5])
    torch.testing.assert_close(out[3:4], none)  # no ids -> shared token


def test_subject_embedding_lookup_against_table():
    emb = SubjectEmbedding(4, 5)
    ids = torch.tensor([3, -1, 0, 7, 2])
    tokens = emb(ids, 5)[:, 0]
    table, shared = emb.subject_embedding.weight, emb.shared_embedding[0]
    expected = torch.stack([table[3], shared, table[0], shared, table[2]])
    torch.testing.assert_close(tokens, expected)


def test_atms_switches_are_independent():
    m = create_encoder("atms", n_chans=17, n_times=250, mode="fixed", logit_scale="exp", channel_slice="reference")
    assert m.channel_slice == "reference" and m.subject_token_ids == "per_sample"
    with torch.no_grad():
        m.logit_scale.fill_(10.0)
    assert m.effective_logit_scale().item() == pytest.approx(100.0)  # exp clamped to 100
    assert not hasattr(m, "subject_wise_linear")
    no_pe = create_encoder("atms", n_chans=17, n_times=250, positional_encoding=False).eval()
    with_pe = create_encoder("atms", n_chans=17, n_times=250).eval()
    with_pe.load_state_dict(no_pe.state_dict())
    with torch.no_grad():
        assert not torch.allclose(no_pe(_x(2, 17, 250)), with_pe(_x(2, 17, 250)))
    assert create_encoder("atms", n_chans=17, n_times=250).logit_scale is None


@pytest.mark.parametrize("name,options", SAVE_LOAD_CASES)
def test_save_load_roundtrip_identical_outputs(name, options, tmp_path):
    torch.manual_seed(0)
    n_subjects = 3 if name == "atms" else 1
    model = create_encoder(name, n_chans=8 if name != "atms" or options else 63, n_times=250,
                           n_outputs=32, n_subjects=n_subjects, **options)
    model.train()
    model(_x(4, model.n_chans, 250, seed=1))  # move BatchNorm running statistics off their defaults
    model.eval()
    save_pretrained(model, tmp_path / "enc")
    config = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert config["name"] == model.config["name"] and "eegvision_version" in config
    loaded = load_encoder(tmp_path / "enc")
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    x, ids = _x(3, model.n_chans, 250, seed=2), torch.tensor([0, 1, -1]) if n_subjects > 1 else None
    with torch.no_grad():
        assert torch.equal(model(x, ids), loaded(x, ids))
    assert not list((tmp_path / "enc").glob(".*"))  # no temporary files left behind


def test_load_encoder_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_encoder(tmp_path / "nothing")


def test_encoders_register_themselves_by_name(tmp_path, monkeypatch):
    from torch import nn

    from eegvision.models import EEGEncoder
    from eegvision.models.encoders.base import ENCODER_CLASSES

    monkeypatch.setitem(ENCODER_CLASSES, "tinytest", None)  # removed again after the test

    class Tiny(EEGEncoder):
        name = "tinytest"
        head_modules = ("out",)

        def __init__(self, n_chans, n_times, n_outputs=1024, sfreq=250.0, n_subjects=1, *, scale: float = 1.0):
            super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
            self.out = nn.Linear(n_chans * n_times, n_outputs)
            self._set_config(scale=scale)

        def embed(self, x, subject_ids):
            return self.out(x.flatten(1))

    assert ENCODER_CLASSES["tinytest"] is Tiny and "tinytest" in list_models(braindecode=False)
    model = create_encoder("TinyTest", n_chans=2, n_times=3, n_outputs=4, scale=2.0)
    rebuilt = EEGEncoder.from_config(model.config)
    assert type(rebuilt) is Tiny and rebuilt.config == model.config == {
        "name": "tinytest", "n_chans": 2, "n_times": 3, "n_outputs": 4, "sfreq": 250.0, "n_subjects": 1, "scale": 2.0}
    loaded = EEGEncoder.from_pretrained(model.save_pretrained(tmp_path / "tiny"))
    assert torch.equal(loaded.out.weight, model.out.weight)
    with pytest.raises(ValueError, match=r"Option 'scal' is not in the options of encoder tinytest \(available: "
                                         r"scale\). Did you mean scale\?"):
        EEGEncoder.from_config({**model.config, "scal": 1.0})
    with pytest.raises(ValueError, match="'tinytest' has no variants"):
        EEGEncoder.from_config({**model.config, "name": "tinytest:big"})
    with pytest.raises(ValueError, match="No encoder is registered under 'tinytset'"):
        EEGEncoder.from_config({**model.config, "name": "tinytset"})
    with pytest.raises(ValueError, match="'atms' of .*Clash is already registered by eegvision.models.encoders.atms"):
        type("Clash", (EEGEncoder,), {"name": "atms"})


def test_encoders_do_not_import_the_registry():
    """models.registry builds on models.encoders, never the reverse (function-local imports included)."""
    import ast
    from pathlib import Path

    from eegvision.models import encoders

    for path in sorted(Path(encoders.__file__).parent.glob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
        upward = {m for m in imported if m == "eegvision.models" or m.startswith("eegvision.models.registry")
                  or (m.startswith("eegvision.") and not m.startswith(("eegvision.models.encoders", "eegvision.utils",
                                                                       "eegvision.checks", "eegvision.tensorfiles")))}
        assert not upward, f"{path.name} imports {sorted(upward)}"


@pytest.mark.parametrize("name", ["atms", "nice", "eegproject", "projector", "stconv", "braindecode:EEGNet"])
def test_gradients_reach_every_used_parameter(name):
    torch.manual_seed(0)
    model = create_encoder(name, n_chans=8, n_times=250, n_outputs=16, n_subjects=2)
    out = model(_x(4, 8, 250), torch.tensor([0, 1, 0, -1]))
    out.pow(2).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_reference_mode_unused_parameters_get_no_gradient():
    model = create_encoder("atms", n_chans=63, n_times=250, mode="reference", n_subjects=2)
    model(_x(2, 63, 250), torch.tensor([0, 1])).sum().backward()
    no_grad = sorted(n for n, p in model.named_parameters() if p.grad is None)
    assert no_grad == sorted([
        "logit_scale", "encoder.enc_embedding.mask_token",
        "encoder.enc_embedding.temporal_embedding.embed.weight",
        "encoder.enc_embedding.subject_embedding.mask_embedding",
        "subject_wise_linear.0.weight", "subject_wise_linear.0.bias",
        "subject_wise_linear.1.weight", "subject_wise_linear.1.bias",
    ])
    shared = model.encoder.enc_embedding.subject_embedding.shared_embedding
    assert torch.count_nonzero(shared.grad) == 0  # known ids only: the shared token is not used


@pytest.mark.parametrize("name", ["braindecode:EEGNet", "braindecode:ShallowFBCSPNet", "braindecode:EEGConformer"])
def test_braindecode_outputs_are_not_log_softmax(name):
    torch.manual_seed(0)
    model = create_encoder(name, n_chans=63, n_times=250, n_outputs=64).eval()
    with torch.no_grad():
        out = model(_x(3, 63, 250))
    assert out.shape == (3, 64)
    # a log-softmax output would have logsumexp == 0 (probabilities summing to 1)
    assert (out.exp().sum(dim=1) - 1).abs().min() > 1e-2
    assert not any(isinstance(m, torch.nn.LogSoftmax) for m in model.modules())
    assert model.backbone.n_outputs == 64


def test_braindecode_subject_embedding_and_projector_head():
    torch.manual_seed(0)
    model = create_encoder("braindecode:EEGNet", n_chans=8, n_times=250, n_outputs=16, n_subjects=3,
                           head="projector", feature_dim=24).eval()
    assert model.backbone.n_outputs == 24 and model.head[0].out_features == 16
    with torch.no_grad():
        model.subject_embedding.subject_embedding.weight.normal_()
        x = _x(1, 8, 250).expand(4, -1, -1)
        out = model(x, torch.tensor([0, 1, -1, 5]))
    assert not torch.allclose(out[0], out[1])
    torch.testing.assert_close(out[2], out[3])
    single = create_encoder("braindecode:EEGNet", n_chans=8, n_times=250, n_outputs=16)
    assert single.subject_embedding is None  # one subject: ids are ignored


def test_braindecode_pretrained_local_file(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = create_encoder("braindecode:ShallowFBCSPNet", n_chans=8, n_times=250, n_outputs=10)
    state = {k: v.contiguous() for k, v in source.backbone.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pt")
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pt"):
        target = create_encoder("braindecode:ShallowFBCSPNet", n_chans=8, n_times=250, n_outputs=10,
                                pretrained=str(path))
        for key, value in state.items():
            assert torch.equal(target.backbone.state_dict()[key], value)
    # a different head size: the head is skipped with a warning, the rest is loaded
    with pytest.warns(UserWarning, match="Skipped"):
        other = create_encoder("braindecode:ShallowFBCSPNet", n_chans=8, n_times=250, n_outputs=4,
                               pretrained=str(tmp_path / "w.pt"))
    first = next(iter(state))
    assert torch.equal(other.backbone.state_dict()[first], state[first])
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        create_encoder("braindecode:EEGNet", n_chans=8, n_times=250, pretrained=str(tmp_path / "no.pt"))


def test_braindecode_labram_builds_small(tmp_path):
    names = ["O1", "Oz", "O2", "Pz"]
    model = create_encoder("braindecode:Labram", n_chans=4, n_times=200, n_outputs=16, sfreq=200.0,
                           ch_names=names,
                           model_kwargs={"num_layers": 1, "embed_dim": 40, "num_heads": 2}).eval()
    x = _x(2, 4, 200)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 16)
        # the channel names matter: Labram picks per-channel position embeddings by name
        swapped = create_encoder("braindecode:Labram", n_chans=4, n_times=200, n_outputs=16, sfreq=200.0,
                                 ch_names=names[::-1],
                                 model_kwargs={"num_layers": 1, "embed_dim": 40, "num_heads": 2}).eval()
        swapped.load_state_dict(model.state_dict())
        assert not torch.allclose(swapped(x), out)
    save_pretrained(model, tmp_path / "labram")
    with torch.no_grad():
        assert torch.equal(load_encoder(tmp_path / "labram")(x), out)


def test_eegproject_matches_formula_and_loads_ubp_keys():
    torch.manual_seed(0)
    model = create_encoder("eegproject", n_chans=4, n_times=10, n_outputs=6).eval()
    x = _x(3, 4, 10)
    lin0, lin1, norm = model.model[0], model.model[1].fn[1], model.model[2]
    with torch.no_grad():
        h = x.reshape(3, 40) @ lin0.weight.T + lin0.bias
        expected = torch.nn.functional.layer_norm(
            h + torch.nn.functional.gelu(h) @ lin1.weight.T + lin1.bias, (6,), norm.weight, norm.bias)
        torch.testing.assert_close(model(x), expected)
    ubp = {k.replace("model.1.fn.", "model.1.f."): v for k, v in model.state_dict().items()}
    fresh = create_encoder("eegproject", n_chans=4, n_times=10, n_outputs=6).eval()
    fresh.load_state_dict(ubp)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x))


def test_projector_output_is_unit_norm():
    model = create_encoder("projector", n_chans=8, n_times=50, n_outputs=16).eval()
    with torch.no_grad():
        norms = model(_x(3, 8, 50)).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(3))


def test_describe_counts_parameters():
    info = describe("nice", n_chans=63, n_times=250, mode="reference")
    assert info["n_params"] == 2_630_913 and info["config"]["name"] == "nice"
    assert describe("atms", n_chans=271, n_times=201)["config"]["d_model"] == 201


@pytest.mark.parametrize("model,reference_count", [
    ("EEGNet", 1_186_833), ("EEGConformer", 635_273), ("ShallowFBCSPNet", 886_845), ("ATCNet", 114_793),
])
def test_braindecode_atm_preset_matches_reference_counts(model, reference_count, tmp_path):
    """ATM's baseline wrappers (braindecode 0.8.1) = backbone + a raw logit_scale (1 parameter)."""
    enc = create_encoder(f"braindecode:{model}", n_chans=63, n_times=250, preset="atm")
    assert enc.n_parameters() + 1 == reference_count
    assert enc.config["preset"] is None and enc.config["model_kwargs"]  # config holds the expanded kwargs
    save_pretrained(enc.eval(), tmp_path / model)
    assert load_encoder(tmp_path / model).n_parameters() == enc.n_parameters()


def test_stconv_is_spatial_filters_then_temporal_conv_then_mlp():
    """Hand-computed forward pass; kernel and stride follow sfreq (MEG at 200 Hz)."""
    torch.manual_seed(0)
    model = create_encoder("stconv", n_chans=5, n_times=40, n_outputs=3, sfreq=100.0, n_filters=2, kernel_s=0.1,
                           stride_s=0.05, hidden=4, dropout=0.0).eval()
    assert model.temporal.kernel_size == (10,) and model.temporal.stride == (5,)
    x = _x(2, 5, 40)
    s = torch.einsum("fc,bct->bft", model.spatial.weight[:, :, 0], x) + model.spatial.bias[None, :, None]
    w = model.temporal.weight                                    # (F, F, 10)
    steps = [(s[:, None, :, 5 * j:5 * j + 10] * w[None]).sum((2, 3)) + model.temporal.bias for j in range(7)]
    h = torch.nn.functional.gelu(torch.stack(steps, -1)).flatten(1)
    lin1, lin2 = model.head[2], model.head[5]
    expected = lin2(torch.nn.functional.gelu(lin1(h)))
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)
    meg = create_encoder("stconv", n_chans=271, n_times=201, n_outputs=8, sfreq=200.0)
    assert meg.temporal.kernel_size == (20,) and meg(_x(2, 271, 201)).shape == (2, 8)
    with pytest.raises(ValueError, match="kernel"):
        create_encoder("stconv", n_chans=5, n_times=8, n_outputs=3, sfreq=250.0)
