"""A simulated THINGS-like dataset with known ground truth.

* :mod:`.world` — concepts of attributes, images rendered from them, captions, latent factors.
* :mod:`.embedding` — the stand-in "CLIP-like" image/text features of the world.
* :mod:`.forward` — the neural forward model (ERP components, montage patterns, 1/f + alpha noise,
  jitter, subjects; EEG and MEG-shaped layouts; viewing and imagination paradigms).
* :mod:`.writers` — the real on-disk layouts (THINGS-EEG2 pickles, images, ATM feature files).
* :mod:`.ceiling` — the Bayes decoder that knows the model and a ridge baseline.
* :mod:`.presets`, :mod:`.pipeline` — ``simulate(out, preset=..., family=...)``.
* :mod:`.families` — simulator families (``docs/families.md``): several forward and noise models, each with a
  known-model decoder; ``simulate(out, family="ar1-noise")``.
"""

from eegvision.sim.ceiling import bayes_ceiling, bayes_scores, ridge_retrieval, topk_from_scores
from eegvision.sim.embedding import RandomFeatureMap
from eegvision.sim.families import get_family, list_families
from eegvision.sim.forward import (
    EEG_COMPONENTS,
    PARADIGMS,
    ForwardModel,
    ForwardParams,
    Layout,
    SubjectModel,
    eeg_layout,
    meg_layout,
)
from eegvision.sim.pipeline import SimulationResult, simulate
from eegvision.sim.presets import PRESETS, Preset, get_preset
from eegvision.sim.scene import LATENT_DIM, Concept, ImageSpec, World, make_world, render_image

__all__ = [
    "EEG_COMPONENTS", "LATENT_DIM", "PARADIGMS", "PRESETS", "Concept", "ForwardModel", "ForwardParams",
    "ImageSpec", "Layout", "Preset", "RandomFeatureMap", "SimulationResult", "SubjectModel", "World",
    "bayes_ceiling", "bayes_scores", "eeg_layout", "get_family", "get_preset", "list_families", "make_world",
    "meg_layout", "render_image", "ridge_retrieval", "simulate", "topk_from_scores",
]
