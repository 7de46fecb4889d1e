"""Image-side priors: features of blurred or degraded images (UBP's blur prior, NeuroBridge's CPA).

**UBP** -- Wu et al., "Bridging the Vision-Brain Gap with an Uncertainty-Aware Blur Prior", CVPR 2025
(arXiv 2503.04207); code HaitaoWuTJU/Uncertainty-aware-Blur-Prior, commit 89d8b83 (``base/inpating_data.py``
``FoveaBlur``, ``base/data_eeg.py``, ``configs/eeg/ubp.yaml``, ``main.py``). As the code defines it:

* images are first resized to 224 x 224 (``preprocess/process_resize.py``, torchvision ``Resize`` = bilinear);
* a Gaussian blur with an odd kernel of size ``k`` and OpenCV's default sigma for ``sigma=0``,
  ``0.3 * ((k - 1) / 2 - 1) + 0.8`` (OpenCV's fixed binomial taps for ``k <= 7``), border reflect-101;
* "fovea" blending: ``out = m * image + (1 - m) * blurred`` with ``m = 0.5 * exp(-g * min(1, d / d_max))``,
  ``d`` the distance of a pixel (row i, column j) to ``(h // 2, w // 2)``, ``d_max`` the distance of the
  bottom-right pixel, ``g = system_g = 3``; rounded and saturated to uint8;
* three blur levels, kernels ``k - c, k, k + c`` with ``k = 51``, ``c = 6`` ("low", "medium", "high"); training
  picks one per sample from the uncertainty (see :mod:`eegvision.training.blur_prior`); test uses "medium".

UBP's blur runs in OpenCV on uint8 BGR images; here it runs in torch on float pixels with the same kernel,
border and blending, rounding the blurred image to uint8 before blending as UBP does. Against OpenCV 5.1
(``cv2.GaussianBlur`` and UBP's ``FoveaBlur`` steps re-typed) on a 224 x 224 uniform-noise image -- the worst
case -- pixels differ by at most 2 grey levels (17-18 % of them by 1-2) for k = 45, 51, 57, from OpenCV's
fixed-point uint8 arithmetic.

**NeuroBridge CPA** -- "NeuroBridge" (AAAI 2026, arXiv 2511.06836); code feroooooo/NeuroBridge, commit 6144203
(``module/image_augmentation.py``, ``extract_feature.py``, ``fuse_feature.py``,
``scripts/things_eeg/image_feature_extract.sh``, ``intra-subjects.sh``): each image, resized to 224 x 224 (PIL's
default bicubic), is degraded four ways -- GaussianBlur (kernel 15), GaussianNoise (std 25, clipped to uint8),
LowResolution (bilinear down to 0.1x and back up) and Mosaic (bilinear down by 5, nearest back up) -- each view is
embedded (raw ``encode_image``), and the four feature sets are **averaged** (``fuse_feature.py``); that mean is
the target for training and test (``--image_test_aug``). No text augmentation is applied in the released scripts
(``TEXT_FEATURE_DIR=""``). Their noise is unseeded ``np.random``; here each image's noise comes from a generator
seeded with ``(seed, image index)``, so features do not depend on batching. OpenCV's ``INTER_LINEAR`` downscale
(no antialiasing) is matched by ``torch.nn.functional.interpolate(mode="bilinear", antialias=False)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from eegvision.checks import check_choice, check_int, check_positive

PRIORS = ("none", "blur", "cpa")
UBP_LEVELS = ("low", "medium", "high")
CPA_VIEWS = ("gaussian_blur", "gaussian_noise", "low_resolution", "mosaic")

__all__ = ["CPA_VIEWS", "PRIORS", "UBP_LEVELS", "ImagePrior", "cv2_sigma", "fovea_mask", "gaussian_blur",
           "gaussian_kernel"]


def cv2_sigma(kernel: int) -> float:
    """OpenCV's sigma for ``GaussianBlur(..., sigmaX=0)``: ``0.3 * ((k - 1) * 0.5 - 1) + 0.8``."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


#: OpenCV's fixed taps for ``sigma <= 0`` and kernels up to 7 (``getGaussianKernel``'s small_gaussian_tab).
_SMALL_TAPS = {1: [1.0], 3: [0.25, 0.5, 0.25], 5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
               7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125]}


def gaussian_kernel(kernel: int, sigma: float | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps of odd length ``kernel`` (float64), as OpenCV's ``getGaussianKernel``.

    Without ``sigma``: OpenCV's fixed binomial taps for kernels up to 7, else ``sigma = cv2_sigma(kernel)``.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"blur kernel size must be a positive odd number; got {kernel}")
    if sigma is None and kernel in _SMALL_TAPS:
        return torch.tensor(_SMALL_TAPS[kernel], dtype=torch.float64)
    sigma = cv2_sigma(kernel) if sigma is None else sigma
    x = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2
    w = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return w / w.sum()


def gaussian_blur(image: np.ndarray, kernel: int) -> np.ndarray:
    """Separable Gaussian blur of an (H, W, C) image, border reflect-101, computed in float32, returned as float64
    (no rounding)."""
    x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    taps = gaussian_kernel(kernel).float()  # float32: ~1e-5 grey levels from float64, 10x faster
    r = kernel // 2
    c = x.shape[1]
    if r >= min(x.shape[2], x.shape[3]):
        raise ValueError(f"blur kernel {kernel} is too large for an image of {x.shape[2]} x {x.shape[3]} pixels")
    x = F.pad(x, (r, r, r, r), mode="reflect")  # torch "reflect" = OpenCV BORDER_REFLECT_101
    x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x[0].permute(1, 2, 0).numpy().astype(np.float64)


@functools.lru_cache(maxsize=8)
def fovea_mask(h: int, w: int, system_g: float = 3.0, centre_weight: float = 0.5) -> np.ndarray:
    """UBP's weight of the sharp image per pixel: ``centre_weight * exp(-system_g * min(1, d / d_max))``.

    Cached (the same few sizes recur for every image); the array is read-only."""
    ci, cj = h // 2, w // 2
    d_max = math.sqrt((h - ci - 1) ** 2 + (w - cj - 1) ** 2)
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    d = np.sqrt((i - ci) ** 2 + (j - cj) ** 2)
    mask = centre_weight * np.exp(-system_g * np.minimum(1.0, d / d_max))
    mask.flags.writeable = False
    return mask


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _resize_torch(arr: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    x = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1)[None]
    kw = {"align_corners": False, "antialias": False} if mode == "bilinear" else {}
    y = F.interpolate(x, size=size, mode=mode, **kw)
    return y[0].permute(1, 2, 0).numpy()


@dataclass(frozen=True)
class ImagePrior:
    """An image prior and its parameters; ``views()`` names the feature files it produces.

    Parameters
    ----------
    name : {"none", "blur", "cpa"}
    size : int
        Images are resized to ``size`` x ``size`` before the prior (224 in UBP and NeuroBridge); 0 keeps them.
    blur_kernel, blur_shift : int
        UBP: kernels ``blur_kernel - blur_shift``, ``blur_kernel``, ``blur_kernel + blur_shift`` (51, 6).
    blur_levels : tuple of str
        Which of ``low``, ``medium``, ``high`` to extract (all three for UBP's uncertainty-aware training;
        ``("medium",)`` is UBP's fixed blur).
    fovea : bool
        Fovea blending (UBP); ``False`` blurs the whole image uniformly (UBP's "uniform blur" ablation).
    system_g : float
        Fovea fall-off (UBP ``system_g: 3``).
    cpa_kernel, cpa_noise_std, cpa_scale, cpa_mosaic : CPA parameters (15, 25, 0.1, 5).
    cpa_repeats : int
        Noisy views per image averaged (NeuroBridge ``--repeat_times``, 1).
    seed : int
        Seed of the noise (CPA).
    """

    name: str = "none"
    size: int = 224
    blur_kernel: int = 51
    blur_shift: int = 6
    blur_levels: tuple[str, ...] = UBP_LEVELS
    fovea: bool = True
    system_g: float = 3.0
    cpa_kernel: int = 15
    cpa_noise_std: float = 25.0
    cpa_scale: float = 0.1
    cpa_mosaic: int = 5
    cpa_repeats: int = 1
    seed: int = 0

    def __post_init__(self):
        check_choice("prior", self.name, PRIORS)
        check_int("prior size", self.size, minimum=0)
        for lv in self.blur_levels:
            check_choice("blur level", lv, UBP_LEVELS)
        if self.name == "blur":
            for lv in self.blur_levels:
                gaussian_kernel(self.kernel_of(lv))
        if self.name == "cpa":
            gaussian_kernel(self.cpa_kernel)
            check_positive("cpa noise std", self.cpa_noise_std, allow_zero=True)
            check_positive("cpa scale", self.cpa_scale)
            check_int("cpa mosaic", self.cpa_mosaic, minimum=1)
            check_int("cpa repeats", self.cpa_repeats, minimum=1)

    def kernel_of(self, level: str) -> int:
        return self.blur_kernel + {"low": -1, "medium": 0, "high": 1}[level] * self.blur_shift

    def views(self) -> list[str]:
        """Output variants: ``[""]`` (none), blur levels, or ``["cpa"]`` (the four CPA views averaged)."""
        if self.name == "blur":
            return list(self.blur_levels)
        return ["cpa"] if self.name == "cpa" else [""]

    def params(self, view: str = "") -> dict:
        """The parameters that change the pixels of ``view`` (recorded in metadata, part of the cache key)."""
        if self.name == "none":
            return {}
        keep = {"blur": ("size", "fovea", "system_g"), "cpa": ("size", "cpa_kernel", "cpa_noise_std", "cpa_scale",
                                                             "cpa_mosaic", "cpa_repeats", "seed")}[self.name]
        out = {k: v for k, v in asdict(self).items() if k in keep}
        if self.name == "blur":
            out.update(level=view, kernel=self.kernel_of(view), sigma=cv2_sigma(self.kernel_of(view)))
        if self.name == "cpa":
            out["views"] = list(CPA_VIEWS)
        return out

    # --- pixels --------------------------------------------------------------------------------------------
    def _resize(self, image, resample):
        from PIL import Image

        image = image.convert("RGB")
        if self.size:
            image = image.resize((self.size, self.size), getattr(Image.Resampling, resample))
        return image

    def apply(self, image, view: str, index: int = 0, repeat: int = 0) -> list:
        """PIL images of ``view`` for one image (several for CPA: one per degradation)."""
        from PIL import Image

        if self.name == "none":
            return [image.convert("RGB")]
        if self.name == "blur":
            arr = np.asarray(self._resize(image, "BILINEAR"), dtype=np.float64)
            blurred = _to_uint8(gaussian_blur(arr, self.kernel_of(view))).astype(np.float64)  # uint8, as UBP's
            if self.fovea:
                m = fovea_mask(arr.shape[0], arr.shape[1], self.system_g)[..., None]
                blurred = m * arr + (1 - m) * blurred
            return [Image.fromarray(_to_uint8(blurred))]
        img = self._resize(image, "BICUBIC")
        arr = np.asarray(img, dtype=np.float64)
        h, w = arr.shape[:2]
        rng = np.random.default_rng([self.seed, index, repeat])
        noisy = np.clip(arr + rng.normal(0.0, self.cpa_noise_std, arr.shape), 0, 255).astype(np.uint8)
        low = img.resize((max(1, int(w * self.cpa_scale)), max(1, int(h * self.cpa_scale))),
                         Image.Resampling.BILINEAR).resize((w, h), Image.Resampling.BILINEAR)
        small = _to_uint8(_resize_torch(arr, (max(1, h // self.cpa_mosaic), max(1, w // self.cpa_mosaic)),
                                        "bilinear"))
        mosaic = _resize_torch(small, (h, w), "nearest").astype(np.uint8)
        views = [_to_uint8(gaussian_blur(arr, self.cpa_kernel)), noisy, np.asarray(low), mosaic]
        return [Image.fromarray(v) for v in views]

    def n_images(self) -> int:
        """Images per source image and view that are embedded and averaged."""
        return len(CPA_VIEWS) * self.cpa_repeats if self.name == "cpa" else 1
