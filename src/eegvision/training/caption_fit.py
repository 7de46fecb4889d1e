"""Train a :class:`~eegvision.generation.captioner.PrefixCaptioner` on (image embedding, reference caption) pairs.

Teacher forcing with the loss on caption tokens (and EOS) only; AdamW with linear warm-up and cosine decay,
gradient clipping at 1, seeded shuffling. A validation split holds out whole *images* (all captions of an image on
one side); at the end the held-out images are captioned (greedy, with the library's guards against repetition:
:mod:`eegvision.generation.decoding`) and scored with BLEU-4, ROUGE-L and CIDEr-D against their references, with
the fraction of those captions that say a word three times in a row, so a fit reports how well it generalises, not
just its training loss.

Like :mod:`eegvision.training.prior_fit`, the loop is plain torch over in-memory tensors: embeddings and captions
are small and a DataLoader would only add overhead.

Learning rate: ClipCap fine-tunes a pretrained GPT-2 at 2e-5; a decoder trained from scratch (the small GPT-2 of
the simulated world) needs a larger rate. ``learning_rate=None`` picks 2e-5 for a pretrained decoder and 1e-3
otherwise.
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

from eegvision.generation.captioner import PrefixCaptioner, build_word_tokenizer, load_tokenizer
from eegvision.generation.decoding import (
    NO_REPEAT_NGRAM_SIZE,
    REPETITION_PENALTY,
    decoding_settings,
)

__all__ = ["CaptionFitConfig", "CaptionFitResult", "fit_captioner", "save_caption_fit"]


@dataclass
class CaptionFitConfig:
    """Hyper-parameters of :func:`fit_captioner` (defaults follow ClipCap's MLP variant where they apply)."""

    decoder: str | None = None          # local causal-LM folder (e.g. gpt2/); None = new small GPT-2
    tokenizer: str | None = None        # local tokenizer folder; default: the decoder's, else word-level
    decoder_options: dict = field(default_factory=dict)  # small GPT-2: n_embd, n_layer, n_head (see captioner)
    prefix_length: int = 10             # ClipCap: 10
    hidden_dim: int | None = None       # mapping MLP width; default P·H/2
    max_length: int = 40                # caption tokens kept (incl. EOS)
    freeze_decoder: bool = False        # train the mapping only (ClipCap's "frozen GPT-2" variant)
    epochs: int = 10                    # ClipCap: 10
    batch_size: int = 40                # ClipCap: 40
    learning_rate: float | None = None  # None: 2e-5 with a pretrained decoder, 1e-3 from scratch
    weight_decay: float = 0.01
    warmup_steps: int = 500             # ClipCap: 5000 on COCO
    grad_clip: float = 1.0
    val_fraction: float = 0.1           # fraction of images held out
    eval_max: int = 500                 # at most this many held-out images are captioned at the end
    num_beams: int = 1                  # decoding of the final validation captions: beam width (1 = greedy),
    no_repeat_ngram_size: int = NO_REPEAT_NGRAM_SIZE  # no repeated token pair (0 = off),
    repetition_penalty: float = REPETITION_PENALTY    # CTRL penalty on tokens already said (1.0 = off)
    seed: int = 0
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CaptionFitResult:
    """The trained captioner (eval mode), per-epoch history and validation metrics."""

    captioner: PrefixCaptioner
    history: list[dict[str, float]]
    metrics: dict[str, float]
    config: dict[str, Any]
    val_images: np.ndarray
    val_captions: list[str] = field(default_factory=list)


def _split_images(n_images: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if fraction <= 0 or n_images < 2:
        return np.arange(n_images), np.array([], dtype=int)
    n_val = min(n_images - 1, max(1, int(round(fraction * n_images))))
    perm = np.random.default_rng(seed).permutation(n_images)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def fit_captioner(embeddings: torch.Tensor | np.ndarray, captions: list[str], image_index: np.ndarray | None = None,
                  config: CaptionFitConfig | None = None, captioner: PrefixCaptioner | None = None,
                  ) -> CaptionFitResult:
    """Train a prefix captioner.

    Parameters
    ----------
    embeddings : (n_images, d)
        One embedding per image (e.g. CLIP image features, raw or normalised: the captioner normalises).
    captions : list of str
        Reference captions, one per pair.
    image_index : array of int, optional
        Row of ``embeddings`` that each caption describes (several captions per image allowed). Default:
        caption i describes image i.
    config : CaptionFitConfig
    captioner : PrefixCaptioner, optional
        Continue training this model instead of building one from ``config``.

    Returns
    -------
    CaptionFitResult
        ``metrics`` has ``train_s``, ``final_loss`` and, with a validation split, ``val_loss`` and the greedy
        validation captions' ``BLEU-4``, ``ROUGE-L``, ``CIDEr-D`` and ``word_3x_in_a_row`` (fraction of them
        with a word three times in a row).
    """
    from diffusers.optimization import get_cosine_schedule_with_warmup

    from eegvision.progress import track
    from eegvision.utils import default_device, seed_everything

    cfg = config or CaptionFitConfig()
    decoding_settings(cfg.num_beams, 30, cfg.no_repeat_ngram_size, cfg.repetition_penalty)   # fail before training
    emb = torch.as_tensor(np.asarray(embeddings) if not torch.is_tensor(embeddings) else embeddings,
                          dtype=torch.float32)
    captions = [str(c) for c in captions]
    idx = np.arange(len(captions)) if image_index is None else np.asarray(image_index, dtype=int)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n_images, dim), got shape {tuple(emb.shape)}.")
    if len(idx) != len(captions):
        raise ValueError(f"{len(captions)} captions but {len(idx)} image indices; give one index per caption.")
    if len(captions) == 0:
        raise ValueError("No captions to train on.")
    if idx.min() < 0 or idx.max() >= len(emb):
        raise ValueError(f"Caption image indices must be in [0, {len(emb) - 1}] (rows of the embeddings); got "
                         f"[{idx.min()}, {idx.max()}].")
    if not torch.isfinite(emb).all():
        raise ValueError("The embeddings contain NaN/inf values; check the feature file.")
    seed_everything(cfg.seed)
    device = torch.device(default_device(cfg.device))

    train_img, val_img = _split_images(len(emb), cfg.val_fraction, cfg.seed)
    train_rows = np.flatnonzero(np.isin(idx, train_img))
    val_rows = np.flatnonzero(np.isin(idx, val_img))
    if captioner is None:
        if cfg.tokenizer is not None:
            tok = load_tokenizer(cfg.tokenizer)
        elif cfg.decoder is not None:
            tok = load_tokenizer(cfg.decoder)
        else:
            tok = build_word_tokenizer([captions[i] for i in train_rows])
        captioner = PrefixCaptioner.create(tok, emb.shape[1], decoder=cfg.decoder, prefix_length=cfg.prefix_length,
                                           hidden_dim=cfg.hidden_dim, max_length=cfg.max_length,
                                           **cfg.decoder_options)
    captioner = captioner.to(device)
    for p in captioner.decoder.parameters():
        p.requires_grad_(not cfg.freeze_decoder)
    lr = cfg.learning_rate if cfg.learning_rate is not None else (2e-5 if cfg.decoder else 1e-3)
    params = [p for p in captioner.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    n = len(train_rows)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=min(cfg.warmup_steps, total // 10),
                                            num_training_steps=total)
    emb_dev = emb.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []

    def loss_of(rows: np.ndarray) -> torch.Tensor:
        return captioner(emb_dev[torch.as_tensor(idx[rows], device=device)], [captions[i] for i in rows])

    start = time.perf_counter()
    for epoch in track(range(cfg.epochs), "captioner", total=cfg.epochs):
        captioner.train()
        if cfg.freeze_decoder:
            captioner.decoder.eval()
        perm = train_rows[torch.randperm(n, generator=gen).numpy()]
        tot, count = 0.0, 0
        for s in range(steps_per_epoch):
            rows = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            loss = loss_of(rows)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(rows)
            count += len(rows)
        row = {"epoch": epoch, "loss": tot / count, "lr": sched.get_last_lr()[0]}
        if len(val_rows):
            captioner.eval()
            with torch.no_grad():
                row["val_loss"] = float(np.mean([float(loss_of(val_rows[s:s + cfg.batch_size]))
                                                 for s in range(0, len(val_rows), cfg.batch_size)]))
        history.append(row)
    captioner.eval()
    metrics: dict[str, float] = {"train_s": time.perf_counter() - start, "final_loss": history[-1]["loss"],
                                 "n_train_captions": float(n), "n_val_images": float(len(val_img)),
                                 "learning_rate": lr}
    val_caps: list[str] = []
    if len(val_img):
        from eegvision.metrics.captions import score_captions
        from eegvision.metrics.repetition import repeated_word_fraction

        metrics["val_loss"] = history[-1]["val_loss"]
        shown = val_img[: cfg.eval_max]
        val_caps = captioner.generate(emb[torch.as_tensor(shown)], num_beams=cfg.num_beams,
                                      no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                                      repetition_penalty=cfg.repetition_penalty)
        refs = [[captions[i] for i in np.flatnonzero(idx == j)] for j in shown]
        scores = score_captions(refs, val_caps, metrics=["ROUGE-L", "CIDEr-D", "BLEU-4"], chance=False)
        metrics.update({f"val_{k}": v for k, v in scores.corpus.items()})
        metrics["val_word_3x_in_a_row"] = repeated_word_fraction(val_caps)
    return CaptionFitResult(captioner=captioner, history=history, metrics=metrics, config=cfg.to_dict(),
                            val_images=val_img, val_captions=val_caps)


def save_caption_fit(result: CaptionFitResult, directory: str | os.PathLike) -> Path:
    """Save the captioner and ``training.json`` (config, history, metrics, validation captions)."""
    import json

    from eegvision.utils import write_text_atomic

    directory = Path(directory)
    result.captioner.save_pretrained(directory)
    write_text_atomic(directory / "training.json", json.dumps(
        {"fit_config": result.config, "history": result.history, "metrics": result.metrics,
         "val_images": [int(i) for i in result.val_images], "val_captions": result.val_captions}, indent=2) + "\n")
    return directory
