"""Benchmark: exact k-way evaluation of a 200 x 200 matrix (every k, top-1/5) and the real sub-08 numbers.

Writes ``benchmarks/results/kway_eval.json`` with
* ``exact_wall_ms`` — all k in (2, 4, 10, 50, 100, 200), top-1 and top-5, from one 200 x 200 similarity matrix
  (median of repeats; ``exact_with_cosine_wall_ms`` includes the cosine similarity of 200 x 1024 embeddings);
* ``montecarlo_wall_ms`` — the reference protocol with ``mc_draws`` seeded repetitions of every k;
* ``real_sub08_image_k{K}_top{T}`` — the reference ATM-S sub-08 test embeddings vs the real ViT-H-14 test image
  features (exact; must give 200-way top-1 0.360 and top-5 0.725), plus ``real_sub08_text_*`` (text classification)
  and ``real_sub08_image_csls_*`` (CSLS, transductive, reported separately);
* ``real_sub08_image_mc_k{K}_top1_draw_std`` — the spread of a single reference-style draw.

Run: ``.venv/bin/python benchmarks/kway_eval.py``
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mb, write_result  # noqa: E402

from eegvision.evaluation.csls import csls_scores  # noqa: E402
from eegvision.evaluation.kway import DEFAULT_KS, cosine_similarity, kway_exact, kway_montecarlo  # noqa: E402
from eegvision.evaluation.stats import permutation_test_chance  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "things_eeg2_clip"


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    eeg = torch.load(DATA / "ATM_S_eeg_features_sub-08_test.pt", weights_only=True)
    feats = torch.load(DATA / "ViT-H-14_features_test.pt", weights_only=True)
    sim = cosine_similarity(eeg, feats["img_features"])
    kway_exact(sim)  # warm-up (imports, scipy)

    mc_draws = 100
    res: dict = {
        "n_queries": sim.shape[0], "n_candidates": sim.shape[1], "ks": ",".join(map(str, DEFAULT_KS)),
        "exact_wall_ms": round(_median_ms(lambda: kway_exact(sim), 50), 3),
        "exact_with_cosine_wall_ms": round(_median_ms(
            lambda: kway_exact(cosine_similarity(eeg, feats["img_features"])), 20), 3),
        "mc_draws": mc_draws,
        "montecarlo_wall_ms": round(_median_ms(lambda: kway_montecarlo(sim, n_draws=mc_draws, seed=0), 3), 1),
        "permutation_test_1000_wall_ms": round(_median_ms(
            lambda: permutation_test_chance(sim, n_perm=1000, seed=0), 3), 1),
    }
    sim_txt = cosine_similarity(eeg, feats["text_features"])
    for name, acc in (("image", kway_exact(sim)), ("text", kway_exact(sim_txt)),
                      ("image_csls", kway_exact(csls_scores(sim, 10)))):
        for k in acc.ks:
            for t in acc.tops:
                res[f"real_sub08_{name}_k{k}_top{t}"] = round(acc.get(k, t), 6)
    mc = kway_montecarlo(sim, n_draws=1000, seed=0)
    for a, k in enumerate(mc.ks):
        res[f"real_sub08_image_mc_k{k}_top1"] = round(float(mc.accuracy[a, 0]), 6)
        res[f"real_sub08_image_mc_k{k}_top1_draw_std"] = round(float(mc.draw_std[a, 0]), 6)
    exact = kway_exact(sim)
    res["real_sub08_mc1000_vs_exact_max_abs_diff"] = round(float(np.abs(mc.accuracy - exact.accuracy).max()), 6)
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_result("kway_eval", res)


if __name__ == "__main__":
    main()
