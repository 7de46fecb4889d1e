"""Fine-tune a trained encoder on a new subject or a new paradigm with few trials.

``finetune(parent, data, subject, out)`` starts from the selected encoder of a run written by
:func:`eegvision.training.fitting.fit` (or from a fresh encoder with local pretrained weights, e.g.
``init="braindecode:Labram", pretrained="labram.safetensors"``), trains it on the first
``n_trials`` training trials of ``subject`` in ``data`` with the same Lightning machinery as
``fit`` (:class:`~eegvision.training.module.ContrastiveModule`, the same trainer, checkpoints,
validation-based selection and evaluation), and writes ``out`` in the run format, so
``load_run``/``evaluate_run``/``eegvision evaluate`` work on it. ``out/finetune.json`` records
the parent, the frozen parameters and the trials used; ``out/finetune_trials.tsv`` lists them.

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
rows. Encoders without subject conditioning (NICE, EEGProject) ignore the choice.

Freezing
--------
``freeze`` names parameter groups (see :func:`parameter_groups`): ``"none"``, ``"encoder"``
(the temporal-spatial convolution: TSConv of ATM-S/NICE, the input projection of EEGProject,
the backbone of braindecode models), ``"attention"`` (the channel transformer of ATM-S,
attention blocks of braindecode transformers), ``"subject"`` (subject tokens), or
``"all-but-head"`` (everything except the projector head); groups combine in a list
(``["encoder", "attention"]``). Frozen parameters get ``requires_grad=False`` and their modules run
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eegvision import __version__
from eegvision.checks import check_choice, check_list, check_name, check_names
from eegvision.training.config import FitConfig
from eegvision.training.rundir import RunFolder, UnitFolder
from eegvision.utils import atomic_path

__all__ = ["FREEZE_GROUPS", "SUBJECT_TOKENS", "finetune", "parameter_groups", "frozen_parameter_names",
           "add_subject_row", "TrialSubset"]

FREEZE_GROUPS = ("encoder", "attention", "subject", "head")
SUBJECT_TOKENS = ("shared", "new", "mean")


# ----------------------------------------------------------------------------- parameter groups
def _subject_prefixes(encoder: nn.Module) -> list[str]:
    from eegvision.models.encoders.layers import SubjectEmbedding

    return [name + "." for name, m in encoder.named_modules() if isinstance(m, SubjectEmbedding)]


def parameter_groups(encoder: nn.Module) -> dict[str, list[str]]:
    """Parameter names of ``encoder`` by group: ``encoder``, ``attention``, ``subject``, ``head``, ``other``.

    ``head`` is the projector head (``proj_eeg`` of ATM-S/NICE, the residual MLP + LayerNorm of
    EEGProject, ``head`` or the backbone's ``final_layer`` of braindecode models, the output stage
    of the MLP projector); ``encoder`` the temporal-spatial convolution / backbone; ``attention``
    transformer blocks; ``subject`` subject tokens; ``other`` the rest (e.g. a learnable
    ``logit_scale``, ATM-S value embeddings are in ``attention``).
    """
    names = [n for n, _ in encoder.named_parameters()]
    subj = _subject_prefixes(encoder)
    kind = getattr(encoder, "name", "") or ""
    groups: dict[str, list[str]] = {g: [] for g in (*FREEZE_GROUPS, "other")}

    def group_of(n: str) -> str:
        if any(n.startswith(p) for p in subj):
            return "subject"
        if kind in ("atms", "nice"):
            if n.startswith("proj_eeg."):
                return "head"
            if n.startswith("enc_eeg."):
                return "encoder"
            if n.startswith("encoder.") or n.startswith("subject_wise_linear."):
                return "attention"
            return "other"
        if kind == "eegproject":
            if n.startswith("model.0."):
                return "encoder"
            return "head" if n.startswith("model.") else "other"
        if kind.startswith("braindecode"):
            has_head = any(x.startswith("head.") for x in names)
            if n.startswith("head.") or (not has_head and n.startswith("backbone.final_layer.")):
                return "head"
            if n.startswith("backbone."):
                parts = n.split(".")
                if any(p in ("attn", "attention", "self_attn") or "attention" in p for p in parts):
                    return "attention"
                return "encoder"
            return "other"
        # generic (e.g. the MLP projector): the last top-level child with parameters is the head
        tops = [n.split(".")[0] for n in names if "." in n]
        last = tops[-1] if tops else None
        if last is not None and n.split(".")[0] == last:
            return "head"
        return "encoder" if "." in n else "other"

    for n in names:
        groups[group_of(n)].append(n)
    return groups


def frozen_parameter_names(encoder: nn.Module, freeze: Sequence[str]) -> list[str]:
    """Names of the parameters that ``freeze`` fixes: groups of :data:`FREEZE_GROUPS`, ``["all-but-head"]``
    or ``[]`` / ``["none"]`` (nothing)."""
    spec = check_names("Freeze group", check_list("freeze", freeze, "['encoder', 'attention']"),
                       (*FREEZE_GROUPS, "none", "all-but-head"), "the groups eegvision can freeze")
    groups = parameter_groups(encoder)
    if spec in ([], ["none"]):
        return []
    if spec == ["all-but-head"]:
        if not groups["head"]:
            raise ValueError(f"Encoder {encoder.name!r} has no projector head to keep trainable; use "
                             "--freeze encoder or none.")
        return [n for g, ns in groups.items() if g != "head" for n in ns]
    if "none" in spec or "all-but-head" in spec:
        raise ValueError(f"freeze {', '.join(spec)}: none and all-but-head stand alone; give one of them, or "
                         f"groups of {', '.join(FREEZE_GROUPS)}.")
    out = []
    for s in spec:
        if not groups[s]:
            present = [g for g in FREEZE_GROUPS if groups[g]]
            raise ValueError(f"Encoder {getattr(encoder, 'name', type(encoder).__name__)!r} has no {s!r} parameters "
                             f"to freeze; it has {present}.")
        out += groups[s]
    return sorted(set(out), key=[n for n, _ in encoder.named_parameters()].index)


def _apply_freeze(encoder: nn.Module, frozen: list[str]) -> list[nn.Module]:
    """Set ``requires_grad=False`` on ``frozen``; return the maximal submodules whose parameters are all frozen."""
    frozen_set = set(frozen)
    for n, p in encoder.named_parameters():
        p.requires_grad_(n not in frozen_set)
    modules, taken = [], []
    for name, m in encoder.named_modules():
        if not name or any(name.startswith(t + ".") for t in taken):
            continue
        params = [f"{name}.{n}" for n, _ in m.named_parameters()]
        if params and all(p in frozen_set for p in params):
            modules.append(m)
            taken.append(name)
    return modules


def _freeze_callback(modules: list[nn.Module]):
    from lightning.pytorch.callbacks import Callback

    class KeepFrozenInEval(Callback):
        """Frozen submodules run in eval mode (no dropout, fixed BatchNorm statistics) while training."""

        def _set(self) -> None:
            for m in modules:
                m.eval()

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._set()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._set()

    return KeepFrozenInEval()


# ----------------------------------------------------------------------------- subjects
def add_subject_row(encoder: nn.Module, init: str = "shared") -> tuple[nn.Module, int]:
    """A copy of ``encoder`` with one more row in every subject table, initialised from the shared
    token (``init="shared"``) or the mean of the trained rows (``"mean"``); returns ``(encoder, new_id)``.

    Encoders without subject tables are returned unchanged with id ``-1``.
    """
    from eegvision.models import create_encoder

    subs = [(p[:-1], m) for p, m in ((p, encoder.get_submodule(p[:-1])) for p in _subject_prefixes(encoder))]
    if not subs:
        return encoder, -1
    if any(m.id_rule != "per_sample" for _, m in subs):
        raise ValueError("This encoder addresses subject rows like the ATM reference (subject_token_ids="
                         "'reference'); use subject_token='shared' (--subject-token shared).")
    cfg = dict(encoder.config)
    n_old = int(cfg["n_subjects"])
    cfg["n_subjects"] = n_old + 1
    cfg.pop("pretrained", None)
    if cfg.get("subject_names"):
        cfg["subject_names"] = list(cfg["subject_names"]) + [f"new-{n_old}"]
    if cfg.get("name", "").startswith("braindecode"):
        cfg["subject_embedding"] = True
    name = cfg.pop("name")
    new = create_encoder(name, **cfg)
    state = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    for prefix, m in subs:
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


def _parent_temperature(unit: UnitFolder) -> float | None:
    """The learned temperature of the parent's selected epoch (from its history), if recorded."""
    epoch = unit.read_selection().get("selected_epoch")
    for r in unit.read_history():
        if int(r["epoch"]) == epoch and r.get("temperature"):
            return r["temperature"]
    return None


# ----------------------------------------------------------------------------- main entry
def finetune(
    parent: str | os.PathLike | None,
    data: str | os.PathLike,
    subject: str,
    out: str | os.PathLike,
    *,
    freeze: Sequence[str] = (),
    n_trials: int | None = None,
    n_conditions: int | None = None,
    epochs: int = 30,
    min_steps: int = 100,
    lr: float = 1e-4,
    batch_size: int | None = None,
    seed: int = 0,
    subject_token: str = "shared",
    unit: str | None = None,
    init: str | None = None,
    pretrained: str | os.PathLike | None = None,
    encoder_options: dict | None = None,
    features_train: str | None = None,
    features_test: str | None = None,
    features_normalized: bool | None = None,
    val_fraction: float | None = None,
    eval_ks: list[int] | None = None,
    eval_methods: list[str] | None = None,
    accelerator: str = "auto",
) -> Path:
    """Fine-tune a trained encoder (or a pretrained braindecode model) on ``subject`` of ``data``.

    Parameters
    ----------
    parent : path or None
        A run directory written by ``fit`` (``unit`` picks the fold of a several-unit run). ``None``
        with ``init``: start from a fresh ``init`` encoder (with ``pretrained`` weights).
    data : path
        Store or THINGS-EEG2 folder with the new subject / paradigm.
    subject : str
        The subject of ``data`` to fine-tune on and test.
    out : path
        New run directory (must be absent or empty).
    freeze : sequence of str
        Groups to freeze: ``()`` (none), some of ``"encoder"``, ``"attention"``, ``"subject"``, ``"head"``,
        or ``["all-but-head"]``; see the module docstring.
    n_trials, n_conditions : int, optional
        Fine-tuning budget: the first ``n_trials`` trials, or all trials of the first ``n_conditions``
        conditions, of the seeded order (default: all). ``n_trials=0``: no training (zero-shot).
    epochs, min_steps, lr, batch_size, seed
        Optimisation: ``epochs`` passes but at least ``min_steps`` steps; batch size defaults to the
        parent's, capped at the number of trials.
    subject_token : {"shared", "new", "mean"}
        Token of a subject the parent has not seen (module docstring).
    init, pretrained, encoder_options
        Without a parent: encoder name (e.g. ``"braindecode:Labram"``), local weights file and extra
        constructor options.
    features_train, features_test, features_normalized
        Feature files of the new data (default ``DATA/features/``, else the parent's files, which
        must then have one row per condition of ``data``).
    val_fraction : float, optional
        Fraction of the new training concepts held out for model selection (default: the parent's).
    eval_ks, eval_methods : lists, optional
        Evaluation settings (default: the parent's).
    accelerator : str
        Lightning accelerator (``"auto"``: CUDA when present).

    Returns
    -------
    Path
        ``out``, a run directory with ``finetune.json``.

    Examples
    --------
    >>> finetune("runs/atms-sub-01", "imagery-store/", "sub-01", "runs/atms-imagery-50",
    ...          n_trials=50, freeze=["encoder"])                                   # doctest: +SKIP
    """
    from eegvision.data.dataset import EEGDataset
    from eegvision.data.sources import open_data
    from eegvision.data.splits import validation_split
    from eegvision.training.inputs import load_training_features, resolve_feature_paths
    from eegvision.training.losses import Objective
    from eegvision.training.module import ContrastiveModule
    from eegvision.training.run import load_run

    check_choice("subject_token", subject_token, SUBJECT_TOKENS)
    if n_trials is not None and n_conditions is not None:
        raise ValueError("Give n_trials or n_conditions, not both.")
    for name, v in (("n_trials", n_trials), ("n_conditions", n_conditions)):
        if v is not None and int(v) < 0:
            raise ValueError(f"{name} must be >= 0, got {v}.")
    if (parent is None) == (init is None):
        raise ValueError("Give either a parent run (RUN) or --init ENCODER (e.g. braindecode:Labram with "
                         "--pretrained FILE), not both or neither.")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty; choose a new --out path for the fine-tuned run.")

    store = open_data(data)
    check_name("Subject", subject, store.subjects, str(data))

    # -- starting point -----------------------------------------------------------------
    parent_run = load_run(parent, unit=unit) if parent is not None else None
    if parent_run is not None:
        base = parent_run.config
        parent_ids = dict(parent_run.subject_ids)
        encoder = parent_run.encoder
        temperature = _parent_temperature(parent_run.folder) or base.init_temperature
        parent_feats = RunFolder.open(parent).feature_files()
    else:
        base = FitConfig(data=str(data), subjects=[subject], encoder=str(init),
                         encoder_options=dict(encoder_options or {}))
        parent_ids, encoder, temperature, parent_feats = {}, None, base.init_temperature, {}
    feats_train = features_train or (None if (Path(data) / "features" / "train.safetensors").is_file()
                                     else parent_feats.get("train"))
    feats_test = features_test or (None if (Path(data) / "features" / "test.safetensors").is_file()
                                   else parent_feats.get("test"))
    val_fraction = base.val_fraction if val_fraction is None else float(val_fraction)

    common = {"channels": base.channels, "window": base.window}
    split = validation_split(store, "training", fraction=val_fraction, seed=seed)
    pool_conditions = split.train_conditions
    if n_conditions is not None:
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(pool_conditions), generator=g).numpy()
        if n_conditions > len(order):
            raise ValueError(f"n_conditions={n_conditions} but {subject} has {len(order)} fine-tuning conditions "
                             f"(after holding out {len(split.val_conditions)} for validation).")
        pool_conditions = np.sort(pool_conditions[order[:n_conditions]]) if n_conditions else pool_conditions[:1]

    # subject id of the fine-tuned subject
    if subject in parent_ids:
        sid, how = parent_ids[subject], "parent"
    elif subject_token == "shared" or encoder is None:
        sid, how = -1, "shared"
    else:
        encoder, sid = add_subject_row(encoder, init=subject_token)
        how = subject_token if sid >= 0 else "shared"
    subject_ids = {**parent_ids, **({subject: sid} if sid >= 0 else {})}
    ids = {subject: sid}
    pool = EEGDataset(store, [subject], "training", average=base.average_train, conditions=pool_conditions,
                      subject_ids=ids, **common)
    if n_conditions == 0:
        n_use = 0
    elif n_conditions is not None or n_trials is None:
        n_use = len(pool)
    else:
        if n_trials > len(pool):
            raise ValueError(f"n_trials={n_trials} but {subject} has {len(pool)} fine-tuning trials (after holding out "
                             f"{len(split.val_conditions)} validation conditions); lower --n-trials or omit it (all).")
        n_use = int(n_trials)
    g = torch.Generator().manual_seed(seed)
    chosen = np.sort(torch.randperm(len(pool), generator=g).numpy()[:n_use])
    train = TrialSubset(pool, chosen)
    val = EEGDataset(store, [subject], "training", average=True, conditions=split.val_conditions,
                     subject_ids=ids, **common)
    test = {subject: EEGDataset(store, [subject], "test", average=True, subject_ids=ids, **common)}

    bs = int(batch_size or base.batch_size)
    bs = max(1, min(bs, n_use)) if n_use else bs
    steps_per_epoch = max(1, n_use // bs) if n_use else 0
    eff_epochs = max(int(epochs), math.ceil(min_steps / steps_per_epoch)) if n_use else int(epochs)
    cfg = base.replace(
        data=str(data), subjects=[subject], protocol="within", train_subjects=[], epochs=eff_epochs, lr=float(lr),
        batch_size=bs, seed=int(seed), val_fraction=val_fraction, init_temperature=float(temperature),
        features_train=feats_train, features_test=feats_test,
        features_normalized=base.features_normalized if features_normalized is None else features_normalized,
        eval_ks=list(eval_ks or base.eval_ks), eval_methods=list(eval_methods or base.eval_methods),
        accelerator=accelerator, devices=1, strategy="auto", preset=None, report_test_curve=False,
        mix_repetitions=False,  # budgets count single trials (or averaged conditions); mixing is not applied
    )
    if encoder is None and cfg.encoder.startswith("braindecode:"):
        cfg = cfg.replace(encoder_options={"ch_names": list(pool.ch_names), **cfg.encoder_options})
    paths = resolve_feature_paths(cfg)
    run = RunFolder(out)
    run.write_config(cfg, [subject], paths)
    (folder,) = run.planned_units([subject])
    expect = cfg.objective == "retrieval" if not cfg.reference_loss else None
    train_feats = load_training_features(cfg, paths["train"], run.feature_cache, expect)
    test_feats = load_training_features(cfg, paths["test"], run.feature_cache, None)
    if encoder is None:  # fresh encoder from local pretrained weights
        from eegvision.models import create_encoder

        opts = dict(cfg.encoder_options)
        if pretrained is not None:
            opts["pretrained"] = str(pretrained)
        torch.manual_seed(seed)
        encoder = create_encoder(cfg.encoder, n_chans=pool.n_chans, n_times=pool.n_times, n_outputs=train_feats.dim,
                                 sfreq=pool.sfreq, n_subjects=1, **opts)
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

    frozen = frozen_parameter_names(encoder, freeze)
    frozen_modules = _apply_freeze(encoder, frozen)
    encoder.train()
    objective = Objective(cfg.objective, init_temperature=cfg.init_temperature,
                          logit_scale_mode=cfg.logit_scale_mode, normalize=cfg.normalize_embeddings,
                          same_concept_positives=cfg.same_concept_positives, reference=cfg.reference_loss)
    enc_scale = getattr(encoder, "logit_scale", None)
    if cfg.reference_loss and isinstance(enc_scale, torch.nn.Parameter):
        objective.logit_scale.log_scale = enc_scale
    module = ContrastiveModule(
        encoder, objective, train_feats.image, train_feats.text, train_data=train, val_data=val, test_data=test,
        test_image_features=test_feats.image, batch_size=bs, lr=cfg.lr, weight_decay=cfg.weight_decay,
        schedule=cfg.schedule, seed=cfg.seed, num_workers=cfg.num_workers,
        val_k=min(200, len(np.unique(split.val_conditions))),
    )
    data_dict = {"train": train, "val": val, "test": test, "split": split, "subject_ids": subject_ids}
    unit_desc = {"name": subject, "train_subjects": [subject], "test_subjects": [subject]}
    from eegvision.training.unit import finish_unit, write_unit_config

    write_unit_config(cfg, unit_desc, folder, data_dict, train_feats, test_feats)
    history: list[dict] = []
    selected_epoch = -1
    if n_use:
        history, selected_epoch = _train(cfg, module, folder, frozen_modules, eff_epochs)
    else:
        module.encoder.eval()
    record = {
        "parent": None if parent is None else str(Path(parent).resolve()),
        "parent_unit": None if parent_run is None else str(parent_run.path.resolve()),
        "init": init, "pretrained": None if pretrained is None else str(pretrained),
        "encoder": cfg.encoder, "data": str(data), "subject": subject, "subject_id": sid,
        "subject_token": how, "freeze": ",".join(freeze) or "none", "frozen_parameters": frozen,
        "n_frozen": int(sum(p.numel() for n, p in encoder.named_parameters() if n in set(frozen))),
        "n_trainable": int(sum(p.numel() for n, p in encoder.named_parameters() if n not in set(frozen))),
        "n_trials_requested": n_trials, "n_conditions_requested": n_conditions, "n_trials": int(n_use),
        "n_conditions": int(len(np.unique(pool.condition_index[chosen]))) if n_use else 0,
        "n_pool": int(len(pool)), "n_val_conditions": int(len(split.val_conditions)),
        "average_train": bool(cfg.average_train), "epochs": eff_epochs, "min_steps": int(min_steps),
        "steps": eff_epochs * steps_per_epoch, "batch_size": bs, "lr": float(lr), "seed": int(seed),
        "selected_epoch": selected_epoch, "eegvision_version": __version__,
    }
    with atomic_path(folder.finetune_trials_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["condition", "repetition", "concept_index"])
        w.writerows(zip(pool.condition_index[chosen].tolist(), pool.repetition_index[chosen].tolist(),
                        pool.concepts[chosen].tolist()))
    finish_unit(cfg, unit_desc, folder, module, data_dict, test_feats, history, selected_epoch)
    folder.write_finetune_record(record)
    return out


def _train(cfg: FitConfig, module: Any, folder: UnitFolder, frozen_modules: list[nn.Module], epochs: int
           ) -> tuple[list[dict], int]:
    """Run the Lightning fit of ``module`` (validation ~20 times), load the selected checkpoint."""
    import lightning.pytorch as pl

    from eegvision.training.unit import (
        HistoryWriter,
        quiet_lightning,
        resolve_strategy,
        torch_load_checkpoint,
    )

    with quiet_lightning(not cfg.progress):
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        monitor, mode = ("val_top1", "max") if cfg.selection == "val_top1" else ("val_loss", "min")
        ckpt = folder.checkpoint_callback(monitor, mode)
        precision = "32-true" if str(cfg.precision) in ("32", "32-true") else cfg.precision
        trainer = pl.Trainer(
            max_epochs=epochs, accelerator=cfg.accelerator, devices=1, strategy=resolve_strategy("auto"),
            precision=precision, deterministic="warn" if cfg.deterministic else False, logger=False,
            callbacks=[ckpt, HistoryWriter(folder), _freeze_callback(frozen_modules)],
            enable_progress_bar=cfg.progress, enable_model_summary=False, num_sanity_val_steps=0,
            use_distributed_sampler=False, default_root_dir=str(folder.path), log_every_n_steps=1,
            check_val_every_n_epoch=max(1, epochs // 20),
        )
        trainer.fit(module)
        best = Path(ckpt.best_model_path) if ckpt.best_model_path else folder.last_checkpoint
        state = torch_load_checkpoint(best)
        module.load_state_dict(state["state_dict"])
        return list(module.history), int(state.get("epoch", -1))
