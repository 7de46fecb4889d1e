"""Stage I prior throughput: training samples/s and sampling samples/s at the reference sizes (1024-d, MLP U-Net).

Synthetic embeddings (the speed does not depend on their values). Run: ``.venv/bin/python benchmarks/prior_throughput.py``
"""

from __future__ import annotations

import os
import time

import torch
from _common import peak_rss_mb, write_result

os.environ.setdefault("EEGVISION_PROGRESS", "0")


def main(n_train: int = 8192, epochs: int = 2, n_sample: int = 256, steps: int = 50) -> dict:
    from eegvision.training.prior_fit import PriorFitConfig, fit_prior
    from eegvision.utils import default_device

    device = default_device()
    g = torch.Generator().manual_seed(0)
    img = torch.randn(n_train, 1024, generator=g) * 0.5
    eeg = img + torch.randn(n_train, 1024, generator=g)
    out = {"device": device, "n_train": n_train, "epochs": epochs, "batch_size": 1024}
    for arch, opts in (("unet", {}), ("transformer", {"num_layers": 4, "num_attention_heads": 8,
                                                        "attention_head_dim": 64})):
        cfg = PriorFitConfig(architecture=arch, architecture_options=opts, epochs=epochs, batch_size=1024,
                             val_fraction=0.0, warmup_steps=10)
        t0 = time.perf_counter()
        res = fit_prior(eeg, img, config=cfg)
        train_s = time.perf_counter() - t0
        prior = res.prior
        t0 = time.perf_counter()
        prior.sample(eeg[:n_sample], num_inference_steps=steps, guidance_scale=5.0, seed=0)
        sample_s = time.perf_counter() - t0
        out[f"{arch}_params"] = sum(p.numel() for p in prior.parameters())
        out[f"{arch}_train_samples_per_s"] = round(n_train * epochs / train_s, 1)
        out[f"{arch}_sample_{steps}steps_samples_per_s"] = round(n_sample / sample_s, 2)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_result("prior_throughput", out)
    return out


if __name__ == "__main__":
    main()
