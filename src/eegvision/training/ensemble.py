"""Seed ensembles: one unit of a run trained as ``FitConfig.ensemble`` models whose embeddings are averaged.

Member ``i`` is a full fit of the unit with seed ``config.seed + i`` (initialisation, batch order, dropout,
augmentation and repetition-mixing draws) and ``ensemble = 1``; every member uses the validation split of
``config.seed``, so each is selected on the same held-out training concepts and the ensemble is scored on them
too. A member is a unit folder of its own under the unit (``UNIT/members/seed-S/``, named by
:meth:`~eegvision.training.rundir.UnitFolder.member_folders`): config, checkpoints, history, selection, encoder,
test embeddings and metrics, so it can be evaluated alone and resumed. The unit itself holds the ensemble: its
encoder (:class:`~eegvision.models.encoders.ensemble.EnsembleEncoder`, the mean of the members' L2-normalised
embeddings), its test embeddings and metrics, and a ``selection.json`` with each member's selected epoch and the
ensemble's validation top-1 (``val_top1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from eegvision.training.config import FitConfig
from eegvision.training.module import embed_data, validation_topk
from eegvision.training.rundir import UnitFolder
from eegvision.training.unit import (
    _datasets,
    aligned_store,
    build_module,
    finish_unit,
    quiet_lightning,
    train_and_select,
    unit_encoder,
    write_unit_config,
)

__all__ = ["fit_ensemble", "member_configs", "validation_top1"]


def member_configs(config: FitConfig) -> list[FitConfig]:
    """The configs of the members: seeds ``config.seed .. config.seed + ensemble - 1``, one model each."""
    return [config.replace(seed=config.seed + i, ensemble=1) for i in range(config.ensemble)]


def fit_ensemble(config: FitConfig, store: Any, unit: dict, folder: UnitFolder, train_feats: Any, test_feats: Any,
                 *, resume: bool = False, primary: bool = True, callbacks: Sequence[Callback] = ()) -> list[dict]:
    """Train the members of ``unit`` (each as :func:`~eegvision.training.unit.fit_unit` trains one model), then
    save and evaluate their ensemble in ``folder``; returns the ensemble's result rows (members' rows stay in
    their folders)."""
    from eegvision.models.encoders.ensemble import EnsembleEncoder

    configs = member_configs(config)
    members = folder.member_folders([c.seed for c in configs])
    encoders, epochs = [], []
    data = None
    store = aligned_store(config, store, unit, folder if primary else None)
    for cfg, member in zip(configs, members):
        member.path.mkdir(parents=True, exist_ok=True)
        with quiet_lightning(not cfg.progress):
            pl.seed_everything(cfg.seed, workers=True, verbose=False)
            data = _datasets(cfg, store, unit, split_seed=config.seed)
            module = build_module(cfg, data, train_feats, test_feats,
                                  encoder=unit_encoder(cfg, store, unit, data, train_feats.dim))
            if primary:
                write_unit_config(cfg, unit, member, data, train_feats, test_feats, encoder=module.encoder)
            trained = train_and_select(cfg, module, member, callbacks, resume=resume)
        if trained is None:  # a non-primary DDP process
            continue
        history, selected = trained
        finish_unit(cfg, unit, member, module, data, test_feats, history, selected)
        encoders.append(module.encoder.cpu().eval())
        epochs.append(selected)
    if not primary or not encoders:
        return []

    ensemble = EnsembleEncoder.from_members(encoders).eval()
    write_unit_config(config, unit, folder, data, train_feats, test_feats, encoder=encoders[0])
    folder.write_config({"members": folder.member_dirs(members)})
    val_top1 = validation_top1(ensemble, data, train_feats)
    selection = {"selected_epoch": None, "member_epochs": epochs, "val_top1": val_top1,
                 "best_val": val_top1 if config.selection == "val_top1" else None,
                 "rule": "each member at its own selected epoch; val_top1 of the averaged embeddings"}
    return finish_unit(config, unit, folder, SimpleNamespace(encoder=ensemble), data, test_feats, [], -1,
                       selection=selection)


@torch.no_grad()
def validation_top1(encoder: Any, data: dict, train_feats: Any) -> float:
    """The validation top-1 of ``encoder`` as training scores it (k = 200, or all validation images)."""
    emb, cond = embed_data(encoder, data["val"], device="cpu")
    k = min(200, len(torch.unique(cond)))
    return float(validation_topk(emb, cond, train_feats.image.float(), k)[1])
