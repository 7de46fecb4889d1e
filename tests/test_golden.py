"""Golden outputs: numbers that a refactoring must not change.

The golden files in ``tests/data/golden/`` were written by this test on 0.1.0 (before the package was
re-laid out) with ``EEGVISION_WRITE_GOLDEN=1 pytest tests/test_golden.py``. Each test recomputes the
same outputs from the same seeds and compares every number:

* ``quick_demo.json`` -- every number of the quick demo's ``demo.json`` (retrieval, ceiling, ridge,
  prior cosines, reconstruction scores, caption scores), wall-clock times excluded;
* ``tiny_fit_metrics.json`` -- ``metrics.json`` of a tiny ``eegvision fit`` run through the CLI.

Rewrite a golden file only for a change that is meant to move the numbers, and say so in the commit.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from decode_helpers import make_problem

GOLDEN = Path(__file__).parent / "data" / "golden"
WRITE = os.environ.get("EEGVISION_WRITE_GOLDEN") == "1"
#: keys whose values are times, sizes of the machine or paths: not part of the golden numbers
_SKIP = ("wall", "_s", "seconds", "time", "path", "html", "version", "cpu", "rss", "threads", "command")


def numbers(obj, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of a JSON value, keyed by its path (``a/b/0/c``), times and paths excluded."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if any(s in str(k).lower() for s in _SKIP):
                continue
            out.update(numbers(v, f"{prefix}{k}/"))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(numbers(v, f"{prefix}{i}/"))
    elif isinstance(obj, bool):
        out[prefix.rstrip("/")] = float(obj)
    elif isinstance(obj, (int, float)) and obj is not None:
        out[prefix.rstrip("/")] = float(obj)
    return out


def compare(got: dict[str, float], name: str) -> None:
    path = GOLDEN / name
    if WRITE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {path}")
    want = json.loads(path.read_text())
    missing = sorted(set(want) - set(got))
    assert not missing, f"golden numbers no longer produced: {missing[:20]}"
    # rel 1e-4: float32 convolutions of generated images differ by ~1e-5 (relative) with the thread count
    bad = {k: (got[k], v) for k, v in want.items()
           if not (math.isclose(got[k], v, rel_tol=1e-4, abs_tol=1e-6) or (math.isnan(got[k]) and math.isnan(v)))}
    assert not bad, f"{len(bad)} of {len(want)} golden numbers changed (got, golden): {dict(list(bad.items())[:20])}"
    assert len(want) > 20  # the comparison covers real content


def test_quick_demo_matches_golden(quick_demo):
    summary = json.loads((quick_demo.out / "demo.json").read_text())
    summary.pop("stages", None)  # stage records hold times; their outputs are compared below
    got = numbers(summary)
    for s in quick_demo.stages:
        got.update(numbers(s.outputs, f"stage/{s.name}/"))
    compare(got, "quick_demo.json")


def test_tiny_fit_matches_golden(tmp_path):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    _, data = make_problem(tmp_path, real_store=True, n_subjects=1)
    args = ["fit", "--data", str(data), "--subject", "sub-01", "--encoder", "eegproject", "--epochs", "2",
            "--batch-size", "16", "--lr", "0.003", "--seed", "0", "--out", str(tmp_path / "run")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["rows"]
    got = {}
    for r in rows:
        key = f"{r['modality']}/{r['method']}/k{r['k']}"
        got.update({f"{key}/{m}": float(r[m]) for m in ("top1", "top5") if r.get(m) is not None})
    compare(got, "tiny_fit_metrics.json")
