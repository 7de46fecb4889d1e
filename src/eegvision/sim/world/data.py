"""The images and captions the world's models are trained and measured on.

The world models are trained once, on one fixed draw of the world (``WORLD_SEED``), and shipped.
Their *held-out* concepts are the test concepts of the ``demo`` and ``things`` simulator presets at
that seed (200 + 200 concepts); they are trained on every other attribute combination (1904 of the
2304), so that the demo's test concepts are unseen by every world model, as THINGS test concepts are
unseen by CLIP training in the zero-shot protocol. (Worlds simulated with another seed or concept count
draw other test concepts, which the world models may have seen; the retrieval and reconstruction numbers
of such runs are then not zero-shot for the image model.)

Images are rendered with :func:`eegvision.sim.scene.render_image` at 64×64 and area-downsampled
to the models' resolution (:data:`IMAGE_SIZE`); :func:`to_model_input` does the same to any batch of
pictures (uint8 ``(n, H, W, 3)`` arrays or float tensors), so JPEGs written by the simulator and
generator samples go through the same path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from eegvision.progress import track
from eegvision.sim.scene import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    TEXTURES,
    Concept,
    ImageSpec,
    _draw_image,
    make_world,
    render_image,
)

#: Version of the world (attribute vocabulary, rendering and held-out split) the shipped models were trained on.
WORLD_VERSION = "1"
#: Seed of the world draw the models are trained on (the simulator's default seed).
WORLD_SEED = 0
#: Side of the square images the world models read and the generator writes.
IMAGE_SIZE = 32
#: The attributes the classifier predicts, with their values (label ``i`` is ``ATTRIBUTES[a][i]``).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES, "colour": tuple(COLOURS), "texture": TEXTURES, "background": tuple(BACKGROUNDS),
}


def held_out_concepts(seed: int = WORLD_SEED) -> list[Concept]:
    """Test concepts of the ``demo`` (250/200) and ``things`` (1654/200) presets at ``seed``; demo's first."""
    demo = make_world(250, 200, 1, 1, seed=seed).test_concepts
    things = make_world(1654, 200, 1, 1, seed=seed).test_concepts
    return demo + [c for c in things if c not in set(demo)]


def demo_test_concepts(seed: int = WORLD_SEED) -> list[Concept]:
    """The 200 test concepts of the ``demo`` preset (the concepts the shipped quality is measured on)."""
    return make_world(250, 200, 1, 1, seed=seed).test_concepts


def training_concepts(seed: int = WORLD_SEED) -> list[Concept]:
    """Every attribute combination not in :func:`held_out_concepts`, in a fixed order."""
    held = set(held_out_concepts(seed))
    return [Concept(s, c, t, b) for s in SHAPES for c in COLOURS for t in TEXTURES for b in BACKGROUNDS
            if Concept(s, c, t, b) not in held]


def attribute_labels(concepts: list[Concept]) -> dict[str, np.ndarray]:
    """Integer label of each attribute for each concept (index into :data:`ATTRIBUTES`)."""
    return {a: np.array([vals.index(getattr(c, a)) for c in concepts], dtype=np.int64)
            for a, vals in ATTRIBUTES.items()}


@dataclass
class WorldImages:
    """Rendered images at :data:`IMAGE_SIZE` with their specs, captions and concept ids."""

    images: np.ndarray            # (n, IMAGE_SIZE, IMAGE_SIZE, 3) uint8
    specs: list[ImageSpec]
    concepts: list[Concept]       # distinct concepts; specs[i].concept_index indexes this list

    @property
    def captions(self) -> list[str]:
        return [s.caption for s in self.specs]

    @property
    def concept_ids(self) -> np.ndarray:
        return np.array([s.concept_index for s in self.specs], dtype=np.int64)

    @property
    def labels(self) -> dict[str, np.ndarray]:
        return {a: v[self.concept_ids] for a, v in attribute_labels(self.concepts).items()}


def render_concepts(concepts: list[Concept], n_images: int, seed: int, description: str = "rendering world") -> WorldImages:
    """Draw ``n_images`` varied images of each concept (seeded) and render them at :data:`IMAGE_SIZE`."""
    if n_images < 1 or not concepts:
        raise ValueError(f"Need at least one concept and one image per concept; got {len(concepts)} concepts "
                         f"and n_images={n_images}.")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3011D]))
    specs = [_draw_image(rng, c, i) for i, c in enumerate(concepts) for _ in range(n_images)]
    out = np.empty((len(specs), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for start in track(range(0, len(specs), 256), description=description):
        block = np.stack([render_image(s, size=2 * IMAGE_SIZE, seed=seed) for s in specs[start:start + 256]])
        out[start:start + len(block)] = _area_down(block)
    return WorldImages(out, specs, list(concepts))


def _area_down(block: np.ndarray) -> np.ndarray:
    x = block.astype(np.float32).reshape(len(block), IMAGE_SIZE, 2, IMAGE_SIZE, 2, 3).mean(axis=(2, 4))
    return (x + 0.5).clip(0, 255).astype(np.uint8)


def to_model_input(images, device: str | torch.device = "cpu") -> torch.Tensor:
    """Any batch of pictures → float ``(n, 3, IMAGE_SIZE, IMAGE_SIZE)`` in ``[-1, 1]`` on ``device``.

    Accepts a uint8 array/tensor ``(n, H, W, 3)`` (values 0–255), a float tensor ``(n, 3, H, W)`` in
    ``[-1, 1]`` (the generator's output), a list of PIL images or a list of ``(H, W, 3)`` arrays.
    Other sizes are area-resampled to :data:`IMAGE_SIZE`.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("Got an empty list of images; pass at least one picture.")
        images = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images])
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"Expected a batch of images (n, H, W, 3) uint8 or (n, 3, H, W) float; got "
                         f"{type(images).__name__} of shape {getattr(images, 'shape', None)}.")
    if images.dtype == torch.uint8:
        if images.shape[-1] != 3:
            raise ValueError(f"uint8 images must be (n, H, W, 3) RGB; got shape {tuple(images.shape)}.")
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    else:
        if images.shape[1] != 3:
            raise ValueError(f"float images must be (n, 3, H, W) in [-1, 1]; got shape {tuple(images.shape)}.")
        x = images.float()
    x = x.to(device)
    if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="area" if x.shape[-1] > IMAGE_SIZE else "bilinear")
    return x
