"""Pixel-level reconstruction metrics as MindEye computes them: PixCorr and SSIM.

Images are float tensors ``(N, 3, H, W)`` in [0, 1]. The protocol (``atm.md`` §5.6, MindEye's
``final_evaluations``):

* optional first step: resize both sets to 256 × 256 (MindEye stores its ground truth at 256 px; ATM's copy of the
  notebook resizes both sets). SSIM depends on it, so the choice is recorded in every result table;
* **PixCorr**: resize to 425 × 425 (bilinear), flatten, Pearson r per (ground truth, reconstruction) pair;
* **SSIM**: resize to 425 × 425, ``skimage.color.rgb2gray``, ``skimage.metrics.structural_similarity`` with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1`` — scikit-image itself computes
  it here (float64), per pair.

**Antialiasing.** All resizes are torchvision's bilinear tensor resize, antialiased by default (what torchvision
≥ 0.17 does and what PIL does). MindEye2's published numbers came from torch 2.0.1 / torchvision 0.15, whose tensor
resize did *not* antialias; downscaling then aliases, which moves SSIM and SwAV by several hundredths on downscaled
images. ``resize_antialias(False)`` (``score_images(..., antialias=False)``, CLI ``--no-antialias``)
reproduces that environment for comparisons with published tables; score tables record which one ran.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
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


def to_float_batch(images: Sequence[torch.Tensor], base_size: int | None = MINDEYE_BASE_SIZE,
                   antialias: bool | None = None) -> torch.Tensor:
    """Stack uint8 ``(3, H, W)`` images into float ``(N, 3, S, S)`` in [0, 1].

    With ``base_size`` (MindEye's 256-px step) every image is resized to ``base_size`` × ``base_size``
    (bilinear; ``antialias`` as in :func:`resize`); without it all images must already share one size.
    """
    out = []
    for im in images:
        x = im.float().div(255.0)[None] if im.dtype == torch.uint8 else im.float()[None]
        if base_size is not None and tuple(x.shape[-2:]) != (base_size, base_size):
            x = resize(x, base_size, antialias)
        out.append(x)
    shapes = {tuple(x.shape) for x in out}
    if len(shapes) > 1:
        raise ValueError(f"Images have different sizes {sorted(shapes)}; pass base_size=256 (MindEye's protocol) "
                         "or resize them to one size first.")
    return torch.cat(out).clamp_(0.0, 1.0)


_ANTIALIAS: ContextVar[bool] = ContextVar("eegvision_resize_antialias", default=True)


@contextlib.contextmanager
def resize_antialias(enabled: bool) -> Iterator[None]:
    """Within the block, :func:`resize` (and every metric built on it) antialiases iff ``enabled``.

    ``resize_antialias(False)`` reproduces MindEye2's published environment (torchvision 0.15 tensor resizes).
    """
    token = _ANTIALIAS.set(bool(enabled))
    try:
        yield
    finally:
        _ANTIALIAS.reset(token)


def resize(images: torch.Tensor, size: int, antialias: bool | None = None) -> torch.Tensor:
    """Bilinear resize of ``(N, C, H, W)`` to ``size`` × ``size`` (torchvision's tensor Resize).

    ``antialias``: ``None`` (default) follows :func:`resize_antialias` (on unless inside
    ``resize_antialias(False)``); ``False`` is MindEye2's environment.
    """
    from torchvision.transforms.functional import InterpolationMode
    from torchvision.transforms.functional import resize as tv_resize

    aa = _ANTIALIAS.get() if antialias is None else bool(antialias)
    return tv_resize(images, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=aa)


def rgb_to_gray(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` → ``(N, H, W)`` with skimage's ``rgb2gray`` weights."""
    w = torch.tensor(RGB2GRAY, dtype=images.dtype, device=images.device)
    return torch.einsum("nchw,c->nhw", images, w)


def pixcorr(gt: torch.Tensor, rec: torch.Tensor, size: int = PIX_SIZE, antialias: bool | None = None,
            ) -> torch.Tensor:
    """Pearson r between each ground truth and its reconstruction after resizing to ``size`` px.

    Parameters
    ----------
    gt, rec : tensor (N, 3, H, W) in [0, 1]
        Paired images (row i of ``rec`` reconstructs row i of ``gt``).
    antialias : bool, optional
        See :func:`resize`.

    Returns
    -------
    tensor (N,) float64 of per-pair correlations.
    """
    _check_pair(gt, rec)
    a = resize(gt, size, antialias).flatten(1).double()
    b = resize(rec, size, antialias).flatten(1).double()
    return _rowwise_pearson(a, b)


def ssim(gt: torch.Tensor, rec: torch.Tensor, size: int | None = PIX_SIZE, sigma: float = 1.5,
         data_range: float = 1.0, antialias: bool | None = None) -> torch.Tensor:
    """MindEye's SSIM per pair: grayscale, ``size`` px, Gaussian weights σ=1.5, population covariance.

    Each value is ``skimage.metrics.structural_similarity(rgb2gray(rec), rgb2gray(gt), gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1.0)`` computed by scikit-image in float64.

    Parameters
    ----------
    gt, rec : tensor (N, 3, H, W) in [0, 1], or (N, H, W) already grayscale
    size : int or None
        Resize to ``size`` × ``size`` first (MindEye: 425); ``None`` keeps the input size.
    antialias : bool, optional
        See :func:`resize`.

    Returns
    -------
    tensor (N,) float64.
    """
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    _check_pair(gt, rec)
    if gt.ndim == 4:
        if size is not None:
            gt, rec = resize(gt, size, antialias), resize(rec, size, antialias)
        x = rgb2gray(gt.detach().double().permute(0, 2, 3, 1).cpu().numpy())
        y = rgb2gray(rec.detach().double().permute(0, 2, 3, 1).cpu().numpy())
    else:
        x, y = gt.detach().double().cpu().numpy(), rec.detach().double().cpu().numpy()
    radius = int(3.5 * sigma + 0.5)                          # skimage's Gaussian window: 2 · radius + 1 pixels
    if min(x.shape[-2:]) < 2 * radius + 1:
        raise ValueError(f"Images of size {tuple(x.shape[-2:])} are too small for SSIM with σ={sigma}: need at "
                         f"least {2 * radius + 1} px a side; resize them (size=...) first.")
    out = [structural_similarity(b, a, gaussian_weights=True, sigma=sigma, use_sample_covariance=False,
                                 data_range=data_range) for a, b in zip(x, y)]
    return torch.tensor(out, dtype=torch.float64)


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


