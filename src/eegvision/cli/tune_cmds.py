"""CLI command ``tune``: a seeded, resumable Optuna recipe search (:func:`eegvision.training.tune.tune`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from eegvision.cli._common import (
    JSON_HELP,
    number_list,
    print_json,
    split_list,
    stdout,
    user_errors,
)
from eegvision.cli.decode_cmds import _build_config, _config_fields


def tune_cmd(
    data: str = typer.Option(None, "--data", help="Store directory or THINGS-EEG2 folder (or set in --config)."),
    subject: str = typer.Option(None, "--subject", help="Subject(s), comma-separated."),
    out: Path = typer.Option(..., "--out", help="Tuning folder (new, or one to resume)."),
    n_trials: int = typer.Option(..., "--n-trials", min=1, help="Trials the study should hold when done "
                                 "(a resumed study runs the rest)."),
    timeout: float = typer.Option(None, "--timeout", help="Start no new trial after this many seconds."),
    config_file: Path = typer.Option(None, "--config", help="Base FitConfig file (JSON or TOML); the options "
                                     "below replace its values."),
    preset: str = typer.Option(None, "--preset", help="Base config from a preset (instead of --config)."),
    features_train: str = typer.Option(None, "--features-train", help="Training-split features."),
    features_test: str = typer.Option(None, "--features-test", help="Test-split features."),
    features_normalized: bool = typer.Option(None, "--features-normalized/--no-features-normalized",
                                             help="Required for ATM .pt features."),
    protocol: str = typer.Option(None, "--protocol", help="within (default), loso or joint."),
    batch_size: int = typer.Option(None, "--batch-size", min=1),
    val_fraction: float = typer.Option(None, "--val-fraction", help="Fraction of training concepts held out; "
                                       "the search is scored on them."),
    channels: str = typer.Option(None, "--channels", help="Region (occipito-parietal) or names (O1,Oz,O2)."),
    window: str = typer.Option(None, "--window", help="Time window TMIN,TMAX in seconds."),
    patience: int = typer.Option(None, "--patience", min=1, help="Early stopping in every trial."),
    fit_seed: int = typer.Option(None, "--fit-seed", help="Training seed of every trial (default: the base's)."),
    space_file: Path = typer.Option(None, "--space", help="Search space as JSON (TuneSpace fields; null: not "
                                    "searched); the options below replace its entries."),
    encoders: str = typer.Option(None, "--encoders", help="Encoders to try \\[default: stconv,nice,eegproject]."),
    training_data: str = typer.Option(None, "--training-data", help="Among average,mix,single \\[default: all]."),
    epochs: str = typer.Option(None, "--epochs", help="Choices of epochs \\[default: 10,20,40]."),
    lr: str = typer.Option(None, "--lr", help="LOW,HIGH log range \\[default: 0.0001,0.003]."),
    weight_decay: str = typer.Option(None, "--weight-decay", help="LOW,HIGH log range \\[default: 0.0001,0.3]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler."),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Stop unpromising trials (median rule)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or trial log."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Search training recipes with Optuna, scored on held-out training concepts (never test); write the best
    as TUNE/best_config.json for `eegvision fit --config`.

    Example: eegvision tune --data store/ --subject sub-01 --out tune/sub-01 --n-trials 30 --timeout 7200
    Example: eegvision fit --config tune/sub-01/best_config.json --out runs/tuned-sub-01
    """
    from eegvision.training.tune import TuneSpace, tune

    with user_errors():
        fields = _config_fields(data=data, subjects=split_list(subject), features_train=features_train,
                                features_test=features_test, features_normalized=features_normalized,
                                protocol=protocol, batch_size=batch_size, val_fraction=val_fraction,
                                channels=channels, window=window, patience=patience, seed=fit_seed)
        fields["progress"] = not quiet
        base = _build_config(preset, fields, config_file)
        if not base.data or not base.subjects:
            raise ValueError("The base config needs data and subjects: pass --data DATA --subject SUB, or a "
                             "--config file that sets them.")
        space = {}
        if space_file is not None:
            from eegvision.checks import check_file

            space = json.loads(check_file(space_file, "Space file", "Give a JSON file of TuneSpace fields.")
                               .read_text())
        given = {"encoders": split_list(encoders), "training_data": split_list(training_data),
                 "epochs": number_list(epochs, int, "--epochs"), "lr": number_list(lr, float, "--lr"),
                 "weight_decay": number_list(weight_decay, float, "--weight-decay")}
        space.update({k: v for k, v in given.items() if v is not None})
        result = tune(base, out, n_trials, timeout_s=timeout, space=TuneSpace.from_dict(space), seed=seed,
                      prune=prune)
    if as_json:
        print_json({"path": result.path, "best_number": result.best_number, "best_value": result.best_value,
                    "best_params": result.best_params, "best_config": result.best_config_path,
                    "trials": result.trials})
        return
    from rich.table import Table

    table = Table(title=f"{len(result.trials)} trial(s): validation top-1 of the selected epoch")
    for col in ("trial", "state", "val top-1", "parameters"):
        table.add_column(col)
    for t in result.trials:
        value = "" if t["value"] is None else f"{t['value']:.3f}"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        table.add_row(str(t["number"]), t["state"], value, params)
    stdout.print(table)
    stdout.print(f"best: trial {result.best_number}, validation top-1 {result.best_value:.3f} ({result.best_run})")
    stdout.print(f"wrote {result.best_config_path}")


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
    app.command("tune")(tune_cmd)
