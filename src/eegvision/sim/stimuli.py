"""The stimulus side of a simulated dataset, shared by every simulator family: the output folder, the world's
images (rendered once), features, captions and latents, written in the THINGS-EEG2 layouts.

* ``OUT/training_images/NNNNN_concept/*.jpg``, ``OUT/test_images/NNNNN_concept/*.jpg`` (sorted order =
  condition order);
* ``OUT/sim_features_{train,test}.pt`` — ATM-style feature caches (image and concept-text features);
* ``OUT/captions_{training,test}.tsv`` — one row per image;
* ``OUT/simulation_latents.npz`` — the latent factors of every image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eegvision.progress import track
from eegvision.sim.scene import World
from eegvision.sim.writers import write_features, write_images, write_tsv

__all__ = ["image_names", "prepare_output", "render_images", "write_stimuli"]


def prepare_output(out: str | Path, overwrite: bool) -> Path:
    """Create the output folder; refuse a file, or a non-empty folder unless ``overwrite``."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"Output {root} exists and is not a folder; choose another path.")
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(f"Output folder {root} is not empty; choose a new folder or pass --overwrite.")
    root.mkdir(parents=True, exist_ok=True)
    return root


def render_images(world: World, size: int) -> dict[str, np.ndarray]:
    """``{split: (n, size, size, 3) uint8}``: every image of the world rendered once."""
    return {s: np.stack([world.render(spec, size)
                         for spec in track(world.images(s), description=f"rendering {s} images")])
            for s in ("training", "test")}


def image_names(world: World, split: str) -> tuple[list[str], list[list[str]], list[str]]:
    """Folder names, file names per folder, and each image's path relative to OUT (condition order)."""
    n_img = world.n_train_images if split == "training" else world.n_test_images
    folders = [f"{i + 1:05d}_{c.name}" for i, c in enumerate(world.concepts(split))]
    files = [[f"{c.name}_{j + 1:02d}s.jpg" for j in range(n_img)] for c in world.concepts(split)]
    rel = [f"{split}_images/{f}/{name}" for f, names in zip(folders, files) for name in names]
    return folders, files, rel


def write_stimuli(root: Path, world: World, feats: dict[str, np.ndarray], texts: dict[str, np.ndarray],
                  latents: dict[str, np.ndarray], rendered: dict[str, np.ndarray] | None,
                  paths: dict[str, list[str]]) -> None:
    """Write the feature caches, image folders (when ``rendered`` is given), caption tables and latents,
    appending the written paths to ``paths["features"]``, ``paths["images"]`` and ``paths["tables"]``."""
    for split, tag in (("training", "train"), ("test", "test")):
        paths["features"].append(str(write_features(root / f"sim_features_{tag}.pt", feats[split], texts[split])))
        folders, files, rel = image_names(world, split)
        if rendered is not None:
            write_images(root / f"{split}_images", folders, files, rendered[split].__getitem__,
                         description=f"{split} images")
            paths["images"].append(str(root / f"{split}_images"))
        rows = [(i, s.concept_index, s.concept.name, rel[i], s.caption, s.concept.caption)
                for i, s in enumerate(world.images(split))]
        paths["tables"].append(str(write_tsv(
            root / f"captions_{split}.tsv",
            ["condition", "concept_index", "concept", "image", "caption", "concept_caption"], rows)))
    np.savez(root / "simulation_latents.npz", training=latents["training"], test=latents["test"])
