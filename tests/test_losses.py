"""Losses against naive per-row reference implementations written here."""

import math

import pytest
import torch
import torch.nn.functional as F

from eegvision.training.losses import LogitScale, Objective, info_nce, reference_clip_loss


def naive_info_nce(a, b, scale, concepts=None, normalize=True):
    """Per-row loop: -log softmax of the positives (soft targets uniform over positives)."""
    a, b = a.double(), b.double()
    if normalize:
        a = a / a.norm(dim=1, keepdim=True)
        b = b / b.norm(dim=1, keepdim=True)
    n = a.shape[0]
    total = 0.0
    for x, y in ((a, b), (b, a)):
        for i in range(n):
            logits = [float(scale) * float(x[i] @ y[j]) for j in range(n)]
            m = max(logits)
            log_z = m + math.log(sum(math.exp(v - m) for v in logits))
            pos = [j for j in range(n) if (j == i if concepts is None else concepts[j] == concepts[i])]
            total += -sum(logits[j] - log_z for j in pos) / len(pos) / n
    return total / 2


@pytest.mark.parametrize("normalize", [True, False])
def test_info_nce_matches_naive(normalize):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    got = info_nce(a, b, 3.0, normalize=normalize)
    assert got.item() == pytest.approx(naive_info_nce(a, b, 3.0, normalize=normalize), rel=1e-5)


def test_multi_positive_matches_naive_and_reduces_to_standard():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    concepts = torch.tensor([0, 1, 0, 2, 3, 1, 0, 4])
    got = info_nce(a, b, 5.0, concepts=concepts)
    assert got.item() == pytest.approx(naive_info_nce(a, b, 5.0, concepts=concepts.tolist()), rel=1e-5)
    # differs from the one-hot loss when duplicates exist
    assert abs(got.item() - info_nce(a, b, 5.0).item()) > 1e-3
    unique = torch.arange(8) * 3
    assert info_nce(a, b, 5.0, concepts=unique).item() == pytest.approx(info_nce(a, b, 5.0).item(), rel=1e-6)


def test_logit_scale_exp_clamped_and_raw():
    ls = LogitScale(0.07)
    assert ls().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        ls.log_scale.fill_(10.0)  # exp(10) = 22026 -> clamped to 100
    assert ls().item() == pytest.approx(100.0)
    assert ls.temperature == pytest.approx(0.01)
    raw = LogitScale(0.07, mode="raw")
    assert raw().item() == pytest.approx(math.log(1 / 0.07), rel=1e-6)  # used as is, like the reference
    with pytest.raises(ValueError, match="mode"):
        LogitScale(mode="linear")


def test_softplus_scale_and_image_only_normalisation_as_ubp():
    ls = LogitScale(0.07, mode="softplus")
    assert ls().item() == pytest.approx(math.log(1 + 1 / 0.07), rel=1e-6)   # softplus(log(1/0.07)) = 2.7269
    with torch.no_grad():
        ls.log_scale.fill_(200.0)                                          # no clamp
    assert ls().item() == pytest.approx(200.0)
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    bn = b / b.norm(dim=1, keepdim=True)
    got = info_nce(a, b, 2.0, normalize="image")
    assert got.item() == pytest.approx(naive_info_nce(a, bn, 2.0, normalize=False), rel=1e-5)
    assert abs(got.item() - info_nce(a, b, 2.0).item()) > 1e-3


def test_reference_clip_loss_is_raw_dot_products():
    g = torch.Generator().manual_seed(2)
    e, f = torch.randn(5, 4, generator=g) * 3, F.normalize(torch.randn(5, 4, generator=g), dim=1)
    s = torch.tensor(2.66)
    assert reference_clip_loss(e, f, s).item() == pytest.approx(naive_info_nce(e, f, 2.66, normalize=False), rel=1e-5)


def test_retrieval_objective_weights():
    g = torch.Generator().manual_seed(3)
    e, img, txt = (torch.randn(6, 4, generator=g) for _ in range(3))
    obj = Objective("retrieval")
    scale = 1 / 0.07
    out = obj(e, img, txt)
    expect = 0.99 * naive_info_nce(e, img, scale) + 0.01 * naive_info_nce(e, txt, scale)
    assert out.loss.item() == pytest.approx(expect, rel=1e-5)
    assert set(out.parts) == {"image_nce", "text_nce"}
    # without text features the image term carries the whole weight
    assert obj(e, img).loss.item() == pytest.approx(naive_info_nce(e, img, scale), rel=1e-5)


def test_generation_objective_weights_and_raw_targets():
    g = torch.Generator().manual_seed(4)
    e, img = torch.randn(6, 4, generator=g), 5 * torch.randn(6, 4, generator=g)  # raw, unnormalised targets
    obj = Objective("generation")
    assert not obj.expects_normalized_targets
    mse = float(((e.double() - img.double()) ** 2).mean())
    expect = 10 * (0.9 * mse + 0.1 * naive_info_nce(e, img, 1 / 0.07))
    assert obj(e, img, torch.randn(6, 4)).loss.item() == pytest.approx(expect, rel=1e-5)


def test_reference_mode_and_gradient_reaches_temperature():
    obj = Objective("retrieval", reference=True)
    assert obj.logit_scale.mode == "raw" and not obj.normalize
    e = torch.randn(4, 3, requires_grad=True)
    obj(e, torch.randn(4, 3)).loss.backward()
    assert obj.logit_scale.log_scale.grad is not None and e.grad is not None


def test_bad_inputs():
    with pytest.raises(ValueError, match="objective"):
        Objective("classification")
    with pytest.raises(ValueError, match="equal shape"):
        info_nce(torch.randn(3, 4), torch.randn(4, 4), 1.0)
