"""CLI commands: ``fit``, ``evaluate``, ``embed``, ``benchmark`` (contrastive decoding).

Each command wraps a documented library function of :mod:`eegvision.training`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from eegvision.cli._common import (
    JSON_HELP,
    channels_option,
    number_list,
    parse_options,
    print_json,
    split_list,
    stdout,
    user_errors,
)


def _config_fields(**given) -> dict:
    """CLI values that were given (not None), converted to FitConfig fields."""
    fields = {k: v for k, v in given.items() if v is not None}
    if "window" in fields:
        parts = split_list(fields["window"]) or []
        try:
            fields["window"] = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"--window takes TMIN,TMAX in seconds (e.g. 0,0.5), got {given['window']!r}.") from None
    if "channels" in fields:
        fields["channels"] = channels_option(fields["channels"])
    if fields.get("devices") is not None and str(fields["devices"]).isdigit():
        fields["devices"] = int(fields["devices"])
    return fields


def _weight_grid(text: str | None) -> list[float] | None:
    """``--target-weight-grid 0,0.25,1,4`` as floats (None when not given)."""
    if not text:
        return None
    try:
        return [float(v) for v in split_list(text)]
    except ValueError:
        raise ValueError(f"--target-weight-grid takes weights >= 0 separated by commas (e.g. 0,0.25,1,4); got "
                         f"{text!r}.") from None


def _numbers_or_json(text: str | None, flag: str, fields: tuple[tuple[str, type], ...], required: int,
                     usage: str) -> dict | None:
    """A dict option given as a JSON dict or as comma-separated numbers: the first ``required`` of ``fields``
    (``(key, int or float)``) and any of the rest, in order; ``ValueError`` with ``usage`` otherwise."""
    if not text:
        return None
    if text.strip().startswith("{"):
        import json

        return json.loads(text)
    parts = split_list(text)
    try:
        values = [kind(v) for (_, kind), v in zip(fields, parts)]
    except ValueError:
        values = []
    if not required <= len(parts) <= len(fields) or len(values) != len(parts):
        raise ValueError(f"{flag} takes {usage} or a JSON dict; got {text!r}.")
    return dict(zip([key for key, _ in fields], values))


def _multi_view(text: str | None) -> dict | None:
    """``--multi-view VIEWS,BLOCKS[,TAU[,HEADS]]`` (or a JSON dict) as ``FitConfig.multi_view_target``."""
    return _numbers_or_json(text, "--multi-view", (("views", int), ("blocks", int), ("routing_temperature", float),
                                                   ("heads", int)), 2,
                            "VIEWS,BLOCKS[,TAU[,HEADS]] (whole numbers, TAU a number; SVTL's: 12,4,0.7)")


def _fusion_encoder(text: str | None) -> dict | None:
    """``--fusion-encoder HIDDEN[,BLOCKS[,DROPOUT]]`` (or a JSON dict) as ``FitConfig.fusion_encoder``."""
    return _numbers_or_json(text, "--fusion-encoder", (("hidden", int), ("blocks", int), ("dropout", float)), 1,
                            "HIDDEN[,BLOCKS[,DROPOUT]] (whole numbers, DROPOUT a number; BrainHiVE's: 1024,1,0.1)")


def _smoothing(text: str | None) -> dict | None:
    """``--eeg-smoothing KERNEL,PROBABILITY[,frozen|redrawn]`` as ``FitConfig.eeg_smoothing`` (None when not given)."""
    if not text:
        return None
    parts = split_list(text)
    how = "--eeg-smoothing takes KERNEL,PROBABILITY[,frozen|redrawn] (e.g. 5,0.3: NeuroBridge's)"
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("frozen", "redrawn")):
        raise ValueError(f"{how}; got {text!r}.")
    try:
        kernel, probability = int(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{how}: KERNEL a whole number of samples, PROBABILITY a number in [0, 1]; got "
                         f"{text!r}.") from None
    return {"kernel": kernel, "channel_probability": probability, "frozen": len(parts) == 2 or parts[2] == "frozen"}


def _build_config(preset: str | None, fields: dict, config_file: Path | None = None, partial: bool = False):
    """The FitConfig of ``fields`` (the options given) over a preset or a config file (``--config``).

    With ``--config FILE`` the file's values are the base and every option given on the command line replaces
    its value; ``--encoder-option`` pairs are added to the file's encoder options (all of them replace the file's
    when ``--encoder`` names another encoder).
    """
    from eegvision.training.config import FitConfig
    from eegvision.training.presets import preset_config

    if partial and not preset:
        raise ValueError("--partial-preset applies to a --preset (it trains a preset without the options eegvision "
                         "does not have yet); give --preset NAME or leave --partial-preset out.")
    if config_file is not None:
        if preset:
            raise ValueError(f"Give --config FILE or --preset {preset}, not both: the file is a whole config "
                             "(a preset's values are recorded in it when it came from one).")
        base = FitConfig.from_file(config_file).to_dict()
        if "encoder_options" in fields and fields.get("encoder", base["encoder"]) == base["encoder"]:
            fields["encoder_options"] = {**base["encoder_options"], **fields["encoder_options"]}
        elif "encoder" in fields and fields["encoder"] != base["encoder"] and "encoder_options" not in fields:
            fields["encoder_options"] = {}
        merged = {**base, **fields}
        if "average_train" in fields and fields["average_train"] and "mix_repetitions" not in fields:
            merged["mix_repetitions"] = False  # --average-train given over a file that mixes repetitions
        if "mix_repetitions" in fields and fields["mix_repetitions"] and "average_train" not in fields:
            merged["average_train"] = False
        return FitConfig.from_dict(merged)
    return preset_config(preset, partial=partial, **fields) if preset else FitConfig(**fields)


def _print_rows(rows: list[dict], title: str) -> None:
    """The rows as tables: the inductive rows, then (when there are any) the transductive ones (CSLS,
    calibrations) in a separate table; the two kinds never share a table."""
    from rich.table import Table

    from eegvision.evaluation.results import split_rows

    tables = split_rows(r for r in rows if r.get("method") != "montecarlo")
    for kind, part in (("inductive", tables.inductive), ("transductive", tables.transductive)):
        if not part and kind == "transductive":
            continue
        cal = any(r.get("calibration") for r in part)
        table = Table(title=f"{title} — {kind}")
        for col in ("subject", "modality", "method", *(["calibration"] if cal else []), "k", "top1", "top5"):
            table.add_column(col)
        for r in part:
            table.add_row(str(r.get("subject") or ""), r["modality"], r["method"],
                          *([str(r.get("calibration") or "")] if cal else []), str(r["k"]),
                          f"{r['top1']:.3f}", f"{r.get('top5', float('nan')):.3f}")
        stdout.print(table)


def _print_summary(summary: dict, kind: str = "") -> None:
    """One line per modality: mean top-1/top-5 over subjects at the largest k (an Evaluation's summary);
    ``kind="transductive"`` labels the lines of the transductive summary."""
    for m, h in summary.items():
        top5 = f", top-5 {h['top5']:.3f}" if h["top5"] is not None else ""
        how = h["method"] + (f" after {h['calibration']}" if h.get("calibration") else "")
        label = f"{kind}: " if kind else ""
        stdout.print(f"{label}{m} {h['k']}-way ({how}, mean over {h['n_subjects']} subject(s)): "
                      f"top-1 {h['top1']:.3f}{top5}")


_COMMON_HELP = {
    "features_train": "Training-split features (.safetensors, or ATM .pt with --features-normalized).",
    "features_test": "Test-split features (default: DATA/features/test.safetensors).",
}


def _command_line(ctx: typer.Context, extra: tuple[str, ...] = ()) -> str:
    """The command line that gives ``ctx``'s parameters again (options left at their default omitted)."""
    words = ["eegvision", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.param_type_name != "option" or value is None or value == param.default or value == []:
            continue
        if param.is_flag:
            flag = param.opts[0] if value else (param.secondary_opts or [None])[0]
            words += [flag] if flag else []
        else:
            for item in value if param.multiple else [value]:
                words += [param.opts[0], str(item)]
    words += [w for w in extra if w not in words]
    return shlex.join(words)


def _interrupted(ctx: typer.Context, out: Path) -> None:
    """After Ctrl-C in ``fit``: say how to go on (resume when a checkpoint was saved), exit 130."""
    from eegvision.training.rundir import RunFolder

    if RunFolder(out).has_checkpoints():
        typer.echo(f"Interrupted; {out} keeps the last finished epoch. Resume with:\n  "
                   f"{_command_line(ctx, ('--resume',))}", err=True)
    else:
        typer.echo(f"Interrupted before the first epoch finished; nothing was kept in {out}. Start again with:\n  "
                   f"{_command_line(ctx)}", err=True)
    raise typer.Exit(code=130)


def fit_cmd(
    ctx: typer.Context,
    data: str = typer.Option(None, "--data", help="Store directory or THINGS-EEG2 folder (read in place); "
                             "required unless the --config file gives it."),
    config_file: Path = typer.Option(None, "--config", help="A FitConfig file (JSON, e.g. a tune folder's "
                                     "best_config.json, or TOML); options given beside it replace its values."),
    subject: str = typer.Option(None, "--subject", help="Subject(s), comma-separated (LOSO: held-out ones)."),
    encoder: str = typer.Option(None, "--encoder", help="Encoder name (atms, nice, eegproject, stconv, ridge, "
                                "braindecode:EEGNet; `eegvision models` lists them), or auto: ridge and STConv "
                                "fitted, the validation winner kept (the default; its training recipes are fixed)."),
    whiten: str = typer.Option(None, "--whiten", help="Noise whitening of the input channels: mvnn (from the "
                               "training repetitions' residuals; stored in the encoder)."),
    out: Path = typer.Option(..., "--out", help="Run directory to create (or to resume)."),
    features_train: str = typer.Option(None, "--features-train", help=_COMMON_HELP["features_train"]),
    features_test: str = typer.Option(None, "--features-test", help=_COMMON_HELP["features_test"]),
    features_normalized: bool = typer.Option(None, "--features-normalized/--no-features-normalized",
                                             help="Required for ATM .pt features: normalise them or keep raw."),
    objective: str = typer.Option(None, "--objective", help="retrieval (default) or generation."),
    protocol: str = typer.Option(None, "--protocol", help="within (default), loso or joint."),
    epochs: int = typer.Option(None, "--epochs", min=1),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Effective batch over all devices."),
    lr: float = typer.Option(None, "--lr"),
    weight_decay: float = typer.Option(None, "--weight-decay"),
    schedule: str = typer.Option(None, "--schedule", help="none or cosine."),
    seed: int = typer.Option(None, "--seed"),
    average_train: bool = typer.Option(None, "--average-train/--single-trials",
                                       help="Train on repetition-averaged trials or single trials."),
    mix_repetitions: bool = typer.Option(None, "--mix-repetitions/--no-mix-repetitions",
                                         help="Train on random mixtures of each condition's repetitions."),
    time_shift: int = typer.Option(None, "--time-shift", min=0, help="Augmentation: largest random time shift "
                                   "in samples (zero-padded, not circular); 0: off."),
    amplitude_scale: float = typer.Option(None, "--amplitude-scale", min=0, help="Augmentation: sd of the log of "
                                          "a random per-trial amplitude factor; 0: off."),
    channel_dropout: float = typer.Option(None, "--channel-dropout", help="Augmentation: probability of zeroing "
                                          "each channel of a training trial; 0: off."),
    noise: float = typer.Option(None, "--noise", min=0, help="Augmentation: sd of added Gaussian noise relative "
                                "to the batch's sd; 0: off."),
    patience: int = typer.Option(None, "--patience", min=1, help="Early stopping: stop after this many epochs "
                                 "without a better validation score (the best epoch stays selected)."),
    ema_decay: float = typer.Option(None, "--ema-decay", help="Select and save an exponential moving average of "
                                    "the weights with this decay per step (e.g. 0.999)."),
    ridge_init: bool = typer.Option(None, "--ridge-init", help="Start from the ridge solution: train "
                                    "ridge(x) + gate * encoder(x), the gate at 0 (ridge solved on the fitting "
                                    "conditions)."),
    ensemble: int = typer.Option(None, "--ensemble", min=1, help="Train this many models (seeds SEED, SEED+1, "
                                 "...) and average their normalised embeddings."),
    channels: str = typer.Option(None, "--channels", help="Region (occipito-parietal) or names (O1,Oz,O2)."),
    window: str = typer.Option(None, "--window", help="Time window TMIN,TMAX in seconds."),
    align: str = typer.Option(None, "--align", help="Per-subject alignment from each subject's training split, "
                              "no labels (for loso/joint): euclidean (channels whitened by the subject's mean "
                              "covariance), centre (its mean trial subtracted) or centre-euclidean (both)."),
    mmd_epochs: int = typer.Option(None, "--mmd-epochs", min=0, help="Coarse-to-fine: train the first N epochs "
                                   "on the MMD between EEG and image embeddings, then InfoNCE."),
    mmd_weight: float = typer.Option(None, "--mmd-weight", help="Weight of the coarse MMD loss."),
    subject_mmd_weight: float = typer.Option(None, "--subject-mmd-weight", min=0, help="Add this times the MMD "
                                             "between each subject's embeddings and the others' (loso/joint)."),
    subject_router: str = typer.Option(None, "--subject-router", help="Training-only subject router: gate "
                                       "(mixture of adapters) or heads (one adapter per training subject); "
                                       "evaluation takes the average route."),
    router_experts: int = typer.Option(None, "--router-experts", min=1, help="Adapters of --subject-router gate."),
    val_fraction: float = typer.Option(None, "--val-fraction", help="Fraction of training concepts held out."),
    selection: str = typer.Option(None, "--selection", help="val_top1 (default) or val_loss."),
    report_test_curve: bool = typer.Option(None, "--report-test-curve",
                                           help="Also record per-epoch test top-1 (labelled extra)."),
    same_concept_positives: bool = typer.Option(None, "--same-concept-positives",
                                                help="Samples of one concept in a batch are positives."),
    reference_loss: bool = typer.Option(None, "--reference-loss", help="Reference ClipLoss: raw logit scale."),
    reference: bool = typer.Option(None, "--reference", help="Train as the reference code: encoder in reference "
                                   "mode, its ClipLoss, weight decay on every parameter (batch 64 by default)."),
    encoder_option: list[str] = typer.Option(None, "--encoder-option", help="KEY=VALUE encoder option."),
    target: list[str] = typer.Option(None, "--target", help="Extra target TRAIN_FILE[:WEIGHT] (repeatable): a "
                                     "training feature file (e.g. another layer); its test file is the same name "
                                     "with 'test' for the last 'train'. Weight 1 by default."),
    target_mode: str = typer.Option(None, "--target-mode", help="heads (one head + InfoNCE term per extra target; "
                                    "the primary embedding is kept; default), fused (one concatenated target) or "
                                    "learned (SAMGA: the layers of one width summed with learned softmax weights, a "
                                    "per-subject offset in training only; eegvision.training.fusion)."),
    fusion_subject_dropout: float = typer.Option(None, "--fusion-subject-dropout", help="learned: probability of "
                                                 "dropping a training sample's subject offset of the layer weights."),
    fusion_layer_dropout: float = typer.Option(None, "--fusion-layer-dropout", help="learned: probability of "
                                               "zeroing each layer's weight of a training sample (rest renormalised)."),
    target_dim: int = typer.Option(None, "--target-dim", min=1, help="fused: PCA dimension of the fused target "
                                   "(fitted on the training images)."),
    primary_weight: float = typer.Option(None, "--primary-weight", help="Weight of the primary target (1)."),
    target_weights: str = typer.Option(None, "--target-weights", help="fixed (the weights given; default) or cv: "
                                       "with --target-mode fused and --encoder ridge, each extra target's weight "
                                       "chosen for the subject from --target-weight-grid by cross-validation."),
    target_weight_grid: str = typer.Option(None, "--target-weight-grid", help="cv: the weights an extra target "
                                           "may take, comma-separated (0,0.25,1,4; 0 drops it)."),
    stages: str = typer.Option(None, "--stages", help="Training stages as JSON text or a JSON file: a list of "
                               "{\"epochs\": N, \"lr\": LR, \"subject_mmd_weight\": W or [START, END], \"freeze\": "
                               "[GROUPS]} (SVTL; eegvision.training.stages); --epochs is their sum."),
    learn_temperature: bool = typer.Option(None, "--learn-temperature/--fixed-temperature",
                                           help="Train the contrastive temperature, or keep it at its start value."),
    blur_levels: str = typer.Option(None, "--blur-levels", help="UBP's blur prior in training: LOW,HIGH training "
                                    "feature files of the low and high blur levels; --features-train/--features-"
                                    "test must be the medium level. Each image's level is chosen from its running "
                                    "similarity (eegvision.training.blur_prior)."),
    projector: int = typer.Option(None, "--projector-dim", min=1, help="NeuroBridge's projectors: a trainable "
                                      "Linear to this size after the encoder and another on the image features; "
                                      "retrieval in that space (e.g. 512)."),
    eeg_smoothing: str = typer.Option(None, "--eeg-smoothing", help="NeuroBridge's smoothing of the training EEG: "
                                      "KERNEL,PROBABILITY[,frozen|redrawn]: each channel moving-averaged over "
                                      "KERNEL samples with that probability, drawn once (frozen, the default) or "
                                      "at every read (e.g. 5,0.3)."),
    multi_view_target: str = typer.Option(None, "--multi-view", help="SVTL's trainable image target from token "
                                          "features (--features-train/-test made with `features --pooling tokens`): "
                                          "VIEWS,BLOCKS[,TAU[,HEADS]] (e.g. 12,4,0.7) or a JSON dict; learned "
                                          "queries attend over the tokens, views routed within blocks then across."),
    fusion_encoder: str = typer.Option(None, "--fusion-encoder", help="BrainHiVE's trainable fusion encoder over "
                                       "the --features-train/-test and --target files (one Linear each, summed, "
                                       "then residual layers): HIDDEN[,BLOCKS[,DROPOUT]] (e.g. 1024,1,0.1) or a "
                                       "JSON dict; retrieval in its HIDDEN-d output space."),
    preset: str = typer.Option(None, "--preset", help="Named config (list them with `eegvision presets`); "
                                                     "options given beside it override it."),
    partial_preset: bool = typer.Option(False, "--partial-preset",
                                        help="Train a preset whose paper recipe needs options eegvision does not "
                                             "have yet (see `eegvision presets`) without them; the run records it."),
    devices: str = typer.Option(None, "--devices", help="Number of devices (or auto)."),
    strategy: str = typer.Option(None, "--strategy", help="auto or ddp."),
    accelerator: str = typer.Option(None, "--accelerator", help="auto (CUDA when present), cpu or gpu."),
    precision: str = typer.Option(None, "--precision", help="32, 16-mixed or bf16-mixed."),
    num_workers: int = typer.Option(None, "--num-workers", min=0),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in OUT."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train an EEG encoder against CLIP features; select on held-out training concepts; evaluate on test.

    Example: eegvision fit --data store/ --subject sub-01 --encoder atms --out runs/atms-sub-01
    Example: eegvision fit --data store/ --subject sub-01 --encoder ridge --whiten mvnn --out runs/ridge-sub-01
    Example: eegvision fit --config tune/best_config.json --out runs/tuned
    Example: eegvision fit --data store/ --subject sub-01 --encoder ridge --target layer6.train.safetensors:0.5
    --target-mode fused --out runs/ridge-fused
    """
    from eegvision.features.fused import parse_target
    from eegvision.training.fitting import fit

    with user_errors():
        fields = _config_fields(
            data=data, subjects=split_list(subject), encoder=encoder, whiten=whiten, features_train=features_train,
            features_test=features_test, features_normalized=features_normalized, objective=objective,
            protocol=protocol, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            schedule=schedule, seed=seed, average_train=average_train, mix_repetitions=mix_repetitions,
            time_shift=time_shift, amplitude_scale=amplitude_scale, channel_dropout=channel_dropout, noise=noise,
            patience=patience, ema_decay=ema_decay, ensemble=ensemble, ridge_init=ridge_init,
            channels=channels, window=window, align=align, val_fraction=val_fraction, selection=selection,
            report_test_curve=report_test_curve, mmd_epochs=mmd_epochs, mmd_weight=mmd_weight,
            subject_mmd_weight=subject_mmd_weight, subject_router=subject_router, router_experts=router_experts,
            same_concept_positives=same_concept_positives, reference_loss=reference_loss, reference=reference,
            encoder_options=parse_options(encoder_option) or None, devices=devices, strategy=strategy,
            targets=[parse_target(t).to_dict() for t in target] if target else None, target_mode=target_mode,
            target_dim=target_dim, primary_weight=primary_weight, target_weights=target_weights,
            target_weight_grid=_weight_grid(target_weight_grid), fusion_subject_dropout=fusion_subject_dropout,
            fusion_layer_dropout=fusion_layer_dropout, stages=_stages_option(stages),
            blur_levels=split_list(blur_levels) if blur_levels else None, learn_temperature=learn_temperature,
            projector={"dim": projector} if projector is not None else None,
            eeg_smoothing=_smoothing(eeg_smoothing), multi_view_target=_multi_view(multi_view_target),
            fusion_encoder=_fusion_encoder(fusion_encoder),
            accelerator=accelerator, precision=precision, num_workers=num_workers,
        )
        fields["progress"] = not quiet
        cfg = _build_config(preset, fields, config_file, partial=partial_preset)
        if not cfg.data:
            raise ValueError("No data: pass --data DATA (a store or THINGS-EEG2 folder), or a --config file that "
                             "sets data.")
        try:
            result = fit(cfg, out, resume=resume)
        except KeyboardInterrupt:
            _interrupted(ctx, out)
    rows = result.rows
    if as_json:
        print_json({"path": result.path, "encoder": cfg.encoder, "protocol": cfg.protocol,
                    "units": result.units, "rows": rows})
        return
    _print_rows([r for r in rows if r["method"] == "exact" and r["k"] in (2, 200, max(x["k"] for x in rows))],
                f"{cfg.encoder} {cfg.protocol}: {len(result.units)} unit(s)")
    stdout.print(f"wrote {result.path}")


def evaluate_cmd(
    run: Path = typer.Argument(None, help="Run directory made by `eegvision fit`."),
    eeg_embeds: Path = typer.Option(None, "--eeg-embeds", help="Precomputed test embeddings (.pt/.npy/.safetensors)."),
    image_features: Path = typer.Option(None, "--image-features", help="Test image features for --eeg-embeds, or "
                                        "for RUN instead of its own (needed by an imported checkpoint's run)."),
    text_features: Path = typer.Option(None, "--text-features", help="Test text features (optional)."),
    out: Path = typer.Option(None, "--out", help="Directory for metrics.json/csv (with --eeg-embeds)."),
    ks: str = typer.Option(None, "--ks", help="k values, e.g. 2,4,10,50,100,200."),
    methods: str = typer.Option(None, "--methods", help="exact,montecarlo,csls."),
    seed: int = typer.Option(0, "--seed", help="Seed of the Monte-Carlo draws (--eeg-embeds)."),
    calibrate: str = typer.Option(None, "--calibrate", help="Also score after transductive calibrations of the "
                                  "test embeddings: centre,whiten,procrustes,score (printed in a separate "
                                  "transductive table)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Zero-shot k-way retrieval/classification of a run (writes RUN/metrics.json) or of embedding files.

    Transductive numbers (CSLS, --calibrate) are printed in their own table and summary, never with the
    inductive ones.

    Example: eegvision evaluate runs/atms-sub-01
    Example: eegvision evaluate --eeg-embeds sub08_test.pt --image-features test.safetensors --out results/
    """
    with user_errors():
        if (run is None) == (eeg_embeds is None):
            raise ValueError("Give either a RUN directory or --eeg-embeds F --image-features F (not both).")
        if run is not None:
            from eegvision.training.run import evaluate_run

            if text_features is not None or out is not None:
                raise ValueError("--text-features and --out go with --eeg-embeds; evaluating RUN uses the run's "
                                 "text features and writes RUN/metrics.json (pass --image-features FILE to "
                                 "evaluate it against other test features).")
            res = evaluate_run(run, ks=number_list(ks, int, "--ks"), methods=split_list(methods),
                               features_test=str(image_features) if image_features is not None else None,
                               calibrations=split_list(calibrate))
        else:
            from eegvision.evaluation.embeddings import evaluate_embedding_files

            if image_features is None:
                raise ValueError("--eeg-embeds needs --image-features (the test-image CLIP features).")
            kw = {"seed": seed}
            if ks:
                kw["ks"] = number_list(ks, int, "--ks")
            kw["methods"] = split_list(methods) or ["exact", "montecarlo", "csls"]
            kw["calibrations"] = split_list(calibrate) or []
            res = evaluate_embedding_files(eeg_embeds, image_features, text_features, out=out, **kw)
    if as_json:
        print_json({"summary": res.summary, "transductive_summary": res.transductive_summary, "rows": res.rows,
                    "files": res.files})
        return
    _print_rows(res.rows, "zero-shot evaluation")
    _print_summary(res.summary)
    _print_summary(res.transductive_summary, "transductive")
    for path in res.files:
        stdout.print(f"wrote {path}")


def embed_cmd(
    run: Path = typer.Argument(..., help="Run directory made by `eegvision fit`."),
    data: str = typer.Option(..., "--data", help="Store directory or THINGS-EEG2 folder."),
    out: Path = typer.Option(..., "--out", help="Output .safetensors (one tensor per subject)."),
    subject: str = typer.Option(None, "--subject", help="Subject(s) to embed (default: the run's test subjects)."),
    split: str = typer.Option("test", "--split", help="test or training."),
    average: bool = typer.Option(True, "--average/--single-trials", help="Average repetitions per condition."),
    unit: str = typer.Option(None, "--unit", help="Fold of a multi-fold run (its held-out subject)."),
    device: str = typer.Option(None, "--device", help="cuda or cpu (default: cuda if available)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Embed EEG with a trained run's selected encoder.

    Example: eegvision embed runs/atms-sub-01 --data store/ --out sub-01_test.safetensors
    """
    from eegvision.training.run import embed_run

    with user_errors():
        res = embed_run(run, data, out, subjects=split_list(subject), split=split, average=average, unit=unit,
                        device=device)
    if as_json:
        print_json({"path": res.path, "unit": res.unit, "split": res.split,
                    "shapes": {s: list(e.shape) for s, e in res.embeddings.items()}})
        return
    shapes = ", ".join(f"{s} {tuple(e.shape)}" for s, e in res.embeddings.items())
    stdout.print(f"unit {res.unit}, {res.split} split: {shapes}")
    stdout.print(f"wrote {res.path}")


def benchmark_cmd(
    data: str = typer.Option(..., "--data", help="Store directory or THINGS-EEG2 folder."),
    encoders: str = typer.Option(..., "--encoders", help="Comma-separated encoder names."),
    subjects: str = typer.Option(..., "--subjects", help="Comma-separated subjects."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds."),
    out: Path = typer.Option(..., "--out", help="Output directory (runs/, results.csv, summary.csv)."),
    protocol: str = typer.Option(None, "--protocol", help="within (default), loso or joint."),
    preset: str = typer.Option(None, "--preset", help="Base config (encoder is replaced per run)."),
    features_train: str = typer.Option(None, "--features-train", help=_COMMON_HELP["features_train"]),
    features_test: str = typer.Option(None, "--features-test", help=_COMMON_HELP["features_test"]),
    epochs: int = typer.Option(None, "--epochs", min=1),
    batch_size: int = typer.Option(None, "--batch-size", min=1),
    lr: float = typer.Option(None, "--lr"),
    average_train: bool = typer.Option(None, "--average-train/--single-trials"),
    channels: str = typer.Option(None, "--channels"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train several encoders x subjects x seeds; write one results table, a summary and paired comparisons.

    Example: eegvision benchmark --data store/ --encoders atms,nice --subjects sub-01,sub-02 --seeds 0,1 --out bench/
    """
    from eegvision.training.benchmark import benchmark

    with user_errors():
        fields = _config_fields(data=data, subjects=split_list(subjects), protocol=protocol, features_train=features_train,
                                features_test=features_test, epochs=epochs, batch_size=batch_size, lr=lr,
                                average_train=average_train, channels=channels)
        fields["progress"] = not quiet
        if encoders and not preset:
            fields["encoder"] = split_list(encoders)[0]   # the base is a concrete encoder's (replaced per run)
        base = _build_config(preset, fields)
        res = benchmark(base, split_list(encoders) or [], number_list(seeds, int, "--seeds") or [0], out)
    summary = res.summary
    sel = summary[(summary.get("modality") == "image") & (summary.get("method") == "exact")] \
        if "modality" in summary else summary
    stdout.print(sel.to_string(index=False))
    stdout.print(f"{len(res.runs)} run(s); wrote {res.out}")


def _stages_option(value: str | None) -> list | None:
    """``--stages``: JSON text (starting with ``[``) or the path of a JSON file holding the list of stages."""
    import json

    if value is None:
        return None
    text = value
    if not value.lstrip().startswith("["):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"--stages takes a JSON list of stages or a JSON file; {value!r} is neither (no such "
                             'file). Example: --stages \'[{"epochs": 20, "lr": 1e-4}, {"epochs": 30, "lr": 5e-5}]\'.')
        text = path.read_text()
    try:
        return json.loads(text)
    except ValueError as err:
        raise ValueError(f"--stages is not valid JSON ({err}): {value!r}.") from None


#: What ``fit --help`` shows as each option's default: the :class:`~eegvision.training.config.FitConfig` default
#: (the options themselves default to "not given", so that a --preset can set them; tests/test_cli_output.py
#: checks these against FitConfig).
FIT_DEFAULTS = {
    "encoder": "auto", "objective": "retrieval", "protocol": "within", "epochs": 40, "batch_size": 64,
    "lr": 0.0003, "weight_decay": 0.01, "schedule": "none", "seed": 0, "val_fraction": 0.05,
    "selection": "val_top1", "average_train": "single-trials", "mix_repetitions": "off",
    "channels": "all channels", "window": "the whole epoch", "align": "no alignment", "report_test_curve": "off",
    "same_concept_positives": "off", "reference_loss": "off", "time_shift": 0, "amplitude_scale": 0.0,
    "channel_dropout": 0.0, "noise": 0.0, "patience": "no early stopping", "ema_decay": "no averaging",
    "ensemble": 1, "ridge_init": "off", "mmd_epochs": 0, "mmd_weight": 1.0, "subject_mmd_weight": 0.0,
    "subject_router": "no router", "router_experts": 4, "learn_temperature": "learn-temperature",
    "fusion_subject_dropout": 0.0, "fusion_layer_dropout": 0.0, "stages": "one stage (--epochs, --lr)",
    "projector": "no projector", "eeg_smoothing": "no smoothing", "multi_view_target": "fixed image vectors",
    "fusion_encoder": "no fusion encoder",
    "devices": 1, "strategy": "auto",
    "accelerator": "auto", "precision": "32", "num_workers": 0,
}


def _show_defaults(command, defaults: dict) -> None:
    """Append ``[default: TEXT]`` to the help of ``command``'s typer options named in ``defaults``."""
    import inspect

    for name, param in inspect.signature(command).parameters.items():
        if name in defaults and "[default:" not in (param.default.help or ""):
            param.default.help = f"{param.default.help or ''} \\[default: {defaults[name]}]".strip()


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
    _show_defaults(fit_cmd, FIT_DEFAULTS)
    app.command("fit")(fit_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("embed")(embed_cmd)
    app.command("benchmark")(benchmark_cmd)
