"""The world's CLIP: a small transformers ``CLIPModel`` trained contrastively on the world's images and captions.

This is the image/text embedding space of the built-in world — the space the demo's EEG encoders are
aligned to, the generator is conditioned on and retrieval is scored in. It is a standard
``transformers.CLIPModel`` (ViT image tower on 32×32 inputs, causal text transformer)
built from a small :class:`~transformers.CLIPConfig`, with a word-level tokenizer over the closed
vocabulary of the world's captions (:class:`WorldTokenizer`). Training is the symmetric InfoNCE loss
of CLIP with a learned temperature (:func:`train_clip`).

Saved as ``clip.safetensors`` + ``clip.json`` (the ``CLIPConfig`` and the vocabulary).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from eegvision.sim.world.data import ATTRIBUTES, IMAGE_SIZE, WorldImages, to_model_input

_SPECIAL = ("<pad>", "<unk>", "<bos>")
_WORDS = ("a", "on", "the", "in", "at", ",", "background", "small", "medium", "large",
          "centre", "left", "right", "top", "bottom")


class WorldTokenizer:
    """Word-level tokenizer over the world's caption vocabulary.

    Captions are lower-cased and split into words and commas; unknown words map to ``<unk>``.
    Sequences are ``<bos> words <eos>`` padded with ``<pad>`` to ``max_length``; ``<eos>`` has the
    largest id so that CLIP's pooling (the position of the end token) is unambiguous.
    """

    def __init__(self, vocab: list[str] | None = None, max_length: int = 20) -> None:
        if vocab is None:
            words = list(_WORDS) + [v for vals in ATTRIBUTES.values() for v in vals]
            vocab = list(_SPECIAL) + sorted(set(words)) + ["<eos>"]
        if vocab[-1] != "<eos>" or vocab[: len(_SPECIAL)] != list(_SPECIAL):
            raise ValueError(f"A world vocabulary starts with {_SPECIAL} and ends with '<eos>'; got "
                             f"{vocab[:3]} ... {vocab[-1:]}.")
        self.vocab, self.max_length = list(vocab), max_length
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 2

    @property
    def eos_id(self) -> int:
        return len(self.vocab) - 1

    def words(self, text: str) -> list[str]:
        return re.findall(r"[a-z]+|,", text.lower())

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask)``, both ``(n, max_length)`` int64."""
        if isinstance(texts, str):
            texts = [texts]
        ids = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int64)
        for i, t in enumerate(texts):
            toks = [self.bos_id] + [self.index.get(w, 1) for w in self.words(t)][: self.max_length - 2] + [self.eos_id]
            ids[i, : len(toks)] = toks
        ids_t = torch.from_numpy(ids)
        return ids_t, (ids_t != self.pad_id).long()


def clip_config(vocab_size: int, max_length: int = 20, embed_dim: int = 64, vision_width: int = 64,
                vision_layers: int = 2, text_width: int = 64, text_layers: int = 2, patch_size: int = 8,
                eos_token_id: int | None = None) -> dict:
    """A small ``CLIPConfig`` as a JSON-able dict (see :func:`build_clip`)."""
    return {
        "projection_dim": embed_dim,
        "vision_config": {"image_size": IMAGE_SIZE, "patch_size": patch_size, "hidden_size": vision_width,
                          "intermediate_size": 2 * vision_width, "num_hidden_layers": vision_layers,
                          "num_attention_heads": 4, "num_channels": 3, "projection_dim": embed_dim},
        "text_config": {"vocab_size": vocab_size, "hidden_size": text_width, "intermediate_size": 2 * text_width,
                        "num_hidden_layers": text_layers, "num_attention_heads": 4,
                        "max_position_embeddings": max_length, "projection_dim": embed_dim,
                        "pad_token_id": 0, "bos_token_id": 2,
                        "eos_token_id": vocab_size - 1 if eos_token_id is None else eos_token_id},
    }


def build_clip(config: dict):
    """A randomly initialised ``transformers.CLIPModel`` from a :func:`clip_config` dict."""
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(text_config=config["text_config"], vision_config=config["vision_config"],
                     projection_dim=config["projection_dim"])
    return CLIPModel(cfg)


class WorldCLIP:
    """The world's CLIP model and tokenizer with batched, normalised embedding functions."""

    def __init__(self, model, tokenizer: WorldTokenizer, config: dict, device: str | None = None) -> None:
        from eegvision.utils import default_device

        self.device = default_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer, self.config = tokenizer, config

    @property
    def dim(self) -> int:
        return int(self.config["projection_dim"])

    def _image_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.vision_model(pixel_values=x)
        return self.model.visual_projection(out.pooler_output)

    def _text_features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.model.text_model(input_ids=ids, attention_mask=mask)
        return self.model.text_projection(out.pooler_output)

    @torch.no_grad()
    def embed_images(self, images, batch_size: int = 512, normalize: bool = True) -> torch.Tensor:
        """``(n, dim)`` float32 CPU embeddings of a batch of pictures (any form :func:`to_model_input` takes)."""
        x = to_model_input(images, "cpu")
        outs = [self._image_features(x[i:i + batch_size].to(self.device)).float().cpu()
                for i in range(0, len(x), batch_size)]
        e = torch.cat(outs)
        return F.normalize(e, dim=-1) if normalize else e

    @torch.no_grad()
    def embed_image_layers(self, images, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """Every block's output of the image tower, ``{name: (n, width)}`` float32 CPU, L2-normalised:
        ``"embeddings"`` (patch + position embeddings after the pre-norm), ``"block1"`` ... ``"blockL"`` (each
        transformer block's output), each the mean over all tokens (class token included), and ``"final"``
        (the projected embedding of :meth:`embed_images`)."""
        x = to_model_input(images, "cpu")
        parts: dict[str, list[torch.Tensor]] = {}
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(self.device)
            out = self.model.vision_model(pixel_values=xb, output_hidden_states=True)
            for j, h in enumerate(out.hidden_states):
                parts.setdefault("embeddings" if j == 0 else f"block{j}", []).append(h.mean(1).float().cpu())
            parts.setdefault("final", []).append(self.model.visual_projection(out.pooler_output).float().cpu())
        return {k: F.normalize(torch.cat(v), dim=-1) for k, v in parts.items()}

    @torch.no_grad()
    def embed_texts(self, captions: list[str], batch_size: int = 1024, normalize: bool = True) -> torch.Tensor:
        """``(n, dim)`` float32 CPU embeddings of captions."""
        ids, mask = self.tokenizer(list(captions))
        outs = [self._text_features(ids[i:i + batch_size].to(self.device), mask[i:i + batch_size].to(self.device))
                .float().cpu() for i in range(0, len(ids), batch_size)]
        e = torch.cat(outs)
        return F.normalize(e, dim=-1) if normalize else e

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``clip.safetensors`` and ``clip.json`` into ``directory``; return the two paths."""
        from safetensors.torch import save_file

        from eegvision.utils import atomic_path, write_text_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_path(directory / "clip.safetensors", suffix=".safetensors") as tmp:
            save_file(state, str(tmp))
        meta = {"config": self.config, "vocab": self.tokenizer.vocab, "max_length": self.tokenizer.max_length,
                "image_size": IMAGE_SIZE}
        write_text_atomic(directory / "clip.json", json.dumps(meta, indent=1) + "\n")
        return [directory / "clip.safetensors", directory / "clip.json"]

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> "WorldCLIP":
        """Rebuild from ``clip.json`` and load ``clip.safetensors`` (strict: every tensor must match)."""
        from eegvision.tensorfiles import load_safetensors

        directory = Path(directory)
        meta = json.loads((directory / "clip.json").read_text())
        model = build_clip(meta["config"])
        model.load_state_dict(load_safetensors(directory / "clip.safetensors", "World CLIP weights"), strict=True)
        return cls(model, WorldTokenizer(meta["vocab"], meta["max_length"]), meta["config"], device)


def train_clip(data: WorldImages, steps: int = 500, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
               device: str | None = None, config: dict | None = None, concept_caption_p: float = 0.5,
               attribute_weight: float = 0.0, attribute_scale: float = 10.0) -> WorldCLIP:
    """Train a world CLIP with the symmetric contrastive (InfoNCE) loss.

    Each step samples ``batch_size`` images; the paired text is the image's own caption (with size and
    position) or, with probability ``concept_caption_p``, its concept's caption, so that both forms
    embed next to the image. AdamW, linear warm-up then cosine decay, learned temperature (CLIP's
    ``logit_scale``, clamped at 100). Deterministic given ``seed`` on CPU.

    With ``attribute_weight > 0`` an auxiliary loss makes every attribute (shape, colour, texture,
    background) separable by *angle* in the image embedding: one unit-norm prototype per attribute
    value, logits ``attribute_scale * cos(image, prototype)``, cross-entropy averaged over the four
    attributes and added with that weight. Contrastive training alone leaves shape nearly invisible
    (in a batch of random concepts, colour and background already tell captions apart); the
    prototypes are training-only and not saved.
    """
    from eegvision.progress import track
    from eegvision.utils import default_device

    device = default_device(device)
    torch.manual_seed(seed)
    tok = WorldTokenizer()
    config = config or clip_config(len(tok.vocab), tok.max_length)
    model = build_clip(config).to(device).train()
    clip = WorldCLIP(model, tok, config, device)
    model.train()
    x_all = to_model_input(data.images, "cpu")
    ids_img, mask_img = tok(data.captions)
    ids_con, mask_con = tok([c.caption for c in data.concepts])
    cid = torch.from_numpy(data.concept_ids)
    heads = _AttributePrototypes(clip.dim).to(device) if attribute_weight > 0 else None
    labels = {a: torch.from_numpy(v) for a, v in data.labels.items()}
    params = list(model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05, betas=(0.9, 0.98))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps)))))
    g = torch.Generator().manual_seed(seed)
    for _ in track(range(steps), description="training world CLIP"):
        idx = torch.randint(len(x_all), (batch_size,), generator=g)
        use_con = torch.rand(batch_size, generator=g) < concept_caption_p
        ids = torch.where(use_con[:, None], ids_con[cid[idx]], ids_img[idx])
        mask = torch.where(use_con[:, None], mask_con[cid[idx]], mask_img[idx])
        xb = x_all[idx].to(device)
        # same concept in the batch is a positive too (soft duplicates would otherwise be pushed apart)
        same = (cid[idx][:, None] == cid[idx][None, :]).float().to(device)
        target = same / same.sum(1, keepdim=True)
        img = F.normalize(clip._image_features(xb), dim=-1)
        txt = F.normalize(clip._text_features(ids.to(device), mask.to(device)), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100.0) * img @ txt.T
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        if heads is not None:
            aux = heads(img, attribute_scale)
            loss = loss + attribute_weight * sum(F.cross_entropy(aux[a], labels[a][idx].to(device))
                                                 for a in aux) / len(aux)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
    model.eval()
    return clip


class _AttributePrototypes(torch.nn.Module):
    """One learned unit-norm prototype per attribute value; logits are scaled cosines (see :func:`train_clip`)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.protos = torch.nn.ParameterDict(
            {a: torch.nn.Parameter(torch.randn(len(v), dim) / math.sqrt(dim)) for a, v in ATTRIBUTES.items()})

    def forward(self, img: torch.Tensor, scale: float) -> dict[str, torch.Tensor]:
        return {a: scale * img @ F.normalize(p, dim=-1).T for a, p in self.protos.items()}


def retrieval_top1(clip: WorldCLIP, data: WorldImages) -> float:
    """Top-1 accuracy of image → concept-caption retrieval among ``data.concepts`` (chance ``1/n_concepts``)."""
    img = clip.embed_images(data.images)
    txt = clip.embed_texts([c.caption for c in data.concepts])
    pred = (img @ txt.T).argmax(1).numpy()
    return float((pred == data.concept_ids).mean())
