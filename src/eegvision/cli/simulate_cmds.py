"""CLI commands: simulate (wraps :func:`eegvision.sim.simulate`)."""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.cli._common import JSON_HELP, print_json, stdout, user_errors


def _list_families(value: bool) -> None:
    """``--list-families``: print the registry (name, held out, default size, known-model decoder) and exit."""
    if not value:
        return
    from rich.table import Table

    from eegvision.sim.families import list_families

    table = Table(title="simulator families (docs/families.md)")
    for col in ("family", "default size", "known-model decoder", "target top-1", "summary"):
        table.add_column(col)
    for fam in list_families():
        pr = fam.preset(None)
        size = (f"{fam.default_preset}: {pr.n_train_concepts}×{pr.n_train_images}×{pr.train_reps} train, "
                f"{pr.n_test_concepts}×{pr.test_reps} test")
        name = fam.name + (" [bold](held out)" if fam.held_out else "")
        table.add_row(name, size, fam.decoder_label, f"{fam.target[0]:.2f}–{fam.target[1]:.2f}", fam.summary)
    stdout.print(table)
    raise typer.Exit()


def simulate_cmd(
    out: Path = typer.Argument(..., help="Output folder (created; must be empty unless --overwrite)."),
    family: str = typer.Option("eegvision", "--family", "-f",
                               help="Simulator family: eegvision (default, the simulator's own model), linear-erp, "
                                    "ar1-noise, few-images, meg, nonlinear (held out). See --list-families and "
                                    "docs/families.md."),
    list_families: bool = typer.Option(False, "--list-families", is_eager=True, callback=_list_families,
                                       help="List the simulator families and exit."),
    preset: str = typer.Option(None, "--preset", "-p",
                               help="Size preset (default: the family's own). eegvision: bench (default), tiny "
                                    "(tests), demo, things (full size); other families: default, small (tests)."),
    subjects: int = typer.Option(None, "--subjects", "-n", help="Number of subjects (default: the preset's)."),
    seed: int = typer.Option(0, "--seed", help="Every random step derives from this integer."),
    paradigm: str = typer.Option("viewing", "--paradigm", help="viewing or imagination (eegvision family)."),
    raw: bool = typer.Option(None, "--raw/--no-raw", help="Write 1000 Hz raw sessions (eegvision family; default: "
                             "the preset's)."),
    images: bool = typer.Option(True, "--images/--no-images", help="Write the JPEG image folders."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty folder."),
    trial_seed: int = typer.Option(None, "--trial-seed", help="Seed of trial noise/jitter only (default: --seed); "
                                   "same --seed + another --trial-seed = a new recording of the same world and subjects."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Simulate a THINGS-EEG2-style dataset with known ground truth (known-model decoder, ridge baselines).

    Writes preprocessed pickles (and, for the eegvision family, raw ones), image folders, ATM-style feature
    files, captions and simulation.json in the real layouts, so every reader can be pointed at OUT.

    Example: eegvision simulate sim-data --family ar1-noise --seed 0
    """
    from rich.table import Table

    from eegvision.sim import simulate

    with user_errors():
        res = simulate(out, preset=preset, n_subjects=subjects, seed=seed, paradigm=paradigm,
                       write_raw=raw, images=images, overwrite=overwrite, trial_seed=trial_seed, family=family)
    pr = res.preset
    if as_json:
        print_json({"root": res.root, "family": res.family, "preset": pr.name, "paradigm": res.paradigm,
                    "seed": res.seed, "subjects": res.subjects, "chance_top1": res.chance_top1,
                    "known_model": res.known_model, "bayes_ceiling": res.ceiling, "ridge": res.ridge,
                    "whitened_ridge": res.whitened_ridge, "wall_s": res.wall_s,
                    "ground_truth": res.root / "simulation.json"})
        return
    table = Table(title=f"simulated {res.family} / {pr.name} ({res.paradigm}, seed {res.seed}) → {res.root}")
    table.add_column("subject")
    for col in ("known-model top-1", "known-model top-5", "ridge top-1", "ridge top-5", "whitened ridge top-1"):
        table.add_column(col, justify="right")
    white = res.whitened_ridge.get("per_subject") or [None] * len(res.subjects)

    def fmt(row: dict | None, key: str) -> str:
        return "–" if row is None else f"{row[key]:.3f}"

    for sub, c, r, w in zip(res.subjects, res.ceiling["per_subject"], res.ridge["per_subject"], white):
        table.add_row(sub, fmt(c, "top1"), fmt(c, "top5"), fmt(r, "top1"), fmt(r, "top5"), fmt(w, "top1"))
    table.add_row("[bold]mean", f"[bold]{res.ceiling['top1']:.3f}", f"[bold]{res.ceiling['top5']:.3f}",
                  f"[bold]{res.ridge['top1']:.3f}", f"[bold]{res.ridge['top5']:.3f}",
                  f"[bold]{fmt(res.whitened_ridge or None, 'top1')}")
    stdout.print(table)
    label = res.known_model.get("label", "known-model")
    stdout.print(
        f"{pr.n_train_concepts}×{pr.n_train_images} training conditions × {pr.train_reps} reps, "
        f"{pr.n_test_concepts} test conditions × {pr.test_reps} reps; known-model decoder: {label}; "
        f"{pr.n_test_concepts}-way chance top-1 {res.chance_top1:.3f}; {res.wall_s:.1f} s. "
        f"Ground truth: {res.root / 'simulation.json'}"
    )


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
    app.command("simulate")(simulate_cmd)
