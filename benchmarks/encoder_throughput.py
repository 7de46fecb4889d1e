"""Training throughput of every encoder on CPU: forward + backward + AdamW step at 63 x 250.

Each encoder runs in its own subprocess so that ``<name>_peak_rss_mb`` is that encoder's own peak
resident memory. Writes ``benchmarks/results/encoder_throughput.json`` with flat keys
``<name>_trials_per_s``, ``<name>_n_params``, ``<name>_peak_rss_mb``.

Usage::

    .venv/bin/python benchmarks/encoder_throughput.py [--batch 256] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

ENCODERS = {
    # key in the result file -> (registry name, options)
    "atms": ("atms", {}),
    "atms_reference": ("atms", {"mode": "reference"}),
    "nice": ("nice", {}),
    "eegproject": ("eegproject", {}),
    "projector": ("projector", {}),
    "eegnet": ("braindecode:EEGNet", {}),
    "shallowfbcspnet": ("braindecode:ShallowFBCSPNet", {}),
    "eegconformer": ("braindecode:EEGConformer", {}),
    "atcnet": ("braindecode:ATCNet", {}),
    "eegitnet": ("braindecode:EEGITNet", {}),
}


def run_one(key: str, batch: int, steps: int) -> dict:
    """Time ``steps`` training steps (after one warm-up step) of one encoder in this process."""
    import warnings

    import torch
    from _common import peak_rss_mb

    from eegvision.models import create_encoder

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    name, options = ENCODERS[key]
    model = create_encoder(name, n_chans=63, n_times=250, n_outputs=1024, n_subjects=1, **options)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    x = torch.randn(batch, 63, 250)
    target = torch.nn.functional.normalize(torch.randn(batch, 1024), dim=-1)
    ids = torch.zeros(batch, dtype=torch.long)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        emb = torch.nn.functional.normalize(model(x, ids), dim=-1)
        logits = 14.3 * emb @ target.T  # InfoNCE-style loss, as in training
        labels = torch.arange(batch)
        loss = (torch.nn.functional.cross_entropy(logits, labels)
                + torch.nn.functional.cross_entropy(logits.T, labels)) / 2
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    wall = time.perf_counter() - start
    return {
        f"{key}_trials_per_s": round(batch * steps / wall, 1),
        f"{key}_n_params": sum(p.numel() for p in model.parameters()),
        f"{key}_peak_rss_mb": round(peak_rss_mb(), 1),
        f"{key}_wall_s": round(wall, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--one", choices=sorted(ENCODERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.batch, args.steps)))
        return

    import torch
    from _common import write_result

    results: dict = {"batch": args.batch, "steps": args.steps, "n_chans": 63, "n_times": 250,
                     "device": "cpu", "torch_threads": torch.get_num_threads()}
    env = {**os.environ, "EEGVISION_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    for key in ENCODERS:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", key, "--batch", str(args.batch), "--steps", str(args.steps)],
            capture_output=True, text=True, env=env, check=False,
        )
        if proc.returncode != 0:
            results[f"{key}_error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
            continue
        results.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(key, results[f"{key}_trials_per_s"], "trials/s", file=sys.stderr)
    write_result("encoder_throughput", results)


if __name__ == "__main__":
    main()
