"""ATM-S contrastive training throughput on CPU (trials/s) at batch 64 and 1024, and peak RSS.

Real training path: Lightning Trainer + ContrastiveModule + EEGDataset reading a float16
(condition, repetition, 63, 250) array, 1024-d targets looked up by index. Time per step is
measured from the 2nd step on (the first includes allocation warm-up).

Usage: .venv/bin/python benchmarks/train_throughput.py [--steps-64 20] [--steps-1024 4]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
import torch
from _common import peak_rss_mb, write_result

os.environ.setdefault("EEGVISION_PROGRESS", "0")


class MemoryStore:
    """The store read interface over one in-memory float16 array (no disk I/O in the measurement)."""

    def __init__(self, n_conditions: int, n_reps: int = 4, seed: int = 0):
        from eegvision.readers.channels import THINGS_EEG2_CHANNELS

        rng = np.random.default_rng(seed)
        self.ch_names, self.sfreq = list(THINGS_EEG2_CHANNELS), 250.0
        self.times = np.arange(250) / 250.0
        self.subjects = ["sub-01"]
        self._arr = rng.standard_normal((n_conditions, n_reps, 63, 250), dtype=np.float32).astype(np.float16)
        self._meta = pd.DataFrame({"condition": np.repeat(np.arange(n_conditions), n_reps),
                                   "concept_index": np.repeat(np.arange(n_conditions) // 10, n_reps)})

    def splits(self, subject):
        return ["training"]

    def array(self, subject, split):
        return self._arr

    def metadata(self, subject, split):
        return self._meta


class StepTimer:
    def __init__(self):
        self.times = []

    def __call__(self):
        self.times.append(time.perf_counter())


def measure(batch_size: int, steps: int) -> dict:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from eegvision.data.dataset import EEGDataset
    from eegvision.models import create_encoder
    from eegvision.training.losses import Objective
    from eegvision.training.module import ContrastiveModule

    n_trials = batch_size * (steps + 1)
    n_cond = -(-n_trials // 4)
    store = MemoryStore(n_cond)
    data = EEGDataset(store, ["sub-01"], "training")
    torch.manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(n_cond, 1024), dim=1)
    text = torch.nn.functional.normalize(torch.randn(n_cond // 10 + 1, 1024), dim=1)
    enc = create_encoder("atms", n_chans=63, n_times=250, n_outputs=1024)
    module = ContrastiveModule(enc, Objective("retrieval"), feats, text, train_data=data, batch_size=batch_size)
    stamps: list[float] = []

    class Stamp(Callback):
        def on_train_batch_end(self, *args, **kw):
            stamps.append(time.perf_counter())

    trainer = pl.Trainer(max_steps=steps + 1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         use_distributed_sampler=False, callbacks=[Stamp()])
    trainer.fit(module)
    per_step = float(np.mean(np.diff(stamps)))
    return {f"b{batch_size}_s_per_step": round(per_step, 3),
            f"b{batch_size}_trials_per_s": round(batch_size / per_step, 1), f"b{batch_size}_steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps-64", type=int, default=20)
    ap.add_argument("--steps-1024", type=int, default=4)
    args = ap.parse_args()
    t0 = time.perf_counter()
    result = {"device": "cpu", "torch_threads": torch.get_num_threads()}
    result.update(measure(64, args.steps_64))
    result.update(measure(1024, args.steps_1024))
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["note"] = ("ATM-S default mode, 63x250 input, 1024-d targets, AdamW, fp32; THINGS-EEG2 single-trial "
                      "epoch = 66,160 trials (minus 5% validation concepts). Peak RSS is dominated by ATM-S's "
                      "TSConv activations at batch 1024 (B x 40 x 63 x 226 floats, ~2.3 GB each in fp32); "
                      "machine shared with other jobs during the measurement")
    write_result("train_throughput", result)


if __name__ == "__main__":
    main()
