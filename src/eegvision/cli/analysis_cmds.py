"""CLI commands: ``eegvision analyze time|regions|importance|rsa|tsne`` (wrap :mod:`eegvision.analysis`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from eegvision.cli._common import channels_option, split_list, stdout, user_errors

analyze_app = typer.Typer(help="Analyses: when/where the signal is decodable, RSA, t-SNE (table + figure each).",
                          no_args_is_help=True)


@analyze_app.command("time")
def time_cmd(
    data: Path = typer.Argument(..., help="Store, THINGS-EEG2 or simulator folder."),
    subject: str = typer.Option("sub-01", "--subject", help="Subject to analyse."),
    out: Path = typer.Option(..., "--out", help="Output folder (CSV + PNG)."),
    window_ms: float = typer.Option(100.0, "--window-ms", help="Sliding window length (ms)."),
    step_ms: float = typer.Option(50.0, "--step-ms", help="Step between windows / growth of t (ms)."),
    growing: bool = typer.Option(False, "--growing", help="Growing windows [0, t] instead of sliding ones."),
    bin_ms: float = typer.Option(20.0, "--bin-ms", help="Time-bin width of the ridge features (ms)."),
    channels: Optional[str] = typer.Option(None, "--channels", help="Region name or comma list of channels."),
    features_train: Optional[str] = typer.Option(None, "--features-train"),
    features_test: Optional[str] = typer.Option(None, "--features-test"),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Train this encoder per window (slow)."),
    epochs: int = typer.Option(10, "--epochs", help="Epochs per window with --encoder."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Decoding accuracy in sliding (or growing) time windows.

    Example: eegvision analyze time store/ --subject sub-01 --out analysis/time --window-ms 100 --step-ms 50
    """
    from eegvision.analysis import time_analysis

    with user_errors():
        res = time_analysis(data, subject, out, window_ms=window_ms, step_ms=step_ms, growing=growing, bin_ms=bin_ms,
                            channels=channels_option(channels), features_train=features_train,
                            features_test=features_test, encoder=encoder, epochs=epochs, seed=seed)
    stdout.print(f"best window {res.best_window[0] * 1000:.0f}-{res.best_window[1] * 1000:.0f} ms: top-1 "
                  f"{res.best_top1:.1%}; wrote {res.csv} and {res.figure}")


@analyze_app.command("regions")
def regions_cmd(
    data: Path = typer.Argument(..., help="Store, THINGS-EEG2 or simulator folder."),
    subject: str = typer.Option("sub-01", "--subject"),
    out: Path = typer.Option(..., "--out"),
    regions: Optional[str] = typer.Option(None, "--regions", help="Comma list of region presets (default all)."),
    tmin: Optional[float] = typer.Option(None, "--tmin", help="Window start (s)."),
    tmax: Optional[float] = typer.Option(None, "--tmax", help="Window end (s)."),
    bin_ms: float = typer.Option(20.0, "--bin-ms"),
    features_train: Optional[str] = typer.Option(None, "--features-train"),
    features_test: Optional[str] = typer.Option(None, "--features-test"),
) -> None:
    """Decoding accuracy per scalp region and with all channels.

    Example: eegvision analyze regions store/ --subject sub-01 --out analysis/regions
    """
    from eegvision.analysis import region_analysis

    with user_errors():
        window = None if tmin is None and tmax is None else (tmin, tmax)
        res = region_analysis(data, subject, out, regions=split_list(regions), window=window,
                              bin_ms=bin_ms, features_train=features_train, features_test=features_test)
    stdout.print(f"ranking: {', '.join(res.ranking)}; wrote {res.csv} and {res.figure}")


@analyze_app.command("importance")
def importance_cmd(
    run: Path = typer.Argument(..., help="A run directory (eegvision fit)."),
    out: Path = typer.Option(..., "--out"),
    data: Optional[str] = typer.Option(None, "--data", help="Data folder (default: the run's)."),
    subject: Optional[str] = typer.Option(None, "--subject"),
    unit: Optional[str] = typer.Option(None, "--unit"),
    fill: str = typer.Option("mean", "--fill", help="Occlusion fill: mean or zero."),
    device: Optional[str] = typer.Option(None, "--device"),
) -> None:
    """Channel importance (occlusion, gradient x input) of a trained run, as topomaps.

    Example: eegvision analyze importance runs/atms-sub-01 --out analysis/importance
    """
    from eegvision.analysis import importance_for_run

    with user_errors():
        res = importance_for_run(run, out, data=data, subject=subject, unit=unit, fill=fill, device=device)
    stdout.print(f"most important: {', '.join(res.ranking()[:5])}; wrote {res.csv} and {res.figure}")


@analyze_app.command("rsa")
def rsa_cmd(
    run: Path = typer.Argument(..., help="A run directory (eegvision fit)."),
    out: Path = typer.Option(..., "--out"),
    subject: Optional[str] = typer.Option(None, "--subject"),
    unit: Optional[str] = typer.Option(None, "--unit"),
    permutations: int = typer.Option(1000, "--permutations"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """RSA between the run's test EEG embeddings and the image features.

    Example: eegvision analyze rsa runs/atms-sub-01 --out analysis/rsa
    """
    from eegvision.analysis import rsa_for_run

    with user_errors():
        res = rsa_for_run(run, out, subject=subject, unit=unit, n_permutations=permutations, seed=seed)
    stdout.print(f"Spearman rho {res.rho:.3f}, p = {res.p_value:.3g}; wrote {res.csv} and {res.figure}")


@analyze_app.command("tsne")
def tsne_cmd(
    run: Path = typer.Argument(..., help="A run directory (eegvision fit)."),
    out: Path = typer.Option(..., "--out"),
    subject: Optional[str] = typer.Option(None, "--subject"),
    unit: Optional[str] = typer.Option(None, "--unit"),
    labels: Optional[str] = typer.Option(None, "--labels", help="TSV with a 'label' column (or concept+label)."),
    data: Optional[str] = typer.Option(None, "--data", help="Data folder (default: the run's)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """t-SNE of the run's test embeddings coloured by category.

    Example: eegvision analyze tsne runs/atms-sub-01 --out analysis/tsne
    """
    from eegvision.analysis import tsne_for_run
    from eegvision.sim.labels import test_concept_shapes

    with user_errors():
        shapes = test_concept_shapes(data) if data and not labels else None
        res = tsne_for_run(run, out, subject=subject, unit=unit, labels=shapes, labels_file=labels, data=data,
                           seed=seed)
    stdout.print(f"silhouette {res.silhouette:.3f}; wrote {res.csv} and {res.figure}")


def register(app: typer.Typer) -> None:
    """Attach ``eegvision analyze ...`` to the root app."""
    app.add_typer(analyze_app, name="analyze")
