"""Loading the world models: the shipped weights in ``eegvision/resources/world/`` or a folder of your own.

``world.json`` records the world version, seeds, training steps and the sha256 of every weights and
config file; :func:`load_world_models` checks all of them before loading anything, so a truncated or
edited file is an error, not a silently different model.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eegvision.sim.world.classifier import WorldClassifier
from eegvision.sim.world.classifier import attribute_match as _attribute_match
from eegvision.sim.world.clip_model import WorldCLIP
from eegvision.sim.world.data import WORLD_VERSION
from eegvision.sim.world.generator import WorldGenerator

#: Where the shipped world models live (package data).
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "resources" / "world"


@dataclass
class WorldModels:
    """The three trained models of the world and their ``world.json`` manifest."""

    clip: WorldCLIP
    classifier: WorldClassifier
    generator: WorldGenerator
    manifest: dict
    path: Path

    def embed_images(self, images, normalize: bool = True) -> torch.Tensor:
        """``(n, d)`` world-CLIP image embeddings (L2-normalised by default)."""
        return self.clip.embed_images(images, normalize=normalize)

    def embed_texts(self, captions: list[str], normalize: bool = True) -> torch.Tensor:
        """``(n, d)`` world-CLIP text embeddings (L2-normalised by default)."""
        return self.clip.embed_texts(captions, normalize=normalize)

    def classify(self, images) -> dict[str, np.ndarray]:
        """``{attribute: (n,) label index}`` read by the attribute classifier."""
        return self.classifier.classify(images)

    def attribute_match(self, recon_images, concept_attributes) -> dict[str, float]:
        """Per-attribute accuracy of reconstructions against their concepts (see :func:`attribute_match`)."""
        return _attribute_match(self.classifier, recon_images, concept_attributes)

    def generate(self, embeddings, steps: int = 20, guidance_scale: float = 2.0, seed: int = 0) -> torch.Tensor:
        """``(n, 3, 32, 32)`` images in ``[-1, 1]`` from world-CLIP image embeddings."""
        return self.generator.generate(embeddings, steps=steps, guidance_scale=guidance_scale, seed=seed)


def verify_world_dir(path: str | Path) -> dict:
    """Read ``world.json`` in ``path`` and check the world version and every listed file's sha256."""
    from eegvision.utils import sha256_file

    path = Path(path)
    manifest_path = path / "world.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"No world.json in {path}; pass a folder written by `eegvision world-train` "
                                f"(or omit the path to use the shipped models in {SHIPPED_DIR}).")
    manifest = json.loads(manifest_path.read_text())
    if str(manifest.get("world_version")) != WORLD_VERSION:
        raise ValueError(f"{manifest_path} is for world version {manifest.get('world_version')!r}, this eegvision "
                         f"renders world version {WORLD_VERSION!r}; retrain with `eegvision world-train`.")
    for name, info in manifest.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise FileNotFoundError(f"{f} is listed in {manifest_path} but missing; reinstall eegvision or "
                                    f"retrain with `eegvision world-train`.")
        digest = sha256_file(f)
        if digest != info["sha256"]:
            raise ValueError(f"{f} has sha256 {digest[:12]}…, {manifest_path} expects {info['sha256'][:12]}…; "
                             f"the file is corrupt or was changed. Reinstall or retrain.")
    return manifest


def load_world_models(path: str | Path | None = None, device: str | None = None) -> WorldModels:
    """Load (and verify) the world CLIP, attribute classifier and generator.

    Parameters
    ----------
    path
        Folder with ``world.json`` and the model files; ``None``: the shipped models.
    device
        Torch device (default: CUDA when available).
    """
    path = Path(path) if path is not None else SHIPPED_DIR
    manifest = verify_world_dir(path)
    return WorldModels(WorldCLIP.load(path, device), WorldClassifier.load(path, device),
                       WorldGenerator.load(path, device), manifest, path)


@functools.lru_cache(maxsize=1)
def shipped_world_models() -> WorldModels:
    """The shipped models, loaded once per process (used by the module-level helpers)."""
    return load_world_models()


def embed_images(images, normalize: bool = True) -> torch.Tensor:
    """World-CLIP image embeddings with the shipped model (see :meth:`WorldModels.embed_images`)."""
    return shipped_world_models().embed_images(images, normalize)


def embed_texts(captions: list[str], normalize: bool = True) -> torch.Tensor:
    """World-CLIP text embeddings with the shipped model (see :meth:`WorldModels.embed_texts`)."""
    return shipped_world_models().embed_texts(captions, normalize)


def classify(images) -> dict[str, np.ndarray]:
    """Attribute labels read by the shipped classifier (see :meth:`WorldModels.classify`)."""
    return shipped_world_models().classify(images)


def attribute_match(recon_images, concept_attributes) -> dict[str, float]:
    """Per-attribute accuracy of reconstructions, read by the shipped classifier."""
    return shipped_world_models().attribute_match(recon_images, concept_attributes)
