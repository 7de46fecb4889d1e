"""Generate the demo preset of the simulator; record the Bayes ceiling, the ridge baseline, time and memory.

Run: ``.venv/bin/python benchmarks/simulate_ceiling.py [--raw]`` (writes into a temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mb, write_result  # noqa: E402

from eegvision.sim import simulate  # noqa: E402


def main() -> None:
    raw = "--raw" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = simulate(Path(tmp) / "demo", preset="demo", seed=0, write_raw=raw)
        wall = time.perf_counter() - t0
    write_result("simulate_ceiling", {
        "preset": "demo", "n_subjects": len(res.subjects), "write_raw": raw,
        "n_way": res.preset.n_test_concepts, "chance_top1": res.chance_top1,
        "ceiling_top1": res.ceiling["top1"], "ceiling_top5": res.ceiling["top5"],
        "ridge_top1": res.ridge["top1"], "ridge_top5": res.ridge["top5"],
        "wall_s": round(wall, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
    })


if __name__ == "__main__":
    main()
