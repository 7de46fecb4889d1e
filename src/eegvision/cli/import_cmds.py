"""CLI command ``import-checkpoint``: a published checkpoint of the ATM reference code as a run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.cli._common import split_list, stdout, user_errors


def import_checkpoint_cmd(
    file: Path = typer.Argument(..., help="The reference's state_dict file (.pth/.pt/.safetensors)."),
    kind: str = typer.Option(..., "--kind", help="atms, nice, eegproject, projector or prior."),
    out: Path = typer.Option(..., "--out", help="New run folder (encoders), or an existing run (--kind prior: "
                                                "its prior/)."),
    positional_encoding: str = typer.Option(None, "--positional-encoding",
                                            help="ATM-S: sinusoidal (code from 24 Dec 2025, 61fc9c3) or none "
                                                 "(22c84ad and earlier)."),
    subject: str = typer.Option(None, "--subject", help="Subject(s) of the encoder's ids, e.g. sub-08 (ATM-S "
                                                        "picks the reference's subject rows from them)."),
    n_chans: int = typer.Option(None, "--n-chans", min=1, help="Only where the file leaves it open."),
    n_times: int = typer.Option(None, "--n-times", min=1, help="Only where the file leaves it open."),
) -> None:
    """Import an ATM reference checkpoint into a run folder, for `embed`, `evaluate` and `reconstruct`.

    Example: eegvision import-checkpoint sub-08/40.pth --kind atms --positional-encoding none --subject sub-08 --out runs/ref-sub-08
    Example: eegvision import-checkpoint diffusion_prior.pt --kind prior --out runs/ref-sub-08
    """
    from eegvision.training.imported import import_checkpoint

    with user_errors():
        res = import_checkpoint(file, kind, out, positional_encoding=positional_encoding,
                                subjects=split_list(subject), n_chans=n_chans, n_times=n_times)
    stdout.print(f"{res.kind}: {res.record['module']}, {res.record['n_parameters']:,} parameters, sha256 "
                  f"{res.record['sha256'][:12]}")
    if res.subjects:
        stdout.print(f"subjects (ids 0..): {', '.join(res.subjects)}")
    stdout.print(f"wrote {res.written}")


def register(app: typer.Typer) -> None:
    """Attach ``import-checkpoint`` to the root app."""
    app.command("import-checkpoint")(import_checkpoint_cmd)
