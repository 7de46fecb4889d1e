"""Several training targets for one encoder: target specifications and the fused target.

An encoder is normally trained towards one feature file (a vision model's final embedding). Issue #17 asks for
several: other layers of the same model, pixel-level features, a VAE latent, each a standard feature file
(:mod:`eegvision.features.files`) with a weight. Two ways to use them (``FitConfig.target_mode``):

* ``heads`` — one projection head per extra target on top of the encoder's embedding, one InfoNCE term each
  (:func:`eegvision.training.losses.weighted_info_nce`); the primary target's embedding stays the encoder's
  output (see :mod:`eegvision.training.module`);
* ``fused`` — one target: :func:`fuse_targets`.

The fused target
----------------
For targets :math:`X_0` (the primary) ... :math:`X_m` with weights :math:`w_j > 0` (the primary's is
``FitConfig.primary_weight``), each row is L2-normalised per target and scaled by
:math:`\\sqrt{w_j / \\sum_l w_l}`, and the scaled rows are concatenated:

.. math::  f_i = \\bigl[\\sqrt{w_0/W}\\,\\hat x_{0i},\\ \\ldots,\\ \\sqrt{w_m/W}\\,\\hat x_{mi}\\bigr],\\qquad
           W = \\textstyle\\sum_l w_l,

so :math:`\\lVert f_i\\rVert = 1` and :math:`f_i^\\top f_k = \\sum_j (w_j/W) \\cos(x_{ji}, x_{jk})`: cosine
retrieval in the fused space ranks candidates by the weighted mean of the per-target cosines. With ``dim`` the
fused rows are projected on their first ``dim`` principal axes, **fitted on the training rows only** (mean and
axes; each axis' sign fixed so that its largest-magnitude entry is positive), and L2-normalised again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from eegvision.features.files import Features, load_features, save_features

__all__ = ["FusedTarget", "TargetSpec", "fuse_targets", "fused_rows", "parse_target", "target_test_path"]


@dataclass(frozen=True)
class TargetSpec:
    """One extra target: its training feature file, its test feature file and its weight.

    ``test`` defaults to :func:`target_test_path` of ``train`` (the last ``train`` in the file name replaced by
    ``test``: ``clip-block1.train.safetensors`` -> ``clip-block1.test.safetensors``, ``sim_features_train.pt``
    -> ``sim_features_test.pt``; a folder holding ``train.safetensors`` may be given as the folder).
    """

    train: str
    weight: float = 1.0
    test: str | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"A target's weight must be a positive number; got {self.weight} for {self.train}. "
                             "Write --target FILE:WEIGHT with WEIGHT > 0, e.g. --target layer6.train.safetensors:0.5.")

    @property
    def train_path(self) -> Path:
        p = Path(self.train).expanduser()
        return p / "train.safetensors" if p.is_dir() else p

    @property
    def test_path(self) -> Path:
        return Path(self.test).expanduser() if self.test else target_test_path(self.train_path)

    def to_dict(self) -> dict:
        return {"train": self.train, "weight": float(self.weight), "test": self.test}

    @classmethod
    def from_value(cls, value: "TargetSpec | dict | str") -> "TargetSpec":
        """A spec from a dict (``to_dict``), a ``FILE[:WEIGHT]`` string or a spec."""
        if isinstance(value, TargetSpec):
            return value
        if isinstance(value, str):
            return parse_target(value)
        if isinstance(value, dict):
            unknown = set(value) - {"train", "weight", "test"}
            if unknown or "train" not in value:
                raise ValueError(f"A target is {{'train': FILE, 'weight': W, 'test': FILE or null}}; got {value}.")
            return cls(str(value["train"]), float(value.get("weight", 1.0)), value.get("test"))
        raise TypeError(f"A target is a FILE[:WEIGHT] string or a dict; got {type(value).__name__}.")


def target_test_path(train: str | Path) -> Path:
    """The test file that goes with training feature file ``train``: the last ``train`` in its name replaced by
    ``test``; a name without ``train`` raises ``ValueError``."""
    p = Path(train)
    matches = list(re.finditer("train", p.name))
    if not matches:
        raise ValueError(f"Cannot tell the test file of target {p}: its name holds no 'train'. Name the pair "
                         "NAME.train.safetensors / NAME.test.safetensors, or give the test file explicitly "
                         "(FitConfig.targets entry {'train': ..., 'test': ...}).")
    m = matches[-1]
    return p.with_name(p.name[:m.start()] + "test" + p.name[m.end():])


def parse_target(text: str) -> TargetSpec:
    """``FILE`` or ``FILE:WEIGHT`` (the CLI's ``--target``) as a :class:`TargetSpec` (weight 1 by default)."""
    path, sep, weight = str(text).rpartition(":")
    if sep and path and re.fullmatch(r"[0-9.eE+-]+", weight):
        try:
            return TargetSpec(path, float(weight))
        except ValueError as err:
            if "positive" in str(err):
                raise
            pass
    return TargetSpec(str(text), 1.0)


def fused_rows(tables: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """``(n, sum of dims)`` fused rows of the module docstring (before any projection), float64."""
    if len(tables) != len(weights) or not tables:
        raise ValueError(f"fused_rows needs one weight per table; got {len(tables)} tables, {len(weights)} weights.")
    n = {len(t) for t in tables}
    if len(n) != 1:
        raise ValueError(f"The targets to fuse have different numbers of rows ({sorted(n)}); each must hold one "
                         "row per image of the same split, in the same order.")
    total = float(sum(weights))
    parts = []
    for t, w in zip(tables, weights):
        t = np.asarray(t, np.float64)
        norm = np.linalg.norm(t, axis=1, keepdims=True)
        if np.any(norm == 0):
            raise ValueError("A target row has norm 0; it cannot be L2-normalised for fusion.")
        parts.append(np.sqrt(w / total) * t / norm)
    return np.concatenate(parts, 1)


@dataclass
class FusedTarget:
    """How a fused target is made: the weights and dimensions of its parts and the optional projection fitted
    on the training rows (``mean`` ``(D,)`` and ``axes`` ``(D, dim)``)."""

    weights: list[float]
    dims: list[int]
    sources: list[str] = field(default_factory=list)
    mean: np.ndarray | None = None
    axes: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.axes.shape[1]) if self.axes is not None else int(sum(self.dims))

    def transform(self, tables: list[np.ndarray]) -> np.ndarray:
        """``(n, dim)`` float32 unit-norm fused target of the tables (one per part, in order)."""
        dims = [int(np.shape(t)[1]) for t in tables]
        if dims != list(self.dims):
            raise ValueError(f"The tables have dimensions {dims}; this fused target was fitted on {self.dims}.")
        f = fused_rows(tables, self.weights)
        if self.axes is not None:
            f = (f - self.mean) @ self.axes
            f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        return f.astype(np.float32)

    @classmethod
    def fit(cls, train_tables: list[np.ndarray], weights: list[float], dim: int | None = None,
            sources: list[str] | None = None) -> "FusedTarget":
        """Fit on the training tables: the projection on the first ``dim`` principal axes when ``dim`` is given
        (at most the number of training rows and of fused columns)."""
        f = fused_rows(train_tables, weights)
        out = cls([float(w) for w in weights], [int(t.shape[1]) for t in train_tables], list(sources or []))
        if dim is not None:
            if not 1 <= dim <= min(f.shape):
                raise ValueError(f"target_dim must be between 1 and {min(f.shape)} (the training rows and fused "
                                 f"columns); got {dim}.")
            mean = f.mean(0)
            _, _, vt = np.linalg.svd(f - mean, full_matrices=False)
            axes = vt[:dim].T
            signs = np.sign(axes[np.abs(axes).argmax(0), np.arange(dim)])
            out.mean, out.axes = mean, axes * signs
        return out

    def describe(self) -> dict:
        return {"weights": self.weights, "dims": self.dims, "sources": self.sources, "dim": self.dim,
                "projection": None if self.axes is None else "PCA fitted on the training rows"}


def fuse_targets(primary: tuple[Features, Features], extras: list[tuple[Features, Features]],
                 weights: list[float], dim: int | None = None, out_dir: str | Path | None = None
                 ) -> tuple[Features, Features, FusedTarget]:
    """Fuse ``primary`` (its ``(train, test)`` features) with ``extras`` (one ``(train, test)`` pair each) into
    one ``(train, test)`` target (module docstring); ``weights`` holds the primary's weight first. Text rows
    are fused too when every target has them, else dropped. With ``out_dir`` both are also written there as
    ``fused.train.safetensors`` / ``fused.test.safetensors`` (the files the run then records)."""
    pairs = [primary, *extras]
    if len(weights) != len(pairs):
        raise ValueError(f"fuse_targets needs {len(pairs)} weights (the primary's first); got {len(weights)}.")
    sources = [str(p[0].path) if p[0].path else f"target {i}" for i, p in enumerate(pairs)]
    fused = FusedTarget.fit([p[0].image.numpy() for p in pairs], weights, dim, sources)
    out = []
    for k, split in ((0, "train"), (1, "test")):
        image = fused.transform([p[k].image.numpy() for p in pairs])
        texts = [p[k].text for p in pairs]
        text = None
        if all(t is not None for t in texts) and len({len(t) for t in texts}) == 1:
            text = fused.transform([t.numpy() for t in texts])
        meta = {"model": "fused", "layer": "+".join(str(p[k].metadata.get("layer") or i)
                                                     for i, p in enumerate(pairs)),
                "normalized": "true", "split": split, "transform": "fused targets (eegvision.features.fused)"}
        feats = Features(torch.from_numpy(image), None if text is None else torch.from_numpy(text), meta,
                         pairs[0][k].path, pairs[0][k].concepts)
        if out_dir is not None:
            path = Path(out_dir) / f"fused.{split}.safetensors"
            save_features(path, image, text, normalized=True, concepts=pairs[0][k].concepts,
                          **{m: v for m, v in meta.items() if m not in ("normalized",)})
            feats = load_features(path)
        out.append(feats)
    return out[0], out[1], fused
