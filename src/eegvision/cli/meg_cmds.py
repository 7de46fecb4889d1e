"""CLI commands: ``preprocess things-eeg2`` (raw → 250 Hz), ``convert things-meg`` and ``convert epochs``."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import typer

from eegvision.cli._apps import convert_app, preprocess_app
from eegvision.cli._common import split_list, stderr, stdout, user_errors


@contextlib.contextmanager
def _show_warnings() -> Iterator[None]:
    """Print the library's warnings (dropped epochs, unequal repetitions) as console notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, UserWarning):
                    stderr.print(f"[yellow]note:[/yellow] {w.message}")


def _check_dtype(dtype: str) -> None:
    from eegvision.checks import check_choice

    check_choice("--dtype", dtype, ("float16", "float32"))


def _summary(path: Path) -> None:
    from eegvision.store.disk import open_store

    info = open_store(path).info()
    shapes = "; ".join(f"{sub} " + ", ".join(f"{split} {tuple(shape)}" for split, shape in splits.items())
                       for sub, splits in info["subjects"].items())
    stdout.print(f"store {path}: {shapes}; {info['dtype']}, {info['size_mb']} MB")


@preprocess_app.command("things-eeg2")
def preprocess_things_eeg2_cmd(
    raw_root: Path = typer.Argument(..., help="Folder with sub-XX/ses-0S/raw_eeg_{training,test}.npy (or its parent)."),
    out: Path = typer.Argument(..., help="Output folder for sub-XX/preprocessed_eeg_*.npy, or a store with --store."),
    subjects: str | None = typer.Option(None, "--subjects", help="Comma-separated subjects, e.g. sub-01,sub-02."),
    sessions: str | None = typer.Option(None, "--sessions", help="Comma-separated session numbers (default: all)."),
    sfreq: float = typer.Option(250.0, "--sfreq", help="Target sampling rate in Hz."),
    mvnn_covariance: str = typer.Option(
        "train", "--mvnn-covariance",
        help="Noise covariance: 'train' (training partition, the ATM reference) or 'both' (Gifford et al.)."),
    seed: int = typer.Option(20200220, "--seed", help="Seed of the repetition choice and shuffle."),
    store: bool = typer.Option(False, "--store", help="Write an eegvision store at OUT instead of pickles."),
    dtype: str = typer.Option("float16", "--dtype", help="Store dtype with --store: float16 or float32."),
    images: Path | None = typer.Option(
        None, "--images", help="With --store: folder holding training_images/ and test_images/."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output."),
) -> None:
    """Preprocess raw THINGS-EEG2 like the published pipeline (MNE epochs, 250 Hz, MVNN, session merge).

    Writes drop-in Preprocessed_data_250Hz files (float64 pickles, 300 listed times) or a store (--store).
    One session is in memory at a time; intermediate arrays live in temporary files beside OUT.

    Example: eegvision preprocess things-eeg2 ~/things-eeg2/Raw_data ~/things-eeg2/prep --subjects sub-01
    """
    from eegvision.preprocess.raw_things_eeg2 import preprocess_things_eeg2

    with user_errors():
        _check_dtype(dtype)
        with _show_warnings():
            path = preprocess_things_eeg2(
                raw_root, out, subjects=split_list(subjects), sessions=split_list(sessions), sfreq=sfreq,
                mvnn_covariance=mvnn_covariance, seed=seed, to_store=store, dtype=dtype, images=images,
                overwrite=overwrite,
            )
        if store:
            _summary(path)
        else:
            files = sorted(path.glob("sub-*/preprocessed_eeg_*.npy"))
            stdout.print(f"wrote {len(files)} file(s) under {path}")


@convert_app.command("things-meg")
def convert_things_meg_cmd(
    src: Path = typer.Argument(..., help="Folder holding preprocessed_P1-epo.fif ... preprocessed_P4-epo.fif."),
    store: Path = typer.Argument(..., help="Output store folder."),
    concept_index: Path | None = typer.Option(
        None, "--concept-index", help="THINGS image_concept_index.csv (default: searched under SRC)."),
    image_paths: Path | None = typer.Option(
        None, "--image-paths", help="THINGS image_paths.csv, for concept names and image paths (optional)."),
    images: Path | None = typer.Option(
        None, "--images", help="THINGS folder the image_paths.csv entries are relative to."),
    subjects: str | None = typer.Option(None, "--subjects", help="Comma-separated subjects: sub-01,P2,3."),
    dtype: str = typer.Option("float16", "--dtype", help="Storage type: float16 (default) or float32."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different store at STORE."),
) -> None:
    """Convert THINGS-MEG epochs: 0-1 s (201 samples), catch trials dropped, 200 test images x 12 repetitions,
    training images of the test concepts excluded. Values in fT.

    Example: eegvision convert things-meg ~/ds004212/derivatives/preprocessed ~/data/meg-store --concept-index ~/THINGS/Metadata/Concept-specific/image_concept_index.csv
    """
    from eegvision.store.convert import convert_things_meg

    with user_errors():
        _check_dtype(dtype)
        with _show_warnings():
            path = convert_things_meg(src, store, concept_index_csv=concept_index, image_paths_csv=image_paths,
                                      subjects=split_list(subjects), dtype=dtype, images=images, overwrite=overwrite)
        _summary(path)


@convert_app.command("epochs")
def convert_epochs_cmd(
    fif: Path = typer.Argument(..., help="An MNE epochs file (*-epo.fif)."),
    metadata: Path = typer.Argument(
        ..., help="CSV/TSV, one row per epoch: image_path, concept, split (training/test), and optionally "
                  "subject and image_id."),
    store: Path = typer.Argument(..., help="Output store folder."),
    subject: str = typer.Option("sub-01", "--subject", help="Subject name when the table has no subject column."),
    min_reps: int | None = typer.Option(
        None, "--min-reps",
        help="Allow unequal repetitions: drop images with fewer epochs, keep the smallest remaining count."),
    tmin: float | None = typer.Option(None, "--tmin", help="Window start in s (default: epoch start)."),
    tmax: float | None = typer.Option(None, "--tmax", help="Window end in s, inclusive (default: epoch end)."),
    images: Path | None = typer.Option(None, "--images", help="Folder the image_path values are relative to."),
    dataset: str = typer.Option("epochs", "--dataset", help="Dataset name recorded in the store."),
    si_units: bool = typer.Option(False, "--si-units", help="Keep volts/teslas (default: µV, fT, fT/cm)."),
    dtype: str = typer.Option("float16", "--dtype", help="Storage type: float16 (default) or float32."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different store at STORE."),
) -> None:
    """Convert any MNE epochs + per-epoch metadata table into a store (conditions = unique images,
    sorted by concept then path; repetitions = the epochs of an image, in recording order).

    Example: eegvision convert epochs sub-01-epo.fif sub-01_events.tsv ~/data/my-store --tmin 0 --tmax 1
    """
    from eegvision.readers.epochs import STORE_UNITS
    from eegvision.store.convert import convert_epochs

    with user_errors():
        _check_dtype(dtype)
        with _show_warnings():
            path = convert_epochs(fif, metadata, store, subject=subject, min_reps=min_reps, dtype=dtype, tmin=tmin,
                                  tmax=tmax, images=images, dataset=dataset,
                                  units=None if si_units else STORE_UNITS, overwrite=overwrite)
        _summary(path)


def register(app: typer.Typer) -> None:
    """The commands live on the shared ``preprocess`` and ``convert`` sub-apps (registered on import)."""
