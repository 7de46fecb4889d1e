"""A stand-in "CLIP-like" image/text embedding of the simulated world.

Until the world has a trained image model (the demo-world replaces this module's role with a
small CLIP trained on the rendered images and captions), image features are a fixed random
nonlinear map of the image latent factors ``z`` (:meth:`World.latents`):

.. math::

    f(z) = \\frac{W_2 \\tanh(W_1 z + b_1)}{\\lVert W_2 \\tanh(W_1 z + b_1) \\rVert}

with ``W_1`` of shape ``(hidden, LATENT_DIM)`` (gain ``gain / sqrt(LATENT_DIM)``), ``b_1`` and
``W_2`` of shape ``(dim, hidden)`` drawn once from ``seed``. Text features of a concept are the same
map applied to the concept's latent with neutral image-level variation (centred, medium, upright),
shifted by a fixed "modality gap" vector and renormalised: images of a concept lie near, not on,
its text feature, as with CLIP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eegvision.sim.scene import LATENT_DIM


@dataclass
class RandomFeatureMap:
    """Fixed random two-layer map ``z -> unit vector in R^dim`` (see the module docstring)."""

    dim: int = 256
    hidden: int = 128
    gain: float = 1.5
    gap: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim < 2 or self.hidden < 1:
            raise ValueError(f"RandomFeatureMap needs dim >= 2 and hidden >= 1; got dim={self.dim}, "
                             f"hidden={self.hidden}.")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xC11F]))
        self.w1 = rng.standard_normal((self.hidden, LATENT_DIM)) * self.gain / np.sqrt(LATENT_DIM)
        self.b1 = rng.uniform(-1.0, 1.0, self.hidden)
        self.w2 = rng.standard_normal((self.dim, self.hidden)) / np.sqrt(self.hidden)
        g = rng.standard_normal(self.dim)
        self.gap_vector = g / np.linalg.norm(g)

    def raw(self, z: np.ndarray) -> np.ndarray:
        """Unnormalised features ``W_2 tanh(W_1 z + b_1)`` of ``(n, LATENT_DIM)`` latents."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != LATENT_DIM:
            raise ValueError(f"Expected latents of shape (n, {LATENT_DIM}); got {z.shape}.")
        return np.tanh(z @ self.w1.T + self.b1) @ self.w2.T

    def image(self, z: np.ndarray) -> np.ndarray:
        """``(n, dim)`` L2-normalised image features."""
        return _normalise(self.raw(z))

    def text(self, z_concept: np.ndarray) -> np.ndarray:
        """``(n_concepts, dim)`` L2-normalised text features from the concepts' neutral latents."""
        return _normalise(self.image(z_concept) + self.gap * self.gap_vector)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
