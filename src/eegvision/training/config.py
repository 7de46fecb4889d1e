"""``FitConfig``: every choice of a training run, as a JSON-able dataclass (``FinetuneConfig`` is in
:mod:`.finetune_config` and re-exported here).

A run directory records its ``FitConfig`` in ``config.json``; ``fit`` refuses to write into a
directory that holds a run with a different config (see :func:`FitConfig.differences`).
``finetune`` turns a ``FinetuneConfig`` and its parent's ``FitConfig`` into the ``FitConfig`` of the
fine-tuned run (see :mod:`eegvision.training.finetune`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eegvision.checks import (
    check_choice,
    check_file,
    check_int,
    check_list,
    check_names,
    check_positive,
    check_range,
)

PROTOCOLS = ("within", "loso", "joint")
SELECTIONS = ("val_top1", "val_loss")
PRECISIONS = ("32", "32-true", "16-mixed", "bf16-mixed")
#: Input noise whitening of ``FitConfig.whiten`` (:mod:`eegvision.training.whitening`).
WHITENINGS = ("mvnn",)
#: How ``FitConfig.targets`` are used (see the class docstring).
TARGET_MODES = ("heads", "fused", "learned")
TARGET_WEIGHTS = ("fixed", "cv")
#: The k values evaluated by default (ATM's 2-, 4-, 10-, 50-, 100- and 200-way); see :func:`eval_ks_for`.
DEFAULT_EVAL_KS = (2, 4, 10, 50, 100, 200)

#: Fields that may change between an interrupted run and its ``--resume`` (they do not change
#: what is computed, or extend it: ``epochs`` may grow to continue training).
RESUMABLE_FIELDS = frozenset({
    "epochs", "devices", "strategy", "accelerator", "num_workers", "progress", "data", "features_train",
    "features_test",
})


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    """``cls(**d)`` for a config dataclass; unknown keys raise ``ValueError`` with close matches."""
    check_names(f"{cls.__name__} field", list(d), [f.name for f in dataclasses.fields(cls)], cls.__name__)
    return cls(**d)


@dataclass
class FitConfig:
    """Configuration of one training run (one model per fold).

    Parameters
    ----------
    data : str
        A store directory (``manifest.json``) or a THINGS-EEG2 folder (``Preprocessed_data_250Hz/``).
    subjects : list of str
        ``within``: the subject(s) to train and test on (one model per subject).
        ``loso``: the held-out test subjects (one fold and one fresh model each); the model
        trains on ``train_subjects`` or, if empty, every other subject of the data.
        ``joint``: all subjects trained together (per-sample subject ids) and tested each.
    encoder : str
        ``"auto"`` (the default): a closed-form ``ridge`` and an ``stconv`` candidate are fitted for each unit on
        the same fitting conditions and the one with the higher validation top-1 is kept
        (:mod:`eegvision.training.auto`; chosen as the default by the generalisation benchmark, README); its
        candidates' training recipes are fixed, so training options other than their defaults are refused.
        Otherwise an encoder name of ``eegvision.models.list_models()``; ``encoder_options`` go to its constructor. A
        closed-form encoder (``ridge``) is solved instead of trained (:mod:`eegvision.training.closed_form`): it
        fits one row per training condition (the mean of its repetitions, whatever ``average_train`` says), all
        training concepts, and chooses its penalty by cross-validation over held-out concepts; the optimiser,
        epoch, early-stopping, EMA, ``val_fraction`` and ``selection`` settings do not apply to it, and
        repetition mixing, augmentations and ensembles are refused.
    whiten : {None, "mvnn"}
        Noise whitening of the input channels for any encoder: the MVNN matrix (inverse square root of the
        Ledoit–Wolf covariance of the residuals around the condition means) of the fitting training conditions
        only, stored in the encoder and applied in its forward pass (:mod:`eegvision.training.whitening`).
    objective : {"retrieval", "generation"}
        See :mod:`eegvision.training.losses`.
    features_train, features_test : str, optional
        Feature files (safetensors, or ATM-style ``.pt`` with ``features_normalized`` set).
        Default: ``DATA/features/{train,test}.safetensors``.
    average_train : bool
        Train on repetition-averaged trials (UBP/NICE style) instead of single trials (ATM).
    mix_repetitions : bool
        Train on a fresh random convex combination of each condition's repetitions per batch
        (:class:`~eegvision.data.mixing.RepetitionMix`; one sample per condition and epoch). Exclusive
        with ``average_train``.
    channels : str or list, optional
        Channel subset (region name such as ``"occipito-parietal"``, or names).
    window : tuple of float, optional
        Time window in seconds ``(tmin, tmax)``.
    align : {None, "euclidean", "centre", "centre-euclidean"}
        Per-subject alignment (:mod:`eegvision.data.alignment`), computed from each subject's training-split
        trials without labels (a held-out subject's too, never its test EEG): ``euclidean`` whitens its channels
        by its own mean spatial covariance (EA); ``centre`` subtracts its mean trial (its mean evoked
        response); ``centre-euclidean`` does both. The alignments are recorded in the unit folder and reused
        by ``evaluate``/``embed``. For cross-subject protocols (``loso``, ``joint``).
    val_fraction : float
        Fraction of the training concepts held out for validation/model selection.
    selection : {"val_top1", "val_loss"}
        Model-selection rule on the validation split (never the test set).
    report_test_curve : bool
        Also record per-epoch test top-1 ("best epoch on test", a labelled extra, never used
        for selection).
    reference : bool
        Train as the reference code does (``ATMS_retrieval.py``, ``atm.md`` §3): the encoder in reference
        mode (``encoder_options["mode"] = "reference"``: raw ``logit_scale`` on the encoder, reference subject
        rows), its loss (``reference_loss``: 0.99 image + 0.01 text ``ClipLoss`` on raw embeddings with the raw
        logit scale, no MSE term; the retrieval objective), and weight decay on every parameter, 1-D ones and
        the logit scale included. Its batch size is the default, 64; a preset that sets another keeps it.
        Only for encoders that have a reference mode (atms, nice, projector).
    time_shift, amplitude_scale, channel_dropout, noise : int, float, float, float
        Augmentations of the training batches (never of validation or test data), all off at 0; see
        :mod:`eegvision.data.augment`. ``time_shift``: largest shift in samples, zero-padded (not circular);
        ``amplitude_scale``: sd of the log of a per-sample amplitude factor (log-normal); ``channel_dropout``:
        probability of zeroing each channel of a sample; ``noise``: sd of added Gaussian noise relative to the
        batch's sd. Their draws are seeded from ``(seed, epoch, batch index)``, whatever ``num_workers``.
    patience : int, optional
        Early stopping: stop when the selection metric (``selection``) has not improved for ``patience``
        validations (epochs); the selected epoch stays the best validation one. ``None``: train all ``epochs``.
    ema_decay : float, optional
        Keep an exponential moving average of the weights, ``ema = d * ema + (1 - d) * weights`` after every
        optimiser step (starting from the initial weights; buffers too); validation, selection and the saved
        encoder use the averaged weights. ``None``: off.
    ensemble : int
        Train ``ensemble`` models with seeds ``seed .. seed + ensemble - 1`` (same validation split, the one
        of ``seed``), each selected on validation; the unit's encoder averages their L2-normalised embeddings
        (:class:`eegvision.models.encoders.ensemble.EnsembleEncoder`). Members are kept as units of their own
        under the unit's ``members/`` folder (see :mod:`eegvision.training.rundir`). 1: one model.
    mmd_epochs, mmd_weight : int, float
        Coarse-to-fine training (SAMGA, arXiv 2604.17782): for the first ``mmd_epochs`` epochs the training loss is
        ``mmd_weight`` times the multi-kernel MMD between the batch's L2-normalised EEG embeddings and their image
        features (distribution-level alignment, :func:`~eegvision.training.losses.multi_kernel_mmd`), then the
        objective (InfoNCE). 0: InfoNCE from the start.
    subject_mmd_weight : float
        Adds ``subject_mmd_weight`` times the mean MMD between each subject's embeddings and the other subjects'
        in the batch (:func:`~eegvision.training.losses.subject_mmd`; SVTL-style subject alignment) in every epoch.
        For cross-subject protocols (``loso``, ``joint``). 0: off.
    subject_router : {None, "gate", "heads"}
        A subject router used only in training (:class:`~eegvision.models.encoders.routed.RoutedEncoder`):
        residual linear adapters on the encoder's embedding, routed by the training subject's id (``gate``: a
        learned mixture of ``router_experts`` adapters; ``heads``: one adapter per training subject, i.e. joint
        training with per-subject heads); evaluation and unseen subjects take the average route, whatever the id.
    router_experts : int
        Adapters of ``subject_router="gate"``.
    ridge_init : bool
        Start from the ridge solution: the unit's encoder becomes ``ridge(x) + gate * encoder(x)``
        (:class:`eegvision.models.encoders.residual.ResidualEncoder`, gate 0 at the start), the ridge part solved in
        closed form on the fitting conditions only (validation concepts left out; whitened with ``whiten``), then
        both parts trained. ``ridge_options`` are the ridge part's options (``decim``, ``alphas``, ``cv``, ...).
    targets : list of dict
        Extra training targets besides ``features_train``/``features_test`` (the primary target): each
        ``{"train": FILE, "weight": W, "test": FILE or None}`` (the test file defaults to the training file's name
        with its last ``train`` replaced by ``test``; :class:`eegvision.features.fused.TargetSpec`), e.g. other
        layers of the vision model or pixel-level features. Empty: one target.
    target_mode : {"heads", "fused", "learned"}
        How ``targets`` are used. ``heads``: one linear projection head per extra target on the encoder's
        embedding, one InfoNCE term each, added with its weight to the primary objective (weight
        ``primary_weight``); the embedding saved, evaluated and used by the prior is the primary one (the heads
        only shape training; ``history.csv``'s ``train_loss`` includes their terms, ``val_loss`` is the primary
        objective's). Gradient-trained encoders only: a closed-form ridge solves every output column on
        its own, so heads could not change its primary output. ``fused``: one target, the weighted concatenation
        of the L2-normalised targets (optionally projected to ``target_dim`` by PCA fitted on the training images;
        :func:`eegvision.features.fused.fuse_targets`); it replaces the primary target everywhere (training,
        evaluation, prior), and its files are written into the run's ``features/`` folder. ``learned`` (SAMGA's
        subject-aware layer weights, :mod:`eegvision.training.fusion`): the target is ``sum_l w_l F_l`` over the
        primary and extra targets (rows L2-normalised; one width for all, as they are added; the given weights are
        not used), ``w = softmax(logits + offset of the subject)`` with learnable logits and a per-subject offset
        table (the router) in training only, subject and layer dropout per sample
        (``fusion_subject_dropout``, ``fusion_layer_dropout``); validation, test and the saved record use the
        shared weights ``softmax(logits)`` for every subject. The unit writes the selected epoch's weights to
        ``fusion.json`` and the fused test features to ``fusion_test.safetensors``, which its evaluation uses
        (the prior and the run-level feature files stay the primary). Gradient-trained encoders only.
    primary_weight : float
        The primary target's weight in the ``heads`` and ``fused`` modes.
    fusion_subject_dropout, fusion_layer_dropout : float
        ``learned`` only: probability of dropping a training sample's subject offset (its weights are then the
        shared ones), and of zeroing each layer's weight of a sample (the rest renormalised); 0: off.
    target_dim : int, optional
        ``fused`` only: PCA dimension of the fused target (None: the full concatenation).
    target_weights : {"fixed", "cv"}
        ``fixed``: the weights given. ``cv`` (``fused`` with the ``ridge`` encoder, one subject per run; without
        extra targets there is nothing to weigh and the fit is the plain ridge): the
        extra targets' weights are chosen for the subject from ``target_weight_grid`` (the primary's stays
        ``primary_weight``; weight 0 drops a target, so the primary alone is always a candidate), together with
        the ridge penalty, by grouped cross-validation over the training concepts
        (:func:`eegvision.evaluation.fusion_cv.fusion_cv`); the choice and every candidate's score are written
        to the run's ``target_weights.json``.
    target_weight_grid : list of float
        The weights each extra target may take with ``target_weights="cv"``.
    learn_temperature : bool
        Train the contrastive logit scale (True, CLIP's way) or keep it at ``1 / init_temperature`` (NeuroBridge's
        scripts keep the temperature fixed).
    stages : list of dict
        Training in consecutive stages (:mod:`eegvision.training.stages`; SVTL's two-stage recipe): each
        ``{"epochs": N, "lr": LR, "subject_mmd_weight": W or [START, END], "freeze": [GROUPS]}`` (the last two
        optional). The stage's lr holds for its epochs, ``[START, END]`` decays the subject MMD weight linearly over
        the stage's epochs (a stage without it takes ``subject_mmd_weight``) and ``freeze`` names the encoder's
        parameter groups (:mod:`eegvision.training.freeze`) frozen during the stage. ``epochs`` becomes the sum of
        the stages' epochs and ``lr`` the first stage's (other values are refused); ``schedule`` must be
        ``"none"``. The per-epoch stage and subject MMD weight are recorded in ``history.csv``. Empty: one stage of
        ``epochs`` at ``lr``.
    blur_levels : list of str
        UBP's blur prior in training (:mod:`eegvision.training.blur_prior`): ``[LOW, HIGH]``, the training feature
        files of the low- and high-blur images (:class:`eegvision.features.image_priors.ImagePrior` ``"blur"``);
        ``features_train``/``features_test`` must be the medium level (UBP tests on it). Each training image's
        target is then its low, medium or high blur features, the level chosen from the image's running
        matched-pair similarity as UBP's code does; the levels are recorded per epoch in ``history.csv``
        (``blur_low``, ``blur_medium``, ``blur_high``). Gradient-trained encoders only. Empty: no blur prior.
    projector : dict, optional
        NeuroBridge's projectors: ``{"dim": D}`` adds a trainable ``Linear(embedding, D)`` after the encoder (saved
        with it: :class:`~eegvision.models.encoders.projected.ProjectedEncoder`) and a trainable
        ``Linear(feature_dim, D)`` on the image targets (:class:`~eegvision.models.image_projector.ImageProjector`,
        saved in the unit's ``image_projector/``); the loss, validation and test retrieval work in the ``D``-d
        space, and the unit's test features are recorded projected (``test_features.safetensors``). Text features
        are not used (the image projector is trained on images only). Gradient-trained retrieval only; not with
        extra target heads, ensembles or ``ema_decay``. None: no projectors.
    eeg_smoothing : dict, optional
        NeuroBridge's EEG smoothing of the training data (never validation or test):
        ``{"kernel": K, "channel_probability": P, "frozen": F}`` (missing keys: 5, 0.3, True, NeuroBridge's); each
        channel of each training sample is replaced by its moving average of width ``K`` along time with
        probability ``P``, the channels drawn once when the data are loaded (``frozen``, seeded by ``seed``) or
        anew at each read (see :class:`eegvision.data.augment.SmoothedTrials`). Not with ``mix_repetitions``.
        None: off.
    multi_view_target : dict, optional
        SVTL's trainable image target: ``{"views": V, "blocks": B, "heads": H, "routing_temperature": T}`` (missing
        keys: 12, 4, 8, 0.7). ``features_train``/``features_test`` must be token files (``eegvision features ...
        --pooling tokens``); a :class:`~eegvision.models.multi_view.MultiViewTarget` (V learned queries
        cross-attending over the layer-normalised tokens, views routed within B blocks then across them at
        temperature T, then the ``projector``'s ``dim`` or the EEG embedding's size) turns each image's tokens into
        its target, trained with the encoder by the retrieval loss, saved in the unit's ``image_projector/``; the
        unit's test features are recorded as its output (``test_features.safetensors``). Same restrictions as
        ``projector``, and no extra targets or blur levels. None: fixed image vectors.
    fusion_encoder : dict, optional
        BrainHiVE's trainable fusion of vision models, ``{"hidden": H, "blocks": B, "dropout": P}`` (missing keys:
        1024, 1, 0.1): the primary features and each of ``targets`` (any widths; no weights or target_mode),
        concatenated per image into the run's ``features/fusion_input.{train,test}.safetensors``, are mapped by a
        :class:`~eegvision.models.fusion_encoder.FusionEncoder` to the ``H``-d target (the EEG embedding's size),
        trained with the encoder, saved in the unit's ``image_projector/``, its test output recorded. Same
        restrictions as ``projector``, and not with it, ``multi_view_target`` or blur levels. None: off.
    """

    data: str = ""
    subjects: list[str] = field(default_factory=list)
    protocol: str = "within"
    train_subjects: list[str] = field(default_factory=list)
    encoder: str = "auto"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    whiten: str | None = None
    objective: str = "retrieval"
    features_train: str | None = None
    features_test: str | None = None
    features_normalized: bool | None = None
    average_train: bool = False
    mix_repetitions: bool = False
    time_shift: int = 0
    amplitude_scale: float = 0.0
    channel_dropout: float = 0.0
    noise: float = 0.0
    patience: int | None = None
    ema_decay: float | None = None
    ensemble: int = 1
    ridge_init: bool = False
    ridge_options: dict[str, Any] = field(default_factory=dict)
    mmd_epochs: int = 0
    mmd_weight: float = 1.0
    subject_mmd_weight: float = 0.0
    subject_router: str | None = None
    router_experts: int = 4
    targets: list[dict[str, Any]] = field(default_factory=list)
    target_mode: str = "heads"
    primary_weight: float = 1.0
    target_dim: int | None = None
    target_weights: str = "fixed"
    target_weight_grid: list[float] = field(default_factory=lambda: [0.0, 0.25, 1.0, 4.0])
    blur_levels: list[str] = field(default_factory=list)
    channels: str | list[str] | None = None
    window: list[float] | None = None
    align: str | None = None
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    schedule: str = "none"
    stages: list[dict[str, Any]] = field(default_factory=list)
    seed: int = 0
    val_fraction: float = 0.05
    selection: str = "val_top1"
    init_temperature: float = 0.07
    learn_temperature: bool = True
    fusion_subject_dropout: float = 0.0
    fusion_layer_dropout: float = 0.0
    logit_scale_mode: str = "exp"
    normalize_embeddings: bool | str = True
    same_concept_positives: bool = False
    reference_loss: bool = False
    reference: bool = False
    report_test_curve: bool = False
    projector: dict[str, Any] | None = None
    eeg_smoothing: dict[str, Any] | None = None
    multi_view_target: dict[str, Any] | None = None
    fusion_encoder: dict[str, Any] | None = None
    eval_ks: list[int] = field(default_factory=lambda: list(DEFAULT_EVAL_KS))
    eval_tops: list[int] = field(default_factory=lambda: [1, 5])
    eval_methods: list[str] = field(default_factory=lambda: ["exact", "montecarlo", "csls"])
    precision: str = "32"
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_workers: int = 0
    deterministic: bool = True
    progress: bool = False
    preset: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` on inconsistent values (message says which and how to fix)."""
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_choice("objective", self.objective, ("retrieval", "generation"))
        check_choice("selection", self.selection, SELECTIONS)
        check_choice("schedule", self.schedule, ("none", "cosine"))
        check_choice("precision", str(self.precision), PRECISIONS)
        check_choice("logit_scale_mode", self.logit_scale_mode, ("exp", "raw", "softplus"))
        if self.normalize_embeddings not in (True, False, "image"):
            raise ValueError(f"normalize_embeddings is true (both sides of the contrastive logits), false (neither) or "
                             f"'image' (the targets only, UBP's loss); got {self.normalize_embeddings!r}.")
        self.subjects = check_list("subjects", self.subjects, "['sub-01', 'sub-02']")
        self.train_subjects = check_list("train_subjects", self.train_subjects, "['sub-02', 'sub-03']")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        check_positive("lr", self.lr)
        if self.average_train and self.mix_repetitions:
            raise ValueError("average_train and mix_repetitions exclude each other: the first trains on the mean "
                             "of the repetitions, the second on random mixtures of them; choose one.")
        if self.whiten is not None:
            check_choice("whiten", self.whiten, WHITENINGS, "Leave it out (None) for no whitening.")
        self._validate_regularisation()
        self._validate_targets()
        from eegvision.training.fusion import check_fusion_config
        from eegvision.training.stages import check_stages_config

        check_fusion_config(self, is_closed_form(self.encoder))
        check_stages_config(self)
        self._validate_neurobridge()
        self._validate_multi_view()
        self._validate_fusion_encoder()
        if is_closed_form(self.encoder):
            self._validate_closed_form()
        if self.encoder == "auto" and self.reference:
            self.encoder = "atms"   # --reference reproduces ATM's code: it implies ATM-S unless an encoder is named
        if self.encoder == "auto":
            self._validate_auto()
        if self.reference:
            self._apply_reference()
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}.")
        if self.window is not None:
            self.window = [float(v) for v in self.window]
            if len(self.window) != 2 or self.window[0] >= self.window[1]:
                raise ValueError(f"window must be (tmin, tmax) with tmin < tmax, got {self.window}.")
        if self.align is not None:
            from eegvision.data.alignment import ALIGNMENTS

            check_choice("align", self.align, ALIGNMENTS)

    def _validate_regularisation(self) -> None:
        """Check the augmentation, early-stopping, weight-averaging and ensemble options."""
        from eegvision.data.augment import Augment

        Augment(time_shift=self.time_shift, amplitude_scale=self.amplitude_scale,  # checks the four options
                channel_dropout=self.channel_dropout, noise=self.noise)
        if self.patience is not None:
            check_int("patience", self.patience, minimum=1, hint="Give None (null) to train every epoch.")
        if self.ema_decay is not None:
            check_range("ema_decay", self.ema_decay, 0.0, 1.0, include_low=False,
                        hint="Typical values are 0.99 to 0.9999; give None (null) for no weight averaging.")
        check_int("ensemble", self.ensemble, minimum=1, hint="It is the number of models averaged (1: one model).")
        check_choice("ridge_init", self.ridge_init, (False, True))
        if self.ridge_init and self.ensemble > 1:
            raise ValueError("ridge_init and ensemble > 1 cannot be combined yet (each member would need its own "
                             "ridge part); train the members one by one, or drop --ridge-init or --ensemble.")
        check_int("mmd_epochs", self.mmd_epochs, minimum=0, hint="It is the number of coarse (MMD) epochs; 0: off.")
        check_positive("mmd_weight", self.mmd_weight)
        check_range("subject_mmd_weight", self.subject_mmd_weight, 0.0, 1e6, hint="0 turns it off.")
        if self.subject_router is not None:
            check_choice("subject_router", self.subject_router, ("gate", "heads"),
                         "Leave it out (None) for no router.")
        check_int("router_experts", self.router_experts, minimum=1, hint="It is the number of adapters of the gate.")
        if self.ridge_options and not self.ridge_init:
            raise ValueError(f"ridge_options {self.ridge_options} are the options of the ridge part of ridge_init; "
                             "set ridge_init (--ridge-init) or drop them.")

    def _validate_targets(self) -> None:
        """Normalise ``targets`` to dicts and check the mode, weights and dimension."""
        from eegvision.features.fused import TargetSpec

        check_choice("target_mode", self.target_mode, TARGET_MODES)
        if not isinstance(self.targets, (list, tuple)):
            raise ValueError(f"targets is a list of {{'train': FILE, 'weight': W, 'test': FILE}}; got {self.targets!r}.")
        self.targets = [TargetSpec.from_value(t).to_dict() for t in self.targets]
        check_positive("primary_weight", self.primary_weight)
        if self.target_dim is not None:
            check_int("target_dim", self.target_dim, minimum=1, hint="Give None (null) for the full concatenation.")
            if self.target_mode != "fused":
                raise ValueError("target_dim is the PCA dimension of a fused target; set target_mode='fused' "
                                 "(--target-mode fused) or drop --target-dim.")
        check_choice("target_weights", self.target_weights, TARGET_WEIGHTS)
        self.target_weight_grid = [float(v) for v in self.target_weight_grid]
        if not self.target_weight_grid or min(self.target_weight_grid) < 0:
            raise ValueError(f"target_weight_grid holds the weights (>= 0) an extra target may take; got "
                             f"{self.target_weight_grid}.")
        if self.target_weights == "cv":
            if self.target_mode != "fused" or self.encoder != "ridge" or self.target_dim:
                raise ValueError("target_weights='cv' chooses the weights of a fused target by the ridge encoder's "
                                 "cross-validation: give --target-mode fused, --encoder ridge and no --target-dim "
                                 f"(and extra targets, --target); got {len(self.targets)} extra target(s), target_mode="
                                 f"{self.target_mode!r}, encoder={self.encoder!r}, target_dim={self.target_dim}.")
            if self.align:
                raise ValueError("target_weights='cv' reads the unaligned training EEG; drop --align or use "
                                 "target_weights='fixed'.")
        self.blur_levels = [str(p) for p in (self.blur_levels or [])]
        if self.blur_levels:
            if len(self.blur_levels) != 2:
                raise ValueError(f"blur_levels takes the LOW and HIGH blur training feature files (the primary "
                                 f"features are the medium level); got {len(self.blur_levels)}: {self.blur_levels}.")
            if is_closed_form(self.encoder) or self.encoder == "auto":
                why = "may keep its ridge candidate" if self.encoder == "auto" else "is solved in closed form"
                raise ValueError(f"The blur prior changes each image's target during training, by epoch; encoder "
                                 f"{self.encoder!r} {why}. Choose a gradient-trained encoder (e.g. --encoder "
                                 "stconv).")
            if self.targets or self.ensemble > 1 or self.objective != "retrieval":
                raise ValueError("The blur prior is not combined with extra targets, ensembles or a non-retrieval "
                                 "objective yet; drop --target/--ensemble or --blur-levels.")
        heads = bool(self.targets) and self.target_mode == "heads" and self.fusion_encoder is None
        if heads and is_closed_form(self.encoder):
            raise ValueError(f"Encoder {self.encoder!r} is solved in closed form, one output column at a time: extra "
                             "heads could not change its primary output. Use --target-mode fused (a wider target) "
                             "for it.")
        if heads and self.encoder == "auto":
            raise ValueError("Extra target heads need a gradient-trained encoder, and encoder 'auto' may keep its ridge "
                             "candidate; use --target-mode fused (one wider target, which both candidates take), or "
                             "choose an encoder (e.g. --encoder stconv).")
        if heads and self.ensemble > 1:
            raise ValueError("Extra target heads and ensemble > 1 cannot be combined yet; train the members one by "
                             "one, or use --target-mode fused.")
        if heads and self.objective != "retrieval":
            raise ValueError("Extra target heads are InfoNCE terms of the retrieval objective; use "
                             "objective='retrieval' or --target-mode fused.")

    def _validate_neurobridge(self) -> None:
        """Check ``projector`` and ``eeg_smoothing`` (NeuroBridge's options) and refuse what they cannot join."""
        from eegvision.data.augment import check_smoothing

        self.eeg_smoothing = check_smoothing(self.eeg_smoothing)
        if self.eeg_smoothing is not None and self.mix_repetitions:
            raise ValueError("eeg_smoothing smooths the training samples of averaged or single trials; "
                             "mix_repetitions draws new samples every batch. Drop --mix-repetitions or "
                             "--eeg-smoothing.")
        if self.projector is None:
            return
        if not isinstance(self.projector, dict):
            raise ValueError(f"projector is a dict such as {{'dim': 512}} (the size of the shared space of the EEG "
                             f"and image projections) or None; got {self.projector!r}.")
        check_names("projector key", list(self.projector), ["dim"], "projector", "Give {'dim': 512}.")
        if "dim" not in self.projector:
            raise ValueError(f"projector needs its 'dim' (the projected size, e.g. {{'dim': 512}}); got "
                             f"{self.projector!r}.")
        check_int("projector dim", self.projector["dim"], minimum=1,
                  hint="It is the size of the shared space (NeuroBridge: 512).")
        why = {"closed-form encoder": is_closed_form(self.encoder),
               "encoder 'auto' (it may keep its closed-form ridge candidate)": self.encoder == "auto",
               f"objective {self.objective!r} (the projections would shrink to match)": self.objective != "retrieval",
               "--reference/--reference-loss (their loss adds the unprojected text features)":
                   self.reference or self.reference_loss,
               "extra target heads": bool(self.targets) and self.target_mode == "heads",
               "target_mode 'learned' (its fused test features are recorded unprojected)":
                   self.target_mode == "learned",
               "ensemble > 1 (each member would have its own image projector)": self.ensemble > 1,
               "ema_decay (the image projector is not averaged)": self.ema_decay is not None}
        _refuse_with(why, f"projector {self.projector} trains an EEG and an image projection by gradient with the "
                     "retrieval loss", "--encoder eegproject", "--projector-dim")

    def _validate_multi_view(self) -> None:
        """Check ``multi_view_target`` (SVTL's) and refuse what it cannot join."""
        if self.multi_view_target is None:
            return
        from eegvision.models.multi_view import check_multi_view

        self.multi_view_target = check_multi_view(self.multi_view_target)
        why = {"closed-form encoder": is_closed_form(self.encoder),
               "encoder 'auto' (it may keep its closed-form ridge candidate)": self.encoder == "auto",
               f"objective {self.objective!r}": self.objective != "retrieval",
               "--reference/--reference-loss (their loss adds text features)": self.reference or self.reference_loss,
               "extra targets (--target)": bool(self.targets), "blur_levels": bool(self.blur_levels),
               "ensemble > 1 (each member would have its own target module)": self.ensemble > 1,
               "ema_decay (the target module is not averaged)": self.ema_decay is not None}
        _refuse_with(why, "multi_view_target trains the image target (from token features) by gradient with the "
                     "retrieval loss", "--encoder nice", "--multi-view")

    def _validate_fusion_encoder(self) -> None:
        """Check ``fusion_encoder`` (BrainHiVE's) and refuse what it cannot join."""
        from eegvision.models.fusion_encoder import check_fusion_encoder, fusion_encoder_conflicts

        self.fusion_encoder = check_fusion_encoder(self.fusion_encoder)
        if self.fusion_encoder is not None:
            _refuse_with(fusion_encoder_conflicts(self, is_closed_form(self.encoder)), "fusion_encoder trains the "
                         "image target (from the primary and --target features) by gradient with the retrieval loss",
                         "--encoder brainmlp", "--fusion-encoder")

    def _validate_closed_form(self) -> None:
        """Refuse the options a closed-form fit (``ridge``) cannot honour: it has no epochs or batches to mix,
        augment or ensemble over (optimiser, epoch and early-stopping settings are not used either)."""
        given = [name for name, off in (("mix_repetitions", False), ("time_shift", 0), ("amplitude_scale", 0.0),
                                         ("channel_dropout", 0.0), ("noise", 0.0), ("ensemble", 1),
                                         ("ridge_init", False), ("mmd_epochs", 0), ("subject_mmd_weight", 0.0),
                                         ("subject_router", None), ("stages", []), ("eeg_smoothing", None))
                 if getattr(self, name) != off]
        if given:
            raise ValueError(f"Encoder {self.encoder!r} is fitted in closed form on each training condition's mean "
                             f"repetition, without epochs or batches; {', '.join(given)} cannot apply to it. Drop "
                             f"{', '.join('--' + g.replace('_', '-') for g in given)}.")

    def _validate_auto(self) -> None:
        """Refuse training-recipe options that ``encoder="auto"`` would not honour: it trains fixed candidate
        recipes (:mod:`eegvision.training.auto`) and keeps the validation winner."""
        defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                    for f in dataclasses.fields(self)}
        changed = [name for name in AUTO_RECIPE_FIELDS if getattr(self, name) != defaults[name]]
        if changed:
            flags = ", ".join(f"{n}={getattr(self, n)!r}" for n in changed)
            raise ValueError(f"encoder 'auto' trains fixed candidate recipes (ridge, stconv) and keeps the one that "
                             f"wins on validation; it cannot apply {flags}. Choose an encoder (e.g. --encoder "
                             "stconv) to set training options yourself, or drop them.")

    def _apply_reference(self) -> None:
        """Set what ``reference=True`` implies; refuse settings that contradict it."""
        import inspect

        from eegvision.models.registry import resolve_name

        if self.objective != "retrieval":
            raise ValueError(f"--reference reproduces the reference's retrieval training (ATMS_retrieval.py); "
                             f"objective={self.objective!r} is not it. Leave out --objective or --reference.")
        cls, _ = resolve_name(self.encoder)
        if "mode" not in inspect.signature(cls.__init__).parameters:
            raise ValueError(f"--reference needs an encoder with a reference mode (atms, nice, projector); "
                             f"encoder {self.encoder!r} has none. Choose one of those, or train without --reference "
                             "(--reference-loss alone gives the reference's loss).")
        mode = self.encoder_options.get("mode", "reference")
        if mode != "reference":
            raise ValueError(f"--reference builds the encoder with mode='reference', but --encoder-option "
                             f"mode={mode!r} was given; drop one of them.")
        self.encoder_options = {**self.encoder_options, "mode": "reference"}
        self.reference_loss = True

    # -- JSON round trip -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitConfig:
        """Build from a dict; unknown keys raise ``ValueError`` with close matches."""
        return _from_dict(cls, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> FitConfig:
        """Parse JSON text, or read a ``config.json`` path (whose ``fit`` key holds the config)."""
        p = Path(text_or_path) if not str(text_or_path).lstrip().startswith("{") else None
        d = json.loads(p.read_text() if p is not None else str(text_or_path))
        if "fit" in d and isinstance(d["fit"], dict):
            d = d["fit"]
        return cls.from_dict(d)

    def to_file(self, path: str | Path) -> Path:
        """Write the config as a JSON file (atomically) that :meth:`from_file` and ``eegvision fit --config``
        read; returns its path."""
        from eegvision.utils import write_text_atomic

        path = Path(path).expanduser()
        if path.suffix.lower() != ".json":
            raise ValueError(f"FitConfig files are written as JSON; got the path {path}. Name it *.json.")
        write_text_atomic(path, self.to_json() + "\n")
        return path

    @classmethod
    def from_file(cls, path: str | Path) -> FitConfig:
        """Read a config file: JSON (a :meth:`to_file` file, or a run's ``config.json``, whose ``fit`` key holds
        the config) or TOML (``.toml``: the same keys; leave out a key to keep its default). Keys missing from the
        file take their defaults; unknown keys raise ``ValueError`` naming the file and the close matches."""
        path = check_file(path, "Config file", "Give a FitConfig JSON file (e.g. the best_config.json that "
                          "`eegvision tune` writes, or a run's config.json).")
        text = path.read_text()
        try:
            if path.suffix.lower() == ".toml":
                import tomllib

                d = tomllib.loads(text)
            else:
                d = json.loads(text)
        except (ValueError, TypeError) as err:  # JSONDecodeError and TOMLDecodeError are ValueErrors
            raise ValueError(f"Config file {path} is not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}"
                             f" ({err}). Fix the file, or write it again with FitConfig.to_file.") from None
        if isinstance(d, dict) and isinstance(d.get("fit"), dict):
            d = d["fit"]
        if not isinstance(d, dict):
            raise ValueError(f"Config file {path} holds a {type(d).__name__}, not a table of FitConfig fields "
                             "such as {\"encoder\": \"atms\", \"epochs\": 40}.")
        try:
            return cls.from_dict(d)
        except (ValueError, TypeError) as err:
            raise ValueError(f"Config file {path}: {err}") from None

    def replace(self, **changes: Any) -> FitConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def differences(self, other: FitConfig, ignore: frozenset[str] = RESUMABLE_FIELDS) -> dict[str, tuple]:
        """Fields whose values differ (``{name: (self, other)}``), ignoring ``ignore``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}


#: Training-recipe fields that ``encoder="auto"`` sets per candidate (left at their defaults by the user).
def _refuse_with(why: dict[str, bool], what: str, encoder_hint: str, flag: str) -> None:
    """``ValueError`` naming every option of ``why`` that is set (``True``) and cannot join ``what``."""
    bad = [k for k, v in why.items() if v]
    if bad:
        raise ValueError(f"{what}; it cannot be combined with {'; '.join(bad)}. Choose a gradient-trained encoder "
                         f"(e.g. {encoder_hint}) and drop the others, or drop {flag}.")


AUTO_RECIPE_FIELDS = ("encoder_options", "epochs", "batch_size", "lr", "weight_decay", "schedule", "average_train",
                      "mix_repetitions", "time_shift", "amplitude_scale", "channel_dropout", "noise", "patience",
                      "ema_decay", "ensemble", "ridge_init", "ridge_options", "objective", "reference",
                      "reference_loss", "selection", "mmd_epochs", "subject_mmd_weight", "subject_router",
                      "stages", "eeg_smoothing")


def is_closed_form(encoder: str) -> bool:
    """Whether the encoder named ``encoder`` is fitted in closed form (``ridge``); False for unknown names."""
    from eegvision.models.registry import resolve_name

    try:
        cls, _ = resolve_name(encoder)
    except ValueError:
        return False
    return bool(getattr(cls, "closed_form", False))


def eval_ks_for(ks: list[int], n_candidates: int) -> list[int]:
    """The k values to evaluate among ``n_candidates`` test concepts.

    The default list (:data:`DEFAULT_EVAL_KS`) is fitted to the test set: its values below ``n_candidates`` and
    the all-way k ``n_candidates`` when there are fewer than 200 candidates (a 50-concept test set gives
    ``[2, 4, 10, 50]``), never a k above the candidates. A list the user chose is returned unchanged (k values
    above the candidates are skipped with a warning when evaluated).

    Examples
    --------
    >>> eval_ks_for([2, 4, 10, 50, 100, 200], 20)
    [2, 4, 10, 20]
    >>> eval_ks_for([2, 4, 10, 50, 100, 200], 200)
    [2, 4, 10, 50, 100, 200]
    >>> eval_ks_for([2, 300], 20)
    [2, 300]
    """
    ks = [int(k) for k in ks]
    if ks != list(DEFAULT_EVAL_KS) or n_candidates >= DEFAULT_EVAL_KS[-1]:
        return ks
    return [k for k in ks if k < n_candidates] + ([int(n_candidates)] if n_candidates >= 2 else [])


from eegvision.training.finetune_config import SUBJECT_TOKENS, FinetuneConfig  # noqa: E402, F401  (re-export)
