"""The ``eegvision`` command line: a thin typer layer over documented library functions.

Each topic lives in its own module with a ``register(app)`` function; the library never
imports this package.
"""

from __future__ import annotations

import typer

from eegvision import __version__
from eegvision.cli import analysis_cmds, data_cmds, decode_cmds, demo_cmds, recon_cmds, text_cmds

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


for _module in (data_cmds, decode_cmds, recon_cmds, text_cmds, analysis_cmds, demo_cmds):
    _module.register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
