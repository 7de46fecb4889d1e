"""Fit the low-level path's EEG → VAE-latent regressor from a store (``eegvision lowlevel fit``).

The targets are the scaled VAE latents of each training image (``vae.encode(2x − 1).latent_dist.mean ×
scaling_factor`` at ``image_size`` px; SDXL at 512 px gives 4 × 64 × 64, as ATM), computed once and cached in
a safetensors file keyed by the VAE's weights, the image size and the image list. The inputs are one subject's
training EEG averaged over repetitions (one row per image). Two regressors:

* ``ridge`` (default): closed form, :class:`~eegvision.generation.lowlevel.RidgeLatentRegressor`, penalty chosen
  by grouped K-fold cross-validation over concepts (:func:`~eegvision.evaluation.ridge_cv.ridge_cv`, R²) —
  seconds on a CPU, and a strong low-level baseline;
* ``neural``: the reference's ``encoder_low_level``
  (:class:`~eegvision.generation.lowlevel.LatentRegressor`, L1 loss, AdamW, cosine schedule).

The output folder holds the regressor (``model.safetensors`` + its config, see
:func:`~eegvision.generation.lowlevel.load_latent_regressor`) and ``lowlevel.json``: data, subject, VAE,
settings, the cross-validated scores and, when the store has test images, the test scores (per-image Pearson
correlation of predicted and true latents, next to the same for shuffled pairs, and the MSE next to that of the
mean training latent). :func:`predict_split_latents` turns a fitted folder into img2img inits
(``eegvision reconstruct --low-level-run``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eegvision.checks import check_choice, check_name, check_positive
from eegvision.generation.lowlevel import (
    RidgeLatentRegressor,
    encode_images_to_latents,
    fit_latent_regressor,
    load_latent_regressor,
    predict_latents,
)

RECORD = "lowlevel.json"


@dataclass
class LowLevelFitConfig:
    """Settings of :func:`fit_lowlevel`."""

    subject: str | None = None          # default: the store's first subject
    regressor: str = "ridge"            # "ridge" (closed form) or "neural" (reference encoder_low_level)
    image_size: int | None = None       # VAE input side (default: the VAE's sample_size; SDXL: use 512)
    time_bin: int = 1                   # ridge: average the time course in blocks of this many samples
    alphas: list[float] | None = None   # ridge: penalties tried (default: ridge_cv's grid)
    n_splits: int = 5                   # ridge: grouped CV folds
    epochs: int = 200                   # neural
    batch_size: int = 30                # neural
    learning_rate: float = 1e-3         # neural
    neural_options: dict = field(default_factory=dict)  # neural: LatentRegressor options (n_features, widths)
    seed: int = 0
    vae_batch_size: int = 16
    device: str | None = None
    cache: str | None = None            # folder of the latent cache (default OUT/latents)


@dataclass
class LowLevelFitResult:
    """What :func:`fit_lowlevel` wrote and measured."""

    directory: Path
    subject: str
    regressor: str
    n_train: int
    latent_shape: list[int]
    alpha: float | None
    cv: dict[str, float] | None
    test: dict[str, float] | None
    cache: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0


def averaged_eeg(store, subject: str, split: str, chunk: int = 256) -> torch.Tensor:
    """``(conditions, n_chans, n_times)`` float32: the split's EEG averaged over repetitions."""
    arr = store.array(subject, split)
    return torch.from_numpy(np.concatenate([np.asarray(arr[s:s + chunk], dtype=np.float32).mean(1)
                                            for s in range(0, len(arr), chunk)]))


def _vae_fingerprint(vae) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in dict(vae.config).items() if not k.startswith("_")},
                                  sort_keys=True, default=str).encode())
    for v in vae.state_dict().values():
        h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


def _load_images(paths: list[str], size: int) -> torch.Tensor:
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            im = im.convert("RGB")
            out[i] = np.asarray(im if im.size == (size, size) else im.resize((size, size), Image.BICUBIC))
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


def image_latents(vae, paths: list[str], image_size: int, cache_file: str | os.PathLike | None = None,
                  batch_size: int = 16) -> tuple[torch.Tensor, bool]:
    """Scaled VAE latents of the images at ``paths`` (resized to ``image_size``), cached in ``cache_file``.

    The cache holds the key (sha256 of the VAE's config and weights, the image size and the paths); a cache
    with another key is recomputed and replaced. Returns ``(latents, read_from_cache)``.
    """
    from safetensors import safe_open

    from eegvision.utils import save_safetensors

    key = hashlib.sha256(json.dumps([_vae_fingerprint(vae), int(image_size), [str(p) for p in paths]]).encode())
    key = key.hexdigest()
    if cache_file is not None and Path(cache_file).is_file():
        with safe_open(str(cache_file), "pt") as f:
            if (f.metadata() or {}).get("key") == key:
                return f.get_tensor("latents"), True
    chunk = max(batch_size, (1 << 24) // (image_size * image_size))  # images read at a time: ~200 MB at 512 px
    lat = torch.cat([encode_images_to_latents(vae, _load_images(paths[s:s + chunk], image_size), batch_size)
                     for s in range(0, len(paths), chunk)])
    if cache_file is not None:
        Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
        save_safetensors(cache_file, {"latents": lat.contiguous()}, {"key": key, "n_images": str(len(paths)),
                                                                     "image_size": str(image_size)})
    return lat, False


def _split_images(store, split: str, images: str | os.PathLike | None) -> list[str]:
    if images is not None:
        from eegvision.readers.images import scan_image_folder

        return [str(p) for p in scan_image_folder(images).paths]
    paths = store.images(split)
    if not paths:
        raise ValueError(f"The store has no images for its {split!r} split; pass the image folder (e.g. "
                         f"--images .../training_images).")
    return [str(p) for p in paths]


def fit_ridge_latents(eeg: torch.Tensor, latents: torch.Tensor, groups: np.ndarray, time_bin: int = 1,
                      alphas: list[float] | None = None, n_splits: int = 5) -> tuple[RidgeLatentRegressor, Any]:
    """Closed-form ridge EEG ``(N, C, T)`` → latents ``(N, c, h, w)`` with the penalty chosen by grouped CV (R²).

    Returns the regressor and the :class:`~eegvision.evaluation.ridge_cv.RidgeCVResult`.
    """
    from eegvision.evaluation.ridge_cv import ridge_cv

    model = RidgeLatentRegressor(eeg.shape[1], eeg.shape[2], list(latents.shape[1:]), time_bin)
    x = model.features(eeg).numpy()
    y = latents.reshape(len(latents), -1).double().numpy()
    res = ridge_cv(x, y, np.asarray(groups), alphas, n_splits=min(n_splits, len(np.unique(groups))), scoring="r2")
    model.weight.copy_(torch.from_numpy(res.coef).float())
    model.bias.copy_(torch.from_numpy(np.asarray(res.intercept)).float())
    model.config["alpha"] = float(res.alpha)
    return model.eval(), res


def latent_scores(pred: torch.Tensor, true: torch.Tensor, train_mean: torch.Tensor, seed: int = 0) -> dict:
    """Per-image Pearson r of predicted vs true latents, both minus the mean training latent (what is specific to
    the image; the same for a shuffled pairing beside it), and the MSE next to that of the mean latent."""
    m = train_mean.reshape(1, -1).double()
    p = pred.reshape(len(pred), -1).double() - m
    t = true.reshape(len(true), -1).double() - m

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean())

    perm = np.random.default_rng(seed).permutation(len(p))
    return {"latent_corr": corr(p, t), "latent_corr_shuffled": corr(p[perm], t),
            "mse": float(((p - t) ** 2).mean()), "mse_mean_latent": float((t ** 2).mean()),
            "n_images": len(p)}


def fit_lowlevel(data: str | os.PathLike, vae, out: str | os.PathLike, config: LowLevelFitConfig | None = None,
                 images: str | os.PathLike | None = None, test_images: str | os.PathLike | None = None,
                 vae_path: str | None = None) -> LowLevelFitResult:
    """Fit the EEG → VAE-latent regressor of one subject and save it to ``out`` (see the module docstring).

    Parameters
    ----------
    data
        Store or THINGS-EEG2 folder.
    vae
        A diffusers ``AutoencoderKL`` (e.g. from :func:`~eegvision.generation.lowlevel.load_vae`).
    out
        Output folder (regressor + ``lowlevel.json`` + the latent cache in ``latents/``).
    images, test_images
        Image folders of the training / test conditions (default: the store's recorded images).
    vae_path
        Where the VAE was read from (recorded).
    """
    from eegvision.data.sources import open_data
    from eegvision.utils import default_device, write_text_atomic

    cfg = config or LowLevelFitConfig()
    check_choice("regressor", cfg.regressor, ("ridge", "neural"))
    check_positive("time_bin", cfg.time_bin)
    t0 = time.perf_counter()
    out = Path(out)
    store = open_data(data)
    subject = cfg.subject or store.subjects[0]
    check_name("Subject", subject, store.subjects, str(data))
    image_size = int(cfg.image_size or vae.config.sample_size)
    vae = vae.to(default_device(cfg.device))
    cache_dir = Path(cfg.cache) if cfg.cache else out / "latents"

    train_paths = _split_images(store, "training", images)
    eeg = averaged_eeg(store, subject, "training")
    if len(train_paths) != len(eeg):
        raise ValueError(f"{len(train_paths)} training images but {len(eeg)} training conditions for {subject}; the "
                         "image folder must hold one image per condition, in condition order.")
    latents, cached = image_latents(vae, train_paths, image_size, cache_dir / "training.safetensors",
                                    cfg.vae_batch_size)
    meta = store.metadata(subject, "training")
    first = meta[meta["repetition"] == 0].sort_values("condition")
    groups = first["concept_index"].to_numpy()
    cv, alpha = None, None
    if cfg.regressor == "ridge":
        model, res = fit_ridge_latents(eeg, latents, groups, cfg.time_bin, cfg.alphas, cfg.n_splits)
        alpha, cv = res.alpha, {"r2": res.best["r2"], "mse": res.best["mse"], "n_splits": res.n_splits,
                                "at_grid_edge": res.at_grid_edge, "alphas": res.alphas, "form": res.form}
    else:
        model, losses = fit_latent_regressor(eeg, latents, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                             learning_rate=cfg.learning_rate, seed=cfg.seed, device=cfg.device,
                                             **cfg.neural_options)
        cv = {"final_train_l1": losses[-1]}
    model = model.cpu()
    test = None
    if "test" in store.splits(subject) and (test_images is not None or store.images("test")):
        test_paths = _split_images(store, "test", test_images)
        test_lat, _ = image_latents(vae, test_paths, image_size, cache_dir / "test.safetensors", cfg.vae_batch_size)
        pred = predict_latents(model, averaged_eeg(store, subject, "test"))
        test = latent_scores(pred, test_lat, latents.mean(0), cfg.seed)
    model.save_pretrained(out)
    record = {"format": "eegvision-lowlevel", "subject": subject, "regressor": cfg.regressor,
              "data_path": {"relative": os.path.relpath(Path(data).resolve(), out.resolve()),
                            "absolute": str(Path(data).resolve())},
              "vae": vae_path, "image_size": image_size, "latent_shape": list(latents.shape[1:]),
              "scaling_factor": float(vae.config.scaling_factor), "n_train": len(eeg), "alpha": alpha,
              "cv": cv, "test": test, "config": asdict(cfg), "latents_cached": cached,
              "wall_s": time.perf_counter() - t0}
    write_text_atomic(out / RECORD, json.dumps(record, indent=1, default=str) + "\n")
    return LowLevelFitResult(out, subject, cfg.regressor, len(eeg), list(latents.shape[1:]), alpha, cv, test,
                             {"training": str(cache_dir / "training.safetensors")}, record["wall_s"])


def read_lowlevel_record(directory: str | os.PathLike) -> dict:
    """``lowlevel.json`` of a folder written by :func:`fit_lowlevel`."""
    path = Path(directory) / RECORD
    if not path.is_file():
        raise FileNotFoundError(f"No {RECORD} in {directory}; pass a folder written by `eegvision lowlevel fit`.")
    return json.loads(path.read_text())


def predict_split_latents(directory: str | os.PathLike, data: str | os.PathLike | None = None,
                          subject: str | None = None, split: str = "test") -> torch.Tensor:
    """Latents ``(conditions, c, h, w)`` predicted from a split's repetition-averaged EEG by a fitted folder.

    ``data`` and ``subject`` default to those recorded in ``lowlevel.json`` (the data path is looked up relative
    to the folder first, then as recorded).
    """
    from eegvision.data.sources import open_data

    directory = Path(directory)
    rec = read_lowlevel_record(directory)
    if data is None:
        rel = directory / rec["data_path"]["relative"]
        data = rel if rel.exists() else rec["data_path"]["absolute"]
    store = open_data(data)
    subject = subject or rec["subject"]
    check_name("Subject", subject, store.subjects, str(data))
    model = load_latent_regressor(directory)
    return predict_latents(model, averaged_eeg(store, subject, split))


__all__ = ["LowLevelFitConfig", "LowLevelFitResult", "averaged_eeg", "fit_lowlevel", "fit_ridge_latents",
           "image_latents", "latent_scores", "predict_split_latents", "read_lowlevel_record"]
