"""Pixel-level reconstruction metrics as MindEye computes them: PixCorr and SSIM.

Images are float tensors ``(N, 3, H, W)`` in [0, 1]. The protocol (``atm.md`` §5.6, MindEye's
``final_evaluations``):

* optional first step: resize both sets to 256 × 256 (MindEye stores its ground truth at 256 px; ATM's copy of the
  notebook resizes both sets). SSIM depends on it, so the choice is recorded in every result table;
* **PixCorr**: resize to 425 × 425 (bilinear), flatten, Pearson r per (ground truth, reconstruction) pair;
* **SSIM**: resize to 425 × 425, ``skimage.color.rgb2gray``, ``skimage.metrics.structural_similarity`` with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``.

SSIM is computed here in torch, batched, and equals skimage's value: the Gaussian window has radius
``int(3.5 σ + 0.5) = 5`` and skimage averages only pixels at least 5 away from the border, whose filtered values
never touch the padding, so a "valid" separable convolution gives exactly the same numbers (tested against skimage).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

#: skimage.color.rgb2gray weights (ITU-R 709 luma)
RGB2GRAY = (0.2125, 0.7154, 0.0721)
PIX_SIZE = 425
MINDEYE_BASE_SIZE = 256


def load_image_uint8(path: str | Path) -> torch.Tensor:
    """Read an image file as a ``(3, H, W)`` uint8 tensor (RGB; grayscale and RGBA are converted)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def to_float_batch(images: Sequence[torch.Tensor], base_size: int | None = MINDEYE_BASE_SIZE) -> torch.Tensor:
    """Stack uint8 ``(3, H, W)`` images into float ``(N, 3, S, S)`` in [0, 1].

    With ``base_size`` (MindEye's 256-px step) every image is resized to ``base_size`` × ``base_size``
    (bilinear, antialiased); without it all images must already share one size.
    """
    out = []
    for im in images:
        x = im.float().div(255.0)[None] if im.dtype == torch.uint8 else im.float()[None]
        if base_size is not None and tuple(x.shape[-2:]) != (base_size, base_size):
            x = resize(x, base_size)
        out.append(x)
    shapes = {tuple(x.shape) for x in out}
    if len(shapes) > 1:
        raise ValueError(f"Images have different sizes {sorted(shapes)}; pass base_size=256 (MindEye's protocol) "
                         "or resize them to one size first.")
    return torch.cat(out).clamp_(0.0, 1.0)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize of ``(N, C, H, W)`` to ``size`` × ``size`` (torchvision's tensor Resize)."""
    from torchvision.transforms.functional import InterpolationMode
    from torchvision.transforms.functional import resize as tv_resize

    return tv_resize(images, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)


def rgb_to_gray(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` → ``(N, H, W)`` with skimage's ``rgb2gray`` weights."""
    w = torch.tensor(RGB2GRAY, dtype=images.dtype, device=images.device)
    return torch.einsum("nchw,c->nhw", images, w)


def pixcorr(gt: torch.Tensor, rec: torch.Tensor, size: int = PIX_SIZE) -> torch.Tensor:
    """Pearson r between each ground truth and its reconstruction after resizing to ``size`` px.

    Parameters
    ----------
    gt, rec : tensor (N, 3, H, W) in [0, 1]
        Paired images (row i of ``rec`` reconstructs row i of ``gt``).

    Returns
    -------
    tensor (N,) float64 of per-pair correlations.
    """
    _check_pair(gt, rec)
    a = resize(gt, size).flatten(1).double()
    b = resize(rec, size).flatten(1).double()
    return _rowwise_pearson(a, b)


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5, dtype=torch.float64) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)                     # scipy.ndimage.gaussian_filter's radius
    x = torch.arange(-radius, radius + 1, dtype=dtype)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(gt: torch.Tensor, rec: torch.Tensor, size: int | None = PIX_SIZE, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """MindEye's SSIM per pair: grayscale, ``size`` px, Gaussian weights σ=1.5, population covariance.

    Equal to ``skimage.metrics.structural_similarity(rgb2gray(rec), rgb2gray(gt), gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1.0)`` for each pair, batched in torch (float64).

    Parameters
    ----------
    gt, rec : tensor (N, 3, H, W) in [0, 1], or (N, H, W) already grayscale
    size : int or None
        Resize to ``size`` × ``size`` first (MindEye: 425); ``None`` keeps the input size.

    Returns
    -------
    tensor (N,) float64.
    """
    _check_pair(gt, rec)
    if gt.ndim == 4:
        if size is not None:
            gt, rec = resize(gt, size), resize(rec, size)
        gt, rec = rgb_to_gray(gt.double()), rgb_to_gray(rec.double())
    x, y = gt.double()[:, None], rec.double()[:, None]      # (N, 1, H, W)
    w = _gaussian_window(sigma).to(x.device)
    pad = (len(w) - 1) // 2
    if min(x.shape[-2:]) <= 2 * pad:
        raise ValueError(f"Images of size {tuple(x.shape[-2:])} are too small for SSIM with σ={sigma}.")

    k = len(w)

    def filt(z: torch.Tensor) -> torch.Tensor:
        # "valid" separable Gaussian filter as a sum of shifted slices: float64 conv2d is slow on CPU
        h, wd = z.shape[-2] - k + 1, z.shape[-1] - k + 1
        rows = sum(w[i] * z[..., i:i + h, :] for i in range(k))
        return sum(w[i] * rows[..., i:i + wd] for i in range(k))

    ux, uy = filt(x), filt(y)
    vx = filt(x * x) - ux * ux
    vy = filt(y * y) - uy * uy
    vxy = filt(x * y) - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def _rowwise_pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)


def _check_pair(gt: torch.Tensor, rec: torch.Tensor) -> None:
    if gt.shape[0] != rec.shape[0] or gt.ndim != rec.ndim:
        raise ValueError(f"Ground truth and reconstructions must be paired row by row; got shapes "
                         f"{tuple(gt.shape)} and {tuple(rec.shape)}.")
    if gt.ndim == 4 and gt.shape[1] != 3:
        raise ValueError(f"Expected RGB images (N, 3, H, W); got {tuple(gt.shape)}.")


