"""The Lightning module that trains an EEG encoder against CLIP features.

Data sources are duck-typed: anything with ``len(data)`` and ``data.get_batch(indices)``
returning a dict of tensors ``eeg (B, C, T)``, ``subject``, ``condition``, ``concept`` (as
:class:`eegvision.data.dataset.EEGDataset` does). Target features are looked up **by index on
the device**: the image feature of a sample is row ``condition`` of the split's image matrix,
its text feature row ``concept`` of the text matrix. No strings or per-item Python work in the
training loop.

Distributed training (DDP): the configured batch size is the *effective* batch. With ``W``
processes each device gets ``batch_size / W`` samples of one shared random permutation (the
union of the per-device batches is exactly the single-process batch), and the embeddings,
targets and concept labels are gathered with ``all_gather(..., sync_grads=True)`` before the
contrastive loss. Every rank then computes the loss over the full batch, the gather's backward
sums the gradient contributions of all ranks and DDP averages them, so the parameter gradients
equal the single-process gradients (up to float reduction order). Models with BatchNorm still
see per-device batch statistics.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from eegvision.training.losses import Objective, multi_kernel_mmd, subject_mmd
from eegvision.training.regularise import ema_update, stop_early

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "temperature")


# ----------------------------------------------------------------------------- data plumbing
class EpochBatchSampler(Sampler):
    """Batches of one seeded permutation per epoch, split across ``world_size`` ranks.

    Epoch ``e`` uses ``randperm(n, seed + e)``; rank ``r`` takes every ``world_size``-th index
    starting at ``r`` and cuts it into batches of ``batch_size`` (the per-device size). The
    union over ranks of batch ``i`` is therefore ``perm[i·B·W : (i+1)·B·W]``, the same samples
    a single process with batch ``B·W`` sees. Lightning calls :meth:`set_epoch`.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        if n < 1:
            raise ValueError("Cannot sample batches from an empty dataset.")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rank_indices(self) -> Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        usable = (self.n // self.world_size) * self.world_size
        return perm[:usable][self.rank::self.world_size]

    def __iter__(self):
        idx = self._rank_indices()
        stop = len(idx) - len(idx) % self.batch_size if self.drop_last else len(idx)
        for start in range(0, stop, self.batch_size):
            yield idx[start:start + self.batch_size].numpy()

    def __len__(self) -> int:
        m = self.n // self.world_size
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)


class _BatchFetcher(Dataset):
    """Map-style view whose items are whole batches: ``fetcher[indices] = data.get_batch(indices)``."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, indices: Any) -> dict:
        return self.data.get_batch(np.asarray(indices))


def batch_loader(data: Any, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0) -> DataLoader:
    """A DataLoader over ``data`` that fetches each batch with one vectorised ``get_batch`` call."""
    sampler = EpochBatchSampler(len(data), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                                rank=rank, world_size=world_size)
    return DataLoader(_BatchFetcher(data), sampler=sampler, batch_size=None, num_workers=num_workers,
                      persistent_workers=num_workers > 0)


def call_encoder(encoder: nn.Module, eeg: Tensor, subject: Tensor | None) -> Tensor:
    """``encoder(eeg, subject_ids)`` (the eegvision encoder signature)."""
    return encoder(eeg, subject)


@torch.no_grad()
def embed_data(encoder: nn.Module, data: Any, *, batch_size: int = 256, device: str | torch.device | None = None,
               ) -> tuple[Tensor, Tensor]:
    """Encode every sample of ``data`` in order.

    Returns
    -------
    (embeddings, conditions) : tuple of Tensor
        ``(n, n_outputs)`` float32 on CPU and the ``(n,)`` condition index of each row.
    """
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    outs, conds = [], []
    n = len(data)
    for start in range(0, n, batch_size):
        b = data.get_batch(np.arange(start, min(n, start + batch_size)))
        outs.append(call_encoder(encoder, b["eeg"].to(device), b["subject"].to(device)).float().cpu())
        conds.append(b["condition"].cpu())
    encoder.train(was_training)
    return torch.cat(outs), torch.cat(conds)


# ----------------------------------------------------------------------------- metrics
def kway_topk(sims: Tensor, targets: Tensor, k: int | None, tops: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Exact expected k-way top-t accuracy (``k=None``: all candidates) via
    :func:`eegvision.evaluation.kway.kway_exact` (ties count against the true candidate)."""
    from eegvision.evaluation.kway import kway_exact

    n_cand = sims.shape[1]
    k = n_cand if k is None or k >= n_cand else k
    acc = kway_exact(sims, targets.cpu().numpy(), ks=[k], tops=tops)
    return {t: acc.get(k, t) for t in tops}


def validation_topk(emb: Tensor, conditions: Tensor, image_features: Tensor, k: int) -> dict[int, float]:
    """Top-1 and top-5 of the k-way retrieval of validation embeddings among the validation images (the rows of
    ``image_features`` that ``conditions`` name), as model selection scores them."""
    cands = torch.unique(conditions)  # sorted validation image rows
    sims = F.normalize(emb, dim=-1) @ F.normalize(image_features[cands].to(emb.device), dim=-1).T
    return kway_topk(sims, torch.searchsorted(cands, conditions.to(cands.device)), k, (1, 5))


# ----------------------------------------------------------------------------- module
class ContrastiveModule(pl.LightningModule):
    """Encoder + objective, trained with AdamW on index-looked-up CLIP targets.

    Parameters
    ----------
    encoder : nn.Module
        ``forward(eeg, subject_ids) -> (batch, dim)``.
    objective : Objective
        The loss (holds the learnable temperature).
    image_features : Tensor
        ``(n_images, dim)`` features of the training split (row = condition).
    text_features : Tensor, optional
        ``(n_concepts, dim)`` text features of the training concepts (row = concept index).
    train_data, val_data : data sources
        ``val_data`` holds averaged trials of the held-out training concepts (indices into the
        same training feature rows). ``None`` disables validation.
    test_data : mapping of str to data source, optional
        Averaged test trials per subject; used only for ``report_test_curve``.
    test_image_features : Tensor, optional
        ``(n_test_images, dim)`` (only for ``report_test_curve``).
    batch_size : int
        Effective (global) batch size; divided by the number of processes.
    lr, weight_decay : float
        AdamW; no weight decay on the temperature, norms and biases (parameters with < 2 dims).
    decay_all_parameters : bool
        Weight decay on every parameter, 1-D ones and the temperature included, as the reference's
        ``AdamW(model.parameters(), lr)`` does (``FitConfig.reference``).
    schedule : {"none", "cosine"}
        Cosine annealing of the learning rate over all steps.
    seed : int
        Seeds the batch order (per epoch) and the dropout RNG (reseeded per batch, so a resumed
        run continues exactly as an uninterrupted one).
    val_k : int
        k of the validation k-way retrieval (200, or all validation images when fewer).
    augment : Augment, optional
        Augmentations of the training batches (:mod:`eegvision.data.augment`), drawn from ``(seed, epoch, batch
        index, rank)``; never applied to validation or test data.
    ema_decay : float, optional
        Moving average of the weights in ``ema_encoder`` (:func:`~eegvision.training.regularise.ema_update` after
        every optimiser step); validation uses it, :meth:`adopt_ema` copies it into ``encoder``.
    mmd_epochs, mmd_weight : int, float
        Coarse-to-fine: the first ``mmd_epochs`` epochs train on ``mmd_weight`` x the multi-kernel MMD between the
        L2-normalised EEG embeddings and image features of the batch instead of the objective
        (``FitConfig.mmd_epochs``).
    subject_mmd_weight : float
        Adds this times :func:`~eegvision.training.losses.subject_mmd` of the batch's embeddings (every epoch; with
        ``stages``, the epoch's weight of the stage schedule).
    stages : list of dict, optional
        ``FitConfig.stages`` (:mod:`eegvision.training.stages`): at the start of each epoch the optimiser's lr, the
        subject MMD weight and the frozen encoder groups are set from the epoch's stage.
    fusion : LayerFusion, optional
        ``FitConfig.target_mode="learned"`` (:mod:`eegvision.training.fusion`): the batch's image targets are the
        fusion of ``fusion_targets`` ``(L, n_images, dim)`` (training weights in training; the shared weights for
        validation); ``fusion_test_targets`` ``(L, n_test, dim)`` give the test images' features.
    image_projector : nn.Module, optional
        ``FitConfig.projector``: the trainable image-side projection, applied to every image target (training,
        validation and test retrieval) before the loss; the encoder carries the EEG side. With
        ``FitConfig.multi_view_target`` the multi-view module, and ``image_features`` are token features
        ``(n_images, n_tokens, dim)``.
    patience, monitor : int or None, str
        Early stopping on ``monitor`` (:func:`~eegvision.training.regularise.stop_early`; the history it reads
        is kept in checkpoints, so a resumed run stops where an uninterrupted one does).
    """

    def __init__(
        self,
        encoder: nn.Module,
        objective: Objective,
        image_features: Tensor,
        text_features: Tensor | None = None,
        *,
        train_data: Any = None,
        val_data: Any = None,
        test_data: Mapping[str, Any] | None = None,
        test_image_features: Tensor | None = None,
        batch_size: int = 64,
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        schedule: str = "none",
        decay_all_parameters: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        report_test_curve: bool = False,
        val_k: int = 200,
        eval_batch_size: int = 256,
        augment: Any = None,
        ema_decay: float | None = None,
        patience: int | None = None,
        monitor: str = "val_top1",
        mmd_epochs: int = 0,
        mmd_weight: float = 1.0,
        subject_mmd_weight: float = 0.0,
        heads: Any = None,
        blur_targets: Tensor | None = None,
        stages: list[dict] | None = None,
        fusion: nn.Module | None = None,
        fusion_targets: Tensor | None = None,
        fusion_test_targets: Tensor | None = None,
        image_projector: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.objective = objective
        self.image_projector = image_projector
        self.register_buffer("image_features", image_features.float(), persistent=False)
        self.register_buffer("text_features", None if text_features is None else text_features.float(),
                             persistent=False)
        self.register_buffer("test_image_features",
                             None if test_image_features is None else test_image_features.float(), persistent=False)
        self.train_data, self.val_data, self.test_data = train_data, val_data, dict(test_data or {})
        self.batch_size, self.lr, self.weight_decay = int(batch_size), float(lr), float(weight_decay)
        self.schedule, self.seed, self.num_workers = schedule, int(seed), int(num_workers)
        self.decay_all_parameters = bool(decay_all_parameters)
        self.report_test_curve, self.val_k, self.eval_batch_size = report_test_curve, int(val_k), eval_batch_size
        self.augment = augment if augment is not None and augment.active else None
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        if self.ema_decay is not None:
            self.ema_encoder = copy.deepcopy(encoder)
            self.ema_encoder.requires_grad_(False)
        self.patience, self.monitor = (None if patience is None else int(patience)), monitor
        self.mmd_epochs, self.mmd_weight = int(mmd_epochs), float(mmd_weight)
        self.subject_mmd_weight = float(subject_mmd_weight)
        self.history: list[dict[str, float]] = []
        self._train_sum = torch.zeros(())
        self._train_count = 0
        self._val_out: list[tuple[Tensor, Tensor, Tensor]] = []
        # ``heads`` target mode (FitConfig.target_mode): one linear head per extra target on the embedding
        self.target_heads = heads
        if heads is not None:
            dim = int(image_features.shape[1])
            self.heads = nn.ModuleList([nn.Linear(dim, d) for d in heads.dims])
            for j, f in enumerate(heads.features):
                self.register_buffer(f"head_features_{j}", f.float(), persistent=False)
        # UBP's blur prior (FitConfig.blur_levels): (3, n_images, dim) low/medium/high targets, a level per image
        self.register_buffer("blur_targets", None if blur_targets is None else blur_targets.float(), persistent=False)
        self.blur_schedule = None
        if blur_targets is not None:
            from eegvision.training.blur_prior import UBPBlurSchedule

            if blur_targets.ndim != 3 or blur_targets.shape[0] != 3 or blur_targets.shape[1:] != image_features.shape:
                raise ValueError(f"blur_targets stacks the low, medium and high blur features of every training "
                                 f"image, shape (3, {tuple(image_features.shape)}); got {tuple(blur_targets.shape)}.")
            self.blur_schedule = UBPBlurSchedule(int(image_features.shape[0]))
        self.stage_plan = None
        if stages:
            from eegvision.training.stages import stage_schedule

            self.stage_plan = stage_schedule(stages, self.subject_mmd_weight)
        self._frozen_before: set[str] | None = None
        self._val_images: Tensor | None = None
        self._frozen_modules: list[nn.Module] = []
        # SAMGA's learned layer fusion (FitConfig.target_mode="learned"): its logits and router are parameters
        self.fusion = fusion
        self.register_buffer("fusion_targets", None if fusion_targets is None else fusion_targets.float(),
                             persistent=False)
        self.register_buffer("fusion_test_targets", None if fusion_test_targets is None
                             else fusion_test_targets.float(), persistent=False)
        if fusion is not None and (fusion_targets is None or fusion_targets.shape[1:] != image_features.shape):
            raise ValueError(f"fusion_targets stacks every layer's training features, shape (L, "
                             f"{', '.join(map(str, image_features.shape))}); got "
                             f"{None if fusion_targets is None else tuple(fusion_targets.shape)}.")

    # -- data ---------------------------------------------------------------------------
    def _world(self) -> tuple[int, int]:
        if self._trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self) -> DataLoader:
        rank, world = self._world()
        if self.batch_size % world:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by the {world} processes; the batch "
                             "size is the effective batch over all devices. Pick a multiple of the device count.")
        per_device = self.batch_size // world
        if len(self.train_data) // world < per_device:
            raise ValueError(f"Only {len(self.train_data)} training samples for a batch of {self.batch_size}: "
                             "lower --batch-size.")
        return batch_loader(self.train_data, per_device, shuffle=True, seed=self.seed, drop_last=True,
                            rank=rank, world_size=world, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_data is None:
            return []
        # every rank validates on all of the (small) validation set: identical metrics, no gather
        return batch_loader(self.val_data, self.eval_batch_size, shuffle=False)

    # -- steps ---------------------------------------------------------------------------
    def train_images(self) -> Tensor:
        """The training images' features validation scores against: the shared-weight fusion of the layers with
        ``fusion`` (no gradient; computed once per validation), else ``image_features``."""
        if self.fusion is None:
            return self.image_features
        if self._val_images is not None:
            return self._val_images
        with torch.no_grad():
            return self.fusion.fuse_shared(self.fusion_targets)

    def test_images(self) -> Tensor | None:
        """The test images' features: the shared-weight fusion of the layers with ``fusion``."""
        if self.fusion is None or self.fusion_test_targets is None:
            return self.test_image_features
        with torch.no_grad():
            return self.fusion.fuse_shared(self.fusion_test_targets)

    def epoch_plan(self, epoch: int | None = None) -> Any:
        """The :class:`~eegvision.training.stages.EpochPlan` of ``epoch`` (default: the current one), or None
        without stages."""
        if self.stage_plan is None:
            return None
        epoch = self.current_epoch if epoch is None else int(epoch)
        return self.stage_plan[min(epoch, len(self.stage_plan) - 1)]

    def epoch_subject_mmd_weight(self) -> float:
        """The subject MMD weight of the current epoch (the stage's with ``stages``)."""
        plan = self.epoch_plan()
        return self.subject_mmd_weight if plan is None else plan.subject_mmd_weight

    def _targets(self, batch: dict, image_features: Tensor, text_features: Tensor | None
                 ) -> tuple[Tensor, Tensor | None]:
        img = image_features[batch["condition"]]
        txt = text_features[batch["concept"]] if text_features is not None else None
        return img, txt

    def project_images(self, features: Tensor) -> Tensor:
        """Image features in the retrieval space: through the image projector when there is one."""
        return features if self.image_projector is None else self.image_projector(features)

    def _gather(self, t: Tensor | None, grads: bool = False) -> Tensor | None:
        if t is None or self._world()[1] == 1:
            return t
        g = self.all_gather(t, sync_grads=grads)
        return g.reshape(-1, *t.shape[1:])

    def forward(self, eeg: Tensor, subject_ids: Tensor | None = None) -> Tensor:
        return call_encoder(self.encoder, eeg, subject_ids)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        eeg = batch["eeg"]
        if self.augment is not None:
            eeg = self.augment(eeg, epoch=self.current_epoch, batch=batch_idx, rank=self._world()[0])
        emb = self(eeg, batch["subject"])
        img, txt = self._targets(batch, self.image_features, self.text_features)
        if self.blur_schedule is not None:
            from eegvision.training.blur_prior import select_blur_targets

            cond = batch["condition"].cpu()
            img = select_blur_targets(self.blur_targets, cond, self.blur_schedule.levels[cond])
        if self.fusion is not None:  # the layers fused with the batch's training weights (gradient to the fusion)
            img = self.fusion(self.fusion_targets[:, batch["condition"]], batch["subject"])
        img = self.project_images(img)
        emb = self._gather(emb, grads=True)
        img = self._gather(img, grads=self.fusion is not None or self.image_projector is not None)
        txt, concepts = self._gather(txt), self._gather(batch["concept"])
        loss = self.training_loss(emb, img, txt, concepts, self._gather(batch["subject"]))
        if self.blur_schedule is not None:  # UBP: the matched-pair logits update each image's running similarity
            with torch.no_grad():  # the matched-pair logits as the loss computes them (normalize_embeddings)
                norm = self.objective.normalize
                a = F.normalize(emb.float(), dim=-1) if norm and norm != "image" else emb.float()
                b = F.normalize(img.float(), dim=-1) if norm else img.float()
                diag = self.objective.logit_scale() * (a * b).sum(-1)
            self.blur_schedule.update(self._gather(batch["condition"]).cpu(), diag.detach().cpu())
        if self.target_heads is not None:
            loss = self.target_heads.primary_weight * loss + self.heads_loss(emb, self._gather(batch["condition"]),
                                                                             concepts)
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=emb.shape[0])
        self._train_sum = self._train_sum + loss.detach().cpu()
        self._train_count += 1
        return loss

    def training_loss(self, emb: Tensor, img: Tensor, txt: Tensor | None, concepts: Tensor,
                      subjects: Tensor | None) -> Tensor:
        """The batch's training loss: the coarse MMD stage for the first ``mmd_epochs`` epochs, the objective
        after; plus the subject MMD term when ``subject_mmd_weight`` is set."""
        if self.current_epoch < self.mmd_epochs:
            loss = self.mmd_weight * multi_kernel_mmd(F.normalize(emb.float(), dim=-1),
                                                      F.normalize(img.float(), dim=-1))
        else:
            loss = self.objective(emb, img, txt, concepts).loss
        weight = self.epoch_subject_mmd_weight()
        if weight and subjects is not None:
            loss = loss + weight * subject_mmd(F.normalize(emb.float(), dim=-1), subjects)
        return loss

    def heads_loss(self, emb: Tensor, conditions: Tensor, concepts: Tensor | None) -> Tensor:
        """The extra heads' weighted InfoNCE terms for a batch (``heads`` target mode), with the objective's
        logit scale and positives rule."""
        from eegvision.training.losses import weighted_info_nce

        pairs = [(head(emb), getattr(self, f"head_features_{j}")[conditions]) for j, head in enumerate(self.heads)]
        pos = concepts if self.objective.same_concept_positives else None
        return weighted_info_nce(pairs, self.target_heads.weights, self.objective.logit_scale(), concepts=pos,
                                 normalize=self.objective.normalize)

    def _step_seed(self, batch_idx: int) -> int:
        return (self.seed * 1_000_003 + self.current_epoch * 100_003 + batch_idx * 7919 + self._world()[0]) % 2**63

    def on_train_epoch_start(self) -> None:
        s = self._step_seed(0) % 2**32
        random.seed(s)
        np.random.seed(s)
        self._train_sum, self._train_count = torch.zeros(()), 0
        if self.blur_schedule is not None:  # UBP hands the levels of the last epoch to the data at its end
            self.blur_schedule.end_epoch()
        self.start_stage_epoch()

    def start_stage_epoch(self) -> None:
        """With ``stages``: set the optimiser's lr and the frozen encoder groups of the current epoch's stage
        (a function of the epoch alone, so a resumed run continues exactly)."""
        plan = self.epoch_plan()
        if plan is None:
            return
        if self._trainer is not None:
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = plan.lr
        if not any(p.freeze for p in self.stage_plan):
            return
        from eegvision.training.freeze import apply_freeze, frozen_parameter_names
        from eegvision.training.stages import PROJECTOR_GROUP

        if self._frozen_before is None:  # parameters frozen by other means stay frozen in every stage
            self._frozen_before = {n for n, p in self.encoder.named_parameters() if not p.requires_grad}
        groups = [g for g in plan.freeze if g != PROJECTOR_GROUP]
        frozen = self._frozen_before | set(frozen_parameter_names(self.encoder, groups))
        image_side = None if self.image_projector is None else getattr(self.image_projector, "head", None) or \
            getattr(self.image_projector, "linear", None)
        if PROJECTOR_GROUP in plan.freeze:  # the EEG projection after the encoder and the image side's output layer
            from eegvision.models.encoders.projected import ProjectedEncoder

            frozen |= {f"{name}.projection.{n}".lstrip(".") for name, m in self.encoder.named_modules()
                       if isinstance(m, ProjectedEncoder) for n, _ in m.projection.named_parameters()}
        if image_side is not None:
            image_side.requires_grad_(PROJECTOR_GROUP not in plan.freeze)
        modules = apply_freeze(self.encoder, sorted(frozen))
        self._frozen_modules = modules if plan.freeze else []

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        # dropout masks are a function of (seed, epoch, batch, rank) only, whatever else consumed the
        # global RNG (data-loader iterators, validation): a resumed run reproduces an uninterrupted one
        torch.manual_seed(self._step_seed(batch_idx))
        for m in self._frozen_modules:  # a stage's frozen groups run in eval mode (fixed BatchNorm statistics)
            m.eval()

    @property
    def eval_encoder(self) -> nn.Module:
        """The weights validation scores: the moving average with ``ema_decay``, else the encoder."""
        return self.ema_encoder if self.ema_decay is not None else self.encoder

    def on_train_batch_end(self, outputs: Any, batch: dict, batch_idx: int) -> None:
        if self.ema_decay is not None:
            ema_update(self.ema_encoder, self.encoder, self.ema_decay)

    def adopt_ema(self) -> None:
        """Copy the moving-average weights into ``encoder`` (no-op without ``ema_decay``)."""
        if self.ema_decay is not None:
            self.encoder.load_state_dict(self.ema_encoder.state_dict())

    def on_train_start(self) -> None:
        if self.stop_early():  # a resumed run that had already stopped early trains no further
            self.trainer.should_stop = True

    def stop_early(self) -> bool:
        """Whether ``monitor`` has not improved for ``patience`` validations (always False without patience)."""
        return stop_early(self.history, self.monitor, self.patience)

    def on_validation_epoch_start(self) -> None:
        self._val_images = None  # with a fusion: the training images fused with this epoch's shared weights
        self._val_images = self.train_images() if self.fusion is not None else None

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        emb = call_encoder(self.eval_encoder, batch["eeg"], batch["subject"])
        img, txt = self._targets(batch, self.train_images(), self.text_features)
        loss = self.objective(emb, self.project_images(img), txt, batch["concept"]).loss
        self._val_out.append((emb.float(), batch["condition"], loss.detach() * emb.shape[0]))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._val_out:
            self._val_out, self._val_images = [], None
            return
        emb = torch.cat([o[0] for o in self._val_out])
        cond = torch.cat([o[1] for o in self._val_out])
        val_loss = float(sum(o[2] for o in self._val_out) / emb.shape[0])
        self._val_out = []
        with torch.no_grad():
            cands = torch.unique(cond)  # only the validation images go through an image projector
            acc = validation_topk(emb, torch.searchsorted(cands, cond),
                                  self.project_images(self.train_images()[cands]), self.val_k)
        self._val_images = None
        self.log_dict({"val_loss": val_loss, "val_top1": acc[1], "val_top5": acc[5]}, prog_bar=True)
        row = {
            "epoch": int(self.current_epoch),
            "train_loss": float(self._train_sum / max(self._train_count, 1)),
            "val_loss": val_loss, "val_top1": acc[1], "val_top5": acc[5],
            "lr": float(self.trainer.optimizers[0].param_groups[0]["lr"]),
            "temperature": self.objective.logit_scale.temperature,
        }
        plan = self.epoch_plan()
        if plan is not None:
            row["stage"], row["subject_mmd_weight"] = plan.stage + 1, plan.subject_mmd_weight
        if self.blur_schedule is not None:  # the levels the next epoch's images take
            for i, name in enumerate(("blur_low", "blur_medium", "blur_high")):
                row[name] = int((self.blur_schedule.pending == i).sum())
        if self.report_test_curve and self.test_data and self.test_images() is not None:
            row["test_top1_curve"] = self.test_top1()
            self.log("test_top1_curve", row["test_top1_curve"])
        self.history.append(row)
        if self.stop_early():
            self.trainer.should_stop = True

    def test_top1(self) -> float:
        """200-way (all test images) top-1 of the current weights, mean over test subjects.

        Only for the labelled "best epoch on test" extra; never used for model selection.
        """
        accs = []
        with torch.no_grad():
            images = self.project_images(self.test_images())
        for data in self.test_data.values():
            emb, cond = embed_data(self.eval_encoder, data, batch_size=self.eval_batch_size, device=self.device)
            sims = F.normalize(emb.to(self.device), dim=-1) @ F.normalize(images, dim=-1).T
            accs.append(kway_topk(sims, cond.to(self.device), None, (1,))[1])
        return float(np.mean(accs))

    # -- optimisation --------------------------------------------------------------------
    def configure_optimizers(self):
        decay, no_decay = [], []
        for _, p in self.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 or self.decay_all_parameters else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr)
        if self.schedule == "cosine":
            steps = max(1, int(self.trainer.estimated_stepping_batches))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt

    # -- checkpoint state ----------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["eegvision_history"] = list(self.history)
        if self.blur_schedule is not None:
            b = self.blur_schedule
            checkpoint["eegvision_blur"] = {"running": b.running.clone(), "pending": b.pending.clone()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = list(checkpoint.get("eegvision_history", []))
        if self.blur_schedule is not None and "eegvision_blur" in checkpoint:
            for key, value in checkpoint["eegvision_blur"].items():
                setattr(self.blur_schedule, key, value.clone())
