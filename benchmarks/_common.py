"""Shared benchmark plumbing: write a flat JSON result with machine and commit."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    """Cores, RAM and the git commit this run measured."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, check=False
        ).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {"cores": os.cpu_count(), "ram_gb": round(ram_gb, 1), "python": platform.python_version(),
            "git_commit": commit}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, values: dict, echo: bool = True) -> Path:
    """Write ``benchmarks/results/NAME.json`` with ``values`` plus the machine description (and print the
    values on stdout unless ``echo`` is False)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, **values, **machine()}, indent=2) + "\n")
    if echo:
        print(json.dumps({"benchmark": name, **values}, indent=2))
    return path
