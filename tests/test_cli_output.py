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


def test_fit_shows_only_what_a_user_can_act_on(tmp_path):
    """A tiny `eegvision fit` in a fresh process: no Lightning tip, no checkpoint-folder or deprecation warning,
    no source lines; the epochs count from 1; the results table is on stdout."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from decode_helpers import make_problem

    _, store = make_problem(tmp_path, real_store=True, n_subjects=1, n_train_concepts=12, n_test=10)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "eegvision.cli.main", "fit", "--data", str(store), "--subject",
                           "sub-01", "--out", str(tmp_path / "run"), "--preset", "ubp-vanilla", "--epochs", "2",
                           "--batch-size", "8", "--val-fraction", "0.25"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()]
    noisy = [line for line in lines if any(w in line.lower() for w in ("warn", "tip", "available:", "stopped",
                                                                           "deprecat", ".py:"))]
    assert noisy == []
    assert any("Epoch 2/2" in line for line in lines) and not any("Epoch 0/" in line for line in lines)
    assert "cannot be evaluated" not in proc.stderr  # the default k list fits the 10 test concepts
    assert "eegproject within: 1 unit(s)" in proc.stdout and f"wrote {tmp_path / 'run'}" in proc.stdout


def test_progress_bar_counts_epochs_from_one():
    from types import SimpleNamespace

    from eegvision.training.unit import EpochProgressBar

    bar = EpochProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=3)
    assert [bar._get_train_description(e).strip() for e in range(3)] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


def test_models_and_presets_are_listed():
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0, res.output
    assert "atms        ATM-S encoder with the reference's quirks as switches." in res.stdout
    assert "braindecode:CLASS, a braindecode model with an embedding head (" in res.stdout and "EEGNet" in res.stdout
    doc = json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    assert doc["nice"] == "TSConv + projector encoder." and "braindecode:EEGNet" in doc
    res = runner.invoke(app, ["presets"])
    assert res.exit_code == 0 and "atm-table8-within  ATM-S, within-subject" in res.stdout
    assert "published 200-way top-1 0.261" in res.stdout
    doc = json.loads(runner.invoke(app, ["presets", "--json"]).stdout)
    assert doc["ubp-vanilla"]["settings"]["encoder"] == "eegproject"


def test_fit_help_shows_the_config_defaults():
    import dataclasses

    from eegvision.cli.decode_cmds import FIT_DEFAULTS
    from eegvision.training.config import FitConfig

    defaults = {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
                for f in dataclasses.fields(FitConfig)}
    words = {"single-trials": False, "off": False, "all channels": None, "the whole epoch": None,
             "no early stopping": None, "no averaging": None, "no alignment": None, "no router": None,
             "learn-temperature": True, "one stage (--epochs, --lr)": [], "no projector": None, "no smoothing": None,
             "fixed image vectors": None, "no fusion encoder": None}
    for name, shown in FIT_DEFAULTS.items():
        assert words.get(shown, shown) == defaults[name], name
    res = runner.invoke(app, ["fit", "--help"], env={"COLUMNS": "200"})
    assert "[default: 40]" in res.stdout and "[default: auto]" in res.stdout and "[default: single-trials]" in res.stdout


def test_help_texts_lose_no_bracketed_words():
    """Rich reads ``[word]`` in a help text as markup and drops it (``split, , .``)."""
    import re

    import click
    import typer

    def commands(cmd):
        if isinstance(cmd, click.Group):
            for sub in cmd.commands.values():
                yield from commands(sub)
        else:
            yield cmd

    eaten = re.compile(r"(?<!\\)\[[A-Za-z_][^\]]*\]")
    found = [(cmd.name, text) for cmd in commands(typer.main.get_command(app))
             for text in [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params] if eaten.search(text)]
    assert found == []
    res = runner.invoke(app, ["convert", "epochs", "--help"], env={"COLUMNS": "200"})
    assert "split (training/test), and optionally subject and image_id." in res.stdout


def test_messages_name_the_option_not_the_argument(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    res = runner.invoke(app, ["simulate", str(tmp_path), "--preset", "tiny"])
    assert res.exit_code == 2
    assert f"Output folder {tmp_path} is not empty; choose a new folder or pass --overwrite." in res.stderr
    assert "overwrite=True" not in res.stderr
