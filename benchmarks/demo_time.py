"""Wall and CPU seconds of every stage of ``make demo``, from a fresh clone with empty caches.

The repository's committed HEAD is cloned into a temporary folder and ``eegvision demo`` runs from that clone's
sources (this machine's virtual environment supplies the dependencies), with empty cache folders (matplotlib,
Hugging Face, torch) so nothing computed earlier is reused. Per-stage wall and CPU seconds come from the demo's
own ``demo.json``; the total is measured around the whole command (interpreter start-up and imports included).
Each stage is compared with its budget (``eegvision.demo.run.DEMO_STAGE_BUDGET_S``). The load average before
the run is recorded: numbers from a busy machine are not the idle-machine figure the budget is set for.

    python benchmarks/demo_time.py                 # the full demo (make demo): results/demo_time.json
    python benchmarks/demo_time.py --preset tiny   # the quick demo: results/demo_time_tiny.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=("demo", "tiny"), default="demo")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="eegvision-demo-time-") as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "clone", "--quiet", "--local", str(ROOT), str(tmp / "clone")], check=True)
        caches = {name: tmp / "cache" / name for name in ("xdg", "mpl", "hf", "torch")}
        for d in caches.values():
            d.mkdir(parents=True)
        env = {**os.environ, "PYTHONPATH": str(tmp / "clone" / "src"), "XDG_CACHE_HOME": str(caches["xdg"]),
               "MPLCONFIGDIR": str(caches["mpl"]), "HF_HOME": str(caches["hf"]), "TORCH_HOME": str(caches["torch"]),
               "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "EEGVISION_PROGRESS": "0"}
        out = tmp / "demo"
        cmd = [sys.executable, "-m", "eegvision.cli.main", "demo", "--out", str(out), "--seed", str(args.seed)]
        if args.preset == "tiny":
            cmd += ["--preset", "tiny"]
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
        total = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"eegvision demo failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        summary = json.loads((out / "demo.json").read_text())
        commit = subprocess.run(["git", "-C", str(tmp / "clone"), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()

    budgets = summary.get("stage_budget_s", {})
    values: dict[str, object] = {"preset": args.preset, "measured_commit": commit,
                                 "load_average_1min_before": round(load, 2), "total_wall_s": round(total, 1),
                                 "demo_wall_s": round(float(summary["wall_s"]), 1),
                                 "total_budget_s": 600 if args.preset == "demo" else None}
    over = []
    for s in summary["stages"]:
        name = s["name"].replace("-", "_")
        values[f"stage_{name}_status"] = s["status"]
        values[f"stage_{name}_wall_s"] = round(float(s["wall_s"]), 1)
        values[f"stage_{name}_cpu_s"] = round(float(s.get("cpu_s", 0.0)), 1)
        if s["name"] in budgets:
            values[f"stage_{name}_budget_s"] = budgets[s["name"]]
            if s["wall_s"] > budgets[s["name"]]:
                over.append(s["name"])
    values["stages_over_budget"] = ",".join(over) or "none"
    values["within_total_budget"] = bool(args.preset != "demo" or total < 600)
    values["top1"] = summary["headline"]["top1"]
    write_result("demo_time" if args.preset == "demo" else "demo_time_tiny", values)


if __name__ == "__main__":
    main()
