"""CLI commands: ``eegvision demo`` (the whole pipeline on the simulated world) and ``eegvision report``."""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.cli._common import stdout, user_errors


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Demo folder (new or empty)."),
    preset: str = typer.Option("demo", "--preset", help="Simulator preset: demo (~8 min) or tiny (~1 min)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random step."),
    subjects: int | None = typer.Option(None, "--subjects", help="Number of simulated subjects (default 2)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Encoder epochs (default: the preset's)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete OUT first if it holds files."),
) -> None:
    """Simulate → convert → features → fit → evaluate → prior → reconstruct → caption → score → report.

    Stages whose models are not installed are listed as skipped, with the reason, in the report.

    Example: eegvision demo --out demo-output --preset demo --seed 0
    """
    from eegvision.demo.run import headline_text, run_demo

    with user_errors():
        result = run_demo(out, preset=preset, seed=seed, quick=preset == "tiny", n_subjects=subjects,
                          epochs=epochs, overwrite=overwrite)
    stdout.print(headline_text(result), highlight=False)


def report(
    folder: Path = typer.Argument(..., help="A folder written by `eegvision demo` or a run of `eegvision fit`."),
    out: Path | None = typer.Option(None, "--out", help="Report folder (default FOLDER/report)."),
) -> None:
    """Build the static HTML report (and its PNG figures) of a demo folder or a run folder from its result files.

    Example: eegvision report runs/atms-sub-01   (or: eegvision report demo-output --out demo-output/report)
    """
    from eegvision.report.run_report import report_folder

    with user_errors():
        path = report_folder(folder, out)
    stdout.print(f"Report: {path}")


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
    app.command("demo")(demo)
    app.command("report")(report)
