"""CLIP image and text features with open_clip or transformers, from local weights, deterministically.

The reference cached its ViT-H-14 image features with the *training* transform, a random crop, so its targets
changed from run to run (``atm.md`` §1.6). Here images always go through the model's **validation** transform
(resize the shortest side, centre crop, normalise): the same image gives the same features every time.

Weights come from a local path (no downloads):

* ``backend="open_clip"``: ``pretrained`` is a checkpoint file (``open_clip_pytorch_model.bin``,
  ``.safetensors``, ``.pt``) for the architecture ``model`` (e.g. ``ViT-H-14``, ``RN50``), or a folder with
  ``open_clip_config.json`` and weights (open_clip's ``local-dir:`` layout, e.g. a downloaded
  ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` hub snapshot). A known tag (``laion2b_s32b_b79k``) works only when
  it is already in the local Hugging Face cache.
* ``backend="transformers"``: ``pretrained`` is a ``save_pretrained`` folder with a ``CLIPModel`` (also its
  image processor and tokenizer).

Intermediate layers (``layer=N``): the residual stream after transformer block ``N`` (1-based; negative
counts from the end, ``-1`` is the last block), passed through the tower's final LayerNorm (``ln_post`` /
``post_layernorm``) and pooled with ``pooling="cls"`` (the class token, default) or ``"mean"`` (mean of the
patch tokens). These have the tower's width (1280 for ViT-H-14), not the projected CLIP size, and are not in the
shared image-text space. For convolutional towers (RN50) the stage output is averaged over space.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from eegvision.progress import track
from eegvision.utils import default_device

BACKENDS = ("open_clip", "transformers")
POOLINGS = ("cls", "mean")

__all__ = [
    "BACKENDS", "VisionModel", "extract_features", "extract_image_features", "extract_text_features",
    "load_vision_model",
]


@dataclass
class VisionModel:
    """A CLIP model with its deterministic image transform and its tokenizer.

    Attributes
    ----------
    model : torch.nn.Module
        ``open_clip`` CLIP model or ``transformers.CLIPModel``, in eval mode on ``device``.
    backend : {"open_clip", "transformers"}
    name, pretrained : str
        Architecture name and weights location, recorded in feature-file metadata.
    preprocess : callable
        PIL image -> tensor (3, H, W), the validation transform.
    tokenize : callable
        list of str -> model inputs.
    transform : str
        Readable description of ``preprocess`` (stored as metadata).
    device : str
    """

    model: torch.nn.Module
    backend: str
    name: str
    pretrained: str
    preprocess: Callable
    tokenize: Callable
    transform: str
    device: str
    extra: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int | None:
        """Number of transformer blocks of the image tower (None for convolutional towers)."""
        if self.backend == "transformers":
            return int(self.model.config.vision_config.num_hidden_layers)
        blocks = getattr(getattr(self.model.visual, "transformer", None), "resblocks", None)
        return len(blocks) if blocks is not None else None


def _describe(transform) -> str:
    """One-line description of a torchvision Compose without memory addresses."""
    parts = []
    for t in getattr(transform, "transforms", [transform]):
        parts.append(t.__name__.strip("_") if callable(t) and hasattr(t, "__name__") else repr(t))
    return "; ".join(" ".join(p.split()) for p in parts)


def _load_open_clip(model: str, pretrained: str, device: str, text: bool = True) -> VisionModel:
    import open_clip

    path = Path(pretrained)
    if path.is_dir():
        if not (path / "open_clip_config.json").is_file():
            raise FileNotFoundError(
                f"{path} is a folder without open_clip_config.json. Pass the checkpoint file itself "
                "(e.g. .../open_clip_pytorch_model.bin), or use --backend transformers for a CLIPModel folder."
            )
        name = f"local-dir:{path}"
        kwargs: dict = {}
    else:
        name = model
        from eegvision.checks import check_name

        check_name("Model", name, open_clip.list_models(), "open_clip (open_clip.list_models() lists them)")
        if not path.is_file():
            tags = open_clip.list_pretrained_tags_by_model(name)
            if pretrained not in tags:
                raise FileNotFoundError(
                    f"weights not found: {pretrained!r} is neither a file nor a folder. Download the "
                    f"checkpoint once (e.g. open_clip_pytorch_model.bin of {name}) and pass its path."
                )
        kwargs = {"pretrained": pretrained}
    try:
        clip, _, preprocess_val = open_clip.create_model_and_transforms(name, device=device, **kwargs)
        tokenizer = open_clip.get_tokenizer(name) if text else None
    except RuntimeError as exc:
        if "download" in str(exc).lower() or "offline" in str(exc).lower():
            raise FileNotFoundError(
                f"could not load {model} weights {pretrained!r} without network ({exc}); pass a local checkpoint "
                "file with --pretrained PATH"
            ) from None
        raise
    clip.eval()
    return VisionModel(model=clip, backend="open_clip", name=model, pretrained=str(pretrained),
                       preprocess=preprocess_val, tokenize=tokenizer, transform=_describe(preprocess_val),
                       device=device)


def _load_transformers(model: str, pretrained: str, device: str) -> VisionModel:
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    path = Path(pretrained)
    if not (path.is_dir() and (path / "config.json").is_file()):
        raise FileNotFoundError(
            f"{pretrained!r} is not a transformers model folder (a directory with config.json from "
            "save_pretrained or a hub snapshot); for an open_clip checkpoint use --backend open_clip"
        )
    clip = CLIPModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
    processor = CLIPImageProcessor.from_pretrained(str(path), local_files_only=True)
    tokenizer = CLIPTokenizer.from_pretrained(str(path), local_files_only=True)
    max_len = int(clip.config.text_config.max_position_embeddings)

    def preprocess(image):
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    def tokenize(texts: Sequence[str]):
        return tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_len,
                         return_tensors="pt")

    size = getattr(processor, "size", None)
    crop = getattr(processor, "crop_size", None)
    desc = (f"CLIPImageProcessor resize={dict(size) if size else None} resample={processor.resample} "
            f"center_crop={dict(crop) if crop else None} mean={list(processor.image_mean)} "
            f"std={list(processor.image_std)}")
    return VisionModel(model=clip, backend="transformers", name=model or path.name, pretrained=str(path),
                       preprocess=preprocess, tokenize=tokenize, transform=desc, device=device)


def load_vision_model(model: str = "ViT-H-14", pretrained: str | os.PathLike | None = None,
                      backend: str = "open_clip", device: str | None = None, text: bool = True) -> VisionModel:
    """Load a CLIP model from local weights, with its validation transform and tokenizer.

    Parameters
    ----------
    model : str
        open_clip architecture name (``ViT-H-14``, ``ViT-L-14``, ``RN50``, ...); for transformers only a label.
    pretrained : path
        Local weights (see the module docstring). Required.
    backend : {"open_clip", "transformers"}
    device : str, optional
        ``"cuda"`` when available by default.
    text : bool
        Also load the open_clip tokenizer (``False``: image features only, ``tokenize`` is None).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if pretrained is None or str(pretrained) == "":
        raise ValueError("pretrained is required: the local path of the CLIP weights (nothing is downloaded)")
    device = default_device(device)
    if backend == "open_clip":
        return _load_open_clip(model, str(pretrained), device, text=text)
    return _load_transformers(model, str(pretrained), device)


class ImageFiles(torch.utils.data.Dataset):
    """Image files as preprocessed tensors (RGB), for a DataLoader."""

    def __init__(self, paths: Sequence, preprocess: Callable):
        self.paths, self.preprocess = list(paths), preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.preprocess(im.convert("RGB"))


def _autocast(device: str):
    if str(device).startswith("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    import contextlib

    return contextlib.nullcontext()


def _layer_index(vm: VisionModel, layer: int) -> int:
    n = vm.n_layers
    if n is None:
        return layer - 1 if layer > 0 else layer
    if layer == 0 or not -n <= layer <= n:
        raise ValueError(f"layer must be 1..{n} (or -{n}..-1 from the end) for {vm.name}, got {layer}")
    return layer - 1 if layer > 0 else n + layer


def _encode_images(vm: VisionModel, pixels: torch.Tensor, layer: int | None, pooling: str) -> torch.Tensor:
    model = vm.model
    if vm.backend == "open_clip":
        if layer is None:
            return model.encode_image(pixels)
        out = model.visual.forward_intermediates(
            pixels, indices=[_layer_index(vm, layer)], normalize_intermediates=True, intermediates_only=True,
            output_fmt="NCHW" if vm.n_layers is None else "NLC", output_extra_tokens=True,
        )
        if vm.n_layers is None:  # convolutional tower: average the stage output over space
            return out["image_intermediates"][0].mean(dim=(2, 3))
        if pooling == "cls":
            return out["image_intermediates_prefix"][0][:, 0]
        return out["image_intermediates"][0].mean(dim=1)
    vision = model.vision_model
    if layer is None:
        pooled = vision(pixel_values=pixels).pooler_output
        return model.visual_projection(pooled)
    hidden = vision(pixel_values=pixels, output_hidden_states=True).hidden_states
    idx = _layer_index(vm, layer) + 1  # hidden_states[0] is the embedding output
    tokens = vision.post_layernorm(hidden[idx])
    return tokens[:, 0] if pooling == "cls" else tokens[:, 1:].mean(dim=1)


@torch.no_grad()
def extract_image_features(vm: VisionModel, paths: Sequence, *, batch_size: int = 64, normalize: bool = True,
                           layer: int | None = None, pooling: str = "cls",
                           num_workers: int | None = None) -> torch.Tensor:
    """Image features ``(len(paths), dim)`` float32 on CPU, in the order of ``paths``.

    Parameters
    ----------
    vm : VisionModel
        From :func:`load_vision_model`.
    paths : sequence of paths
        Image files (any format PIL reads; converted to RGB).
    batch_size : int
    normalize : bool
        L2-normalise the rows (retrieval); ``False`` keeps raw features (the generation prior).
    layer : int, optional
        Intermediate layer (see the module docstring); ``None`` gives the final projected CLIP embedding.
    pooling : {"cls", "mean"}
        Token pooling for intermediate ViT layers.
    num_workers : int, optional
        Image-decoding worker processes (default 4 on CUDA, 0 on CPU).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if not len(paths):
        raise ValueError("no images to embed")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers is None:
        num_workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if str(vm.device).startswith("cuda") else 0
    loader = torch.utils.data.DataLoader(ImageFiles(paths, vm.preprocess), batch_size=batch_size,
                                         shuffle=False, num_workers=num_workers,
                                         pin_memory=str(vm.device).startswith("cuda"))
    chunks = []
    for pixels in track(loader, description="image features", total=len(loader)):
        with _autocast(vm.device):
            feats = _encode_images(vm, pixels.to(vm.device, non_blocking=True), layer, pooling)
        chunks.append(feats.float().cpu())
    out = torch.cat(chunks)
    return torch.nn.functional.normalize(out, dim=-1) if normalize else out


@torch.no_grad()
def extract_text_features(vm: VisionModel, prompts: Sequence[str], *, normalize: bool = True,
                          batch_size: int = 256) -> torch.Tensor:
    """Text features ``(len(prompts), dim)`` float32 on CPU (the model's final projected text embedding)."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts to embed")
    chunks = []
    for start in range(0, len(prompts), batch_size):
        tokens = vm.tokenize(prompts[start:start + batch_size])
        with _autocast(vm.device):
            if vm.backend == "open_clip":
                feats = vm.model.encode_text(tokens.to(vm.device))
            else:
                tokens = {k: v.to(vm.device) for k, v in tokens.items()}
                pooled = vm.model.text_model(input_ids=tokens["input_ids"],
                                             attention_mask=tokens.get("attention_mask")).pooler_output
                feats = vm.model.text_projection(pooled)
        chunks.append(feats.float().cpu())
    out = torch.cat(chunks)
    return torch.nn.functional.normalize(out, dim=-1) if normalize else out


def extract_features(
    images_root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str = "ViT-H-14",
    pretrained: str | os.PathLike | None = None,
    backend: str = "open_clip",
    layer: int | None = None,
    pooling: str = "cls",
    batch_size: int = 64,
    device: str | None = None,
    normalize: bool = True,
    text: bool = True,
    prompt_template: str = "This picture is {concept}",
    split: str | None = None,
    vision_model: VisionModel | None = None,
) -> Path:
    """Embed a THINGS-style image folder and write a feature file (safetensors + metadata).

    Parameters
    ----------
    images_root : path
        Folder of concept sub-folders (``00001_aardvark/...``) as read by
        :func:`eegvision.readers.images.scan_image_folder`; row ``i`` of ``image`` is image ``i`` in its order.
    out : path
        Output ``.safetensors`` file.
    model, pretrained, backend, device
        See :func:`load_vision_model` (or pass an already loaded ``vision_model``).
    layer, pooling
        Intermediate-layer features (see the module docstring). Text features are only written for the final
        layer (the intermediate image features are not in the text space).
    normalize : bool
        L2-normalise the image rows (retrieval) or keep raw image features (generation prior). Text rows are
        always normalised (as in the reference); the ``normalized`` metadata describes the image rows.
    text : bool
        Also embed one prompt per concept (``prompt_template`` with ``{concept}``).
    split : str, optional
        Recorded in the metadata (default: the folder name, e.g. ``test_images``).

    The file also records the folder's concept table (:class:`~eegvision.store.concepts.ConceptTable`: 0-based
    index = position of the concept folder in sorted order, the store's ``concept_index``).
    """
    from eegvision.features.files import save_features
    from eegvision.readers.images import make_prompts, scan_image_folder
    from eegvision.store.concepts import ConceptTable

    images = scan_image_folder(images_root)
    vm = vision_model or load_vision_model(model, pretrained, backend=backend, device=device)
    image = extract_image_features(vm, images.paths, batch_size=batch_size, normalize=normalize, layer=layer,
                                   pooling=pooling)
    txt = None
    if text and layer is None:
        # Text features are always L2-normalised, as in the reference (both retrieval and generation).
        txt = extract_text_features(vm, make_prompts(images.concepts, template=prompt_template), normalize=True)
    layer_desc = "final" if layer is None else f"{layer} ({pooling}, after final LayerNorm, unprojected)"
    split = split or Path(images_root).name
    return save_features(
        out, image, txt, normalized=normalize, model=vm.name, pretrained=vm.pretrained, layer=layer_desc,
        transform=vm.transform, split=split, prompt_template=prompt_template if txt is not None else "",
        backend=vm.backend, concepts=ConceptTable.from_image_set(images, split),
    )
