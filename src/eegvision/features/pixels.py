"""Pixel-level image features: a target that keeps what a picture looks like, not what it shows.

:func:`pixel_features` of ``(n, H, W, 3)`` uint8 RGB pictures, one row each (L2-normalised, float32):

* a ``thumb`` × ``thumb`` thumbnail (area means over equal blocks), RGB in [0, 1] minus 0.5 — colour and layout;
* a joint RGB colour histogram with ``bins`` levels per channel (fractions of the pixels) — colour;
* the luminance gradient's energy in 4 orientation bins (0, 45, 90, 135 degrees) in each cell of a
  ``grid`` × ``grid`` partition (mean gradient magnitude per cell and bin) — edges and where they are.

Each block is scaled to unit norm before the row is normalised, so the three weigh the same. Plain arithmetic on
the pixels: no model, no weights.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pixel_features"]


def _block_means(x: np.ndarray, k: int) -> np.ndarray:
    """``(n, k, k, ...)`` means of ``x`` ``(n, H, W, ...)`` over a k × k grid of equal blocks (H, W cropped to
    multiples of k)."""
    n, h, w = x.shape[:3]
    hh, ww = (h // k) * k, (w // k) * k
    x = x[:, :hh, :ww]
    return x.reshape(n, k, hh // k, k, ww // k, *x.shape[3:]).mean((2, 4))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pixel_features(pixels: np.ndarray, thumb: int = 8, bins: int = 4, grid: int = 4) -> np.ndarray:
    """``(n, 3 thumb² + bins³ + 4 grid²)`` float32 pixel-level features (module docstring)."""
    x = np.asarray(pixels)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise ValueError(f"pixel_features takes (n, H, W, 3) uint8 RGB pictures; got {x.dtype} {x.shape}.")
    f = x.astype(np.float64) / 255.0
    n = len(f)
    thumbnail = _block_means(f, thumb).reshape(n, -1) - 0.5
    q = np.minimum((f * bins).astype(int), bins - 1)
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hist = np.stack([np.bincount(c.ravel(), minlength=bins**3) for c in code]).astype(np.float64) / code[0].size
    lum = f.mean(-1)
    gy, gx = np.gradient(lum, axis=(1, 2))
    mag = np.hypot(gx, gy)
    ori = np.mod(np.round(np.mod(np.arctan2(gy, gx), np.pi) / (np.pi / 4)).astype(int), 4)
    edges = np.stack([_block_means(mag * (ori == k), grid).reshape(n, -1) for k in range(4)], 2).reshape(n, -1)
    return _unit(np.concatenate([_unit(thumbnail), _unit(hist), _unit(edges)], 1)).astype(np.float32)
