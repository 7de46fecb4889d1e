"""CLI output streams: results on stdout (and ``--json``), errors as one line on stderr."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from eegvision.cli.main import app

runner = CliRunner()


@pytest.fixture
def embeddings(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((10, 16)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "eeg.npy", images + 0.1 * rng.standard_normal((10, 16)).astype(np.float32))
    return tmp_path / "eeg.npy", tmp_path / "images.npy"


def _evaluate(eeg, images, *extra):
    return runner.invoke(app, ["evaluate", "--eeg-embeds", str(eeg), "--image-features", str(images),
                               "--ks", "2,10", "--methods", "exact", *extra])


def test_evaluate_results_go_to_stdout_and_json(embeddings):
    res = _evaluate(*embeddings)
    assert res.exit_code == 0, res.output
    assert "image 10-way (exact, mean over 1 subject(s)): top-1 1.000" in res.stdout  # `> results.txt` keeps it
    assert res.stderr == ""
    res = _evaluate(*embeddings, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["summary"]["image"]["top1"] == 1.0 and doc["summary"]["image"]["k"] == 10
    assert {(r["method"], r["k"]) for r in doc["rows"]} == {("exact", 2), ("exact", 10)}


def test_a_damaged_file_is_one_line_on_stderr_naming_it(embeddings, tmp_path):
    bad = tmp_path / "eeg.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    res = _evaluate(bad, embeddings[1])
    assert res.exit_code == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Embedding file {bad} could not be read (")
    assert "Traceback" not in res.stderr
