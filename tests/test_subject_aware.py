"""Subject-aware training: MMD (hand-computed), the training-only subject router, the coarse-to-fine schedule."""

import math

import pytest
import torch

from eegvision.models import create_encoder
from eegvision.models.encoders.base import EEGEncoder
from eegvision.models.encoders.routed import RoutedEncoder
from eegvision.training.config import FitConfig
from eegvision.training.losses import median_distance, mmd2, multi_kernel_mmd, subject_mmd


def test_mmd_against_hand_computed_values():
    # 3 + 3 points on a line: x = {0, 1, 2}, y = {0, 2, 4}, one kernel exp(-d^2 / 2) (sigma = 1)
    x = torch.tensor([[0.0], [1.0], [2.0]])
    y = torch.tensor([[0.0], [2.0], [4.0]])
    e = math.exp
    # x-x squared distances: 0 (x3), 1 (x4: 0-1, 1-2 both ways), 4 (x2)
    kxx = (3 + 4 * e(-0.5) + 2 * e(-2)) / 9
    # y-y: 0 (x3), 4 (x4), 16 (x2)
    kyy = (3 + 4 * e(-2) + 2 * e(-8)) / 9
    # x-y: 0-0:0, 0-2:4, 0-4:16, 1-0:1, 1-2:1, 1-4:9, 2-0:4, 2-2:0, 2-4:4
    kxy = (2 + 3 * e(-2) + e(-8) + 2 * e(-0.5) + e(-4.5)) / 9
    assert float(mmd2(x, y, [1.0])) == pytest.approx(kxx + kyy - 2 * kxy, abs=1e-6)
    # two kernels (sigma 1 and 2) add up: sigma = 2 is exp(-d^2 / 8)
    kxx2 = (3 + 4 * e(-1 / 8) + 2 * e(-4 / 8)) / 9
    kyy2 = (3 + 4 * e(-4 / 8) + 2 * e(-16 / 8)) / 9
    kxy2 = (2 + 3 * e(-4 / 8) + e(-16 / 8) + 2 * e(-1 / 8) + e(-9 / 8)) / 9
    both = (kxx + kyy - 2 * kxy) + (kxx2 + kyy2 - 2 * kxy2)
    assert float(mmd2(x, y, [1.0, 2.0])) == pytest.approx(both, abs=1e-6)
    # the median heuristic: the 30 off-diagonal pooled distances of {0,1,2,0,2,4} have median 2
    assert float(median_distance(x, y)) == 2.0
    assert float(multi_kernel_mmd(x, y, (0.5, 1.0))) == pytest.approx(both, abs=1e-6)
    assert float(mmd2(x, x, [1.0])) == pytest.approx(0.0, abs=1e-7)
    # subject MMD of a batch of two subjects is the MMD between them (each against "the others")
    emb, subj = torch.cat([x, y]), torch.tensor([0, 0, 0, 1, 1, 1])
    assert float(subject_mmd(emb, subj, (0.5, 1.0))) == pytest.approx(both, abs=1e-6)
    assert float(subject_mmd(emb, torch.zeros(6, dtype=torch.long))) == 0.0


def _router(mode: str) -> RoutedEncoder:
    base = create_encoder("eegproject", n_chans=2, n_times=3, n_outputs=2, n_subjects=2)
    return RoutedEncoder.around(base, mode, n_experts=2)


def test_router_output_for_hand_set_weights_and_eval_ignores_the_id():
    torch.manual_seed(0)
    enc = _router("gate")
    with torch.no_grad():
        enc.gate.copy_(torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]]))     # subject 0: (1/4, 3/4); 1: (1/2, 1/2)
        enc.experts.copy_(torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [2.0, 0.0]]]))
    x = torch.randn(3, 2, 3)
    ids = torch.tensor([0, 1, -1])
    enc.train()
    enc.base.eval()                                     # no dropout in the base, so h is deterministic
    h = enc.base(x, ids)
    out = enc(x, ids)

    def hand(w0, w1, hv):
        # h + w0 A0 h + w1 A1 h with A0 = [[1, 0], [0, 0]], A1 = [[0, 1], [2, 0]]
        return torch.stack([hv[0] + w0 * hv[0] + w1 * hv[1], hv[1] + w1 * 2 * hv[0]])

    torch.testing.assert_close(out[0], hand(0.25, 0.75, h[0]))
    torch.testing.assert_close(out[1], hand(0.5, 0.5, h[1]))
    torch.testing.assert_close(out[2], hand(0.375, 0.625, h[2]))   # unseen: the average route
    # evaluation: every sample takes the average route, whatever its id
    enc.eval()
    ev = enc(x, torch.tensor([0, 1, 0]))
    for i in range(3):
        torch.testing.assert_close(ev[i], hand(0.375, 0.625, h[i]))
    torch.testing.assert_close(ev, enc(x, None))
    # per-subject heads: one-hot routes in training, the mean of the heads at evaluation; rebuilt from its config
    heads = _router("heads")
    assert heads.route_table().tolist() == [[1.0, 0.0], [0.0, 1.0]] and "gate" not in dict(heads.named_parameters())
    again = EEGEncoder.from_config(heads.config)
    assert isinstance(again, RoutedEncoder) and again.mode == "heads" and again.experts.shape == (2, 2, 2)


def test_subject_aware_options_are_checked():
    cfg = FitConfig(encoder="stconv", mmd_epochs=2, mmd_weight=0.5, subject_mmd_weight=0.1, subject_router="heads",
                    protocol="loso")
    assert FitConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="subject_router"):
        FitConfig(encoder="stconv", subject_router="experts")
    with pytest.raises(ValueError, match="mmd_epochs"):
        FitConfig(encoder="stconv", mmd_epochs=-1)
    with pytest.raises(ValueError, match="subject_router"):
        FitConfig(encoder="ridge", subject_router="gate")


def test_coarse_to_fine_loss_schedule():
    import torch.nn.functional as F

    from eegvision.training.losses import Objective
    from eegvision.training.module import ContrastiveModule

    torch.manual_seed(1)
    enc = create_encoder("eegproject", n_chans=2, n_times=3, n_outputs=4)
    module = ContrastiveModule(enc, Objective(), torch.randn(6, 4), mmd_epochs=1, mmd_weight=0.5,
                               subject_mmd_weight=0.25)
    emb, img = torch.randn(6, 4), torch.randn(6, 4)
    subj, concepts = torch.tensor([0, 0, 0, 1, 1, 1]), torch.arange(6)
    assert module.current_epoch == 0                    # epoch 0 < mmd_epochs: the coarse (MMD) stage
    sub = subject_mmd(F.normalize(emb, dim=-1), subj)
    coarse = 0.5 * multi_kernel_mmd(F.normalize(emb, dim=-1), F.normalize(img, dim=-1)) + 0.25 * sub
    torch.testing.assert_close(module.training_loss(emb, img, None, concepts, subj), coarse)
    module.mmd_epochs = 0                               # the fine stage: the objective (InfoNCE)
    fine = module.objective(emb, img, None, concepts).loss + 0.25 * sub
    torch.testing.assert_close(module.training_loss(emb, img, None, concepts, subj), fine)


@pytest.mark.slow
def test_loso_fit_with_router_and_mmd_saves_an_id_free_encoder(tmp_path, monkeypatch):
    from decode_helpers import make_problem, patch_open_data

    from eegvision.training.fitting import fit
    from eegvision.training.run import load_run

    store, data = make_problem(tmp_path, n_subjects=3)
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-02"], protocol="loso", encoder="eegproject", epochs=2,
                    batch_size=16, val_fraction=0.2, eval_ks=[2, 4], eval_methods=["exact"],
                    subject_router="heads", mmd_epochs=1, subject_mmd_weight=0.5)
    trained = load_run(fit(cfg, tmp_path / "run").path)
    enc = trained.encoder
    assert isinstance(enc, RoutedEncoder) and enc.mode == "heads" and enc.n_experts == 2    # 2 training subjects
    assert float(enc.experts.detach().abs().sum()) > 0                                                # the heads trained
    x = torch.tensor(store.array("sub-02", "test").astype("float32").mean(1))
    with torch.no_grad():
        a, b = enc(x, torch.zeros(len(x), dtype=torch.long)), enc(x, torch.full((len(x),), -1))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(trained.folder.read_test_embeddings()["sub-02"], b, rtol=1e-4, atol=1e-5)
