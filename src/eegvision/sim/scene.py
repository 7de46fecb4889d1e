"""A procedural visual world: concepts made of attributes, images with natural variation, captions.

The world is the part of the simulator that knows nothing about brains. A *concept* is a
combination of four categorical attributes (shape, colour, texture, background), so that there
are ``8 * 8 * 6 * 6 = 2304`` possible concepts, enough for THINGS-sized splits (1654 + 200).
Training and test concepts are disjoint (zero-shot, as in THINGS) but share attribute values,
so a decoder can generalise compositionally. Each *image* of a concept adds continuous
variation: size, position, rotation, a small hue and brightness shift and the phase of its
texture. Images are rendered from these attributes with numpy (anti-aliased, 2x supersampled)
and captioned from them ("a small red striped circle on the left, on a white background").

Each image also has a *latent factor vector* ``z`` (:meth:`World.latents`): a fixed, documented
numeric code of its attributes (shape and texture embeddings, the actual hue/lightness of its
colour and background, size, position, rotation). The neural forward model
(:mod:`eegvision.sim.forward`) and the stand-in image embedding
(:mod:`eegvision.sim.embedding`) are both functions of ``z``; a trained image model
can later replace the embedding by reading the rendered pixels instead.

Everything is a deterministic function of the world's ``seed``.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon")
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12), "orange": (0.95, 0.55, 0.10), "yellow": (0.95, 0.88, 0.15),
    "green": (0.15, 0.70, 0.20), "cyan": (0.10, 0.80, 0.85), "blue": (0.15, 0.30, 0.90),
    "purple": (0.55, 0.20, 0.75), "pink": (0.95, 0.45, 0.70),
}
TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted", "checkered", "gradient", "wavy")
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "black": (0.06, 0.06, 0.07), "white": (0.93, 0.93, 0.92), "grey": (0.50, 0.50, 0.52),
    "sky": (0.62, 0.80, 0.95), "sand": (0.88, 0.78, 0.58), "forest": (0.12, 0.32, 0.16),
}
SIZES: tuple[str, ...] = ("small", "medium", "large")
_SIZE_RADIUS = {"small": 0.20, "medium": 0.28, "large": 0.36}  # radius as a fraction of the image width
_POSITIONS = {"in the centre": (0.0, 0.0), "on the left": (-0.22, 0.0), "on the right": (0.22, 0.0),
              "at the top": (0.0, 0.22), "at the bottom": (0.0, -0.22)}

#: Number of entries in an image's latent factor vector (see :meth:`World.latents`).
LATENT_DIM = 18


@dataclass(frozen=True)
class Concept:
    """A combination of categorical attributes; ``name`` is folder-safe (``red_striped_circle_on_sky``)."""

    shape: str
    colour: str
    texture: str
    background: str

    @property
    def name(self) -> str:
        tex = "" if self.texture == "plain" else f"{self.texture}_"
        return f"{self.colour}_{tex}{self.shape}_on_{self.background}"

    @property
    def caption(self) -> str:
        tex = "" if self.texture == "plain" else f"{self.texture} "
        return f"a {self.colour} {tex}{self.shape} on a {self.background} background"


@dataclass(frozen=True)
class ImageSpec:
    """One image: its concept plus the continuous variation that makes it a distinct picture."""

    concept: Concept
    concept_index: int
    size: str
    radius: float          # fraction of the image width
    position: str
    x: float               # centre, in [-0.5, 0.5] of the width (right positive)
    y: float               # centre, in [-0.5, 0.5] of the height (up positive)
    rotation: float        # radians
    hue_shift: float       # in turns (fraction of the colour wheel)
    brightness: float      # multiplicative
    texture_phase: float   # radians
    texture_freq: float    # cycles per object radius

    @property
    def caption(self) -> str:
        c = self.concept
        tex = "" if c.texture == "plain" else f"{c.texture} "
        return f"a {self.size} {c.colour} {tex}{c.shape} {self.position}, on a {c.background} background"


@dataclass
class World:
    """Concepts split into training and test, images per concept, latents, rendering, captions.

    Build it with :func:`make_world`. Condition order follows the THINGS convention: training
    condition ``c`` is image ``c % n_train_images`` of training concept ``c // n_train_images``.
    """

    seed: int
    train_concepts: list[Concept]
    test_concepts: list[Concept]
    train_images: list[ImageSpec]
    test_images: list[ImageSpec]
    n_train_images: int
    n_test_images: int
    _codes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def concepts(self, split: str) -> list[Concept]:
        return self.train_concepts if _split(split) == "training" else self.test_concepts

    def images(self, split: str) -> list[ImageSpec]:
        return self.train_images if _split(split) == "training" else self.test_images

    def latents(self, split: str) -> np.ndarray:
        """``(n_images, LATENT_DIM)`` float64 latent factors of the split's images, in condition order.

        Layout: shape embedding (4), colour hue cos/sin and lightness (3), texture embedding (3),
        background RGB centred (3), size (1), position x, y (2), rotation cos/sin of 4θ (2).
        Every block is scaled to roughly unit variance over the vocabulary.
        """
        return np.stack([self._latent(s) for s in self.images(split)])

    def concept_latents(self, split: str) -> np.ndarray:
        """``(n_concepts, LATENT_DIM)``: each concept's latent with neutral image-level variation."""
        out = []
        for i, c in enumerate(self.concepts(split)):
            spec = ImageSpec(c, i, "medium", _SIZE_RADIUS["medium"], "in the centre", 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 3.0)
            out.append(self._latent(spec))
        return np.stack(out)

    def _latent(self, s: ImageSpec) -> np.ndarray:
        c = s.concept
        r, g, b = _jittered_rgb(COLOURS[c.colour], s.hue_shift, s.brightness)
        h, lightness, _ = colorsys.rgb_to_hls(r, g, b)
        bg = np.asarray(BACKGROUNDS[c.background]) - 0.5
        z = np.concatenate([
            self._codes["shape"][c.shape],
            [np.cos(2 * np.pi * h), np.sin(2 * np.pi * h), 3.0 * (lightness - 0.5)],
            self._codes["texture"][c.texture],
            2.0 * bg,
            [(s.radius - 0.28) / 0.07],
            [s.x / 0.16, s.y / 0.16],
            [np.cos(4 * s.rotation), np.sin(4 * s.rotation)],
        ])
        return z.astype(np.float64)

    def render(self, spec: ImageSpec, size: int = 64) -> np.ndarray:
        """``(size, size, 3)`` uint8 RGB picture of ``spec`` (see :func:`render_image`)."""
        return render_image(spec, size=size, seed=self.seed)

    def captions(self, split: str) -> list[str]:
        return [s.caption for s in self.images(split)]


def _split(split: str) -> str:
    key = {"train": "training", "training": "training", "test": "test"}.get(split)
    if key is None:
        raise ValueError(f"Unknown split {split!r}; use 'training' (or 'train') or 'test'.")
    return key


def make_world(
    n_train_concepts: int = 1654,
    n_test_concepts: int = 200,
    n_train_images: int = 10,
    n_test_images: int = 1,
    seed: int = 0,
) -> World:
    """Draw a world: a disjoint training/test split of concepts and the images of each concept.

    Parameters
    ----------
    n_train_concepts, n_test_concepts
        Number of concepts per split; together at most 2304 (all attribute combinations).
    n_train_images, n_test_images
        Images per concept in each split (THINGS: 10 and 1).
    seed
        Everything (split, image variation, attribute codes) is a function of this integer.
    """
    n_all = len(SHAPES) * len(COLOURS) * len(TEXTURES) * len(BACKGROUNDS)
    if min(n_train_concepts, n_test_concepts, n_train_images, n_test_images) < 1:
        raise ValueError(
            f"Concept and image counts must be >= 1; got train={n_train_concepts}x{n_train_images}, "
            f"test={n_test_concepts}x{n_test_images}."
        )
    if n_train_concepts + n_test_concepts > n_all:
        raise ValueError(
            f"The world has {n_all} concepts; {n_train_concepts} training + {n_test_concepts} test were "
            f"requested. Ask for fewer concepts."
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x57_0A1D]))
    combos = [Concept(s, c, t, b) for s in SHAPES for c in COLOURS for t in TEXTURES for b in BACKGROUNDS]
    order = rng.permutation(n_all)
    # Sorted by name within each split, so that sorted folder order == condition order.
    train = sorted((combos[i] for i in order[:n_train_concepts]), key=lambda c: c.name)
    test = sorted((combos[i] for i in order[n_train_concepts:n_train_concepts + n_test_concepts]),
                  key=lambda c: c.name)
    codes = {
        "shape": {s: v for s, v in zip(SHAPES, _unit_codes(rng, len(SHAPES), 4))},
        "texture": {t: v for t, v in zip(TEXTURES, _unit_codes(rng, len(TEXTURES), 3))},
    }
    train_imgs = [_draw_image(rng, c, i) for i, c in enumerate(train) for _ in range(n_train_images)]
    test_imgs = [_draw_image(rng, c, i) for i, c in enumerate(test) for _ in range(n_test_images)]
    return World(seed, train, test, train_imgs, test_imgs, n_train_images, n_test_images, codes)


def _unit_codes(rng: np.random.Generator, n: int, dim: int) -> list[np.ndarray]:
    v = rng.standard_normal((n, dim))
    v -= v.mean(0)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return list(v * np.sqrt(dim))


def _draw_image(rng: np.random.Generator, concept: Concept, index: int) -> ImageSpec:
    size = SIZES[rng.integers(len(SIZES))]
    position = list(_POSITIONS)[rng.integers(len(_POSITIONS))]
    px, py = _POSITIONS[position]
    return ImageSpec(
        concept=concept, concept_index=index, size=size,
        radius=float(_SIZE_RADIUS[size] * np.exp(rng.normal(0, 0.06))),
        position=position, x=float(px + rng.normal(0, 0.03)), y=float(py + rng.normal(0, 0.03)),
        rotation=float(rng.uniform(0, 2 * np.pi)), hue_shift=float(rng.normal(0, 0.015)),
        brightness=float(np.exp(rng.normal(0, 0.08))), texture_phase=float(rng.uniform(0, 2 * np.pi)),
        texture_freq=float(rng.uniform(2.0, 3.5)),
    )


def _jittered_rgb(rgb: tuple[float, float, float], hue_shift: float, brightness: float) -> tuple[float, float, float]:
    h, l, s = colorsys.rgb_to_hls(*rgb)
    r, g, b = colorsys.hls_to_rgb((h + hue_shift) % 1.0, min(max(l * brightness, 0.05), 0.95), s)
    return r, g, b


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a unit-radius shape in object coordinates (u right, v up)."""
    rho = np.hypot(u, v)
    if shape == "circle":
        return rho <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "triangle":
        s3 = np.sqrt(3.0)
        return (v >= -0.55) & (s3 * u + v <= 1.0) & (-s3 * u + v <= 1.0)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "star":
        theta = np.arctan2(v, u)
        return rho <= 0.55 + 0.45 * np.cos(5 * theta)
    if shape == "cross":
        return ((np.abs(u) <= 0.33) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.33) & (np.abs(u) <= 1.0))
    if shape == "ring":
        return (rho <= 1.0) & (rho >= 0.55)
    if shape == "hexagon":
        au, av = np.abs(u), np.abs(v)
        return np.maximum(av, 0.5 * av + (np.sqrt(3.0) / 2) * au) <= 0.9
    raise ValueError(f"Unknown shape {shape!r}; known: {', '.join(SHAPES)}.")


def _texture(texture: str, u: np.ndarray, v: np.ndarray, freq: float, phase: float) -> np.ndarray:
    """Texture value in [0, 1] (1 = base colour, 0 = the darker second colour)."""
    k = np.pi * freq
    if texture == "plain":
        return np.ones_like(u)
    if texture == "striped":
        return (np.sin(k * u + phase) > 0).astype(float)
    if texture == "dotted":
        return 1.0 - ((np.cos(k * u + phase) * np.cos(k * v + phase)) > 0.55).astype(float)
    if texture == "checkered":
        return ((np.sin(k * u + phase) * np.sin(k * v + phase)) > 0).astype(float)
    if texture == "gradient":
        return np.clip(0.5 + 0.5 * v, 0.0, 1.0)
    if texture == "wavy":
        return (np.sin(k * u + 1.5 * np.sin(k * v) + phase) > 0).astype(float)
    raise ValueError(f"Unknown texture {texture!r}; known: {', '.join(TEXTURES)}.")


def render_image(spec: ImageSpec, size: int = 64, seed: int = 0) -> np.ndarray:
    """Render ``spec`` as a ``(size, size, 3)`` uint8 RGB array.

    The object is drawn at 2x resolution and box-downsampled (anti-aliasing); the background
    has a soft vertical shading and faint pixel noise seeded by ``seed`` and the image's
    parameters, so two renders of the same spec are identical.
    """
    n = 2 * size
    coords = (np.arange(n) + 0.5) / n - 0.5
    xx, yy = np.meshgrid(coords, -coords)            # y up
    c, s = np.cos(spec.rotation), np.sin(spec.rotation)
    dx, dy = (xx - spec.x) / spec.radius, (yy - spec.y) / spec.radius
    u, v = c * dx + s * dy, -s * dx + c * dy
    mask = _shape_mask(spec.concept.shape, u, v).astype(float)
    tex = _texture(spec.concept.texture, u, v, spec.texture_freq, spec.texture_phase)
    base = np.asarray(_jittered_rgb(COLOURS[spec.concept.colour], spec.hue_shift, spec.brightness))
    obj = base[None, None, :] * (0.45 + 0.55 * tex[..., None])
    bg = np.asarray(BACKGROUNDS[spec.concept.background])[None, None, :] * (1.0 + 0.12 * yy[..., None])
    img = mask[..., None] * obj + (1.0 - mask[..., None]) * bg
    img = img.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    key = [seed, spec.concept_index, int(1e6 * (spec.rotation % 1.0)), int(1e6 * (spec.texture_phase % 1.0))]
    img = img + np.random.default_rng(key).normal(0.0, 0.015, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
