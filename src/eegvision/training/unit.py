"""Train, select, save and evaluate one unit (one fresh model) of a run; see :mod:`eegvision.training.fitting`.

The unit's files are read and written through its :class:`~eegvision.training.rundir.UnitFolder`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar

from eegvision import __version__
from eegvision.training.config import FitConfig, eval_ks_for
from eegvision.training.losses import Objective
from eegvision.training.module import HISTORY_COLUMNS, ContrastiveModule, embed_data
from eegvision.training.rundir import UnitFolder


class HistoryWriter(Callback):
    """Rewrite the unit's ``history.csv`` (atomically) after every validation, on the main process."""

    def __init__(self, folder: UnitFolder) -> None:
        self.folder = folder

    def _write(self, trainer: pl.Trainer, module: ContrastiveModule) -> None:
        if trainer.global_rank != 0 or trainer.sanity_checking or not module.history:
            return
        cols = list(HISTORY_COLUMNS) + sorted({k for r in module.history for k in r} - set(HISTORY_COLUMNS))
        self.folder.write_history(module.history, cols)

    def on_validation_end(self, trainer: pl.Trainer, module: ContrastiveModule) -> None:
        self._write(trainer, module)


#: Warnings of the libraries under a fit that a user cannot act on: DDP-free CPU runs without workers, the
#: checkpoint folder holding the unit's own config (the run folder is new), deprecations inside Lightning and
#: torch, and MNE's montage FutureWarning.
_NOISE = (
    dict(message=r".*does not have many workers.*"),
    dict(message=r"Checkpoint directory .* exists and is not empty"),
    dict(category=DeprecationWarning),
    dict(category=FutureWarning),
    dict(category=UserWarning, module=r"(lightning|torch)(\.|$)"),
)


@contextlib.contextmanager
def quiet_lightning(quiet: bool = False) -> Iterator[None]:
    """Keep Lightning's and torch's chatter out of a fit; with ``quiet`` also Lightning's remaining warnings.

    Always hidden: Lightning's INFO lines ("GPU available", the litlogger tip, "`Trainer.fit` stopped") and the
    warnings a user cannot act on (see ``_NOISE``). eegvision's own warnings (e.g. k values skipped for lack
    of candidates) still show.
    """
    import warnings

    names = ("lightning.pytorch", "lightning.fabric", "lightning")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR if quiet else logging.WARNING)
    try:
        with warnings.catch_warnings():
            for rule in _NOISE:
                warnings.filterwarnings("ignore", **rule)
            if quiet:
                warnings.filterwarnings("ignore", module="lightning")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar on stderr, counting epochs from 1 (``Epoch 3/3`` is the last of 3)."""

    def __init__(self) -> None:
        super().__init__(console_kwargs={"stderr": True})

    def _get_train_description(self, current_epoch: int) -> str:
        text = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            text += f"/{self.trainer.max_epochs}"
        return f"{text:{len(self.validation_description)}}"


def torch_load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a Lightning checkpoint this package wrote (trusted file; holds non-tensor state)."""
    from eegvision.tensorfiles import load_torch

    return load_torch(path, "Checkpoint", "Delete it and train this unit again with `eegvision fit --resume`.",
                      trusted=True)


def aligned_store(config: FitConfig, store: Any, unit: dict, folder: UnitFolder | None = None) -> Any:
    """``store`` wrapped in the per-subject alignment of ``config.align`` (unchanged when it is ``None``); the
    alignments of the unit's training and test subjects are written to ``folder`` (main process)."""
    if config.align is None:
        return store
    from eegvision.data.alignment import AlignedStore, subject_alignments

    subjects = list(dict.fromkeys([*unit["train_subjects"], *unit["test_subjects"]]))
    alignments = subject_alignments(store, subjects, config.align)
    if folder is not None:
        folder.write_alignment(alignments, config.align)
    return AlignedStore(store, alignments)


def _datasets(config: FitConfig, store: Any, unit: dict, split_seed: int | None = None) -> dict[str, Any]:
    """The unit's training, validation and test data; the validation split is drawn with ``split_seed``
    (default ``config.seed``; an ensemble's members share their run's)."""
    from eegvision.data.dataset import EEGDataset
    from eegvision.data.splits import validation_split

    train_ids = {s: i for i, s in enumerate(unit["train_subjects"])}
    split = validation_split(store, "training", fraction=config.val_fraction,
                             seed=config.seed if split_seed is None else split_seed)
    common = {"channels": config.channels, "window": config.window}
    train = EEGDataset(store, unit["train_subjects"], "training", average=config.average_train,
                       conditions=split.train_conditions, subject_ids=train_ids, **common)
    if config.mix_repetitions:
        from eegvision.data.mixing import RepetitionMix

        train = RepetitionMix(train, seed=config.seed)
    if config.eeg_smoothing is not None:  # NeuroBridge's smoothing: the training samples only
        from eegvision.data.augment import SmoothedTrials

        train = SmoothedTrials(train, **config.eeg_smoothing, seed=config.seed)
    val = EEGDataset(store, unit["train_subjects"], "training", average=True,
                     conditions=split.val_conditions, subject_ids=train_ids, **common)
    test = make_test_datasets(config, store, unit, train_ids)
    return {"train": train, "val": val, "test": test, "split": split, "subject_ids": train_ids}


def make_test_datasets(config: FitConfig, store: Any, unit: dict, train_ids: dict[str, int]) -> dict[str, Any]:
    """``{subject: averaged test EEGDataset}`` of the unit's test subjects (unseen subjects get id ``-1``)."""
    from eegvision.data.dataset import EEGDataset

    return {s: EEGDataset(store, [s], "test", average=True, subject_ids={s: train_ids.get(s, -1)},
                          channels=config.channels, window=config.window)
            for s in unit["test_subjects"]}


def make_encoder(config: FitConfig, data: dict[str, Any], n_outputs: int, **options: Any) -> Any:
    """A fresh ``config.encoder`` for the shape of ``data["train"]`` and one row per subject of
    ``data["subject_ids"]``; ``options`` add to or override ``config.encoder_options`` (seed the RNG first).

    An encoder that takes ``subject_names`` (ATM-S) gets the name of each subject id, so that in reference mode
    its subject-table rows follow the reference's rule (``sub-08`` -> row 8, ``sub-10`` -> the shared token).
    """
    import inspect

    from eegvision.models import create_encoder
    from eegvision.models.registry import resolve_name

    train = data["train"]
    options = {**config.encoder_options, **options}
    ids = data["subject_ids"]
    cls, _ = resolve_name(config.encoder)
    if ids and "subject_names" in inspect.signature(cls.__init__).parameters and "subject_names" not in options:
        options["subject_names"] = sorted(ids, key=ids.get)  # entry i = the subject of id i
    return create_encoder(config.encoder, n_chans=train.n_chans, n_times=train.n_times, n_outputs=n_outputs,
                          sfreq=train.sfreq, n_subjects=max(1, len(ids)), **options)


def unit_encoder(config: FitConfig, store: Any, unit: dict, data: dict[str, Any], n_outputs: int) -> Any:
    """:func:`make_encoder`, with the input whitening of ``config.whiten`` set: the MVNN matrix of the unit's
    fitting conditions (``data["split"].train_conditions``; never validation or test EEG), see
    :mod:`eegvision.training.whitening`; inside the training-only subject router of ``config.subject_router``
    (:class:`~eegvision.models.encoders.routed.RoutedEncoder`) when set."""
    encoder = make_encoder(config, data, n_outputs)
    if config.whiten is not None:
        from eegvision.training.whitening import noise_whitener

        encoder.set_whitening(noise_whitener(store, unit["train_subjects"], data["split"].train_conditions,
                                             channels=config.channels, window=config.window), config.whiten)
    if config.subject_router is not None:
        from eegvision.models.encoders.routed import RoutedEncoder

        encoder = RoutedEncoder.around(encoder, config.subject_router, config.router_experts)
    return encoder


def embedding_size(config: FitConfig, train_feats: Any) -> int:
    """The EEG encoder's output size: the fusion encoder's ``hidden`` with ``config.fusion_encoder``, else the
    training features' width."""
    return config.fusion_encoder["hidden"] if config.fusion_encoder is not None else train_feats.dim


def fusion_widths(feats: Any) -> list[int]:
    """The input widths a concatenated fusion-encoder feature file records (``fusion_widths``)."""
    widths = str(feats.metadata.get("fusion_widths") or "")
    if not widths:
        raise ValueError(f"fusion_encoder reads the concatenated inputs that fit writes (features/fusion_input."
                         f"*.safetensors); {feats.path} records no fusion_widths.")
    return [int(w) for w in widths.split(",")]


def build_module(config: FitConfig, data: dict[str, Any], train_feats: Any, test_feats: Any,
                 encoder: Any = None, heads: Any = None, blur: Any = None, fusion: Any = None) -> ContrastiveModule:
    """Objective + Lightning module of one unit around ``encoder`` (default: a fresh one from
    :func:`make_encoder`; seed the RNG first); ``fusion`` (:class:`~eegvision.training.fusion.FusionTargets`) adds
    the learned layer fusion of ``target_mode="learned"``, with the unit's training subjects as its router's rows.
    With ``config.projector`` the encoder is wrapped in its EEG projection and the module gets the image projection
    (their initial weights drawn here, in that order); with ``config.multi_view_target`` the image side is the
    multi-view target module, with ``config.fusion_encoder`` the fusion encoder (drawn last)."""
    if encoder is None:
        encoder = make_encoder(config, data, embedding_size(config, train_feats))
    image_projector, text_features = None, train_feats.text
    if config.projector is not None:
        from eegvision.models.encoders.projected import ProjectedEncoder
        from eegvision.models.image_projector import ImageProjector

        encoder = ProjectedEncoder.around(encoder, config.projector["dim"])
        if config.multi_view_target is None:
            image_projector = ImageProjector(train_feats.dim, config.projector["dim"])
        text_features = None  # NeuroBridge trains the projectors on images only
    if config.multi_view_target is not None:  # SVTL: the image target computed from the tokens, trained with it
        from eegvision.models.multi_view import MultiViewTarget

        out_dim = config.projector["dim"] if config.projector is not None else train_feats.dim
        image_projector = MultiViewTarget(train_feats.dim, out_dim, train_feats.token_layers,
                                          **config.multi_view_target)
        text_features = None
    if config.fusion_encoder is not None:  # BrainHiVE: the image target fused from several models' features
        from eegvision.models.fusion_encoder import FusionEncoder

        image_projector = FusionEncoder(fusion_widths(train_feats), **config.fusion_encoder)
        text_features = None
    objective = Objective(config.objective, init_temperature=config.init_temperature,
                          logit_scale_mode=config.logit_scale_mode, normalize=config.normalize_embeddings,
                          same_concept_positives=config.same_concept_positives, reference=config.reference_loss)
    if not config.learn_temperature:
        objective.logit_scale.requires_grad_(False)
    enc_scale = getattr(encoder, "logit_scale", None)
    if config.reference_loss and isinstance(enc_scale, torch.nn.Parameter):
        objective.logit_scale.log_scale = enc_scale  # the reference trains the encoder's own raw logit_scale
    n_val_images = len(np.unique(data["split"].val_conditions))
    from eegvision.data.augment import Augment

    if config.time_shift >= data["train"].n_times:
        raise ValueError(f"time_shift={config.time_shift} samples is not shorter than the epochs "
                         f"({data['train'].n_times} samples); choose a shift below {data['train'].n_times}.")
    augment = Augment(time_shift=config.time_shift, amplitude_scale=config.amplitude_scale,
                      channel_dropout=config.channel_dropout, noise=config.noise, seed=config.seed)
    return ContrastiveModule(
        encoder, objective, train_feats.image, text_features,
        train_data=data["train"], val_data=data["val"], test_data=data["test"], test_image_features=test_feats.image,
        batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay, schedule=config.schedule,
        decay_all_parameters=config.reference, seed=config.seed, num_workers=config.num_workers, report_test_curve=config.report_test_curve,
        val_k=min(200, n_val_images), augment=augment, ema_decay=config.ema_decay, patience=config.patience,
        monitor=config.selection, mmd_epochs=config.mmd_epochs, mmd_weight=config.mmd_weight,
        subject_mmd_weight=config.subject_mmd_weight, heads=heads, blur_targets=blur, stages=config.stages or None,
        image_projector=image_projector, **_fusion_arguments(config, data, fusion),
    )


def _fusion_arguments(config: FitConfig, data: dict[str, Any], fusion: Any) -> dict[str, Any]:
    """The :class:`ContrastiveModule` arguments of a learned layer fusion (none without one)."""
    if fusion is None:
        return {}
    from eegvision.training.fusion import LayerFusion

    module = LayerFusion(len(fusion.names), len(data["subject_ids"]), config.fusion_subject_dropout,
                         config.fusion_layer_dropout)
    return {"fusion": module, "fusion_targets": fusion.train, "fusion_test_targets": fusion.test}


def resolve_strategy(name: str) -> Any:
    """Lightning strategy for ``name``; plain DDP tolerates parameters without gradients.

    Some encoders carry parameters that a forward pass does not use (the reference ATM-S has
    dead layers; see ``atm.md`` §6.2), which plain DDP rejects, so ``"ddp"``/``"ddp_spawn"`` set
    ``find_unused_parameters=True``. Pass ``"ddp_find_unused_parameters_false"`` for speed.
    """
    if name in ("ddp", "ddp_spawn"):
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=True, start_method="spawn" if name == "ddp_spawn" else "popen")
    return name


def make_trainer(config: FitConfig, root: Path, callbacks: list[Callback], *, val_every: int = 1) -> pl.Trainer:
    """The Lightning Trainer of a unit (CPU/CUDA via ``accelerator="auto"``, DDP via ``strategy``),
    validating every ``val_every`` epochs."""
    callbacks = list(callbacks)
    if config.progress:
        callbacks.append(EpochProgressBar())
    precision = "32-true" if str(config.precision) in ("32", "32-true") else config.precision
    return pl.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, devices=config.devices,
        strategy=resolve_strategy(config.strategy),
        precision=precision, deterministic="warn" if config.deterministic else False, logger=False,
        callbacks=callbacks, enable_progress_bar=config.progress, enable_model_summary=False,
        num_sanity_val_steps=0, use_distributed_sampler=False, default_root_dir=str(root),
        log_every_n_steps=1, check_val_every_n_epoch=int(val_every),
    )


def train_and_select(config: FitConfig, module: ContrastiveModule, folder: UnitFolder,
                     callbacks: Sequence[Callback] = (), *, val_every: int = 1,
                     resume: bool = False) -> tuple[list[dict], int] | None:
    """Train ``module`` for ``config.epochs`` epochs and load its validation-selected epoch.

    Checkpoints and the history go to ``folder``; ``callbacks`` are added to the trainer's. ``resume`` continues
    from the folder's last checkpoint if present. Seed the RNG before building ``module``.

    Returns
    -------
    (history, selected_epoch) or None
        The per-epoch history rows and the selected epoch; ``None`` on non-primary DDP processes.
    """
    monitor, mode = ("val_top1", "max") if config.selection == "val_top1" else ("val_loss", "min")
    ckpt = folder.checkpoint_callback(monitor, mode)
    trainer = make_trainer(config, folder.path, [ckpt, HistoryWriter(folder), *callbacks], val_every=val_every)
    last = folder.last_checkpoint
    try:
        trainer.fit(module, ckpt_path=str(last) if resume and last.is_file() else None)
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into sys.exit(1) after its shutdown; give it back
            raise KeyboardInterrupt from None
        raise
    if trainer.global_rank != 0:
        return None
    best = Path(ckpt.best_model_path) if ckpt.best_model_path else last
    state = torch_load_checkpoint(best)
    module.load_state_dict(state["state_dict"])
    module.adopt_ema()  # with ema_decay, the selected epoch's averaged weights become the encoder
    return list(module.history), int(state.get("epoch", -1))


def fit_unit(config: FitConfig, store: Any, unit: dict, folder: UnitFolder, train_feats: Any, test_feats: Any,
             *, resume: bool = False, primary: bool = True, callbacks: Sequence[Callback] = (),
             wrap: Callable[..., Any] | None = None, heads: Any = None, blur: Any = None,
             fusion: Any = None) -> list[dict]:
    """Train one fresh model for ``unit`` (its plan), keep the validation-selected epoch, save and evaluate it
    into ``folder``; ``callbacks`` are added to the trainer's. ``wrap(encoder, store=, unit=, data=)`` may replace
    the fresh encoder before training (``FitConfig.ridge_init``: the ridge solution plus the encoder, see
    :func:`eegvision.training.closed_form.ridge_init`). ``heads`` (a :class:`~eegvision.training.losses.TargetHeads`)
    adds the extra targets' heads of ``FitConfig.target_mode="heads"``; ``blur`` (``(3, n_images, dim)``) the
    low/medium/high blur targets of ``FitConfig.blur_levels``; ``fusion`` (a
    :class:`~eegvision.training.fusion.FusionTargets`) the layers of ``FitConfig.target_mode="learned"``, whose
    selected weights and fused test features the unit records and is evaluated with. (``fit`` trains seed ensembles with
    :func:`eegvision.training.ensemble.fit_ensemble`.)

    Returns the result rows (empty on non-primary DDP processes).
    """
    folder.path.mkdir(parents=True, exist_ok=True)
    with quiet_lightning(not config.progress):
        pl.seed_everything(config.seed, workers=True, verbose=False)
        store = aligned_store(config, store, unit, folder if primary else None)
        data = _datasets(config, store, unit)
        encoder = unit_encoder(config, store, unit, data, embedding_size(config, train_feats))
        if wrap is not None:
            encoder = wrap(encoder, store=store, unit=unit, data=data)
        extras = {k: v for k, v in (("heads", heads), ("blur", blur), ("fusion", fusion)) if v is not None}
        module = build_module(config, data, train_feats, test_feats, encoder=encoder, **extras)
        if primary:
            write_unit_config(config, unit, folder, data, train_feats, test_feats, encoder=module.encoder)
        trained = train_and_select(config, module, folder, callbacks, resume=resume)
        if trained is None:
            return []
        history, selected_epoch = trained
    if fusion is not None:
        from eegvision.training.fusion import save_fusion

        test_feats = save_fusion(folder, module.fusion, fusion, data["subject_ids"], test_feats)
    return finish_unit(config, unit, folder, module, data, test_feats, history, selected_epoch)


def write_unit_config(config: FitConfig, unit: dict, folder: UnitFolder, data: dict, train_feats: Any,
                      test_feats: Any, *, encoder: Any = None, data_extra: dict | None = None) -> None:
    """Describe the unit in its ``config.json``: config, plan, subject ids, data and features; for an encoder
    that addresses its subject table by the reference's rule, also ``reference_subject_rows`` (each subject's
    row, ``null`` for the shared token). ``data`` may lack ``val`` and ``split`` (closed-form fits, which
    cross-validate instead); ``data_extra`` adds to the data description."""
    train = data["train"]
    val, split = data.get("val"), data.get("split")
    rows = getattr(encoder, "reference_rows", lambda: None)()
    extra = {} if rows is None else {"reference_subject_rows": rows}
    folder.write_config({**extra,
        "fit": config.to_dict(), "eegvision_version": __version__, "unit": unit,
        "subject_ids": data["subject_ids"],
        "test_subject_ids": {s: d.subject_ids[s] for s, d in data["test"].items()},
        "data": {"path": str(config.data), "n_chans": train.n_chans, "n_times": train.n_times,
                 "sfreq": train.sfreq, "ch_names": list(train.ch_names),
                 "times": [float(train.times[0]), float(train.times[-1])],
                 "n_train": len(train), "n_val": len(val) if val is not None else 0,
                 "n_val_conditions": int(len(split.val_conditions)) if split is not None else 0,
                 "average_train": config.average_train, "mix_repetitions": config.mix_repetitions,
                 **(data_extra or {})},
        "features": {"train": dict(train_feats.metadata), "test": dict(test_feats.metadata),
                     "dim": train_feats.dim},
    })


def finish_unit(config: FitConfig, unit: dict, folder: UnitFolder, module: ContrastiveModule, data: dict,
                test_feats: Any, history: list[dict], selected_epoch: int,
                selection: dict | None = None) -> list[dict]:
    """Save the selected encoder (``module.encoder``) and its test embeddings, evaluate them; write metrics and
    ``selection.json`` (selected epoch, rule, best validation value, the selected epoch's ``val_top1``; entries of
    ``selection`` replace or add to these)."""
    extra = {}
    curve = [r["test_top1_curve"] for r in history if r.get("test_top1_curve") is not None]
    if curve:
        extra["best_epoch_on_test_top1"] = float(max(curve))
    rows = save_and_evaluate(config, folder, module.encoder, data, test_feats, extra,
                             image_projector=getattr(module, "image_projector", None))
    chosen = [r.get("val_top1") for r in history if r.get("epoch") is not None and int(r["epoch"]) == selected_epoch]
    folder.write_selection({"selected_epoch": selected_epoch, "selection": config.selection,
                            "best_val": _best_val(history, config.selection),
                            "val_top1": float(chosen[0]) if chosen and chosen[0] is not None else None,
                            **(selection or {})})
    return rows


def save_and_evaluate(config: FitConfig, folder: UnitFolder, encoder: Any, data: dict, test_feats: Any,
                      extra: dict | None = None, *, image_projector: Any = None) -> list[dict]:
    """Save ``encoder`` into ``folder``, embed the averaged test sets of ``data["test"]`` with it, evaluate
    them against ``test_feats`` (result columns ``extra`` added) and write the embeddings and metrics. With an
    ``image_projector`` (``FitConfig.projector``) it is saved too, and the test features are projected by it,
    recorded in the unit (``test_features.safetensors``) and scored in its space."""
    from eegvision.evaluation.embeddings import evaluate_embeddings

    encoder = encoder.cpu().eval()
    folder.save_encoder(encoder)
    if image_projector is not None:
        image_projector = image_projector.cpu().eval()
        folder.save_image_projector(image_projector)
        test_feats = image_projector.project_features(test_feats)
        folder.write_test_features(test_feats)
    embeds = {}
    for subject, ds in data["test"].items():
        emb, cond = embed_data(encoder, ds, device="cpu")
        if not torch.equal(cond, torch.arange(len(cond))):
            raise ValueError(f"{subject}: test conditions are not 0..n-1 in order; cannot pair them with features.")
        embeds[subject] = emb.contiguous()
    folder.write_test_embeddings(embeds, {
        "eegvision_version": __version__, "encoder": config.encoder, "rows": "test condition order",
        "subject_ids": json.dumps({s: d.subject_ids[s] for s, d in data["test"].items()})})
    rows = []
    for subject, emb in embeds.items():
        info = run_info(config, subject, len(data["train"]), data["train"].n_chans, test_feats) | (extra or {})
        rows += evaluate_embeddings(emb, test_feats.image, test_feats.text, ks=eval_ks_for(config.eval_ks, len(emb)),
                                    tops=config.eval_tops, methods=config.eval_methods, seed=config.seed, info=info)
    folder.write_metrics(rows)
    return rows


def _best_val(history: list[dict], selection: str) -> float | None:
    vals = [r[selection] for r in history if r.get(selection) is not None]
    if not vals:
        return None
    return float(max(vals) if selection == "val_top1" else min(vals))


def run_info(config: FitConfig, subject: str, n_train: int, n_chans: int, feats: Any) -> dict:
    """The identification columns of result rows (see :mod:`eegvision.evaluation.results`)."""
    meta = getattr(feats, "metadata", {}) or {}
    model = meta.get("model") or ""
    layer = meta.get("layer") or ""
    return {
        "dataset": Path(str(config.data)).name, "subject": subject, "encoder": config.encoder, "seed": config.seed,
        "protocol": config.protocol, "selection": config.selection, "n_train": int(n_train),
        "n_chans": int(n_chans), "window": list(config.window) if config.window else None,
        "features": f"{model}{'/' + layer if layer and layer != 'final' else ''}" or None,
    }
