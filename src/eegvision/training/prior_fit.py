"""Fit and evaluate the Stage I diffusion prior (EEG embedding → CLIP image embedding).

The loop follows the reference (``atm.md`` §5.2: DDPM, ε-prediction, MSE, Adam 1e-3, cosine schedule with warm-up,
gradient clipping at 1, classifier-free condition dropout 0.1) with its bugs fixed:

* the condition is dropped **per sample**, not for a whole batch at once;
* ``clip_sample=False``: raw CLIP embeddings are not in ±1;
* the learning-rate schedule steps **after** the optimiser;
* the denoiser predicts x₀ by default (ε, the reference's choice, blows up short samplers on small priors) and the
  prior's output is the mean of ``num_samples`` samples (one sample is further from the truth than the raw EEG
  embedding; ``docs/prior.md``);
* everything is seeded, and a validation split (held-out *images*, so no image is seen in both) measures whether
  the prior helps: cosine similarity and retrieval accuracy of sampled embeddings vs the raw EEG embedding.

The loop is plain torch over tensors that live on the device (no DataLoader workers): the prior is an MLP and
the whole training set fits in memory, so indexing a permutation is the fastest input pipeline.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eegvision.models.prior import DiffusionPrior
from eegvision.training.rundir import RunFolder


@dataclass
class PriorFitConfig:
    """Hyper-parameters of :func:`fit_prior` (defaults: the reference's notebook call, bugs fixed, except that the
    denoiser predicts x₀ and the prior's output is the mean of 8 samples: ``docs/prior.md``)."""

    architecture: str = "unet"                   # "unet" (reference MLP U-Net) or "transformer" (PriorTransformer)
    architecture_options: dict = field(default_factory=dict)  # e.g. {"hidden_dims": [1024, 512, 256, 128, 64]}
    epochs: int = 150                             # reference: 150
    batch_size: int = 1024                        # reference: 1024
    learning_rate: float = 1e-3                   # reference: Adam 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 500                       # cosine schedule with linear warm-up (reference: 500)
    grad_clip: float = 1.0                        # max grad norm (reference: 1.0)
    cond_drop_prob: float = 0.1                   # per-sample classifier-free dropout (reference: per batch)
    num_train_timesteps: int = 1000
    standardize: bool = False                     # diffuse (h - mean) / std instead of raw h
    normalize_condition: bool = False             # L2-normalise the EEG embedding the denoiser reads
    residual: bool = False                        # diffuse the correction h - a·c to the EEG embedding c
    num_samples: int = 8                          # the prior's output: the mean of this many samples (saved;
                                                  # reference: 1 — one ε-sample is further from the truth than
                                                  # the raw EEG embedding, docs/prior.md)
    prediction_type: str = "sample"               # "sample" (x0, as DALL-E 2's prior) or "epsilon" (reference)
    val_fraction: float = 0.1                     # fraction of *images* held out for validation
    seed: int = 0
    eval_steps: int = 50                          # sampling steps for validation (reference: 50)
    eval_guidance: float = 5.0                    # guidance for validation sampling (reference: 5)
    eval_max: int = 2000                          # at most this many validation rows are sampled
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PriorEvaluation:
    """What :func:`evaluate_prior` measures: prior samples (and the raw EEG embedding) against the true images.

    Attributes
    ----------
    n_rows, n_candidates : int
        EEG rows scored; distinct images they are retrieved among.
    chance_top1 : float
        ``1 / n_candidates``.
    prior_cosine, prior_top1 : float
        Mean cosine similarity of the prior's samples to the true image; their top-1 retrieval.
    prior_top5 : float or None
        Top-5 retrieval (None with fewer than 5 candidates).
    raw_cosine, raw_top1, raw_top5 : float or None
        The same for the raw EEG embedding, when it has the image embedding's size (else None).
    """

    n_rows: int
    n_candidates: int
    chance_top1: float
    prior_cosine: float
    prior_top1: float
    prior_top5: float | None = None
    raw_cosine: float | None = None
    raw_top1: float | None = None
    raw_top5: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The measures as floats, those not computed left out (the form of ``training.json``)."""
        order = ("n_rows", "n_candidates", "prior_cosine", "prior_top1", "prior_top5", "chance_top1",
                 "raw_cosine", "raw_top1", "raw_top5")
        return {k: float(getattr(self, k)) for k in order if getattr(self, k) is not None}


@dataclass
class PriorFitResult:
    """What :func:`fit_prior` returns: the prior, per-epoch losses and validation metrics.

    ``metrics`` holds ``train_s``, ``n_train``, ``n_val`` and the validation's measures
    (:meth:`PriorEvaluation.as_dict`); ``validation`` is that evaluation (None without a validation set).
    """

    prior: DiffusionPrior
    history: list[dict[str, float]]
    metrics: dict[str, float]
    train_index: np.ndarray
    val_index: np.ndarray
    config: dict[str, Any]
    validation: PriorEvaluation | None = None


def split_by_group(groups: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices so that all rows of a group (an image) fall on the same side.

    Parameters
    ----------
    groups : array (N,)
        Group label per row (e.g. the image index of each trial).
    val_fraction : float
        Fraction of groups held out, in [0, 1).
    seed : int
        Seed of the permutation of groups.

    Returns
    -------
    (train_index, val_index) : sorted int arrays.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    groups = np.asarray(groups)
    unique = np.unique(groups)
    n_val = int(round(len(unique) * val_fraction))
    if val_fraction > 0 and n_val == 0 and len(unique) > 1:
        n_val = 1
    if n_val >= len(unique):
        raise ValueError(f"val_fraction={val_fraction} leaves no training group out of {len(unique)}.")
    rng = np.random.default_rng(seed)
    val_groups = rng.permutation(unique)[:n_val]
    is_val = np.isin(groups, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def retrieval_metrics(pred: torch.Tensor, candidates: torch.Tensor, target_index: torch.Tensor,
                      ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Cosine similarity to the true target and top-k retrieval among ``candidates``.

    Parameters
    ----------
    pred : tensor (N, d)
        Predicted embeddings.
    candidates : tensor (M, d)
        Candidate image embeddings (each row one image).
    target_index : tensor (N,) long
        Row of ``candidates`` that is the true image of each prediction.

    Returns
    -------
    dict with ``cosine`` (mean cosine similarity to the true image), ``top1``, ``top5`` (fractions) and
    ``chance_top1`` (1 / M). Ties count against the prediction (the true image must be strictly first).
    """
    p = F.normalize(pred.float(), dim=-1)
    c = F.normalize(candidates.float().to(p.device), dim=-1)
    target_index = target_index.to(p.device)
    sims = p @ c.T                                             # (N, M)
    true = sims.gather(1, target_index[:, None])               # (N, 1)
    rank = (sims >= true).sum(1) - 1                            # number of other candidates at least as close
    out = {"cosine": float(true.mean())}
    for k in ks:
        if k <= c.shape[0]:
            out[f"top{k}"] = float((rank < k).float().mean())
    out["chance_top1"] = 1.0 / c.shape[0]
    return out


def evaluate_prior(prior: DiffusionPrior, eeg: torch.Tensor, image: torch.Tensor,
                   groups: np.ndarray | None = None, num_inference_steps: int = 50, guidance_scale: float = 5.0,
                   seed: int = 0, batch_size: int = 1024, num_samples: int | None = None) -> PriorEvaluation:
    """Sample the prior for ``eeg`` and score the samples against ``image``; compare with the raw EEG embedding.

    Candidates for retrieval are the distinct images among the rows (one per group). When the EEG embedding has
    the image embedding's size (an encoder trained against raw image features), the raw EEG embedding is scored
    the same way, so ``prior_*`` vs ``raw_*`` answers "does the prior help?". The prior's output is the mean of
    ``num_samples`` samples per row (see :meth:`DiffusionPrior.sample`).

    Returns
    -------
    PriorEvaluation
        ``prior_*`` measures, ``raw_*`` ones when comparable, ``n_rows``, ``n_candidates``, ``chance_top1``.
    """
    eeg = torch.as_tensor(eeg, dtype=torch.float32)
    image = torch.as_tensor(image, dtype=torch.float32)
    if groups is None:
        groups = np.arange(len(eeg))
    groups = np.asarray(groups)
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    candidates = image[torch.as_tensor(first)]
    target = torch.as_tensor(inverse, dtype=torch.long)
    sampled = prior.sample(eeg, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                           batch_size=batch_size, num_samples=num_samples).cpu()
    m = retrieval_metrics(sampled, candidates, target)
    raw = retrieval_metrics(eeg, candidates, target) if eeg.shape[1] == image.shape[1] else {}
    return PriorEvaluation(n_rows=len(eeg), n_candidates=len(uniq), chance_top1=m["chance_top1"],
                           prior_cosine=m["cosine"], prior_top1=m["top1"], prior_top5=m.get("top5"),
                           raw_cosine=raw.get("cosine"), raw_top1=raw.get("top1"), raw_top5=raw.get("top5"))


def fit_prior(eeg: torch.Tensor | np.ndarray, image: torch.Tensor | np.ndarray,
              groups: np.ndarray | None = None, config: PriorFitConfig | None = None,
              val_eeg: torch.Tensor | None = None, val_image: torch.Tensor | None = None,
              val_groups: np.ndarray | None = None) -> PriorFitResult:
    """Train a :class:`~eegvision.models.prior.DiffusionPrior` on (EEG embedding, image embedding) pairs.

    Parameters
    ----------
    eeg : (N, cond_dim)
        Per-trial EEG embeddings (the conditions).
    image : (N, embed_dim)
        The embedding of the image seen in each trial (repeat the image row for each of its trials), raw
        (unnormalised) as the Stage II generator expects.
    groups : array (N,), optional
        Image id of each row; the validation split holds out whole images. Default: each row its own group.
    config : PriorFitConfig
        Hyper-parameters; ``config.val_fraction`` of the groups are held out unless ``val_eeg`` is given.
    val_eeg, val_image, val_groups : optional
        An explicit validation set (e.g. the test-set embeddings), used instead of a split.

    Returns
    -------
    PriorFitResult
        The trained prior (eval mode), per-epoch ``history`` (``loss``, ``lr``, ``val_loss`` when a validation
        set exists) and final validation ``metrics`` (see :func:`evaluate_prior`).
    """
    from diffusers.optimization import get_cosine_schedule_with_warmup

    from eegvision.progress import track
    from eegvision.utils import default_device, seed_everything

    cfg = config or PriorFitConfig()
    eeg = torch.as_tensor(np.asarray(eeg) if not torch.is_tensor(eeg) else eeg, dtype=torch.float32)
    image = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image, dtype=torch.float32)
    if eeg.ndim != 2 or image.ndim != 2 or len(eeg) != len(image):
        raise ValueError(f"eeg and image must be 2-D with the same number of rows; got eeg {tuple(eeg.shape)} "
                         f"and image {tuple(image.shape)}. Repeat each image row for each of its trials.")
    if not torch.isfinite(eeg).all() or not torch.isfinite(image).all():
        raise ValueError("eeg or image embeddings contain NaN/inf values; check the embedding files.")
    groups = np.arange(len(eeg)) if groups is None else np.asarray(groups)
    if len(groups) != len(eeg):
        raise ValueError(f"groups has {len(groups)} entries for {len(eeg)} rows.")
    seed_everything(cfg.seed)
    device = torch.device(default_device(cfg.device))

    if val_eeg is not None:
        train_idx, val_idx = np.arange(len(eeg)), np.array([], dtype=int)
        v_eeg = torch.as_tensor(val_eeg, dtype=torch.float32)
        v_img = torch.as_tensor(val_image, dtype=torch.float32)
        v_groups = np.arange(len(v_eeg)) if val_groups is None else np.asarray(val_groups)
    else:
        train_idx, val_idx = split_by_group(groups, cfg.val_fraction, cfg.seed)
        v_eeg, v_img, v_groups = eeg[val_idx], image[val_idx], groups[val_idx]

    x_cond = eeg[train_idx].to(device)
    x_img = image[train_idx].to(device)
    if cfg.residual and eeg.shape[1] != image.shape[1]:
        raise ValueError(f"residual=True needs EEG embeddings in the image space; got {eeg.shape[1]}-d EEG and "
                         f"{image.shape[1]}-d image embeddings. Use residual=False (or an encoder trained against "
                         "these image features).")
    kind = dict(normalize_condition=cfg.normalize_condition, residual=cfg.residual)
    c = F.normalize(x_cond, dim=-1) if cfg.normalize_condition else x_cond
    anchor = float((c * x_img).sum() / (c * c).sum().clamp_min(1e-12)) if cfg.residual else 1.0  # h ≈ a·c
    stats = {}
    if cfg.standardize:  # statistics of what is diffused (the correction, for a residual prior)
        r = x_img - anchor * c if cfg.residual else x_img
        stats = {"target_mean": r.mean(0).cpu(), "target_std": r.std(0).cpu()}
    prior = DiffusionPrior(embed_dim=image.shape[1], cond_dim=eeg.shape[1], architecture=cfg.architecture,
                           architecture_options=cfg.architecture_options,
                           num_train_timesteps=cfg.num_train_timesteps, anchor_scale=anchor,
                           num_samples=cfg.num_samples, prediction_type=cfg.prediction_type, **kind,
                           **stats).to(device)
    scheduler = prior.make_scheduler("ddpm")
    alphas = scheduler.alphas_cumprod.to(device)
    z_img = prior.target(x_img, x_cond)

    n = len(train_idx)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total_steps = steps_per_epoch * cfg.epochs
    opt = torch.optim.Adam(prior.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    lr_sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=min(cfg.warmup_steps, total_steps),
                                               num_training_steps=total_steps)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    history: list[dict[str, float]] = []

    def diffusion_loss(z0: torch.Tensor, c: torch.Tensor, drop_p: float, g: torch.Generator) -> torch.Tensor:
        b = z0.shape[0]
        t = torch.randint(0, cfg.num_train_timesteps, (b,), generator=g).to(device)
        noise = torch.randn(z0.shape, generator=g).to(device)
        a = alphas[t][:, None]
        z_t = a.sqrt() * z0 + (1 - a).sqrt() * noise         # = scheduler.add_noise(z0, noise, t)
        keep = (torch.rand(b, generator=g) >= drop_p).to(device)  # per-sample CFG dropout
        target = z0 if cfg.prediction_type == "sample" else noise
        return F.mse_loss(prior(z_t, t, c, cond_mask=keep), target)

    v_cond_dev = v_eeg[: cfg.eval_max].to(device) if len(v_eeg) else None
    v_z_dev = prior.target(v_img[: cfg.eval_max].to(device), v_cond_dev) if len(v_eeg) else None
    start = time.perf_counter()
    for epoch in track(range(cfg.epochs), "prior", total=cfg.epochs):
        prior.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total, count = torch.zeros((), device=device), 0
        for s in range(steps_per_epoch):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            loss = diffusion_loss(z_img[idx], x_cond[idx], cfg.cond_drop_prob, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(prior.parameters(), cfg.grad_clip)
            opt.step()
            lr_sched.step()                                     # after the optimiser (reference: before)
            total += loss.detach() * len(idx)
            count += len(idx)
        row = {"epoch": epoch, "loss": float(total) / count, "lr": lr_sched.get_last_lr()[0]}
        if v_cond_dev is not None:
            prior.eval()
            with torch.no_grad():  # fixed noise and timesteps each epoch: comparable across epochs
                row["val_loss"] = float(diffusion_loss(v_z_dev, v_cond_dev, 0.0,
                                                       torch.Generator().manual_seed(cfg.seed + 1)))
        history.append(row)
    train_time = time.perf_counter() - start

    prior.eval()
    metrics: dict[str, float] = {"train_s": train_time, "n_train": float(n), "n_val": float(len(v_eeg))}
    validation = None
    if len(v_eeg):
        validation = evaluate_prior(prior, v_eeg[: cfg.eval_max], v_img[: cfg.eval_max], v_groups[: cfg.eval_max],
                                    num_inference_steps=cfg.eval_steps, guidance_scale=cfg.eval_guidance,
                                    seed=cfg.seed)
        metrics.update(validation.as_dict())
    return PriorFitResult(prior=prior, history=history, metrics=metrics, train_index=train_idx,
                          val_index=val_idx, config=cfg.to_dict(), validation=validation)


def save_fit(result: PriorFitResult, directory: str | os.PathLike) -> None:
    """Save the prior (its model files) and ``training.json`` (config, history, metrics)."""
    import json

    from eegvision.utils import write_text_atomic

    directory = Path(directory)
    result.prior.save_pretrained(directory)
    write_text_atomic(directory / "training.json", json.dumps(
        {"fit_config": result.config, "history": result.history, "metrics": result.metrics}, indent=2) + "\n")


# ----------------------------------------------------------------------------- a run's prior
@dataclass(frozen=True)
class RunPriorFit:
    """What :func:`fit_run_prior` returns.

    Attributes
    ----------
    fit : PriorFitResult
        The trained prior, its history and validation.
    directory : Path
        Where the prior was saved (default ``RUN/prior``).
    subject : str
        The subject whose training trials condition the prior.
    n_rows : int
        EEG rows the prior saw (training trials, or one per condition).
    n_images : int
        Distinct training images (conditions) among them.
    """

    fit: PriorFitResult
    directory: Path
    subject: str
    n_rows: int
    n_images: int


def condition_groups(store: Any, subject: str, n_rows: int) -> np.ndarray:
    """Image (condition) of each EEG row of ``subject``'s training split, from the store's metadata.

    Rows are the split's trials in store order (``n_rows`` = the metadata's rows), or one per condition in
    condition order (``n_rows`` = its number of conditions). The condition is the row of the split's
    image-feature file.
    """
    cond = np.array(store.metadata(subject, "training")["condition"], dtype=np.int64)
    if n_rows == len(cond):
        return cond
    conditions = np.unique(cond)
    if n_rows == len(conditions):
        return conditions
    raise ValueError(f"{n_rows} EEG rows do not match {subject}'s training split, which has {len(cond)} trials "
                     f"of {len(conditions)} conditions: give one row per trial (in store order: all repetitions "
                     "of condition 0, then condition 1, ...) or one row per condition.")


def fit_run_prior(run_dir: str | os.PathLike, *, subject: str | None = None, data: str | os.PathLike | None = None,
                  embeddings: str | os.PathLike | None = None, image_features: str | os.PathLike | None = None,
                  out: str | os.PathLike | None = None, config: PriorFitConfig | None = None) -> RunPriorFit:
    """Fit the Stage I prior on one subject's training trials and save it (``eegvision prior fit``).

    Each EEG row is paired with the raw image embedding of the image its trial showed; the image of every
    row (and so the groups held out together for validation) comes from the store's metadata
    (``condition``), not from the number of rows.

    Parameters
    ----------
    run_dir : path
        The run (encoder trained with the ``generation`` objective). Without ``embeddings`` its unit tested on
        ``subject`` embeds that subject's training trials, one row per trial.
    subject : str, optional
        Whose training trials condition the prior (default: the unit's first training subject).
    data : path, optional
        Store or THINGS-EEG2 folder (default: the run's data).
    embeddings : path, optional
        Precomputed training EEG embeddings (one row per trial in store order, or one per condition) instead of
        embedding the trials; needs ``image_features``.
    image_features : path, optional
        Raw (unnormalised) training image features, one row per condition (default: the run's training
        feature file).
    out : path, optional
        Output folder (default ``RUN/prior``).
    config : PriorFitConfig, optional
        Hyper-parameters (``config.device`` also embeds the trials).

    Returns
    -------
    RunPriorFit
    """
    from eegvision.data.sources import open_data
    from eegvision.features.files import load_features
    from eegvision.training.run import load_run

    cfg = config or PriorFitConfig()
    run = RunFolder(Path(run_dir))
    subject = subject or _default_subject(run)
    if embeddings is not None:
        from eegvision.evaluation.embeddings import load_embeddings

        if image_features is None:
            raise ValueError("--embeddings needs --image-features (the raw training image features).")
        if data is None and not run.exists():
            raise ValueError(f"{run.path} is not a run: say which data the embeddings come from with --data (its "
                             "metadata pairs each row with its image).")
        eeg = torch.as_tensor(load_embeddings(embeddings))
        store = open_data(data or run.fit_config().data)
    else:
        trained = load_run(run.path, subject=subject)
        store = open_data(data or trained.config.data)
        eeg = trained.embed(store, subject, "training", average=False, device=cfg.device)
        image_features = image_features or run.feature_file("train")
        if not image_features:
            raise ValueError(f"{run.path} records no training feature file; pass --image-features.")
    feats = load_features(image_features, expect_normalized=False)
    groups = condition_groups(store, subject, len(eeg))
    if groups.max() >= len(feats):
        raise ValueError(f"{image_features} has {len(feats)} image rows but {subject}'s training split has "
                         f"{int(groups.max()) + 1} conditions; pass the training split's --image-features.")
    res = fit_prior(eeg, feats.image[torch.as_tensor(groups)], groups, cfg)
    target = Path(out) if out is not None else run.prior_dir
    save_fit(res, target)
    return RunPriorFit(fit=res, directory=target, subject=subject, n_rows=len(eeg), n_images=len(np.unique(groups)))


def _default_subject(run: RunFolder) -> str:
    """The first training subject of a one-unit run."""
    units = run.units() if run.exists() else []
    ids = units[0].read_config().get("subject_ids", {}) if len(units) == 1 else {}
    if not ids:
        raise ValueError(f"Say which subject's training trials condition the prior with --subject ({run.path} is "
                         "not a one-unit run).")
    return next(iter(ids))
