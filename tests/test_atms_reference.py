"""ATM-S and NICE in reference mode: parameter counts, reference state-dict layout, and a forward
pass checked against a naive functional re-implementation of the reference written here."""

import math

import pytest
import torch
import torch.nn.functional as F
from reference_layouts import ATMS_KEYS
from reference_layouts import sinusoid_rows as reference_pe

from eegvision.models import create_encoder, load_reference_state_dict

# The reference ATMS state dict (Retrieval/ATMS_retrieval.py `ATMS()` at 63 x 250), key -> shape: the key list of
# tests/reference_layouts.py (iTransformer(num_subjects=10) with DataEmbedding, one EncoderLayer,
# subject_wise_linear, Enc_eeg, Proj_eeg, logit_scale; ClipLoss has no state).
REFERENCE_ATMS_KEYS = ATMS_KEYS


def random_reference_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in REFERENCE_ATMS_KEYS.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(".pe"):
            state[key] = torch.cat([reference_pe(63, 250), torch.zeros(5000 - 63, 250)]).unsqueeze(0)
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    return state


def naive_reference_atms(s: dict[str, torch.Tensor], x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """The reference ATMS forward in eval mode, written with functional ops from a state dict."""
    p = "encoder.enc_embedding."
    h = x @ s[p + "value_embedding.weight"].T + s[p + "value_embedding.bias"]
    h = h + s[p + "position_embedding.pe"][:, : h.shape[1]]
    table = s[p + "subject_embedding.subject_embedding.weight"]
    if any(r >= table.shape[0] for r in rows):  # reference: one unknown id -> shared for all
        tok = s[p + "subject_embedding.shared_embedding"].expand(len(rows), -1)
    else:
        tok = table[torch.tensor(rows)]
    h = torch.cat([tok.unsqueeze(1), h], dim=1)  # (B, 64, 250)
    a = "encoder.encoder.attn_layers.0."
    b, n, _ = h.shape
    q = (h @ s[a + "attention.query_projection.weight"].T + s[a + "attention.query_projection.bias"]).view(b, n, 4, -1)
    k = (h @ s[a + "attention.key_projection.weight"].T + s[a + "attention.key_projection.bias"]).view(b, n, 4, -1)
    v = (h @ s[a + "attention.value_projection.weight"].T + s[a + "attention.value_projection.bias"]).view(b, n, 4, -1)
    scores = torch.einsum("blhe,bshe->bhls", q, k)
    attn = torch.softmax(scores / math.sqrt(q.shape[-1]), dim=-1)
    out = torch.einsum("bhls,bshd->blhd", attn, v).reshape(b, n, -1)
    out = out @ s[a + "attention.out_projection.weight"].T + s[a + "attention.out_projection.bias"]
    h = F.layer_norm(h + out, (250,), s[a + "norm1.weight"], s[a + "norm1.bias"])
    y = F.gelu(F.conv1d(h.transpose(-1, 1), s[a + "conv1.weight"], s[a + "conv1.bias"]))
    y = F.conv1d(y, s[a + "conv2.weight"], s[a + "conv2.bias"]).transpose(-1, 1)
    h = F.layer_norm(h + y, (250,), s[a + "norm2.weight"], s[a + "norm2.bias"])
    h = F.layer_norm(h, (250,), s["encoder.encoder.norm.weight"], s["encoder.encoder.norm.bias"])
    h = h[:, :63, :]  # the reference slice
    t = "enc_eeg.0.tsconv."
    z = F.conv2d(h.unsqueeze(1), s[t + "0.weight"], s[t + "0.bias"])
    z = F.avg_pool2d(z, (1, 51), (1, 5))
    z = F.elu(F.batch_norm(z, s[t + "2.running_mean"], s[t + "2.running_var"], s[t + "2.weight"], s[t + "2.bias"]))
    z = F.conv2d(z, s[t + "4.weight"], s[t + "4.bias"])
    z = F.elu(F.batch_norm(z, s[t + "5.running_mean"], s[t + "5.running_var"], s[t + "5.weight"], s[t + "5.bias"]))
    z = F.conv2d(z, s["enc_eeg.0.projection.0.weight"], s["enc_eeg.0.projection.0.bias"])
    z = z.permute(0, 2, 3, 1).reshape(b, -1)  # 'b e h w -> b (h w) e', then flatten
    z = z @ s["proj_eeg.0.weight"].T + s["proj_eeg.0.bias"]
    z = z + (F.gelu(z) @ s["proj_eeg.1.fn.1.weight"].T + s["proj_eeg.1.fn.1.bias"])
    return F.layer_norm(z, (1024,), s["proj_eeg.2.weight"], s["proj_eeg.2.bias"])


@pytest.fixture(scope="module")
def reference_model():
    torch.manual_seed(0)
    return create_encoder("atms", n_chans=63, n_times=250, mode="reference", n_subjects=10)


def test_atms_reference_parameter_count(reference_model):
    assert sum(p.numel() for p in reference_model.parameters()) == 3_202_413
    assert isinstance(reference_model.logit_scale, torch.nn.Parameter)
    assert reference_model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert reference_model.effective_logit_scale() is reference_model.logit_scale  # raw, unclamped


def test_nice_reference_parameter_count():
    nice = create_encoder("nice", n_chans=63, n_times=250, mode="reference")
    assert sum(p.numel() for p in nice.parameters()) == 2_630_913
    assert sum(p.numel() for p in create_encoder("nice", n_chans=63, n_times=250).parameters()) == 2_630_912


def test_projector_reference_parameter_count():
    proj = create_encoder("projector", n_chans=63, n_times=250, mode="reference")
    assert sum(p.numel() for p in proj.parameters()) == 3_425_460


def test_reference_key_names_and_shapes(reference_model):
    own = {k: tuple(v.shape) for k, v in reference_model.state_dict().items()}
    assert own == REFERENCE_ATMS_KEYS


def test_positional_table_matches_formula(reference_model):
    pe = reference_model.encoder.enc_embedding.position_embedding.pe[0, :63]
    torch.testing.assert_close(pe, reference_pe(63, 250), atol=2e-5, rtol=0)


def test_load_reference_state_dict_and_forward_matches_naive(reference_model):
    state = random_reference_state()
    load_reference_state_dict(reference_model, state)
    for key, value in state.items():
        assert torch.equal(reference_model.state_dict()[key], value), key
    reference_model.load_state_dict(state, strict=True)  # plain strict loading works too
    model = reference_model.eval()
    x = torch.randn(3, 63, 250, generator=torch.Generator().manual_seed(1))
    ids = torch.tensor([0, 4, 7])  # sub-01, sub-05, sub-08 -> reference rows 1, 5, 8
    with torch.no_grad():
        torch.testing.assert_close(model(x, ids), naive_reference_atms(state, x, [1, 5, 8]),
                                   atol=2e-4, rtol=1e-4)
        # sub-10 (id 9 -> row 10) in the batch: every sample gets the shared token
        ids10 = torch.tensor([0, 4, 9])
        torch.testing.assert_close(model(x, ids10), naive_reference_atms(state, x, [1, 5, 10]),
                                   atol=2e-4, rtol=1e-4)
        assert not torch.allclose(model(x, ids10)[0], model(x, ids)[0])


def test_load_reference_state_dict_rejects_fixed_layout():
    fixed = create_encoder("atms", n_chans=63, n_times=250)
    with pytest.raises(ValueError, match="mode='reference'"):
        load_reference_state_dict(fixed, random_reference_state())


def test_dataparallel_prefix_is_accepted(reference_model):
    state = {f"module.{k}": v for k, v in random_reference_state(3).items()}
    load_reference_state_dict(reference_model, state)
    assert torch.equal(reference_model.proj_eeg[0].weight, state["module.proj_eeg.0.weight"])


def _output_with_token_perturbed(model, x, index):
    """Encoder output after adding noise to transformer-output token ``index`` (0 = subject token)."""

    def hook(module, inputs, output):
        output = output.clone()
        output[:, index] += 3.0
        return output

    handle = model.encoder.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model(x, torch.zeros(x.shape[0], dtype=torch.long))
    finally:
        handle.remove()


def test_reference_slice_drops_last_channel_and_keeps_subject_token():
    torch.manual_seed(0)
    x = torch.randn(2, 63, 250)
    ref = create_encoder("atms", n_chans=63, n_times=250, mode="reference").eval()
    fixed = create_encoder("atms", n_chans=63, n_times=250, mode="fixed").eval()
    with torch.no_grad():
        ref_out, fixed_out = ref(x, torch.zeros(2, dtype=torch.long)), fixed(x, torch.zeros(2, dtype=torch.long))
    # token 63 is channel 62 (O2): the reference slice ignores its transformer output ...
    torch.testing.assert_close(_output_with_token_perturbed(ref, x, 63), ref_out)
    assert not torch.allclose(_output_with_token_perturbed(fixed, x, 63), fixed_out)
    # ... and feeds the subject token (index 0) to the TSConv instead; the fixed slice drops it.
    assert not torch.allclose(_output_with_token_perturbed(ref, x, 0), ref_out)
    torch.testing.assert_close(_output_with_token_perturbed(fixed, x, 0), fixed_out)


def test_reference_o2_input_still_leaks_through_attention():
    """Documented quirk: O2's *token* is dropped, but its input still reaches the other tokens."""
    torch.manual_seed(0)
    ref = create_encoder("atms", n_chans=63, n_times=250, mode="reference").eval()
    x = torch.randn(2, 63, 250)
    x2 = x.clone()
    x2[:, 62] += 5.0
    with torch.no_grad():
        assert not torch.allclose(ref(x), ref(x2))


def test_reference_subject_names_pick_rows():
    torch.manual_seed(0)
    one = create_encoder("atms", n_chans=63, n_times=250, mode="reference", subject_names=["sub-08"]).eval()
    emb = one.encoder.enc_embedding.subject_embedding
    rows, unseen = emb.rows(torch.tensor([0, 0]))
    assert rows.tolist() == [8, 8] and not unseen.any()
    default = create_encoder("atms", n_chans=63, n_times=250, mode="reference", n_subjects=10)
    rows, unseen = default.encoder.enc_embedding.subject_embedding.rows(torch.arange(10))
    assert rows[:9].tolist() == list(range(1, 10)) and unseen.all()  # sub-10 present -> all shared
