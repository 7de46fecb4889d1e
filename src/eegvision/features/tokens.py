"""Token features: the patch tokens of several layers of a vision tower in one token file, for a multi-view target.

:func:`extract_tokens` (``eegvision features IMAGES OUT --pooling tokens --layers 20,24,28,32,36``) embeds a
THINGS-style image folder and writes one token file (:mod:`eegvision.features.files`): ``image`` of shape
``(n_images, n_layers * n_tokens, dim)``, the patch tokens (class/prefix tokens left out) of each layer after the
tower's final norm (as the pooled layers of :mod:`eegvision.features.backbones`), concatenated along the token
axis layer by layer in the order given, with ``layers`` (the 1-based block of each token) in the metadata. These
are the inputs of ``FitConfig.multi_view_target`` (:class:`eegvision.models.multi_view.MultiViewTarget`).

Size: the file holds ``n_images x n_layers x n_tokens x dim`` float32 values and is held in memory while it is
written and while a run trains on it. THINGS-EEG2's 16 540 training images x 5 layers x 1 024 tokens
(PE-Core-G14-448: 32 x 32 patches) x 1 536 values would take 520 GB, which no machine holds; ``token_grid=G``
(``--token-grid G``) average-pools each layer's patch grid to ``G x G`` tokens first (``adaptive_avg_pool2d``;
the grid must be square): ``G=4`` gives 16 tokens per layer and 8.1 GB, ``G=2`` 2.0 GB. The test split (200
images) is small at any grid.

Caching follows :mod:`eegvision.features.targets`: a file whose ``settings_sha256`` equals the request's is reused.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from eegvision.checks import check_int, check_list
from eegvision.features.backbones import Backbone, fingerprint_weights, resolve_layer
from eegvision.features.image_priors import ImagePrior
from eegvision.features.vision import ImageFiles
from eegvision.progress import track

__all__ = ["TokenFile", "extract_tokens", "pool_token_grid"]


@dataclass
class TokenFile:
    """The token file :func:`extract_tokens` wrote (or reused)."""

    path: Path
    layers: list[int]
    cached: bool
    settings_sha256: str


def pool_token_grid(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """``(N, h*h, C)`` patch tokens (row-major grid) average-pooled to ``(N, grid*grid, C)``; ``grid=0`` keeps them."""
    if not grid:
        return tokens
    n, length, dim = tokens.shape
    side = math.isqrt(length)
    if side * side != length:
        raise ValueError(f"{length} patch tokens do not form a square grid; extract without --token-grid.")
    if not 1 <= grid <= side:
        raise ValueError(f"token grid must be 1..{side} (the model's {side} x {side} patches); got {grid}.")
    x = tokens.transpose(1, 2).reshape(n, dim, side, side)
    return torch.nn.functional.adaptive_avg_pool2d(x, grid).flatten(2).transpose(1, 2)


def extract_tokens(
    images_root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    backend: str,
    weights: str | os.PathLike,
    model: str = "",
    layers: list[str | int],
    token_grid: int = 0,
    normalize: bool = False,
    batch_size: int = 32,
    device: str | None = None,
    split: str | None = None,
    force: bool = False,
    backbone: Backbone | None = None,
) -> TokenFile:
    """Embed an image folder into one token file (module docstring).

    Parameters
    ----------
    images_root : path
        THINGS-style folder; row ``i`` is image ``i`` in :func:`~eegvision.readers.images.scan_image_folder` order.
    out : path
        The ``.safetensors`` file, or a folder (created) where it is named ``{split}_{model}_tokens-...``.
    backend, weights, model, device, backbone
        As :func:`eegvision.features.targets.extract_targets` (open_clip, transformers or timm transformer towers).
    layers : list of str or int
        Blocks (1-based, negative from the end, or fractions ``"2/3"``); not ``final``.
    token_grid : int
        Average-pool each layer's patch grid to ``G x G`` tokens (0: every patch token).
    normalize : bool
        L2-normalise each token (the multi-view target layer-normalises them anyway).
    """
    from eegvision.features.files import save_features
    from eegvision.features.targets import _cached, _images_digest, _key, _slug, target_settings
    from eegvision.readers.images import scan_image_folder
    from eegvision.store.concepts import ConceptTable

    layers = check_list("layers", layers, "[20, 24, 28, 32, 36]")
    if not layers or any(str(v).strip().lower() == "final" for v in layers):
        raise ValueError(f"token features come from blocks of the tower (e.g. --layers 20,24,28); got {layers}.")
    check_int("token_grid", token_grid, minimum=0, hint="0 keeps every patch token.")
    images = scan_image_folder(images_root)
    split = split or Path(images_root).name
    wsha, isha = fingerprint_weights(weights), _images_digest(images.paths, Path(images_root))
    name = model or Path(weights).name
    pooling = f"tokens-grid{token_grid}" if token_grid else "tokens"
    settings = target_settings(backend=backend, model=name, weights_sha256=wsha, layer=",".join(map(str, layers)),
                               pooling=pooling, prior=ImagePrior(), view="", normalize=normalize, images_sha256=isha)
    key = _key(settings)
    out = Path(out)
    if out.suffix == ".safetensors":
        out.parent.mkdir(parents=True, exist_ok=True)
        path = out
        if out.exists() and not force and not _cached(out, key):
            raise FileExistsError(f"{out} exists and holds features of other settings; pass --force to overwrite it "
                                  "or choose another name")
    else:
        out.mkdir(parents=True, exist_ok=True)
        tag = re.sub(r"-+", "-", "-".join(_slug(str(v)) for v in layers))
        path = out / f"{_slug(split)}_{_slug(name)}_{pooling}-{tag}_{key[:10]}.safetensors"
    if not force and _cached(path, key):
        return TokenFile(path, [], True, key)
    if backbone is None:
        from eegvision.features.backbones import load_backbone

        backbone = load_backbone(backend, weights, model=model, device=device)
    blocks = [resolve_layer(v, backbone.depth) for v in layers]
    chunks = []
    loader = torch.utils.data.DataLoader(ImageFiles(images.paths, backbone.preprocess), batch_size=batch_size)
    for px in track(loader, description="token features", total=len(loader)):
        parts = [pool_token_grid(t, token_grid) for t in backbone.patch_tokens(px, blocks)]
        x = torch.cat(parts, dim=1)
        chunks.append(torch.nn.functional.normalize(x, dim=-1) if normalize else x)
    tokens = torch.cat(chunks)
    per_layer = tokens.shape[1] // len(blocks)
    token_layers = [b for b in blocks for _ in range(per_layer)]
    save_features(path, tokens, None, normalized=normalize, layers=token_layers, model=backbone.name,
                  pretrained=str(weights), layer=f"{','.join(map(str, blocks))} (patch tokens, after the final norm, "
                  "unprojected)", transform=backbone.transform, split=split, prompt_template="", backend=backend,
                  layer_spec=",".join(map(str, layers)), layer_depth=backbone.depth, pooling=pooling,
                  token_grid=token_grid, weights_sha256=wsha, prior="none", images_sha256=isha,
                  settings=json.dumps(settings, sort_keys=True), settings_sha256=key,
                  concepts=ConceptTable.from_image_set(images, split))
    return TokenFile(path, blocks, False, key)
