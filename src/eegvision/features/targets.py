"""Feature targets: several layers (and image-prior views) of one backbone, one standard feature file each, cached.

:func:`extract_targets` embeds a THINGS-style image folder once per prior view and writes every
(layer, view) pair as its own feature file (:mod:`eegvision.features.files` format, so training and evaluation
read any one of them unchanged). Each file records, besides the standard keys, ``backend``, ``embedding`` (what
``final`` is for that model), ``layer_spec``,
``layer_index`` / ``layer_depth`` (the resolved block; ``final`` has none), ``pooling``, ``weights_sha256`` (file
sha256, or ``dir:`` + a hash over the folder's files), ``prior`` and ``prior_params`` (JSON), ``images_sha256``
(over the images' relative paths and sizes), ``settings`` (JSON of everything that determines the numbers) and
``settings_sha256``.

Caching: the settings are known before the model is loaded; a file whose ``settings_sha256`` equals them is
reused without computing anything. In a folder, file names end in the first 10 hex digits of that hash, so
different settings never share a name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from eegvision.checks import check_choice, check_list
from eegvision.features.backbones import (
    BACKBONE_BACKENDS,
    Backbone,
    LayerChoice,
    fingerprint_weights,
)
from eegvision.features.image_priors import ImagePrior
from eegvision.progress import track

TARGET_BACKENDS = (*BACKBONE_BACKENDS, "vae")
SETTINGS_VERSION = 1

__all__ = ["TARGET_BACKENDS", "TargetFile", "TargetsResult", "extract_targets", "target_settings"]


@dataclass
class TargetFile:
    """One written (or reused) feature file."""

    path: Path
    layer: str
    view: str
    cached: bool
    settings_sha256: str
    pooling: str = ""


@dataclass
class TargetsResult:
    """What :func:`extract_targets` wrote: one file per (layer, view), in the order layers x views."""

    files: list[TargetFile] = field(default_factory=list)

    @property
    def n_computed(self) -> int:
        return sum(not f.cached for f in self.files)


def _images_digest(paths, root: Path) -> str:
    rows = [(os.path.relpath(p, root), Path(p).stat().st_size) for p in paths]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def target_settings(*, backend: str, model: str, weights_sha256: str, layer: str,
                    pooling: str | None, prior: ImagePrior, view: str, normalize: bool, images_sha256: str,
                    vae: dict | None = None) -> dict:
    """Everything that determines a file's numbers (its cache key is the sha256 of this JSON).

    The weights enter by content (``weights_sha256``), not by path: moved weights still hit the cache."""
    return {"version": SETTINGS_VERSION, "backend": backend, "model": model, "weights_sha256": weights_sha256,
            "layer": str(layer), "pooling": pooling or "default", "prior": prior.name,
            "prior_params": prior.params(view), "normalize": bool(normalize), "images_sha256": images_sha256,
            "vae": vae or {}}


def _key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text.replace("/", "of")).strip("-") or "x"


def _cached(path: Path, key: str) -> bool:
    if not path.is_file():
        return False
    from eegvision.tensorfiles import open_safetensors

    try:
        with open_safetensors(path, "Feature file", "") as f:
            return (f.metadata() or {}).get("settings_sha256") == key
    except Exception:  # a damaged or foreign file is recomputed
        return False


class _ViewImages(torch.utils.data.Dataset):
    """Pixels (n_images, 3, H, W) of one prior view of image ``i`` (several for CPA, averaged later)."""

    def __init__(self, paths, preprocess, prior: ImagePrior, view: str):
        self.paths, self.preprocess, self.prior, self.view = list(paths), preprocess, prior, view

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB")
            repeats = self.prior.cpa_repeats if self.prior.name == "cpa" else 1
            views = [v for r in range(repeats) for v in self.prior.apply(im, self.view, index=i, repeat=r)]
        return torch.stack([self.preprocess(v) for v in views])


@torch.no_grad()
def embed_view(backbone: Backbone, paths, layers: list[LayerChoice], prior: ImagePrior, view: str,
               batch_size: int = 32, num_workers: int | None = None) -> list[torch.Tensor]:
    """Features (n_images, dim) per layer of one prior view; CPA's degraded views are averaged (raw features).

    Runs in float32 (no autocast), so a file's numbers do not depend on the device's half-precision path.
    ``num_workers`` image-decoding processes: default 4 on CUDA, 0 on CPU.
    """
    if num_workers is None:
        num_workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if str(backbone.device).startswith("cuda") else 0
    loader = torch.utils.data.DataLoader(_ViewImages(paths, backbone.preprocess, prior, view),
                                         batch_size=batch_size, shuffle=False, num_workers=num_workers)
    chunks: list[list[torch.Tensor]] = [[] for _ in layers]
    for px in track(loader, description=f"features {view or 'images'}", total=len(loader)):
        b, n = px.shape[:2]
        feats = backbone.encode(px.flatten(0, 1), layers)
        for j, f in enumerate(feats):
            chunks[j].append(f.view(b, n, -1).mean(dim=1))
    return [torch.cat(c) for c in chunks]


def extract_targets(
    images_root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    backend: str,
    weights: str | os.PathLike,
    model: str = "",
    layers: list[str | int] | None = None,
    pooling: list[str] | None = None,
    prior: ImagePrior | None = None,
    normalize: bool = True,
    batch_size: int = 32,
    device: str | None = None,
    split: str | None = None,
    force: bool = False,
    vae_size: int = 256,
    vae_pool: int = 0,
    vae_scale: bool = False,
    backbone: Backbone | None = None,
) -> TargetsResult:
    """Embed an image folder with any layers of a local backbone (and image priors) into feature files.

    Parameters
    ----------
    images_root : path
        THINGS-style folder (concept sub-folders); row ``i`` of every file is image ``i`` in its order.
    out : path
        A ``.safetensors`` file when exactly one file results (one layer, one view), else a folder (created)
        where files are named ``{split}_{model}_{layer}-{pooling}[_{view}]_{key}.safetensors``.
    backend : {"open_clip", "transformers", "timm", "vae"}
    weights : path
        Local weights (see :func:`~eegvision.features.backbones.load_backbone`, :mod:`~eegvision.features.vae`).
    model : str
        open_clip / timm architecture (a label for transformers and vae).
    layers : list of str or int
        ``"final"``, block numbers (1-based, negative from the end) or fractions ``"2/3"``; default ``["final"]``.
    pooling : list of str
        One pooling for all layers or one per layer (see :mod:`~eegvision.features.backbones`); default per model.
    prior : ImagePrior
        ``blur`` (UBP; one file per blur level) or ``cpa`` (NeuroBridge; one file, the mean of four degraded views).
    normalize : bool
        L2-normalise rows (retrieval) or keep raw features (regression / generation).
    force : bool
        Recompute even when a file with the same settings exists; a single ``.safetensors`` ``out`` holding other
        settings is replaced only with ``force``.
    backbone : Backbone, optional
        An already loaded backbone (its ``weights`` must be the path given).
    """
    from eegvision.features.files import save_features
    from eegvision.readers.images import scan_image_folder
    from eegvision.store.concepts import ConceptTable

    check_choice("backend", backend, TARGET_BACKENDS)
    layers = check_list("layers", layers, "['final', -1, '2/3']") if layers is not None else ["final"]
    pooling = check_list("pooling", pooling, "['cls']") if pooling is not None else None
    if pooling is not None and len(pooling) not in (1, len(layers)):
        raise ValueError(f"give one pooling for all layers or one per layer: {len(layers)} layers ({layers}) but "
                         f"{len(pooling)} poolings ({pooling})")
    prior = prior or ImagePrior()
    images = scan_image_folder(images_root)
    split = split or Path(images_root).name
    wsha = fingerprint_weights(weights)
    isha = _images_digest(images.paths, Path(images_root))
    vae = {"size": vae_size, "pool": vae_pool, "scale": vae_scale} if backend == "vae" else None
    name = model or Path(weights).name
    plan = []  # (layer spec, pooling spec, view, settings, key)
    for j, spec in enumerate(layers):
        pool = None if pooling is None else pooling[0 if len(pooling) == 1 else j]
        for view in prior.views():
            s = target_settings(backend=backend, model=name, weights_sha256=wsha, layer=spec,
                                pooling=pool, prior=prior, view=view, normalize=normalize, images_sha256=isha,
                                vae=vae)
            plan.append((spec, pool, view, s, _key(s)))
    out = Path(out)
    if out.suffix == ".safetensors":
        if len(plan) != 1:
            raise ValueError(f"{len(plan)} feature files result ({len(layers)} layers x {len(prior.views())} prior "
                             f"views) but OUT {out} names one file; give a folder instead.")
        paths = [out]
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists() and not force and not _cached(out, plan[0][4]):
            raise FileExistsError(f"{out} exists and holds features of other settings; pass --force to overwrite it "
                                  "or choose another name")
    else:
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"{_slug(split)}_{_slug(name)}_{_slug(str(spec))}-{_slug(pool or 'default')}"
                       f"{'_' + view if view else ''}_{key[:10]}.safetensors" for spec, pool, view, _, key in plan]
    result = TargetsResult()
    todo = [i for i, (p, row) in enumerate(zip(paths, plan)) if force or not _cached(p, row[4])]
    if todo:
        if backbone is None:
            if backend == "vae":
                from eegvision.features.vae import load_vae_backbone

                backbone = load_vae_backbone(weights, size=vae_size, pool=vae_pool, scale=vae_scale, device=device,
                                             model=model)
            else:
                from eegvision.features.backbones import load_backbone

                backbone = load_backbone(backend, weights, model=model, device=device)
        choices = {i: backbone.layers([plan[i][0]], [plan[i][1]] if plan[i][1] else None)[0] for i in todo}
        for view in dict.fromkeys(plan[i][2] for i in todo):
            idx = [i for i in todo if plan[i][2] == view]
            uniq = list(dict.fromkeys(choices[i] for i in idx))
            feats = dict(zip(uniq, embed_view(backbone, images.paths, uniq, prior, view, batch_size=batch_size)))
            for i in idx:
                c, (spec, _, _, settings, key) = choices[i], plan[i]
                x = feats[c]
                x = torch.nn.functional.normalize(x, dim=-1) if normalize else x
                layer_desc = "final" if c.index is None else (
                    f"{c.index}/{c.depth} ({c.pooling}, after the final norm, unprojected)")
                save_features(
                    paths[i], x, None, normalized=normalize, model=backbone.name, pretrained=str(weights),
                    layer=layer_desc, transform=backbone.transform, split=split, prompt_template="",
                    backend=backend, embedding=backbone.final_embedding if c.index is None else "", layer_spec=spec, layer_index="" if c.index is None else c.index,
                    layer_depth=c.depth, pooling=c.pooling, weights_sha256=wsha, prior=prior.name,
                    prior_params=json.dumps(prior.params(view), sort_keys=True), images_sha256=isha,
                    settings=json.dumps(settings, sort_keys=True), settings_sha256=key,
                    concepts=ConceptTable.from_image_set(images, split))
    for i, (spec, pool, view, _, key) in enumerate(plan):
        result.files.append(TargetFile(paths[i], str(spec), view, i not in todo, key,
                                       pooling=pool or "default"))
    return result
