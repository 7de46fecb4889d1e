"""The ``eegvision`` command line: a thin typer layer over documented library functions.

Each topic lives in its own module with a ``register(app)`` function; the library never
imports this package.
"""

from __future__ import annotations

import typer

from eegvision import __version__
from eegvision.cli import (
    analysis_cmds,
    convert_cmds,
    decode_cmds,
    demo_cmds,
    features_cmds,
    finetune_cmds,
    import_cmds,
    list_cmds,
    lowlevel_cmds,
    meg_cmds,
    recon_cmds,
    simulate_cmds,
    text_cmds,
    tune_cmds,
    world_cmds,
)
from eegvision.cli._apps import convert_app, preprocess_app, prior_app

app = typer.Typer(
    name="eegvision",
    help="Decode what a person saw from EEG/MEG: data, encoders, retrieval, reconstruction, captions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"eegvision {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """eegvision: EEG/MEG → CLIP space → retrieval, images and captions."""


for _module in (
    convert_cmds, meg_cmds, simulate_cmds, features_cmds, decode_cmds, recon_cmds, text_cmds, analysis_cmds,
    demo_cmds, world_cmds, finetune_cmds, import_cmds, list_cmds, tune_cmds,
    lowlevel_cmds,
):
    _module.register(app)

app.add_typer(convert_app, name="convert")
app.add_typer(preprocess_app, name="preprocess")
app.add_typer(prior_app, name="prior")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
