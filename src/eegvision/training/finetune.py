"""Fine-tune a trained encoder on a new subject or a new paradigm with few trials.

``finetune(parent, FinetuneConfig(data=..., subject=...), out)`` starts from the selected encoder of
a run written by :func:`eegvision.training.fitting.fit` (or, with ``parent=None``, from a fresh encoder
with local pretrained weights, e.g. ``init="braindecode:Labram", pretrained="labram.safetensors"``),
trains it on the first ``n_trials`` training trials of ``subject`` in ``data`` with the module and
trainer of ``fit`` (:func:`~eegvision.training.unit.build_module`,
:func:`~eegvision.training.unit.train_and_select`: the same checkpoints, validation-based selection
and evaluation), and writes ``out`` in the run format, so ``load_run``/``evaluate_run``/``eegvision
evaluate`` work on it. ``out/finetune.json`` records the parent, the frozen parameters and the trials
used (:meth:`FinetuneResult.record`); ``out/finetune_trials.tsv`` lists them.

Trials
------
The new data's training split is divided like ``fit`` does: ``val_fraction`` of its concepts
are held out (averaged trials, used only for model selection), the rest are the fine-tuning
pool. The pool's single trials (or averaged conditions with ``average_train``) are put in one
seeded order; ``n_trials=N`` takes the first N, so budgets are nested (the 10 trials of
``N=10`` are among the 50 of ``N=50``). ``n_conditions=M`` instead takes every trial of the first
M conditions of a seeded condition order. ``n_trials=0`` trains nothing: ``out`` holds the
parent encoder evaluated on the new data (the zero-shot baseline).

Subjects
--------
A subject the parent was trained on keeps its id (new paradigm, same person). A new subject
gets, with ``subject_token="shared"`` (default), the parent's shared "unseen subject" token
(id ``-1``), which fine-tuning then adapts; ``"new"`` appends a row to every subject table
initialised from the shared token, ``"mean"`` one initialised from the mean of the trained
rows. Encoders without subject tables (NICE, EEGProject) ignore the choice.

Freezing
--------
``freeze`` names parameter groups (:mod:`eegvision.training.freeze`): ``"none"``, ``"encoder"``
(the temporal-spatial convolution: TSConv of ATM-S/NICE, the input projection of EEGProject,
the backbone of braindecode models), ``"attention"`` (the channel transformer of ATM-S,
attention blocks of braindecode transformers), ``"subject"`` (subject tokens), or
``"all-but-head"`` (everything except the head each encoder declares); groups combine with commas
(``"encoder,attention"``). Frozen parameters get ``requires_grad=False`` and their modules run
in eval mode during training (no dropout, fixed BatchNorm statistics), so they are unchanged bit
for bit.

Steps
-----
``epochs`` passes over the fine-tuning trials, but at least ``min_steps`` optimiser steps (with
10 trials an epoch is one step); validation runs about 20 times in all.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eegvision import __version__
from eegvision.checks import check_name
from eegvision.data import sources
from eegvision.training.config import SUBJECT_TOKENS, FinetuneConfig, FitConfig
from eegvision.training.freeze import FREEZE_GROUPS, frozen_parameter_names, parameter_groups
from eegvision.training.inputs import load_training_features, resolve_feature_paths
from eegvision.training.rundir import RunFolder, UnitFolder
from eegvision.utils import atomic_path

__all__ = ["FREEZE_GROUPS", "SUBJECT_TOKENS", "FinetuneConfig", "FinetuneResult", "TrialSubset", "add_subject_row",
           "finetune", "frozen_parameter_names", "parameter_groups"]


# ----------------------------------------------------------------------------- subjects
def add_subject_row(encoder: nn.Module, init: str = "shared") -> tuple[nn.Module, int]:
    """A copy of ``encoder`` with one more row in every subject table, initialised from the shared
    token (``init="shared"``) or the mean of the trained rows (``"mean"``); returns ``(encoder, new_id)``.

    Encoders without subject tables are returned unchanged with id ``-1``.
    """
    tables = encoder.subject_tables()
    if not tables:
        return encoder, -1
    if any(m.id_rule != "per_sample" for m in tables.values()):
        raise ValueError("This encoder addresses subject rows like the ATM reference (subject_token_ids="
                         "'reference'); use subject_token='shared' (--subject-token shared).")
    n_old = int(encoder.n_subjects)
    new = type(encoder).from_config(encoder.config_for_subjects(n_old + 1))
    state = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    for prefix, m in tables.items():
        w = m.subject_embedding.weight.detach()
        row = m.shared_embedding.detach() if init == "shared" else w[: max(1, n_old)].mean(0, keepdim=True)
        state[f"{prefix}.subject_embedding.weight"] = torch.cat([w, row.to(w.dtype)])
    new.load_state_dict(state, strict=True)
    new.train(encoder.training)
    return new, n_old


# ----------------------------------------------------------------------------- trial subsets
class TrialSubset:
    """Samples ``indices`` of a data source (``len`` + ``get_batch``); other attributes are the source's."""

    def __init__(self, data: Any, indices: np.ndarray) -> None:
        self.data, self.indices = data, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def get_batch(self, indices: Any) -> dict:
        return self.data.get_batch(self.indices[np.asarray(indices, dtype=np.int64)])

    def __getattr__(self, name: str) -> Any:
        if name in ("data", "indices"):
            raise AttributeError(name)
        return getattr(self.data, name)


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`finetune` did; :meth:`record` is the content of ``finetune.json``.

    Attributes
    ----------
    path : Path
        The fine-tuned run directory.
    config : FinetuneConfig
    parent, parent_unit : str or None
        Resolved paths of the parent run and of the unit used (``None`` without a parent).
    encoder : str
        Encoder name.
    subject_id : int
        The fine-tuned subject's id in the encoder (``-1``: the shared token).
    subject_token : str
        How the id was chosen: ``parent`` (a subject the parent trained on), ``shared``, ``new``, ``mean``.
    frozen_parameters : list of str
        Names of the frozen parameters; ``n_frozen``/``n_trainable`` count their elements.
    n_trials, n_conditions : int
        Trials and distinct conditions used (``0``: the zero-shot baseline).
    n_pool, n_val_conditions : int
        Trials the budget was taken from; validation conditions held out.
    average_train : bool
        Whether the trials are repetition averages (from the parent's config).
    epochs, steps, batch_size : int
        Epochs run (raised to reach ``min_steps``), optimiser steps and batch size.
    selected_epoch : int
        The validation-selected epoch (``-1`` without training).
    rows : list of dict
        The result rows of ``metrics.json``.
    """

    path: Path
    config: FinetuneConfig
    parent: str | None
    parent_unit: str | None
    encoder: str
    subject_id: int
    subject_token: str
    frozen_parameters: list[str]
    n_frozen: int
    n_trainable: int
    n_trials: int
    n_conditions: int
    n_pool: int
    n_val_conditions: int
    average_train: bool
    epochs: int
    steps: int
    batch_size: int
    selected_epoch: int
    rows: list[dict]

    def record(self) -> dict[str, Any]:
        """The ``finetune.json`` record: requested settings, what was used, the eegvision version."""
        c = self.config
        return {
            "parent": self.parent, "parent_unit": self.parent_unit, "init": c.init, "pretrained": c.pretrained,
            "encoder": self.encoder, "data": c.data, "subject": c.subject, "subject_id": self.subject_id,
            "subject_token": self.subject_token, "freeze": ",".join(c.freeze) or "none", "frozen_parameters": list(self.frozen_parameters),
            "n_frozen": self.n_frozen, "n_trainable": self.n_trainable, "n_trials_requested": c.n_trials,
            "n_conditions_requested": c.n_conditions, "n_trials": self.n_trials, "n_conditions": self.n_conditions,
            "n_pool": self.n_pool, "n_val_conditions": self.n_val_conditions, "average_train": self.average_train,
            "epochs": self.epochs, "min_steps": int(c.min_steps), "steps": self.steps, "batch_size": self.batch_size,
            "lr": float(c.lr), "seed": int(c.seed), "selected_epoch": self.selected_epoch,
            "eegvision_version": __version__,
        }


# ----------------------------------------------------------------------------- starting point
def _parent_temperature(unit: UnitFolder) -> float | None:
    """The learned temperature of the parent's selected epoch (from its history), if recorded."""
    epoch = unit.read_selection().get("selected_epoch")
    for r in unit.read_history():
        if int(r["epoch"]) == epoch and r.get("temperature"):
            return float(r["temperature"])
    return None


def _takes_channel_names(encoder_name: str) -> bool:
    """Whether the constructor of ``encoder_name`` has a ``ch_names`` option (e.g. braindecode models)."""
    import inspect

    from eegvision.models.registry import resolve_name

    cls, _ = resolve_name(encoder_name)
    return "ch_names" in inspect.signature(cls.__init__).parameters


def _choose_trials(pool: Any, config: FinetuneConfig, split: Any) -> np.ndarray:
    """Sorted pool indices of the budget: the first ``n_trials`` of one seeded order (all by default)."""
    if config.n_conditions == 0:
        n_use = 0
    elif config.n_conditions is not None or config.n_trials is None:
        n_use = len(pool)
    else:
        if config.n_trials > len(pool):
            raise ValueError(f"n_trials={config.n_trials} but {config.subject} has {len(pool)} fine-tuning trials "
                             f"(after holding out {len(split.val_conditions)} validation conditions); lower "
                             "--n-trials or omit it (all).")
        n_use = int(config.n_trials)
    g = torch.Generator().manual_seed(config.seed)
    return np.sort(torch.randperm(len(pool), generator=g).numpy()[:n_use])


def _pool_conditions(split: Any, config: FinetuneConfig) -> np.ndarray:
    """The fine-tuning conditions: all training conditions of ``split``, or the first ``n_conditions`` of a seeded order."""
    conditions = split.train_conditions
    if config.n_conditions is None:
        return conditions
    g = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(conditions), generator=g).numpy()
    if config.n_conditions > len(order):
        raise ValueError(f"n_conditions={config.n_conditions} but {config.subject} has {len(order)} fine-tuning "
                         f"conditions (after holding out {len(split.val_conditions)} for validation).")
    return np.sort(conditions[order[:config.n_conditions]]) if config.n_conditions else conditions[:1]


# ----------------------------------------------------------------------------- main entry
def finetune(parent: str | os.PathLike | None, config: FinetuneConfig, out: str | os.PathLike) -> FinetuneResult:
    """Fine-tune a trained encoder (or a pretrained braindecode model) on ``config.subject`` of ``config.data``.

    Parameters
    ----------
    parent : path or None
        A run directory written by ``fit`` (``config.unit`` picks the fold of a several-unit run).
        ``None`` with ``config.init``: start from a fresh ``init`` encoder (with ``pretrained`` weights).
    config : FinetuneConfig
        The new data and subject, the budget, freezing and optimisation (see its parameters).
    out : path
        New run directory (must be absent or empty).

    Returns
    -------
    FinetuneResult
        The run directory ``path`` (with ``finetune.json``, the result's :meth:`~FinetuneResult.record`)
        and what was used.

    Examples
    --------
    >>> cfg = FinetuneConfig(data="imagery-store/", subject="sub-01", n_trials=50, freeze=["encoder"])
    >>> finetune("runs/atms-sub-01", cfg, "runs/atms-imagery-50").rows[0]["top1"]        # doctest: +SKIP
    """
    from eegvision.data.dataset import EEGDataset
    from eegvision.data.splits import validation_split
    from eegvision.training.freeze import apply_freeze, keep_frozen_in_eval
    from eegvision.training.run import load_run
    from eegvision.training.unit import (
        build_module,
        finish_unit,
        make_encoder,
        quiet_lightning,
        train_and_select,
        write_unit_config,
    )

    config.validate()
    if (parent is None) == (config.init is None):
        raise ValueError("Give either a parent run (RUN) or --init ENCODER (e.g. braindecode:Labram with "
                         "--pretrained FILE), not both or neither.")
    subject, seed, data = config.subject, int(config.seed), config.data
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty; choose a new --out path for the fine-tuned run.")

    store = sources.open_data(data)
    check_name("Subject", subject, store.subjects, str(data))

    # -- starting point -----------------------------------------------------------------
    parent_run = load_run(parent, unit=config.unit) if parent is not None else None
    if parent_run is not None:
        base = parent_run.config
        if base.multi_view_target is not None:
            raise ValueError(f"Run {parent} was trained with a multi-view target (a trainable image side); "
                             "fine-tuning such a run is not supported yet. Train a new run on the new data.")
        if base.projector is not None:
            raise ValueError(f"Run {parent} was trained with projector {base.projector} (an EEG and an image "
                             "projection); fine-tuning such a run is not supported yet. Fine-tune a run trained "
                             "without --projector-dim, or train a new run on the new data.")
        parent_ids = dict(parent_run.subject_ids)
        encoder = parent_run.encoder
        temperature = _parent_temperature(parent_run.folder) or base.init_temperature
        parent_folder = RunFolder.open(parent)
    else:
        base = FitConfig(data=data, subjects=[subject], encoder=str(config.init),
                         encoder_options=dict(config.encoder_options))
        parent_ids, encoder, temperature, parent_folder = {}, None, base.init_temperature, None

    def parent_feature(split: str) -> str | None:
        found = parent_folder.feature_file(split) if parent_folder is not None else None
        return str(found) if found is not None else None

    feats_train = config.features_train or (None if (Path(data) / "features" / "train.safetensors").is_file()
                                            else parent_feature("train"))
    feats_test = config.features_test or (None if (Path(data) / "features" / "test.safetensors").is_file()
                                          else parent_feature("test"))
    val_fraction = base.val_fraction if config.val_fraction is None else float(config.val_fraction)

    # -- subject id and trials ---------------------------------------------------------
    common = {"channels": base.channels, "window": base.window}
    alignment = {}
    if base.align is not None:  # the parent's per-subject alignment, for the new subject from its training split
        from eegvision.data.alignment import AlignedStore, subject_alignments

        alignment = subject_alignments(store, [subject], base.align)
        store = AlignedStore(store, alignment)
    split = validation_split(store, "training", fraction=val_fraction, seed=seed)
    pool_conditions = _pool_conditions(split, config)
    if subject in parent_ids:
        sid, how = parent_ids[subject], "parent"
    elif config.subject_token == "shared" or encoder is None:
        sid, how = -1, "shared"
    else:
        encoder, sid = add_subject_row(encoder, init=config.subject_token)
        how = config.subject_token if sid >= 0 else "shared"
    subject_ids = {**parent_ids, **({subject: sid} if sid >= 0 else {})}
    ids = {subject: sid}
    pool = EEGDataset(store, [subject], "training", average=base.average_train, conditions=pool_conditions,
                      subject_ids=ids, **common)
    chosen = _choose_trials(pool, config, split)
    n_use = len(chosen)
    train = TrialSubset(pool, chosen)
    val = EEGDataset(store, [subject], "training", average=True, conditions=split.val_conditions,
                     subject_ids=ids, **common)
    test = {subject: EEGDataset(store, [subject], "test", average=True, subject_ids=ids, **common)}
    data_dict = {"train": train, "val": val, "test": test, "split": split, "subject_ids": subject_ids}

    # -- the run's FitConfig -------------------------------------------------------------
    bs = int(config.batch_size or base.batch_size)
    bs = max(1, min(bs, n_use)) if n_use else bs
    steps_per_epoch = max(1, n_use // bs) if n_use else 0
    epochs = max(int(config.epochs), math.ceil(config.min_steps / steps_per_epoch)) if n_use else int(config.epochs)
    if base.targets and base.target_mode in ("fused", "learned"):
        raise ValueError(f"The parent run was trained on a fused target (target_mode={base.target_mode!r}); "
                         "fine-tuning it on the primary features would change its output space. Fine-tune a run "
                         "trained with one target or with target heads.")
    cfg = base.replace(
        data=data, subjects=[subject], protocol="within", train_subjects=[], epochs=epochs, lr=float(config.lr),
        batch_size=bs, seed=seed, val_fraction=val_fraction, init_temperature=float(temperature),
        features_train=feats_train, features_test=feats_test,
        features_normalized=(base.features_normalized if config.features_normalized is None
                             else config.features_normalized),
        eval_ks=list(config.eval_ks or base.eval_ks), eval_methods=list(config.eval_methods or base.eval_methods),
        accelerator=config.accelerator, devices=1, strategy="auto", preset=None, report_test_curve=False,
        mix_repetitions=False,  # budgets count single trials (or averaged conditions); mixing is not applied
        ensemble=1,  # a parent ensemble is fine-tuned as one model (its EnsembleEncoder)
        targets=[], target_mode="heads", target_dim=None, target_weights="fixed",  # the primary target only
        fusion_subject_dropout=0.0, fusion_layer_dropout=0.0, stages=[],  # one stage of epochs at lr
    )
    if encoder is None and _takes_channel_names(cfg.encoder):
        cfg = cfg.replace(encoder_options={"ch_names": list(pool.ch_names), **cfg.encoder_options})

    # -- features and encoder ------------------------------------------------------------
    paths = resolve_feature_paths(cfg)
    run = RunFolder(out)
    tables = {split: store.concept_table(split) for split in ("training", "test")}
    run.write_config(cfg, [subject], paths, concepts=tables, data=data)
    (folder,) = run.planned_units([subject])
    expect = cfg.objective == "retrieval" if not cfg.reference_loss else None
    train_feats = load_training_features(cfg, paths["train"], run.feature_cache, expect, tables["training"])
    test_feats = load_training_features(cfg, paths["test"], run.feature_cache, None, tables["test"])
    if encoder is None:  # fresh encoder from local pretrained weights
        torch.manual_seed(seed)
        extra = {} if config.pretrained is None else {"pretrained": config.pretrained}
        encoder = make_encoder(cfg, data_dict, train_feats.dim, **extra)
    if (encoder.n_chans, encoder.n_times) != (pool.n_chans, pool.n_times):
        raise ValueError(f"The encoder takes {encoder.n_chans} channels x {encoder.n_times} samples but {data} gives "
                         f"{pool.n_chans} x {pool.n_times} with the parent's channels={base.channels!r} and "
                         f"window={base.window!r}; fine-tune on data with the same montage and sampling.")
    for name, f, ds in (("train", train_feats, pool), ("test", test_feats, test[subject])):
        n_cond = int(store.array(subject, ds.split).shape[0])
        if f.image.shape[0] != n_cond:
            raise ValueError(f"The {name} features ({paths[name]}) have {f.image.shape[0]} rows but {data} has "
                             f"{n_cond} {ds.split} conditions; pass --features-{name} for the new data.")
        if f.dim != encoder.n_outputs:
            raise ValueError(f"The {name} features have dimension {f.dim} but the encoder outputs {encoder.n_outputs}.")

    # -- freeze, train, evaluate ---------------------------------------------------------
    frozen = frozen_parameter_names(encoder, config.freeze)
    frozen_modules = apply_freeze(encoder, frozen)
    encoder.train()
    module = build_module(cfg, data_dict, train_feats, test_feats, encoder=encoder)
    unit_desc = {"name": subject, "train_subjects": [subject], "test_subjects": [subject]}
    write_unit_config(cfg, unit_desc, folder, data_dict, train_feats, test_feats)
    if alignment:
        folder.write_alignment(alignment, base.align)
    history: list[dict] = []
    selected_epoch = -1
    if n_use:
        import lightning.pytorch as pl

        with quiet_lightning(not cfg.progress):
            pl.seed_everything(cfg.seed, workers=True, verbose=False)
            history, selected_epoch = train_and_select(cfg, module, folder, [keep_frozen_in_eval(frozen_modules)],
                                                       val_every=max(1, epochs // 20))
    else:
        module.encoder.eval()
    frozen_set = set(frozen)
    with atomic_path(folder.finetune_trials_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["condition", "repetition", "concept_index"])
        w.writerows(zip(pool.condition_index[chosen].tolist(), pool.repetition_index[chosen].tolist(),
                        pool.concepts[chosen].tolist()))
    rows = finish_unit(cfg, unit_desc, folder, module, data_dict, test_feats, history, selected_epoch)
    result = FinetuneResult(
        path=out, config=config, parent=None if parent is None else str(Path(parent).resolve()),
        parent_unit=None if parent_run is None else str(parent_run.path.resolve()), encoder=cfg.encoder,
        subject_id=sid, subject_token=how, frozen_parameters=frozen,
        n_frozen=int(sum(p.numel() for n, p in encoder.named_parameters() if n in frozen_set)),
        n_trainable=int(sum(p.numel() for n, p in encoder.named_parameters() if n not in frozen_set)),
        n_trials=n_use, n_conditions=len(np.unique(pool.condition_index[chosen])) if n_use else 0,
        n_pool=len(pool), n_val_conditions=len(split.val_conditions),
        average_train=bool(cfg.average_train), epochs=epochs, steps=epochs * steps_per_epoch, batch_size=bs,
        selected_epoch=selected_epoch, rows=rows,
    )
    folder.write_finetune_record(result.record())
    return result
