"""CLI commands: simulate (wraps :func:`eegvision.sim.simulate`)."""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.cli._common import JSON_HELP, print_json, stdout, user_errors


def simulate_cmd(
    out: Path = typer.Argument(..., help="Output folder (created; must be empty unless --overwrite)."),
    preset: str = typer.Option("demo", "--preset", "-p", help="tiny (tests), demo, or things (full size)."),
    subjects: int = typer.Option(None, "--subjects", "-n", help="Number of subjects (default: the preset's)."),
    seed: int = typer.Option(0, "--seed", help="Every random step derives from this integer."),
    paradigm: str = typer.Option("viewing", "--paradigm", help="viewing or imagination."),
    raw: bool = typer.Option(None, "--raw/--no-raw", help="Write 1000 Hz raw sessions (default: the preset's)."),
    images: bool = typer.Option(True, "--images/--no-images", help="Write the JPEG image folders."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty folder."),
    trial_seed: int = typer.Option(None, "--trial-seed", help="Seed of trial noise/jitter only (default: --seed); "
                                   "same --seed + another --trial-seed = a new recording of the same world and subjects."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Simulate a THINGS-EEG2-style dataset with known ground truth (Bayes ceiling, ridge baseline).

    Writes preprocessed and raw pickles, image folders, ATM-style feature files, captions and
    simulation.json in the real layouts, so every reader can be pointed at OUT.

    Example: eegvision simulate sim-data --preset demo --subjects 2 --seed 0 --no-raw
    """
    from rich.table import Table

    from eegvision.sim import simulate

    with user_errors():
        res = simulate(out, preset=preset, n_subjects=subjects, seed=seed, paradigm=paradigm,
                       write_raw=raw, images=images, overwrite=overwrite, trial_seed=trial_seed)
    pr = res.preset
    if as_json:
        print_json({"root": res.root, "preset": pr.name, "paradigm": res.paradigm, "seed": res.seed,
                    "subjects": res.subjects, "chance_top1": res.chance_top1, "bayes_ceiling": res.ceiling,
                    "ridge": res.ridge, "wall_s": res.wall_s, "ground_truth": res.root / "simulation.json"})
        return
    table = Table(title=f"simulated {pr.name} ({res.paradigm}, seed {res.seed}) → {res.root}")
    table.add_column("subject")
    table.add_column("Bayes top-1", justify="right")
    table.add_column("Bayes top-5", justify="right")
    table.add_column("ridge top-1", justify="right")
    table.add_column("ridge top-5", justify="right")
    for sub, c, r in zip(res.subjects, res.ceiling["per_subject"], res.ridge["per_subject"]):
        table.add_row(sub, f"{c['top1']:.3f}", f"{c['top5']:.3f}", f"{r['top1']:.3f}", f"{r['top5']:.3f}")
    table.add_row("[bold]mean", f"[bold]{res.ceiling['top1']:.3f}", f"[bold]{res.ceiling['top5']:.3f}",
                  f"[bold]{res.ridge['top1']:.3f}", f"[bold]{res.ridge['top5']:.3f}")
    stdout.print(table)
    stdout.print(
        f"{pr.n_train_concepts}×{pr.n_train_images} training conditions × {pr.train_reps} reps, "
        f"{pr.n_test_concepts} test conditions × {pr.test_reps} reps; {pr.n_test_concepts}-way chance "
        f"top-1 {res.chance_top1:.3f}; {res.wall_s:.1f} s. Ground truth: {res.root / 'simulation.json'}"
    )


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
    app.command("simulate")(simulate_cmd)
