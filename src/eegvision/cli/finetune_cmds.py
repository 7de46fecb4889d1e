"""CLI commands: ``finetune`` (a trained encoder on a new subject/paradigm) and ``transfer-curve``.

They wrap :func:`eegvision.training.finetune.finetune` (options → :class:`~eegvision.training.config.FinetuneConfig`)
and :func:`eegvision.analysis.transfer.transfer_curve`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.cli._common import parse_options, split_list, stdout, user_errors


def _common(freeze: str, epochs: int, min_steps: int, lr: float, batch_size: int | None, seed: int,
            subject_token: str, unit: str | None, init: str | None, pretrained: Path | None,
            encoder_option: list[str] | None, features_train: str | None, features_test: str | None,
            features_normalized: bool | None, val_fraction: float | None) -> dict:
    return {"freeze": split_list(freeze) or [], "epochs": epochs, "min_steps": min_steps, "lr": lr, "batch_size": batch_size,
            "seed": seed, "subject_token": subject_token, "unit": unit, "init": init,
            "pretrained": None if pretrained is None else str(pretrained), "encoder_options": parse_options(encoder_option),
            "features_train": features_train, "features_test": features_test,
            "features_normalized": features_normalized, "val_fraction": val_fraction}


_FREEZE_HELP = ("none, encoder (temporal-spatial conv / backbone), attention, subject, all-but-head, "
                "or groups joined by commas.")


def finetune_cmd(
    run: Path = typer.Argument(None, help="Trained run directory (from `eegvision fit`); omit with --init."),
    data: Path = typer.Option(..., "--data", help="Store or THINGS-EEG2 folder with the new subject/paradigm."),
    subject: str = typer.Option(..., "--subject", help="Subject of DATA to fine-tune on and test (e.g. sub-01)."),
    out: Path = typer.Option(..., "--out", "-o", help="New run directory (absent or empty)."),
    freeze: str = typer.Option("none", "--freeze", help=_FREEZE_HELP),
    n_trials: int = typer.Option(None, "--n-trials",
                                 help="First N training trials of the seeded order (default: all; 0 = zero-shot)."),
    n_conditions: int = typer.Option(None, "--n-conditions", help="Instead: all trials of the first N conditions."),
    epochs: int = typer.Option(30, "--epochs", help="Passes over the fine-tuning trials (at least --min-steps steps)."),
    min_steps: int = typer.Option(100, "--min-steps", help="Minimum number of optimiser steps."),
    lr: float = typer.Option(1e-4, "--lr", help="AdamW learning rate."),
    batch_size: int = typer.Option(None, "--batch-size",
                                   help="Default: the parent's, capped at the number of trials."),
    seed: int = typer.Option(0, "--seed", help="Seeds the trial order, the validation split and training."),
    subject_token: str = typer.Option("shared", "--subject-token",
                                      help="Token of an unseen subject: shared, new or mean."),
    unit: str = typer.Option(None, "--unit", help="Fold of a several-unit parent run (e.g. sub-03)."),
    init: str = typer.Option(None, "--init",
                             help="Start from a fresh encoder instead of RUN (e.g. braindecode:Labram)."),
    pretrained: Path = typer.Option(None, "--pretrained", help="Local weights for --init (.safetensors/.pt)."),
    encoder_option: list[str] = typer.Option(None, "--encoder-option", help="KEY=VALUE option of --init (repeatable)."),
    features_train: str = typer.Option(None, "--features-train", help="Training features of DATA."),
    features_test: str = typer.Option(None, "--features-test", help="Test features of DATA."),
    features_normalized: bool = typer.Option(None, "--features-normalized/--no-features-normalized",
                                             help="Normalise ATM-style .pt features."),
    val_fraction: float = typer.Option(None, "--val-fraction",
                                       help="Held-out concepts for selection (default: parent's)."),
) -> None:
    """Fine-tune a trained encoder on a new subject or paradigm with few trials; writes a run directory.

    The output is a normal run (`eegvision evaluate OUT` works) plus finetune.json (parent, frozen
    parameters, trials used). --n-trials 0 writes the zero-shot baseline.

    Example: eegvision finetune runs/atms-sub-01 --data imagery/ --subject sub-01 --out runs/ft-50 --n-trials 50 --freeze encoder
    """
    from eegvision.training.finetune import FinetuneConfig, finetune

    with user_errors():
        opts = _common(freeze, epochs, min_steps, lr, batch_size, seed, subject_token, unit, init, pretrained,
                       encoder_option, features_train, features_test, features_normalized, val_fraction)
        config = FinetuneConfig(data=str(data), subject=subject, n_trials=n_trials, n_conditions=n_conditions, **opts)
        result = finetune(run, config, out)
    rows = result.rows
    best_k = max((r["k"] for r in rows if r["method"] == "exact" and r["modality"] == "image"), default=None)
    top1 = next((r["top1"] for r in rows if r["method"] == "exact" and r["modality"] == "image" and r["k"] == best_k),
                None)
    stdout.print(f"fine-tuned {result.encoder} on {subject}: {result.n_trials} trials, freeze={freeze}, "
                  f"{result.n_trainable:,} trainable parameters → {result.path}")
    if top1 is not None:
        stdout.print(f"test {best_k}-way top-1: {top1:.3f}")


def transfer_curve_cmd(
    run: Path = typer.Argument(None, help="Trained run directory; omit with --init."),
    data: Path = typer.Option(..., "--data", help="Store or THINGS-EEG2 folder with the new subjects/paradigm."),
    subjects: str = typer.Option(..., "--subjects", help="Comma-separated subjects of DATA."),
    n_trials: str = typer.Option("0,10,50,200,all", "--n-trials", help="Budgets; 0 = zero-shot, all = every trial."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (runs/, CSV tables, PNG)."),
    k: int = typer.Option(None, "--k", help="k-way accuracy to tabulate (default: all test images)."),
    freeze: str = typer.Option("none", "--freeze", help=_FREEZE_HELP),
    epochs: int = typer.Option(30, "--epochs"),
    min_steps: int = typer.Option(100, "--min-steps"),
    lr: float = typer.Option(1e-4, "--lr"),
    batch_size: int = typer.Option(None, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
    subject_token: str = typer.Option("shared", "--subject-token", help="shared, new or mean."),
    unit: str = typer.Option(None, "--unit"),
    init: str = typer.Option(None, "--init", help="Start from a fresh encoder (e.g. braindecode:Labram)."),
    pretrained: Path = typer.Option(None, "--pretrained"),
    encoder_option: list[str] = typer.Option(None, "--encoder-option"),
    features_train: str = typer.Option(None, "--features-train"),
    features_test: str = typer.Option(None, "--features-test"),
    features_normalized: bool = typer.Option(None, "--features-normalized/--no-features-normalized"),
    val_fraction: float = typer.Option(None, "--val-fraction"),
) -> None:
    """Accuracy against the number of fine-tuning trials, per subject (table + figure).

    Writes transfer_curve.csv (subject x budget), transfer_summary.csv (mean/sd/sem per budget),
    transfer_curve.png (curve + per-subject box/strip plot) and one run per subject and budget.

    Example: eegvision transfer-curve runs/atms-sub-01 --data imagery/ --subjects sub-01,sub-02 --n-trials 0,10,50,all --out transfer/
    """
    from rich.table import Table

    from eegvision.analysis.transfer import parse_budgets, summarize_transfer, transfer_curve

    with user_errors():
        opts = _common(freeze, epochs, min_steps, lr, batch_size, seed, subject_token, unit, init, pretrained,
                       encoder_option, features_train, features_test, features_normalized, val_fraction)
        table = transfer_curve(run, data, split_list(subjects) or [], parse_budgets(split_list(n_trials) or []), out,
                               k=k, **opts)
    summary = summarize_transfer(table)
    t = Table(title=f"transfer ({int(table['k'].iloc[0])}-way top-1, {table['subject'].nunique()} subjects) → {out}")
    for col in ("trials", "mean", "sem", "min", "max"):
        t.add_column(col, justify="right")
    for _, r in summary.iterrows():
        sem = f"{r['sem']:.3f}" if r["sem"] == r["sem"] else "-"
        t.add_row(str(r["n_trials_requested"]), f"{r['mean']:.3f}", sem, f"{r['min']:.3f}", f"{r['max']:.3f}")
    stdout.print(t)


def register(app: typer.Typer) -> None:
    """Add ``finetune`` and ``transfer-curve`` to the ``eegvision`` app."""
    app.command("finetune")(finetune_cmd)
    app.command("transfer-curve")(transfer_curve_cmd)
