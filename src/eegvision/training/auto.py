"""``encoder="auto"``: fit a linear and a neural candidate for each unit and keep the one that wins on validation.

Why
---
No single recipe wins on every kind of data. On the generalisation benchmark (``docs/families.md``,
``benchmarks/results/sim_generalization.md``) the closed-form ``ridge`` encoder is at or above whitened ridge on
every family while the STConv recipe is far above it on one family (``eegvision``: 0.285 vs 0.035 200-way top-1)
and below it on others. Which one a new dataset favours cannot be known in advance, but it can be measured on
that dataset's own held-out *training* concepts, which is what this default does.

How
---
For each unit, with the validation split of ``config.seed`` and ``config.val_fraction`` (whole training concepts
held out; the test split is never looked at):

1. ``ridge``: solved in closed form on the *fitting* conditions only (the validation concepts left out; its penalty
   by grouped cross-validation inside them, :mod:`eegvision.training.closed_form`), then scored on the validation
   conditions — repetition-averaged, k-way among the validation images (k = min(200, their number)), as training
   scores a neural model's epochs.
2. ``stconv``: trained as :func:`~eegvision.training.unit.fit_unit` trains any encoder — on the same fitting
   conditions, selected on the same validation conditions — in ``UNIT/candidates/stconv/`` (resumable). Its score
   is the validation top-1 of its selected epoch. That epoch was chosen on the same split, which favours the
   neural candidate slightly (a maximum over epochs); this is stated in ``auto.json``.
3. The higher score wins (a tie goes to ``ridge``, the cheaper and steadier one). A ``ridge`` winner is refitted on
   all training conditions, as a ``ridge`` run is; an ``stconv`` winner is copied into the unit folder as trained.
   Either way the unit folder is then exactly what a run of the winning encoder holds (``evaluate``, ``embed``,
   ``prior``, ``reconstruct`` and ``report`` read it unchanged), plus ``auto.json``: both candidates' validation
   scores, their recipes, the rule and the winner.

The candidates' recipes (:data:`AUTO_CANDIDATES`) are fixed: training options of ``FitConfig`` (epochs, learning
rate, augmentations, ...) other than their defaults are refused with ``encoder="auto"`` rather than silently
applied to one candidate; options about the data (``whiten``, ``align``, ``channels``, ``window``, subjects,
``val_fraction``, ``seed``) apply to both.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import Any

from eegvision.training.closed_form import fit_closed_form_unit, solve_linear
from eegvision.training.config import FitConfig
from eegvision.training.ensemble import validation_top1
from eegvision.training.rundir import UnitFolder
from eegvision.training.unit import _datasets, aligned_store, fit_unit

_CANDIDATES_DIR = "candidates"

__all__ = ["AUTO_CANDIDATES", "candidate_config", "fit_auto_unit"]

#: The candidates of ``encoder="auto"``: FitConfig fields of each (on top of the user's data options).
AUTO_CANDIDATES: dict[str, dict[str, Any]] = {
    "ridge": {"encoder": "ridge"},
    "stconv": {"encoder": "stconv", "epochs": 40, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.01,
               "schedule": "cosine", "mix_repetitions": True, "patience": 10},
}

def candidate_config(config: FitConfig, name: str) -> FitConfig:
    """The FitConfig of candidate ``name``: ``config`` with the candidate's recipe fields."""
    return config.replace(**AUTO_CANDIDATES[name])


def fit_auto_unit(config: FitConfig, store: Any, unit: dict, folder: UnitFolder, train_feats: Any, test_feats: Any,
                  *, resume: bool = False, primary: bool = True, callbacks: Sequence[Any] = ()) -> list[dict]:
    """Fit both candidates of ``unit``, keep the validation winner in ``folder`` (module docstring); returns the
    winner's result rows (empty on non-primary processes)."""
    folder.path.mkdir(parents=True, exist_ok=True)
    scores: dict[str, float] = {}

    ridge_cfg = candidate_config(config, "ridge")
    aligned = aligned_store(config, store, unit)
    data = _datasets(ridge_cfg, aligned, unit)
    n_val = int(len(data["split"].val_conditions))
    if primary:
        encoder, res, _, _ = solve_linear(ridge_cfg, aligned, unit, train_feats,
                                          conditions=data["split"].train_conditions)
        scores["ridge"] = validation_top1(encoder.eval(), data, train_feats)

    # a small subject cannot fill the recipe's batch: one batch of all its fitting conditions per step instead
    neural_cfg = candidate_config(config, "stconv")
    n_fit = len(data["split"].train_conditions) * len(unit["train_subjects"])
    neural_cfg = neural_cfg.replace(batch_size=min(neural_cfg.batch_size, n_fit))
    neural = folder.candidate_folder("stconv")
    fit_unit(neural_cfg, store, unit, neural, train_feats, test_feats, resume=resume, primary=primary,
             callbacks=callbacks)
    if not primary:
        return []
    scores["stconv"] = float(neural.read_selection()["val_top1"])

    winner = "stconv" if scores["stconv"] > scores["ridge"] else "ridge"
    if winner == "ridge":
        rows = fit_closed_form_unit(ridge_cfg, store, unit, folder, train_feats, test_feats)
    else:
        for item in neural.path.iterdir():
            target = folder.path / item.name
            if item.name == _CANDIDATES_DIR or item == neural.config_path:
                continue
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copy2(item, target)
        folder.write_config({k: v for k, v in neural.read_config().items() if k != "fit"})
        rows = folder.read_metrics()
    # the unit keeps the run's own FitConfig (encoder "auto": what `fit --resume` compares); the winner's is beside it
    folder.write_config({"fit": config.to_dict(), "auto_winner_fit": candidate_config(config, winner).to_dict()})
    folder.write_auto({
        "winner": winner, "val_top1": scores, "n_val_conditions": n_val,
        "rule": "validation top-1 among the validation images (k = min(200, their number)); a tie goes to ridge",
        "candidates": {n: {k: v for k, v in AUTO_CANDIDATES[n].items()} for n in AUTO_CANDIDATES},
        "stconv_batch_size": neural_cfg.batch_size,
        "ridge_penalty_on_fitting_conditions": float(res.alpha),
        "note": "stconv's score is at its selected epoch, chosen on the same validation split (a maximum over "
                "epochs, slightly favouring it); ridge was refitted on all training conditions when it won",
    })
    return rows
