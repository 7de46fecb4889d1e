"""DDP on 2 CPU processes (gloo) gives the same training as 1 process with the same effective batch.

Each process gets half the batch of one shared permutation; embeddings are gathered with
``all_gather(sync_grads=True)`` so every process computes the full-batch contrastive loss (see
``eegvision.training.module``). Final weights must match the single-process run.
"""

import lightning.pytorch as pl
import pytest
import torch
from decode_helpers import LinearEncoder, TensorData
from lightning.pytorch.strategies import DDPStrategy

from eegvision.training.losses import Objective
from eegvision.training.module import ContrastiveModule


def make_module():
    g = torch.Generator().manual_seed(0)
    n_img, dim, n_in = 24, 8, 30
    feats = torch.nn.functional.normalize(torch.randn(n_img, dim, generator=g), dim=1)
    cond = torch.arange(n_img).repeat(2)  # 48 samples, two per image
    eeg = (feats[cond] @ torch.randn(dim, n_in, generator=g) + 0.5 * torch.randn(len(cond), n_in, generator=g))
    concept = cond // 2
    torch.manual_seed(1)
    enc = LinearEncoder(n_in, dim)
    text = torch.nn.functional.normalize(torch.randn(n_img // 2, dim, generator=g), dim=1)
    return ContrastiveModule(enc, Objective("retrieval", same_concept_positives=True), feats, text,
                             train_data=TensorData(eeg.reshape(len(cond), 5, 6), cond, concept),
                             batch_size=16, lr=1e-2, seed=3)


def train(devices, strategy):
    module = make_module()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=devices, strategy=strategy, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         use_distributed_sampler=False, num_sanity_val_steps=0)
    trainer.fit(module)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_two_process_ddp_matches_single_process():
    single = train(1, "auto")
    ddp = train(2, DDPStrategy(start_method="fork", process_group_backend="gloo"))
    initial = make_module().state_dict()
    assert any(not torch.allclose(single[k], initial[k]) for k in single)  # training moved the weights
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-4, atol=1e-5)


def test_fit_with_two_cpu_processes_matches_one(tmp_path, monkeypatch):
    """The whole ``fit`` (run directory, selection, evaluation) under DDP equals the 1-process run."""
    from decode_helpers import make_problem, patch_open_data
    from safetensors.torch import load_file

    from eegvision.training.config import FitConfig
    from eegvision.training.fitting import fit

    store, data = make_problem(tmp_path / "p")
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", encoder_options={"dropout": 0.0},
                    epochs=2, batch_size=16, lr=3e-3, val_fraction=0.2, eval_ks=[2, 20], eval_methods=["exact"],
                    accelerator="cpu")
    one = fit(cfg, tmp_path / "one").path
    two = fit(cfg.replace(devices=2, strategy="ddp_fork"), tmp_path / "two").path
    w1, w2 = load_file(str(one / "encoder" / "model.safetensors")), load_file(str(two / "encoder" / "model.safetensors"))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    import pandas as pd

    h1, h2 = pd.read_csv(one / "history.csv"), pd.read_csv(two / "history.csv")
    assert list(h1.columns) == list(h2.columns) and len(h1) == len(h2) == 2
    for col in ("train_loss", "val_loss", "val_top1", "temperature"):
        assert h2[col].to_numpy() == pytest.approx(h1[col].to_numpy(), rel=1e-4, abs=1e-6)
