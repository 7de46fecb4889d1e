"""``fit(config, out)``: train encoders under a protocol and write a self-describing run folder.

Protocols (one *unit* = one freshly initialised model):

* ``within`` -- one unit per subject in ``config.subjects`` (train and test on that subject);
* ``loso`` -- one unit per held-out subject; it trains on every other subject (or
  ``config.train_subjects``) with their own subject ids, and is tested with id ``-1`` (the
  shared "unseen subject" token). No state passes between folds: each fold reseeds and builds
  its model and data from scratch;
* ``joint`` -- one unit trained on all ``config.subjects`` with per-sample subject ids, tested
  on each subject.

The run folder (config, units, checkpoints, history, encoder, test embeddings, metrics) is laid out
and read by :class:`~eegvision.training.rundir.RunFolder`. With one unit the run folder *is* the
unit; with several, units are ``RUN/<unit>/`` and ``RUN/metrics.{json,csv}`` concatenates their rows.

Closed-form encoders (``ridge``) are solved instead of trained, into the same unit folder
(:mod:`eegvision.training.closed_form`; penalty by cross-validation over held-out training concepts).

Model selection uses the held-out training-concept validation split (``val_top1``, the
200-way top-1 on averaged validation trials, or ``val_loss``); the test set is evaluated once,
at the end, for the selected model. ``report_test_curve`` additionally records per-epoch
test top-1 as the labelled extra ``best_epoch_on_test_top1``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eegvision.data import sources
from eegvision.evaluation.results import headline
from eegvision.features.fused import fuse_targets
from eegvision.training.auto import fit_auto_unit
from eegvision.training.closed_form import fit_closed_form_unit, ridge_init
from eegvision.training.config import FitConfig, is_closed_form
from eegvision.training.ensemble import fit_ensemble
from eegvision.training.inputs import (
    check_inputs,
    load_target_features,
    load_training_features,
    plan_units,
    resolve_feature_paths,
)
from eegvision.training.losses import TargetHeads
from eegvision.training.rundir import RunFolder
from eegvision.training.unit import fit_unit

__all__ = ["FitResult", "fit"]


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    run : RunFolder
        The run folder written.
    units : list of str
        The units trained, in order (a subject each, or ``joint``).
    rows : list of dict
        Result rows of every unit (also in ``metrics.json``); empty on non-primary DDP processes.
    """

    run: RunFolder
    units: list[str]
    rows: list[dict]

    @property
    def path(self) -> Path:
        """The run folder's path."""
        return self.run.path

    @property
    def summary(self) -> dict:
        """Mean image top-1/top-5 over test subjects at the largest k (see
        :func:`eegvision.evaluation.results.headline`)."""
        return headline(self.rows)


# ----------------------------------------------------------------------------- run folder
def _is_primary_process() -> bool:
    """False in the extra processes Lightning's DDP launcher starts (they must not touch RUN/ files)."""
    if "RANK" in os.environ:
        return os.environ["RANK"] == "0"
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _check_run_dir(run: RunFolder, config: FitConfig, resume: bool) -> None:
    if resume and not run.exists():
        raise FileNotFoundError(f"Nothing to resume: {run.path} holds no run (no {run.config_path.name}). Check "
                                "--out (the folder of the interrupted run), or drop --resume to start a new run.")
    if run.exists() and not run.has_checkpoints() and not run.has_metrics():
        return  # a run that failed before its first epoch: nothing to lose, start it again
    if run.exists():
        try:
            old = run.fit_config()
        except (ValueError, KeyError, json.JSONDecodeError) as err:
            raise FileExistsError(f"{run.path} holds a {run.config_path.name} this version cannot read ({err}); "
                                  "choose a new --out path.") from None
        diff = old.differences(config)
        if diff:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in sorted(diff.items())))
            raise FileExistsError(f"{run.path} holds a different run (differs in {shown}). Choose a new --out "
                                  "path, or delete that directory to start over.")
        if not resume:
            state = "a finished" if run.has_metrics() else "an interrupted"
            raise FileExistsError(f"{run.path} already holds {state} run with this config. Pass --resume to "
                                  "continue it (e.g. with more --epochs), or choose a new --out path.")
    elif run.path.exists() and any(run.path.iterdir()):
        raise FileExistsError(f"{run.path} exists and is not an eegvision run directory (no "
                              f"{run.config_path.name}). Choose a new --out path or an empty directory.")


# ----------------------------------------------------------------------------- main entry
def fit(config: FitConfig, out: str | os.PathLike, *, resume: bool = False,
        callbacks: Sequence[Any] = ()) -> FitResult:
    """Train according to ``config`` and write the run folder ``out``.

    Parameters
    ----------
    config : FitConfig
        What to train (see :class:`eegvision.training.config.FitConfig`).
    out : path
        Run folder. If it holds a run with a different config, a ``FileExistsError`` says so;
        with the same config it must be resumed (``resume=True``).
    resume : bool
        Continue an interrupted run from each unit's ``last.ckpt`` (identical results to an
        uninterrupted run); ``config.epochs`` may be raised to train longer.
    callbacks : sequence of lightning Callback
        Added to every unit's trainer (e.g. the pruning reporter of :mod:`eegvision.training.tune`).

    Returns
    -------
    FitResult
        The run folder, its units and the result rows.

    Examples
    --------
    >>> cfg = FitConfig(data="store/", subjects=["sub-01"], encoder="atms", epochs=40)  # doctest: +SKIP
    >>> result = fit(cfg, "runs/atms-sub-01")                                          # doctest: +SKIP
    >>> result.summary["top1"]                                                         # doctest: +SKIP
    """
    config.validate()
    run = RunFolder(Path(out))
    primary = _is_primary_process()
    if primary:
        _check_run_dir(run, config, resume)
    existed = run.path.exists()
    before = set(run.path.iterdir()) if existed else set()
    try:
        store = sources.open_data(config.data)
        units = plan_units(config, list(store.subjects))
        names = [u["name"] for u in units]
        paths = resolve_feature_paths(config)
        tables = {split: store.concept_table(split) for split in ("training", "test")}

        expect = config.objective == "retrieval" if not config.reference_loss else None
        train_feats = load_training_features(config, paths["train"], run.feature_cache, expect, tables["training"])
        test_feats = load_training_features(config, paths["test"], run.feature_cache, None, tables["test"])
        check_inputs(config, store, units, train_feats, test_feats)
        heads, fusion, solve_config = None, None, config
        if config.fusion_encoder is not None:  # BrainHiVE: the primary and --target files are the module's inputs
            from eegvision.models.fusion_encoder import concat_features

            extras = load_target_features(config, run.feature_cache, tables) if config.targets else []
            _check_target_rows(config, extras, train_feats, test_feats)
            run.feature_cache.mkdir(parents=True, exist_ok=True)
            train_feats, test_feats = (concat_features([pair[k] for pair in [(train_feats, test_feats), *extras]],
                                                       run.feature_cache / f"fusion_input.{split}.safetensors")
                                       for k, split in ((0, "train"), (1, "test")))
            paths = {"train": train_feats.path, "test": test_feats.path}
        elif config.target_mode == "learned":
            from eegvision.training.fusion import stack_layer_targets

            extras = load_target_features(config, run.feature_cache, tables) if config.targets else []
            _check_target_rows(config, extras, train_feats, test_feats)
            fusion = stack_layer_targets((train_feats, test_feats), extras,
                                         [str(paths["train"])] + [t["train"] for t in config.targets])
        elif config.targets:
            extras = load_target_features(config, run.feature_cache, tables)
            _check_target_rows(config, extras, train_feats, test_feats)
            if config.target_mode == "fused":
                weights = [config.primary_weight] + [t["weight"] for t in config.targets]
                if config.target_weights == "cv":  # a weight of 0 drops its target
                    weights, solve_config = _cv_target_weights(config, store, units, run, train_feats, extras)
                    extras = [e for e, w in zip(extras, weights[1:]) if w > 0]
                    weights = weights[:1] + [w for w in weights[1:] if w > 0]
                run.feature_cache.mkdir(parents=True, exist_ok=True)
                train_feats, test_feats, _ = fuse_targets((train_feats, test_feats), extras, weights,
                                                          config.target_dim, out_dir=run.feature_cache)
                paths = {"train": train_feats.path, "test": test_feats.path}
            else:
                heads = TargetHeads.from_features([e[0] for e in extras], [t["weight"] for t in config.targets],
                                                  config.primary_weight)
        blur = _blur_targets(config, run, tables, train_feats) if config.blur_levels else None
        if primary:
            run.write_config(config, names, paths, concepts=tables, data=config.data)

        all_rows: list[dict] = []
        fit_one = (fit_auto_unit if config.encoder == "auto"
                   else fit_closed_form_unit if is_closed_form(config.encoder) else fit_unit)
        extra = {"wrap": ridge_init(config, train_feats)} if config.ridge_init else {}
        if heads is not None:
            extra["heads"] = heads
        if blur is not None:
            extra["blur"] = blur
        if fusion is not None:
            extra["fusion"] = fusion
        for unit, folder in zip(units, run.planned_units(names)):
            train = fit_ensemble if config.ensemble > 1 else fit_one
            all_rows += train(solve_config, store, unit, folder, train_feats, test_feats, resume=resume,
                              primary=primary, callbacks=callbacks, **extra)
    except BaseException:
        if primary and not run.has_checkpoints():
            _remove_new_files(run, existed, before)
        raise
    if primary and len(units) > 1:
        run.write_metrics(all_rows)
    return FitResult(run=run, units=names, rows=all_rows)


def _check_target_rows(config: FitConfig, extras: list[tuple[Any, Any]], train_feats: Any, test_feats: Any) -> None:
    """Each extra target holds one row per training and test image, as the primary does."""
    for (tr, te), spec in zip(extras, config.targets):
        if (len(tr), len(te)) != (len(train_feats), len(test_feats)):
            raise ValueError(f"Target {spec['train']} holds {len(tr)} training and {len(te)} test rows; the "
                             f"primary features hold {len(train_feats)} and {len(test_feats)} (one per image "
                             "of each split, in the data's order). Extract it from the same image folders.")


def _blur_targets(config: FitConfig, run: RunFolder, tables: dict, train_feats: Any) -> Any:
    """``FitConfig.blur_levels``: the ``(3, n_images, dim)`` low / medium (the primary) / high blur targets."""
    import torch

    levels = []
    for name, path in zip(("low", "high"), config.blur_levels):
        if not Path(path).is_file():
            raise FileNotFoundError(f"The {name}-blur feature file {path} (--blur-levels LOW,HIGH) does not exist; "
                                    "extract the three blur levels with `eegvision features IMAGES OUT --prior blur` "
                                    "and give the low and high training files.")
        f = load_training_features(config, Path(path), run.feature_cache, None, tables["training"])
        if f.image.shape != train_feats.image.shape:
            raise ValueError(f"The {name}-blur features {path} hold {tuple(f.image.shape)}; the primary (medium) "
                             f"training features hold {tuple(train_feats.image.shape)}. Extract every level from the "
                             "same training images with the same model.")
        levels.append(f.image.float())
    return torch.stack([levels[0], train_feats.image.float(), levels[1]])


def _cv_target_weights(config: FitConfig, store: Any, units: list[dict], run: RunFolder, train_feats: Any,
                       extras: list[tuple[Any, Any]]) -> tuple[list[float], FitConfig]:
    """``target_weights='cv'``: the subject's fused-target weights and ridge penalty by grouped CV
    (:func:`eegvision.training.layer_select.select_target_weights`), written to ``RUN/target_weights.json``.
    Returns the weights (primary first) and the config the unit is solved with (the chosen penalty only; the
    run's ``config.json`` keeps the config as given)."""
    from eegvision.training.layer_select import select_target_weights
    from eegvision.utils import write_text_atomic

    if len(units) != 1:
        raise ValueError(f"target_weights='cv' chooses the weights for one subject; this run has {len(units)} units "
                         f"({', '.join(u['name'] for u in units)}). Fit one subject per run (--subject sub-01), or "
                         "use target_weights='fixed'.")
    choice = select_target_weights(config, store, units[0], train_feats, [e[0] for e in extras])
    record = {"unit": units[0]["name"], "targets": ["primary"] + [t["train"] for t in config.targets],
              "grid": config.target_weight_grid, **choice.to_dict()}
    run.path.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run.path / "target_weights.json", json.dumps(record, indent=1) + "\n")
    options = {**config.encoder_options, "alphas": [choice.alpha]}
    return choice.weights, config.replace(encoder_options=options)


def _remove_new_files(run: RunFolder, existed: bool, before: set[Path]) -> None:
    """Undo a fit that failed before its first checkpoint: remove what it created in the run folder (the folder
    too when it made it), nothing that was there before."""
    if not run.path.exists():
        return
    if not existed:
        shutil.rmtree(run.path, ignore_errors=True)
        return
    for path in set(run.path.iterdir()) - before:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
