"""The built-in world's trained models: a small CLIP, an attribute classifier and a conditional generator.

* :mod:`.data` — the images and captions they are trained on (held-out concepts = the simulator's test concepts).
* :mod:`.clip_model` — :class:`WorldCLIP` (transformers ``CLIPModel``), ``embed_images`` / ``embed_texts``.
* :mod:`.classifier` — :class:`WorldClassifier` and :func:`attribute_match` for scoring reconstructions.
* :mod:`.generator` — :class:`WorldGenerator` (diffusers ``UNet2DConditionModel`` + DDIM) from CLIP image embeddings.
* :mod:`.train` — :func:`train_world_models`, the command that reproduces the shipped weights.
* :mod:`.assets` — :func:`load_world_models` (verified against ``world.json``).
"""

from eegvision.sim.world.assets import (
    SHIPPED_DIR,
    WorldModels,
    attribute_match,
    classify,
    embed_images,
    embed_texts,
    load_world_models,
    shipped_world_models,
    verify_world_dir,
)
from eegvision.sim.world.classifier import WorldClassifier, train_classifier
from eegvision.sim.world.clip_model import WorldCLIP, WorldTokenizer, train_clip
from eegvision.sim.world.data import (
    ATTRIBUTES,
    IMAGE_SIZE,
    WORLD_SEED,
    WORLD_VERSION,
    demo_test_concepts,
    held_out_concepts,
    to_model_input,
    training_concepts,
)
from eegvision.sim.world.generator import WorldGenerator, to_uint8, train_generator
from eegvision.sim.world.train import train_world_models

__all__ = [
    "ATTRIBUTES", "IMAGE_SIZE", "SHIPPED_DIR", "WORLD_SEED", "WORLD_VERSION", "WorldCLIP", "WorldClassifier",
    "WorldGenerator", "WorldModels", "WorldTokenizer", "attribute_match", "classify", "demo_test_concepts",
    "embed_images", "embed_texts", "held_out_concepts", "load_world_models", "shipped_world_models", "to_model_input",
    "to_uint8", "train_classifier", "train_clip", "train_generator", "train_world_models", "training_concepts",
    "verify_world_dir",
]
