"""Every CLI command answers ``--help`` with an example, and the library never imports the CLI."""

from __future__ import annotations

import subprocess
import sys

import typer.main
from typer.testing import CliRunner

from eegvision.cli.main import app


def _leaf_commands(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        path = prefix + (name,)
        if getattr(cmd, "commands", None):
            out += _leaf_commands(cmd, path)
        else:
            out.append(path)
    return out


def test_every_command_has_help_with_example():
    root = typer.main.get_command(app)
    commands = _leaf_commands(root)
    # the names the issues promise must exist
    names = {" ".join(c) for c in commands}
    for required in ("convert things-eeg2", "convert things-meg", "convert epochs", "preprocess things-eeg2",
                     "simulate", "info", "features", "fit", "evaluate", "embed", "benchmark", "prior fit",
                     "reconstruct", "score-images", "caption", "score-captions", "finetune", "demo"):
        assert required in names, f"missing command {required!r}; have {sorted(names)}"
    runner = CliRunner()
    missing = []
    for path in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert result.exit_code == 0, (path, result.output)
        if "Example" not in result.output:
            missing.append(" ".join(path))
    assert not missing, f"commands whose --help shows no example: {missing}"


def test_library_does_not_import_cli_or_heavy_modules():
    code = (
        "import sys, eegvision, eegvision.data, eegvision.models, eegvision.evaluation;"
        "bad=[m for m in sys.modules if m.startswith('eegvision.cli')];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"library imported CLI modules: {out}"
