"""CLI commands: ``convert things-eeg2`` (THINGS-EEG2 preprocessed pickles → store) and ``info``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import typer

from eegvision.cli._apps import convert_app
from eegvision.cli._common import JSON_HELP, print_json, split_list, stderr, stdout, user_errors


@contextlib.contextmanager
def _library_messages() -> Iterator[None]:
    """Show the library's INFO messages (e.g. "up to date: skipped") on the console."""
    from rich.logging import RichHandler

    handler = RichHandler(console=stderr, show_time=False, show_path=False, markup=False)
    root = logging.getLogger("eegvision")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@convert_app.command("things-eeg2")
def things_eeg2(
    src: Path = typer.Argument(..., help="Folder holding Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_*.npy."),
    store: Path = typer.Argument(..., help="Output store folder (new, empty, or a store with the same settings)."),
    images: Path | None = typer.Option(
        None, "--images", help="Folder holding training_images/ and test_images/ (default: SRC/*_images if present)."),
    subjects: str | None = typer.Option(None, "--subjects", help="Comma-separated subjects, e.g. sub-01,sub-02."),
    dtype: str = typer.Option("float16", "--dtype", help="Storage type: float16 (default) or float32."),
    prompt_template: str = typer.Option("This picture is {concept}", "--prompt-template",
                                        help="Text prompt per concept, recorded for feature extraction."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different store at STORE."),
) -> None:
    """Convert THINGS-EEG2 preprocessed pickles into a memory-mappable store (safe: no pickle code runs).

    Streams in chunks (under 1 GB of RAM for an 8 GB subject); a re-run with the same sources skips the work.

    Example: eegvision convert things-eeg2 ~/data/things-eeg2 ~/data/eeg-store --subjects sub-01,sub-02
    """
    from eegvision.checks import check_choice
    from eegvision.store.convert import convert_things_eeg2
    from eegvision.store.disk import open_store

    with user_errors():
        check_choice("--dtype", dtype, ("float16", "float32"))
        with _library_messages():
            path = convert_things_eeg2(src, store, images=images, subjects=split_list(subjects), dtype=dtype,
                                       overwrite=overwrite, prompt_template=prompt_template)
        info = open_store(path).info()
    n = sum(len(v) for v in info["subjects"].values())
    stdout.print(f"store {path}: {len(info['subjects'])} subject(s), {n} file(s), {info['dtype']}, "
                  f"{info['size_mb']} MB")


def info(
    store: Path = typer.Argument(..., help="A store folder, or a THINGS-EEG2 download (read in place)."),
    channels: bool = typer.Option(False, "--channels", help="List every channel name."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Summarise a store (or a THINGS-EEG2 folder): dataset, subjects, splits, shapes, dtype, sfreq, channels.

    Example: eegvision info ~/data/eeg-store
    """
    from rich.table import Table

    from eegvision.store.base import MANIFEST_NAME, temporary_files
    from eegvision.store.disk import open_store

    with user_errors():
        if (store / MANIFEST_NAME).is_file() or not store.is_dir() or temporary_files(store):
            summary = open_store(store).info()
        else:
            from eegvision.store.things_folder import open_things_eeg2

            summary = open_things_eeg2(store).info()
            summary["format"] = "THINGS-EEG2 pickles (read in place)"
    if summary.get("temporary_files"):
        names = summary["temporary_files"]
        stderr.print(f"[yellow]note:[/yellow] {len(names)} hidden temporary file(s) of an interrupted conversion "
                     f"({summary['temporary_mb']} MB) are in {store}: run the conversion again to finish it and "
                     f"remove them, or delete them ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}).",
                     highlight=False)
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"{summary['dataset']}  ·  {summary['path']}")
    table.add_column("subject")
    table.add_column("split")
    table.add_column("shape (cond, rep, chan, time)")
    for sub, splits in summary["subjects"].items():
        for split, shape in splits.items():
            table.add_row(sub, split, " × ".join(str(n) for n in shape))
    stdout.print(table)
    names = summary["ch_names"]
    shown = ", ".join(names) if channels or len(names) <= 12 else ", ".join(names[:8]) + f", ... ({len(names)})"
    stdout.print(f"dtype {summary['dtype']} · sfreq {summary['sfreq']:g} Hz · {summary['n_times']} samples "
                 f"({summary['tmin']:.3f} to {summary['tmax']:.3f} s) · {summary['n_chans']} channels")
    stdout.print(f"channels: {shown}")
    if summary.get("format"):
        stdout.print(summary["format"])
    elif summary.get("images"):
        for split, root in summary["images"].items():
            stdout.print(f"{split} images: {root or 'none'}")


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app (``convert things-eeg2`` lives on ``convert_app``)."""
    app.command("info")(info)
