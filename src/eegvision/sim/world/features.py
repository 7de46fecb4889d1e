"""World-CLIP features of a simulated dataset: the embedding space the demo's EEG is aligned to.

``simulate(..., feature_model="world-clip")`` calls :func:`world_clip_features`; for a folder simulated
with the random stand-in map, :func:`rewrite_simulation_features` replaces its
``sim_features_{train,test}.pt`` with world-CLIP features of the same images (re-rendered from the
world recorded in ``simulation.json``, exactly the pixels of the written JPEGs before compression).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eegvision.progress import track


def world_clip_features(world, image_size: int = 64, models=None,
                        rendered: dict[str, np.ndarray] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (image_features (n_images, d), text_features (n_concepts, d))}``, L2-normalised float32.

    Image features embed each rendered image of the split; text features embed each concept's caption
    (``"a red striped circle on a white background"``). ``models`` defaults to the shipped world models;
    ``rendered`` (``{split: uint8 (n_images, H, W, 3)}``) gives images already rendered at ``image_size``.
    """
    from eegvision.sim.world.assets import shipped_world_models

    models = models or shipped_world_models()
    out = {}
    for split in ("training", "test"):
        specs = world.images(split)
        feats = []
        for start in track(range(0, len(specs), 512), description=f"world-CLIP features ({split})"):
            block = (rendered[split][start:start + 512] if rendered else
                     np.stack([world.render(s, image_size) for s in specs[start:start + 512]]))
            feats.append(models.embed_images(block).numpy())
        text = models.embed_texts([c.caption for c in world.concepts(split)]).numpy()
        out[split] = (np.concatenate(feats).astype(np.float32), text.astype(np.float32))
    return out


def rewrite_simulation_features(root: str | Path, models=None) -> list[Path]:
    """Replace ``OUT/sim_features_{train,test}.pt`` of a simulated folder with world-CLIP features.

    The world is rebuilt from ``simulation.json`` (preset counts and seed); ``simulation.json`` gets a
    ``"feature_map": {"kind": "world-clip", ...}`` entry. Returns the two rewritten paths.
    """
    from eegvision.sim.scene import make_world
    from eegvision.sim.world.assets import shipped_world_models
    from eegvision.sim.writers import write_features
    from eegvision.utils import write_text_atomic

    root = Path(root)
    meta_path = root / "simulation.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"No simulation.json in {root}; pass a folder written by `eegvision simulate`.")
    meta = json.loads(meta_path.read_text())
    pr = meta["preset"]
    world = make_world(pr["n_train_concepts"], pr["n_test_concepts"], pr["n_train_images"], 1, seed=meta["seed"])
    models = models or shipped_world_models()
    feats = world_clip_features(world, pr.get("image_size", 64), models)
    paths = [write_features(root / f"sim_features_{tag}.pt", *feats[split])
             for split, tag in (("training", "train"), ("test", "test"))]
    meta["feature_map"] = world_clip_feature_info(models)
    write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
    return paths


def world_clip_feature_info(models) -> dict:
    """The ``feature_map`` entry of ``simulation.json`` for world-CLIP features."""
    m = models.manifest
    return {"kind": "world-clip", "dim": models.clip.dim, "normalized": True, "world_version": m["world_version"],
            "clip_sha256": m["files"]["clip.safetensors"]["sha256"], "path": str(models.path)}
