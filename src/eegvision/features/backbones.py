"""Any layer of any vision backbone, from local weights: open_clip, transformers (CLIP, SigLIP, DINOv2), timm.

One forward pass gives every requested layer. A layer is

* ``"final"``: the model's own image embedding (open_clip ``encode_image``; transformers ``CLIPModel``
  ``get_image_features`` = projected pooled output, ``CLIPVisionModel``/``SiglipVisionModel``/``SiglipModel``/
  ``Dinov2Model`` ``pooler_output``; timm ``forward_head(..., pre_logits=True)``);
* an integer ``k``: the residual stream after transformer block ``k`` (1-based; ``-1`` is the last block), or for
  convolutional towers the output of feature stage ``k`` (open_clip ``ModifiedResNet``, timm CNNs);
* a fraction ``"a/b"``: block ``round(a/b * depth)`` (half rounded up, at least 1); NeuralBench takes DINOv2-giant
  at 2/3 depth, which is ``"2/3"`` (block 27 of 40). Whether NeuralBench rounds or truncates is not stated; the
  resolved block is recorded in every file, so the choice is visible.

Intermediate tokens go through the tower's final norm before pooling -- open_clip ``ln_post``, transformers
``post_layernorm`` (CLIP, SigLIP) or ``layernorm`` (DINOv2), timm ``norm`` -- as DINOv2's own
``get_intermediate_layers(norm=True)`` and eegvision's single-layer CLIP path (``features/vision.py``) do.
Poolings:

* ``cls``: the class token (towers that have one);
* ``mean``: mean of the patch tokens (prefix tokens excluded); for CNN stages the spatial mean;
* ``cls+mean``: class token concatenated with the mean patch token (the DINOv2 linear-probe head,
  ``Dinov2ForImageClassification``), twice the width;
* ``map``: SigLIP's attention-pooling head; only for SigLIP's last block (where it equals ``pooler_output``).

SigLIP has no class token: its default pooling is ``mean``. The default elsewhere is ``cls`` (``mean`` for CNNs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch

from eegvision.checks import check_choice, show
from eegvision.utils import default_device, sha256_file

BACKBONE_BACKENDS = ("open_clip", "transformers", "timm")
POOLINGS = ("cls", "mean", "cls+mean", "map")
TRANSFORMERS_KINDS = {"clip": "CLIPModel", "clip_vision_model": "CLIPVisionModel", "siglip": "SiglipModel",
                      "siglip_vision_model": "SiglipVisionModel", "dinov2": "Dinov2Model"}

__all__ = ["BACKBONE_BACKENDS", "POOLINGS", "Backbone", "LayerChoice", "fingerprint_weights", "load_backbone",
           "resolve_layer"]


@dataclass(frozen=True)
class LayerChoice:
    """A resolved layer: ``index`` 1-based block/stage (``None`` = the model's final embedding), and its pooling."""

    spec: str
    index: int | None
    depth: int
    pooling: str

    @property
    def tag(self) -> str:
        """Short name used in file names: ``final`` or ``L07-cls``."""
        return "final" if self.index is None else f"L{self.index:02d}-{self.pooling.replace('+', '')}"

    def describe(self) -> dict:
        return {"spec": self.spec, "index": self.index, "depth": self.depth, "pooling": self.pooling}


def resolve_layer(spec: str | int, depth: int) -> int | None:
    """1-based block index of ``spec`` (``"final"`` -> None; ``-1`` -> ``depth``; ``"2/3"`` -> round(2/3 depth))."""
    text = str(spec).strip().lower()
    if text in ("final", "last-embedding", "embedding"):
        return None
    hint = (f"Give a block 1..{depth}, -{depth}..-1 from the end, a fraction of the depth such as 2/3, or final.")
    if "/" in text:
        try:
            frac = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"layer {show(spec)} is not a fraction. {hint}") from None
        if not 0 < frac <= 1:
            raise ValueError(f"layer fraction must be in (0, 1]; got {show(spec)}. {hint}")
        return max(1, int(frac * depth + Fraction(1, 2)))
    try:
        k = int(text)
    except ValueError:
        raise ValueError(f"layer {show(spec)} is not a number. {hint}") from None
    if k == 0 or not -depth <= k <= depth:
        raise ValueError(f"layer must be 1..{depth} (or -{depth}..-1 from the end); got {show(spec)}. {hint}")
    return k if k > 0 else depth + 1 + k


_FINGERPRINTS: dict[tuple, str] = {}


def _sha256_cached(path: Path) -> str:
    """sha256 of a file, remembered in this process while its size and modification time stay the same."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = sha256_file(path)
    return _FINGERPRINTS[key]


def fingerprint_weights(path: str | os.PathLike) -> str:
    """sha256 of a weights file, or of a folder: sha256 over (relative path, size, sha256) of every file in it.

    Each file is hashed once per process (while its size and modification time are unchanged), so extracting the
    training and the test split with the same weights reads them once."""
    path = Path(path)
    if path.is_file():
        return _sha256_cached(path)
    if path.is_dir():
        rows = [(str(p.relative_to(path)), p.stat().st_size, _sha256_cached(p))
                for p in sorted(path.rglob("*")) if p.is_file()]
        return "dir:" + sha256_file_bytes(json.dumps(rows).encode())
    raise FileNotFoundError(f"weights not found: {path} is neither a file nor a folder. Pass the local path of the "
                            "model's weights (nothing is downloaded).")


def sha256_file_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@dataclass
class Backbone:
    """A vision backbone in eval mode with its deterministic (validation) transform.

    Attributes
    ----------
    model : torch.nn.Module
    backend : {"open_clip", "transformers", "timm"}
    kind : str
        ``vit`` (class token), ``siglip`` (no class token, attention pool), ``dinov2``, ``cnn``.
    name, weights : str
        Model name and the local weights path, recorded in metadata.
    preprocess : callable
        PIL image -> tensor (3, H, W).
    transform : str
        Readable description of ``preprocess``.
    depth : int
        Blocks (transformers) or feature stages (CNNs).
    """

    model: torch.nn.Module
    backend: str
    kind: str
    name: str
    weights: str
    preprocess: Callable
    transform: str
    depth: int
    device: str
    extra: dict = field(default_factory=dict)

    @property
    def final_embedding(self) -> str:
        """What layer ``final`` is for this backbone (recorded in metadata)."""
        if "final_embedding" in self.extra:
            return self.extra["final_embedding"]
        if self.backend == "open_clip":
            return "encode_image (pooled, projected)"
        if self.backend == "timm":
            return "forward_head(forward_features(x), pre_logits=True)"
        return {"CLIPModel": "visual_projection(pooler_output)", "CLIPVisionModel": "pooler_output (unprojected)",
                "Dinov2Model": "pooler_output (class token after layernorm)"}.get(
                    self.extra.get("class"), "pooler_output (attention-pool head)")

    @property
    def default_pooling(self) -> str:
        return {"siglip": "mean", "cnn": "mean"}.get(self.kind, "cls")

    def layers(self, specs: Sequence[str | int], poolings: Sequence[str] | None = None) -> list[LayerChoice]:
        """Resolve layer specs (and one pooling for all, or one per layer) against this backbone."""
        specs = list(specs)
        if not specs:
            raise ValueError("no layers given; pass e.g. ['final'] or [-1, '2/3']")
        poolings = list(poolings) if poolings else [self.default_pooling]
        if len(poolings) == 1:
            poolings = poolings * len(specs)
        if len(poolings) != len(specs):
            raise ValueError(f"give one pooling for all layers or one per layer: {len(specs)} layers "
                             f"({show(specs)}) but {len(poolings)} poolings ({show(poolings)})")
        out = []
        for spec, pool in zip(specs, poolings):
            index = resolve_layer(spec, self.depth)
            if self.kind == "vae" and index is not None:
                raise ValueError(f"a VAE has one target, its latent: pass layer final (got {show(spec)})")
            pool = "model" if index is None else self._check_pooling(pool, index)
            out.append(LayerChoice(str(spec), index, self.depth, pool))
        return out

    def _check_pooling(self, pooling: str, index: int) -> str:
        allowed = {"vit": ("cls", "mean", "cls+mean"), "dinov2": ("cls", "mean", "cls+mean"),
                   "siglip": ("mean", "map") if index == self.depth else ("mean",), "cnn": ("mean",)}[self.kind]
        hint = {"siglip": "SigLIP has no class token; its attention-pool head (map) exists only after the last block.",
                "cnn": "Convolutional stages are averaged over space."}.get(self.kind, "")
        return check_choice(f"pooling for layer {index} of {self.name}", pooling, allowed, hint)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, layers: Sequence[LayerChoice]) -> list[torch.Tensor]:
        """Features of every layer in ``layers`` (float32, on CPU), from one forward pass (two for open_clip and
        timm CNNs when ``final`` is asked together with blocks)."""
        pixels = pixels.to(self.device)
        blocks = sorted({c.index for c in layers if c.index is not None})
        want_final = any(c.index is None for c in layers)
        tokens, final = self._tokens(pixels, blocks, want_final) if blocks else ({}, None)
        if want_final and final is None:
            final = self._final(pixels)
        out = []
        for c in layers:
            x = final if c.index is None else self._pool(tokens[c.index], c)
            out.append(x.float().cpu())
        return out

    @torch.no_grad()
    def patch_tokens(self, pixels: torch.Tensor, blocks: Sequence[int]) -> list[torch.Tensor]:
        """The patch tokens ``(N, L, C)`` (float32, on CPU; prefix tokens left out) of each 1-based block of
        ``blocks``, after the tower's final norm, from one forward pass (:mod:`eegvision.features.tokens`)."""
        if self.kind in ("cnn", "vae"):
            raise ValueError(f"{self.name} is not a transformer tower: token features need patch tokens (a ViT, "
                             "SigLIP or DINOv2 model).")
        tokens, _ = self._tokens(pixels.to(self.device), sorted(set(blocks)), False)
        return [tokens[b][1].float().cpu() for b in blocks]

    # --- per backend -------------------------------------------------------------------------------------
    def _tokens(self, pixels: torch.Tensor, blocks: list[int], want_final: bool) -> tuple[dict, torch.Tensor | None]:
        """{block: (prefix tokens or None, patch tokens (N, L, C) or map (N, C, H, W))} after the final norm, and
        the final embedding when the same pass gives it (transformers, timm ViTs; else None: a second pass)."""
        m, idx = self.model, [b - 1 for b in blocks]
        if self.backend == "open_clip":  # its final pooling path differs by version: encode_image does it
            if self.kind == "cnn":
                got = m.visual.forward_intermediates(pixels, indices=idx, intermediates_only=True)
                return {b: (None, x) for b, x in zip(blocks, got["image_intermediates"])}, None
            got = m.visual.forward_intermediates(pixels, indices=idx, normalize_intermediates=True,
                                                 intermediates_only=True, output_fmt="NLC", output_extra_tokens=True)
            return {b: (p, x) for b, p, x in zip(blocks, got["image_intermediates_prefix"],
                                                  got["image_intermediates"])}, None
        if self.backend == "timm":
            if self.kind == "cnn":
                got = m.forward_intermediates(pixels, indices=idx, intermediates_only=True)
                return {b: (None, x) for b, x in zip(blocks, got)}, None
            prefix = m.num_prefix_tokens > 0
            got = m.forward_intermediates(pixels, indices=idx, norm=True, return_prefix_tokens=prefix,
                                          output_fmt="NLC", intermediates_only=not want_final)
            final = None
            if want_final:  # (all blocks, then the final norm) and the intermediates
                x, got = got
                final = m.forward_head(x, pre_logits=True)
            return {b: ((g[1], g[0]) if prefix else (None, g)) for b, g in zip(blocks, got)}, final
        tower, norm, n_prefix = self._hf_parts()
        res = tower(pixel_values=pixels, output_hidden_states=True)
        out = {}
        for b in blocks:
            h = norm(res.hidden_states[b])  # hidden_states[0] is the embedding output
            out[b] = (h[:, :n_prefix] if n_prefix else None, h[:, n_prefix:])
        final = None
        if want_final:
            final = res.pooler_output
            if self.extra.get("class") == "CLIPModel":
                final = self.model.visual_projection(final)
        return out, final

    def _hf_parts(self):
        m = self.model
        if self.kind == "dinov2":
            return m, m.layernorm, 1
        tower = getattr(m, "vision_model", m)  # CLIPModel/SiglipModel hold a tower; the *VisionModel classes are one
        return tower, tower.post_layernorm, (0 if self.kind == "siglip" else 1)

    def _pool(self, parts, c: LayerChoice) -> torch.Tensor:
        prefix, x = parts
        if self.kind == "cnn":
            return x.mean(dim=(2, 3))
        if c.pooling == "cls":
            return prefix[:, 0]
        if c.pooling == "mean":
            return x.mean(dim=1)
        if c.pooling == "cls+mean":
            return torch.cat([prefix[:, 0], x.mean(dim=1)], dim=-1)
        return getattr(self.model, "vision_model", self.model).head(x)  # map: SigLIP's attention pool of the last block

    def _final(self, pixels: torch.Tensor) -> torch.Tensor:
        m = self.model
        if "encode_final" in self.extra:  # e.g. the VAE latent (features/vae.py)
            return self.extra["encode_final"](pixels)
        if self.backend == "open_clip":
            return m.encode_image(pixels)
        if self.backend == "timm":
            return m.forward_head(m.forward_features(pixels), pre_logits=True)
        if self.extra.get("class") == "CLIPModel":
            return m.visual_projection(m.vision_model(pixel_values=pixels).pooler_output)
        return getattr(m, "vision_model", m)(pixel_values=pixels).pooler_output


def _describe_compose(transform) -> str:
    parts = []
    for t in getattr(transform, "transforms", [transform]):
        parts.append(t.__name__.strip("_") if callable(t) and hasattr(t, "__name__") else repr(t))
    return "; ".join(" ".join(p.split()) for p in parts)


def _load_open_clip(model: str, weights: Path, device: str) -> Backbone:
    from eegvision.features.vision import load_vision_model

    vm = load_vision_model(model, weights, backend="open_clip", device=device, text=False)
    blocks = getattr(getattr(vm.model.visual, "transformer", None), "resblocks", None)
    if blocks is not None:
        kind, depth = "vit", len(blocks)
    else:  # ModifiedResNet: stem + 4 stages, as its forward_intermediates counts them
        kind, depth = "cnn", 5
    return Backbone(vm.model, "open_clip", kind, vm.name, str(weights), vm.preprocess, vm.transform, depth,
                    device, extra={"vision_model": vm})


def transformers_model_type(folder: str | os.PathLike) -> str | None:
    """``model_type`` of a transformers model folder (``""`` if its config.json has none), None if not one."""
    cfg = Path(folder) / "config.json"
    return json.loads(cfg.read_text()).get("model_type", "") if Path(folder).is_dir() and cfg.is_file() else None


def _load_transformers(model: str, weights: Path, device: str) -> Backbone:
    import transformers

    model_type = transformers_model_type(weights)
    if model_type is None:
        raise FileNotFoundError(f"{weights} is not a transformers model folder (a directory with config.json from "
                                "save_pretrained or a hub snapshot).")
    cfg_file = weights / "config.json"
    cls_name = check_choice(f"model_type in {cfg_file}", model_type, tuple(TRANSFORMERS_KINDS),
                            "Supported: CLIP, SigLIP (full model or vision tower) and DINOv2 folders.")
    cls_name = TRANSFORMERS_KINDS[model_type]
    net = getattr(transformers, cls_name).from_pretrained(str(weights), local_files_only=True).to(device).eval()
    if not (weights / "preprocessor_config.json").is_file():
        raise FileNotFoundError(f"{weights} has no preprocessor_config.json: save the model's image processor "
                                "there too (processor.save_pretrained(folder)); its transform is the model's own.")
    processor = transformers.AutoImageProcessor.from_pretrained(str(weights), local_files_only=True)

    def preprocess(image):
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    vcfg = net.config.vision_config if hasattr(net.config, "vision_config") else net.config
    kind = {"dinov2": "dinov2"}.get(model_type, "siglip" if model_type.startswith("siglip") else "vit")
    keys = ("size", "crop_size", "do_center_crop", "resample", "image_mean", "image_std", "do_rescale",
            "rescale_factor", "do_resize")
    proc = processor.to_dict()
    desc = f"{type(processor).__name__} " + json.dumps({k: proc[k] for k in keys if k in proc}, sort_keys=True)
    return Backbone(net, "transformers", kind, model or weights.name, str(weights), preprocess, desc,
                    int(vcfg.num_hidden_layers), device, extra={"class": cls_name})


def _load_timm(model: str, weights: Path, device: str) -> Backbone:
    import timm
    from timm.data import create_transform, resolve_data_config

    if weights.is_dir():
        if not (weights / "config.json").is_file():
            raise FileNotFoundError(f"{weights} is a folder without config.json; pass a timm hub folder "
                                    "(config.json + model.safetensors) or a checkpoint file with --model NAME.")
        net = timm.create_model(f"local-dir:{weights}", pretrained=True)
    else:
        if not model:
            raise ValueError("a timm checkpoint file needs its architecture: pass model (e.g. vit_base_patch16_224).")
        from eegvision.checks import check_name

        check_name("Model", model, timm.list_models(), "timm (timm.list_models() lists them)")
        net = timm.create_model(model, pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    net = net.to(device).eval()
    cfg = resolve_data_config({}, model=net)
    tf = create_transform(**cfg, is_training=False)
    blocks = getattr(net, "blocks", None)
    if blocks is not None and hasattr(net, "num_prefix_tokens"):
        kind, depth = "vit", len(blocks)
        if net.num_prefix_tokens == 0:
            kind = "siglip"  # no class token: mean pooling only
    else:
        kind, depth = "cnn", len(net.feature_info)
    name = model or net.pretrained_cfg.get("architecture", weights.name)
    return Backbone(net, "timm", kind, name, str(weights), tf, _describe_compose(tf), depth, device)


def load_backbone(backend: str, weights: str | os.PathLike, model: str = "", device: str | None = None) -> Backbone:
    """Load a backbone from local weights only.

    Parameters
    ----------
    backend : {"open_clip", "transformers", "timm"}
    weights : path
        open_clip: checkpoint file for ``model`` or an ``open_clip_config.json`` folder; transformers: a
        ``save_pretrained`` folder (CLIP, SigLIP or DINOv2, with its image processor); timm: a hub folder
        (``config.json`` + weights) or a checkpoint file for the architecture ``model``.
    model : str
        open_clip / timm architecture name (for transformers only a label).
    """
    check_choice("backend", backend, BACKBONE_BACKENDS, "For VAE latents use features.vae.")
    if weights is None or str(weights) == "":
        raise ValueError("weights are required: the local path of the model (nothing is downloaded)")
    path = Path(weights)
    if not path.exists():
        raise FileNotFoundError(f"weights not found: {path} is neither a file nor a folder. Pass the local path of "
                                "the model's weights (nothing is downloaded).")
    loader = {"open_clip": _load_open_clip, "transformers": _load_transformers, "timm": _load_timm}[backend]
    return loader(model, path, default_device(device))
