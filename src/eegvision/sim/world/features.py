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


#: The target feature files :func:`write_target_files` writes, besides the world CLIP's block outputs.
TARGET_FILES = ("clip-embeddings", "clip-block1", "clip-block2", "clip-final", "pixels", "vae")


def _vae_rows(models, images) -> np.ndarray:
    """``(n, 256)`` L2-normalised world-VAE latents (scaled posterior means) of uint8 pictures."""
    import torch

    from eegvision.sim.world.data import to_model_input
    from eegvision.sim.world.vae import load_world_vae

    vae = load_world_vae(models.path, device="cpu")
    with torch.no_grad():
        mu = torch.cat([vae.encode(to_model_input(images[s:s + 256])).latent_dist.mean
                        for s in range(0, len(images), 256)]) * vae.config.scaling_factor
    rows = mu.flatten(1).double().numpy()
    return (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def write_target_files(root: str | Path, out_dir: str | Path, models=None) -> dict[str, dict[str, Path]]:
    """Feature files of a simulated folder's images for multi-target training (issue #17), computed from the
    images themselves: ``{name: {"train": path, "test": path}}`` with ``OUT_DIR/{name}.{train,test}.safetensors``
    for every output of the world CLIP's image tower (:meth:`~eegvision.sim.world.clip_model.WorldCLIP.
    embed_image_layers`: ``clip-embeddings``, ``clip-block1`` ..., ``clip-final``), ``pixels``
    (:func:`eegvision.features.pixels.pixel_features`) and ``vae`` (the world VAE's scaled posterior-mean latent of
    each image, 4 x 8 x 8 flattened, rows L2-normalised: the simulator's stand-in for an SDXL-VAE target). The world is rebuilt from ``simulation.json`` and
    its images rendered as the simulation rendered them (the pixels of the written JPEGs before compression).
    Existing files are kept (same folder, same files)."""
    from eegvision.features.files import save_features
    from eegvision.features.pixels import pixel_features
    from eegvision.sim.scene import make_world
    from eegvision.sim.stimuli import render_images
    from eegvision.sim.world.assets import shipped_world_models

    root, out_dir = Path(root), Path(out_dir)
    meta = json.loads((root / "simulation.json").read_text())
    pr = meta["preset"]
    names = None
    paths: dict[str, dict[str, Path]] = {}
    done = out_dir / "targets.json"
    if done.is_file():
        return {k: {s: out_dir / p for s, p in v.items()} for k, v in json.loads(done.read_text()).items()}
    world = make_world(pr["n_train_concepts"], pr["n_test_concepts"], pr["n_train_images"], 1, seed=meta["seed"])
    rendered = render_images(world, pr.get("image_size", 64))
    models = models or shipped_world_models()
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, tag in (("training", "train"), ("test", "test")):
        layers = {f"clip-{k}": v.numpy() for k, v in models.clip.embed_image_layers(rendered[split]).items()}
        layers["pixels"] = pixel_features(rendered[split])
        layers["vae"] = _vae_rows(models, rendered[split])
        names = names or list(layers)
        for name, table in layers.items():
            path = out_dir / f"{name}.{tag}.safetensors"
            model = {"pixels": "pixels", "vae": "world-vae"}.get(name, "world-clip")
            save_features(path, table, normalized=True, model=model,
                          layer=name, split=split, transform="eegvision.sim.world.features.write_target_files")
            paths.setdefault(name, {})[tag] = path
    from eegvision.utils import write_text_atomic

    write_text_atomic(done, json.dumps({k: {s: p.name for s, p in v.items()} for k, v in paths.items()}) + "\n")
    return paths
