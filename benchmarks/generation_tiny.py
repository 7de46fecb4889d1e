"""Stage II cost per image with the tiny random-weight SDXL + IP-Adapter pipeline (CPU): the pipeline overhead
that eegvision adds or inherits, not the cost of real SDXL-Turbo. Run: ``.venv/bin/python benchmarks/generation_tiny.py``
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from _common import peak_rss_mb, write_result

os.environ.setdefault("EEGVISION_PROGRESS", "0")


def main(n_concepts: int = 8, samples: int = 4) -> dict:
    from eegvision.generation.generator import load_generator
    from eegvision.generation.reconstruct import ReconstructionSettings, reconstruct
    from eegvision.generation.tiny import tiny_sdxl_pipeline

    out: dict = {"device": "cpu", "threads": torch.get_num_threads(), "n_concepts": n_concepts,
                 "samples_per_concept": samples}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        gen = load_generator(tiny_sdxl_pipeline(Path(tmp) / "tiny", image_embed_dim=1024), device="cpu")
        out["load_s"] = round(time.perf_counter() - t0, 3)
        emb = torch.randn(n_concepts, 1024)
        for size, steps in ((32, 1), (64, 2), (64, 4)):
            settings = ReconstructionSettings(samples=samples, steps=steps, height=size, width=size)
            t0 = time.perf_counter()
            reconstruct(emb, [f"c{i}" for i in range(n_concepts)], list(range(1, n_concepts + 1)), gen,
                        Path(tmp) / f"rec{size}_{steps}", settings=settings)
            wall = time.perf_counter() - t0
            out[f"s_per_image_{size}px_{steps}steps"] = round(wall / (n_concepts * samples), 4)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_result("generation_tiny", out)
    return out


if __name__ == "__main__":
    main()
