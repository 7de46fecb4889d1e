"""``fit(config, out)``: train encoders under a protocol and write a self-describing run directory.

Protocols (one *unit* = one freshly initialised model):

* ``within`` -- one unit per subject in ``config.subjects`` (train and test on that subject);
* ``loso`` -- one unit per held-out subject; it trains on every other subject (or
  ``config.train_subjects``) with their own subject ids, and is tested with id ``-1`` (the
  shared "unseen subject" token). No state passes between folds: each fold reseeds and builds
  its model and data from scratch;
* ``joint`` -- one unit trained on all ``config.subjects`` with per-sample subject ids, tested
  on each subject.

A unit directory holds::

    config.json                 FitConfig + data description + subject id mapping + version (the run's top
                                config.json also holds ``concepts.test``: the test split's concept table,
                                row i = test embedding row i when every test condition is its own concept)
    encoder/                    the selected model (model.safetensors + encoder config), load_encoder()
    last.ckpt                   Lightning checkpoint of the last epoch (resume)
    best-EEE.ckpt               Lightning checkpoint of the selected epoch
    history.csv                 epoch, train_loss, val_loss, val_top1, val_top5, lr, temperature
    test_embeddings.safetensors one tensor per test subject (row i = test condition i)
    metrics.json / metrics.csv  result rows (image and text, every k, exact + montecarlo + csls)

With one unit the run directory *is* the unit; with several, units are ``RUN/sub-XX/`` and
``RUN/metrics.{json,csv}`` concatenates their rows.

Model selection uses the held-out training-concept validation split (``val_top1``, the
200-way top-1 on averaged validation trials, or ``val_loss``); the test set is evaluated once,
at the end, for the selected model. ``report_test_curve`` additionally records per-epoch
test top-1 as the labelled extra ``best_epoch_on_test_top1``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from eegvision import __version__
from eegvision.data.sources import open_data
from eegvision.training.config import FitConfig
from eegvision.utils import write_text_atomic

__all__ = ["fit", "open_data", "plan_units", "resolve_feature_paths", "load_training_features"]


# ----------------------------------------------------------------------------- inputs
def resolve_feature_paths(config: FitConfig) -> dict[str, Path]:
    """``{"train": path, "test": path}``: the configured files, else ``DATA/features/{split}.safetensors``."""
    out = {}
    for split, given in (("train", config.features_train), ("test", config.features_test)):
        p = Path(given).expanduser() if given else Path(config.data) / "features" / f"{split}.safetensors"
        if not p.is_file():
            raise FileNotFoundError(
                f"{split} features not found at {p}. Pass --features-{split} FILE (an eegvision .safetensors "
                f"feature file, or an ATM-style .pt with --features-normalized/--no-features-normalized), or "
                f"extract them into DATA/features/{split}.safetensors with `eegvision features`.")
        out[split] = p
    return out


def load_training_features(config: FitConfig, path: Path, cache_dir: Path, expect_normalized: bool | None,
                           concepts=None):
    """Load a feature file; an ATM-style ``.pt`` is first imported with the explicit normalisation flag.

    ``concepts`` (the data split's :class:`~eegvision.store.concepts.ConceptTable`) is checked against the
    table the file records, when it records one."""
    from eegvision.features.files import import_atm_features, load_features

    if path.suffix.lower() in (".pt", ".pth"):
        if config.features_normalized is None:
            raise ValueError(f"{path} is an ATM-style .pt feature file: say whether to L2-normalise it with "
                             "--features-normalized (retrieval) or --no-features-normalized (raw, generation).")
        target = cache_dir / f"{path.stem}.{'normalized' if config.features_normalized else 'raw'}.safetensors"
        if not target.is_file():
            import_atm_features(path, target, normalize=bool(config.features_normalized))
        path = target
    return load_features(path, expect_normalized=expect_normalized, expect_concepts=concepts)


def plan_units(config: FitConfig, store_subjects: list[str]) -> list[dict[str, Any]]:
    """The units (folds) of a run: ``[{name, train_subjects, test_subjects}]``."""
    subjects = list(config.subjects)
    if not subjects and config.protocol != "loso":
        raise ValueError("No subject given: pass --subject sub-01 (several as sub-01,sub-02).")
    unknown = [s for s in subjects + list(config.train_subjects) if s not in store_subjects]
    if unknown:
        from eegvision.utils import close_matches

        hints = {s: close_matches(s, store_subjects) for s in unknown}
        raise ValueError(f"Unknown subject(s) {unknown} (close: {hints}); the data holds {store_subjects}.")
    if config.protocol == "within":
        return [{"name": s, "train_subjects": [s], "test_subjects": [s]} for s in subjects]
    if config.protocol == "joint":
        return [{"name": "joint", "train_subjects": subjects, "test_subjects": subjects}]
    held_out = subjects or list(store_subjects)
    units = []
    for s in held_out:
        train = [t for t in (config.train_subjects or store_subjects) if t != s]
        if not train:
            raise ValueError(f"LOSO fold {s} has no training subject; the data holds only {store_subjects}.")
        units.append({"name": s, "train_subjects": train, "test_subjects": [s]})
    return units


# ----------------------------------------------------------------------------- run directory
def _is_primary_process() -> bool:
    """False in the extra processes Lightning's DDP launcher starts (they must not touch RUN/ files)."""
    if "RANK" in os.environ:
        return os.environ["RANK"] == "0"
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _check_run_dir(run_dir: Path, config: FitConfig, resume: bool) -> None:
    cfg_path = run_dir / "config.json"
    if cfg_path.is_file() and not any(run_dir.rglob("*.ckpt")) and not (run_dir / "metrics.json").is_file():
        return  # a run that failed before its first epoch: nothing to lose, start it again
    if cfg_path.is_file():
        try:
            old = FitConfig.from_json(cfg_path)
        except (ValueError, json.JSONDecodeError) as err:
            raise FileExistsError(f"{run_dir} holds a config.json this version cannot read ({err}); choose a new "
                                  "--out path.") from None
        diff = old.differences(config)
        if diff:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in sorted(diff.items())))
            raise FileExistsError(f"{run_dir} holds a different run (differs in {shown}). Choose a new --out path, "
                                  "or delete that directory to start over.")
        if not resume:
            state = "a finished" if (run_dir / "metrics.json").is_file() else "an interrupted"
            raise FileExistsError(f"{run_dir} already holds {state} run with this config. Pass --resume to "
                                  "continue it (e.g. with more --epochs), or choose a new --out path.")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir} exists and is not an eegvision run directory (no config.json). Choose a "
                              "new --out path or an empty directory.")


@contextlib.contextmanager
def _quiet_lightning(quiet: bool) -> Iterator[None]:
    names = ("lightning.pytorch", "lightning.fabric", "lightning")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
    try:
        import warnings

        with warnings.catch_warnings():
            if quiet:
                warnings.filterwarnings("ignore", module="lightning")
                warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


# ----------------------------------------------------------------------------- main entry
def fit(config: FitConfig, out: str | os.PathLike, *, resume: bool = False) -> Path:
    """Train according to ``config`` and write the run directory ``out``.

    Parameters
    ----------
    config : FitConfig
        What to train (see :class:`eegvision.training.config.FitConfig`).
    out : path
        Run directory. If it holds a run with a different config, a ``FileExistsError`` says so;
        with the same config it must be resumed (``resume=True``).
    resume : bool
        Continue an interrupted run from each unit's ``last.ckpt`` (identical results to an
        uninterrupted run); ``config.epochs`` may be raised to train longer.

    Returns
    -------
    Path
        The run directory.

    Examples
    --------
    >>> cfg = FitConfig(data="store/", subjects=["sub-01"], encoder="atms", epochs=40)  # doctest: +SKIP
    >>> run = fit(cfg, "runs/atms-sub-01")                                             # doctest: +SKIP
    """
    config.validate()
    run_dir = Path(out).expanduser()
    primary = _is_primary_process()
    if primary:
        _check_run_dir(run_dir, config, resume)
    store = open_data(config.data)
    units = plan_units(config, list(store.subjects))
    paths = resolve_feature_paths(config)
    tables = {split: store.concept_table(split) for split in ("training", "test")}
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        top = {"fit": config.to_dict(), "eegvision_version": __version__, "units": [u["name"] for u in units],
               "unit_dirs": [] if len(units) == 1 else [u["name"] for u in units],
               "feature_files": {k: str(v) for k, v in paths.items()},
               "concepts": {"test": tables["test"].to_json()}}
        write_text_atomic(run_dir / "config.json", json.dumps(top, indent=2) + "\n")

    expect = config.objective == "retrieval" if not config.reference_loss else None
    cache = run_dir / "features"
    train_feats = load_training_features(config, paths["train"], cache, expect, tables["training"])
    test_feats = load_training_features(config, paths["test"], cache, None, tables["test"])

    from eegvision.training.unit import fit_unit

    all_rows: list[dict] = []
    for unit in units:
        unit_dir = run_dir if len(units) == 1 else run_dir / unit["name"]
        rows = fit_unit(config, store, unit, unit_dir, train_feats, test_feats, resume=resume,
                        primary=primary)
        all_rows.extend(rows)
    if primary and len(units) > 1:
        from eegvision.evaluation.results import write_results

        write_results(all_rows, run_dir / "metrics.json")
        write_results(all_rows, run_dir / "metrics.csv")
    return run_dir


def torch_load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a Lightning checkpoint this package wrote (trusted file; holds non-tensor state)."""
    return torch.load(path, map_location="cpu", weights_only=False)
