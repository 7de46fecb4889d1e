"""The benchmark's recipes: a registry of named ways to decode sub-01's test images from a family's simulation.

Three kinds:

* ``known_model`` — the family's known-model decoder (``docs/families.md``), rescored per test image from the
  files on disk; the ceiling no recipe may exceed (exact Bayes; a Gaussian approximation for ``eegvision``).
* ``linear`` — :mod:`eegvision.evaluation.linear`'s ridge (``whiten=False``) or whitened (MVNN) ridge on
  repetition-averaged epochs at 25 Hz, the penalty chosen on 20 % of the training concepts (drawn from the world
  seed): exactly the baselines ``simulate`` records, recomputed per test image.
* ``fit`` — any :class:`~eegvision.training.config.FitConfig`: ``overrides`` are its fields on top of the
  benchmark's inputs (the family's folder as ``data``, ``sub-01``, its ``sim_features_{train,test}.pt`` with
  ``features_normalized``, ``eval_methods=["exact"]``, ``seed`` = the simulation's seed). A new encoder or
  training option becomes a recipe by one entry here, e.g. (once those fields exist)
  ``Recipe("ridge-encoder", "fit", ..., {"encoder": "ridge"})`` or
  ``Recipe("stconv-mvnn", "fit", ..., {**SIM_DEMO, "whiten": "mvnn"})``.

A recipe's :meth:`Recipe.config` is its full configuration (for ``fit``: every ``FitConfig`` field but the
machine-local paths), and its hash keys the benchmark's cache: change a recipe and its cells are recomputed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eegvision.checks import check_choice, check_names
from eegvision.training.config import FitConfig
from eegvision.training.presets import get_preset

__all__ = ["FIT_INPUT_FIELDS", "KINDS", "RECIPES", "REFERENCE", "TARGET_SETS", "Recipe", "get_recipes", "json_hash", "list_recipes"]

KINDS = ("known_model", "linear", "fit")
#: The recipe every other is compared with (paired, per test image).
REFERENCE = "whitened_ridge"
#: FitConfig fields the benchmark sets per cell (paths on this machine; the seed is the simulation's).
FIT_INPUT_FIELDS = ("data", "subjects", "features_train", "features_test", "features_normalized", "seed",
                    "progress", "targets")
#: FitConfig fields added after cells were cached (issue #18): left out of a recipe's configuration (and hash)
#: while at their defaults, so that the cached cells of recipes that do not use them stay valid.
LATER_FIELDS = {"mmd_epochs": 0, "mmd_weight": 1.0, "subject_mmd_weight": 0.0, "subject_router": None,
                "router_experts": 4, "target_weights": "fixed", "target_weight_grid": [0.0, 0.25, 1.0, 4.0],
                "blur_levels": [], "learn_temperature": True, "fusion_subject_dropout": 0.0,
                "fusion_layer_dropout": 0.0, "stages": [], "projector": None, "eeg_smoothing": None,
                "multi_view_target": None, "fusion_encoder": None}
#: Target sets of ``fit`` recipes (``Recipe.targets``): the primary target file and the extra ones (weight 1 each),
#: computed per simulation from its images (:func:`eegvision.sim.world.features.write_target_files`).
TARGET_SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "clip-final": ("clip-final", ()),
    "clip-layers": ("clip-final", ("clip-embeddings", "clip-block1", "clip-block2")),
    "clip-layers-pixels": ("clip-final", ("clip-embeddings", "clip-block1", "clip-block2", "pixels")),
    "pixels": ("pixels", ()),
    "clip-final-pixels-vae": ("clip-final", ("pixels", "vae")),
}
#: What the linear baselines do (evaluation/linear.py), recorded in their configuration.
_LINEAR = {"average": "all repetitions", "rate_hz": 25.0, "standardise": "per feature (training mean, std)",
           "alphas": "logspace(-4, 1, 11) x largest squared singular value",
           "validation": "20 % of the training concepts, drawn from the world seed", "retrieval": "cosine"}


@dataclass(frozen=True)
class Recipe:
    """A named decoding recipe of the benchmark (see the module docstring for ``kind`` and ``options``).

    ``options``: for ``fit``, :class:`FitConfig` fields; for ``linear``, ``{"whiten": bool}`` or
    ``{"method": "encoding"}``; for
    ``known_model``, nothing.
    """

    name: str
    kind: str
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: ``fit`` only: a :data:`TARGET_SETS` name. The cell then trains towards target files computed from the
    #: simulation's images (the world CLIP's final embedding / block outputs, pixel features) instead of the
    #: simulation's own features, and scores retrieval in that target's space (200 test images as candidates).
    targets: str | None = None

    def __post_init__(self) -> None:
        check_choice("Recipe kind", self.kind, KINDS)
        if self.targets is not None:
            check_choice(f"Recipe {self.name!r} targets", self.targets, tuple(TARGET_SETS))
            if self.kind != "fit":
                raise ValueError(f"Recipe {self.name!r}: targets apply to fit recipes only.")
        if self.kind == "linear":
            check_choice(f"Recipe {self.name!r} method", self.options.get("method", "ridge"), ("ridge", "encoding"))
        if self.kind == "fit":
            bad = [k for k in self.options if k in FIT_INPUT_FIELDS]
            if bad:
                raise ValueError(f"Recipe {self.name!r} sets {', '.join(bad)}, which the benchmark sets per cell "
                                 f"(the simulation's folder, features and seed); remove them from its options.")
            self.fit_config()       # unknown fields or bad values fail here, when the recipe is defined

    def fit_config(self, **inputs: Any) -> FitConfig:
        """The :class:`FitConfig` of this recipe with the benchmark's ``inputs`` (data, features, seed, ...)."""
        if self.kind != "fit":
            raise ValueError(f"Recipe {self.name!r} is a {self.kind} recipe, not a FitConfig recipe.")
        base = {"subjects": ["sub-01"], "features_normalized": True, "eval_methods": ["exact"], "progress": False}
        return FitConfig.from_dict({**base, **self.options, **inputs})

    def config(self) -> dict[str, Any]:
        """The full configuration (JSON-able): what the cache's hash covers."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "fit":
            cfg = self.fit_config().to_dict()
            out["fit"] = {k: v for k, v in cfg.items() if k not in FIT_INPUT_FIELDS
                          and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
            out["fit"]["seed"] = "the simulation's seed"
            if self.targets is not None:
                primary, extra = TARGET_SETS[self.targets]
                out["targets"] = {"set": self.targets, "primary": primary, "extra": list(extra), "weights": 1.0,
                                  "files": "eegvision.sim.world.features.write_target_files of the simulation's "
                                           "images (world CLIP image tower: token-mean block outputs, projected "
                                           "final embedding; pixel_features)"}
        elif self.kind == "linear":
            out["linear"] = {**_LINEAR, "whiten": ("MVNN: Ledoit-Wolf covariance of the training repetitions' "
                                                    "residuals" if self.options.get("whiten") else "none")}
            if self.options.get("method", "ridge") != "ridge":
                out["linear"] = {**out["linear"], "method": self.options["method"],
                                 "alphas": "logspace(-4, 1, 11) x largest squared singular value of the features",
                                 "validation": "20 % of the training concepts (one image each), world seed",
                                 "retrieval": "correlation of the EEG with each candidate's predicted EEG"}
        else:
            out["known_model"] = "the family's known-model decoder (simulation.json ground_truth.known_model)"
        return out

    @property
    def config_hash(self) -> str:
        return json_hash(self.config())


def json_hash(value: Any) -> str:
    """First 16 hex digits of the sha256 of ``value`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sim_demo(**changes: Any) -> dict[str, Any]:
    """The ``sim-demo`` training preset's FitConfig fields (the README's recommendation), with changes."""
    return {**get_preset("sim-demo").overrides, "preset": "sim-demo", **changes}


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("known_model", "known_model", "the family's known-model decoder (ceiling)"),
    Recipe("ridge", "linear", "ridge on repetition-averaged epochs at 25 Hz", {"whiten": False}),
    Recipe("whitened_ridge", "linear", "MVNN (training residuals), then ridge", {"whiten": True}),
    Recipe("encoding", "linear", "encoding-model identification: ridge features -> EEG at 25 Hz, correlation with "
           "each candidate's predicted EEG (evaluation only; no embedding)", {"method": "encoding"}),
    Recipe("ridge-encoder", "fit", "the ridge run-folder encoder (closed form, grouped-CV penalty on top-1)",
           {"encoder": "ridge"}),
    Recipe("ridge-encoder-mvnn", "fit", "the ridge run-folder encoder after MVNN whitening (fit --whiten mvnn)",
           {"encoder": "ridge", "whiten": "mvnn"}),
    Recipe("stconv-sim-demo", "fit", "STConv, the sim-demo recipe (README's recommendation; 40 epochs)",
           _sim_demo()),
    Recipe("eegproject-sim-demo", "fit", "EEGProject, the sim-demo recipe (40 epochs)",
           _sim_demo(encoder="eegproject")),
    Recipe("atms", "fit", "ATM-S, the sim-demo recipe with 10 epochs", _sim_demo(encoder="atms", epochs=10)),
    Recipe("auto", "fit", "the default (encoder 'auto'): ridge and STConv fitted, the validation winner kept",
           {"encoder": "auto"}),
    Recipe("stconv-ridge-init", "fit", "STConv on top of the ridge solution (ridge_init), repetition-averaged "
           "training, EMA 0.99, early stopping (patience 5), 15 epochs",
           _sim_demo(ridge_init=True, mix_repetitions=False, average_train=True, lr=3e-4, ema_decay=0.99,
                     patience=5, epochs=15)),
    Recipe("ridge-clip-final", "fit", "ridge encoder to the world CLIP's final image embedding of the simulation's "
           "images (final-layer target)", {"encoder": "ridge"}, targets="clip-final"),
    Recipe("ridge-clip-layers", "fit", "ridge encoder to the fused target of the world CLIP's final embedding and "
           "its three image-tower block outputs (multi-layer target; weights 1)",
           {"encoder": "ridge", "target_mode": "fused"}, targets="clip-layers"),
    Recipe("ridge-clip-layers-pixels", "fit", "ridge encoder to the fused target of the world CLIP's final "
           "embedding, its block outputs and pixel-level features (fused target; weights 1)",
           {"encoder": "ridge", "target_mode": "fused"}, targets="clip-layers-pixels"),
    # added after the first cells of the three above: their penalty, chosen by cross-validated top-1, sat at chance
    # level (top-1 ~ 1/n per fold), so the same targets with the penalty chosen by cross-validated R^2
    Recipe("ridge-clip-final-r2", "fit", "ridge-clip-final, penalty chosen by cross-validated R^2",
           {"encoder": "ridge", "encoder_options": {"scoring": "r2"}}, targets="clip-final"),
    Recipe("ridge-clip-layers-r2", "fit", "ridge-clip-layers, penalty chosen by cross-validated R^2",
           {"encoder": "ridge", "target_mode": "fused", "encoder_options": {"scoring": "r2"}}, targets="clip-layers"),
    Recipe("ridge-clip-layers-pixels-r2", "fit", "ridge-clip-layers-pixels, penalty chosen by cross-validated R^2",
           {"encoder": "ridge", "target_mode": "fused", "encoder_options": {"scoring": "r2"}},
           targets="clip-layers-pixels"),
    # added with the fused-target weights chosen per subject (FitConfig.target_weights="cv"): that choice is made on
    # the cross-validated pairwise accuracy, so its final-layer counterpart chooses its penalty the same way
    Recipe("ridge-clip-final-pw", "fit", "ridge-clip-final, penalty chosen by cross-validated pairwise accuracy",
           {"encoder": "ridge", "encoder_options": {"scoring": "pairwise"}}, targets="clip-final"),
    Recipe("ridge-clip-fused-cv", "fit", "ridge encoder to the fused target of the world CLIP's final embedding, "
           "its block outputs and pixel-level features, each extra target's weight (0, 0.25, 1 or 4) and the penalty "
           "chosen per subject by cross-validated pairwise accuracy over the training concepts",
           {"encoder": "ridge", "target_mode": "fused", "target_weights": "cv"}, targets="clip-layers-pixels"),
    # added with the world VAE's latents as a target (BrainHiVE's ViT + VAE fusion, on the simulator)
    Recipe("ridge-clip-vae-fused-cv", "fit", "ridge encoder to the fused target of the world CLIP's final embedding, "
           "pixel-level features and the world VAE's latent, the two extra weights (0, 0.25, 1 or 4) and the penalty "
           "chosen per subject by cross-validated pairwise accuracy over the training concepts",
           {"encoder": "ridge", "target_mode": "fused", "target_weights": "cv"}, targets="clip-final-pixels-vae"),
    Recipe("ridge-pixels", "fit", "ridge encoder to the pixel-level features alone (a check of how much pixel-level "
           "information the EEG carries)", {"encoder": "ridge"}, targets="pixels"),
)}


def list_recipes() -> list[str]:
    """The recipe names, in registry order."""
    return list(RECIPES)


def get_recipes(names: list[str] | None = None) -> list[Recipe]:
    """The recipes called ``names`` (all by default), in the order given; unknown names raise ``ValueError``."""
    if names is None:
        return list(RECIPES.values())
    return [RECIPES[n] for n in check_names("Recipe", names, RECIPES, "the benchmark's recipes")]
