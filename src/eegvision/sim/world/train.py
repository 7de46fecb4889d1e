"""``train_world_models``: the one command that reproduces the shipped world models.

It renders the world's training images (every attribute combination except the held-out concepts,
:func:`~eegvision.sim.world.data.training_concepts`), trains the world CLIP, the attribute classifier and the
generator (conditioned on the trained CLIP's image embeddings), measures each on the held-out ``demo``
test concepts and writes the weights, their configs and ``world.json`` (world version, seeds, steps,
sha256 of every file, measured quality) into one folder — the layout of
``eegvision/resources/world/``::

    eegvision world-train src/eegvision/resources/world --overwrite

The defaults are the settings of the shipped weights. Results are deterministic for a given seed and
number of CPU threads (floating-point reduction order can differ across machines and thread counts).
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eegvision.sim.world.classifier import (
    WorldClassifier,
    accuracy,
    attribute_match,
    train_classifier,
)
from eegvision.sim.world.clip_model import WorldCLIP, retrieval_top1, train_clip
from eegvision.sim.world.data import (
    IMAGE_SIZE,
    WORLD_SEED,
    WORLD_VERSION,
    WorldImages,
    demo_test_concepts,
    render_concepts,
    to_model_input,
    training_concepts,
)
from eegvision.sim.world.generator import WorldGenerator, train_generator, unet_config

#: Steps of the shipped weights (the defaults of :func:`train_world_models`).
SHIPPED_STEPS = {"clip": 6000, "classifier": 2500, "generator": 8000}
#: Training options of the shipped world CLIP (see :func:`~eegvision.sim.world.clip_model.train_clip`).
SHIPPED_CLIP = {"attribute_weight": 2.0, "patch_size": 4}
TRAIN_IMAGES_PER_CONCEPT = 8
TEST_IMAGES_PER_CONCEPT = 2
FILES = ("clip", "classifier", "generator")
#: Models listed in ``world.json`` when present (the VAE of the low-level path: ``eegvision world-train-vae``).
OPTIONAL_FILES = ("vae",)


@dataclass
class WorldData:
    train: WorldImages
    test: WorldImages


def world_data(seed: int = WORLD_SEED, n_train_images: int = TRAIN_IMAGES_PER_CONCEPT,
               n_test_images: int = TEST_IMAGES_PER_CONCEPT, n_train_concepts: int | None = None) -> WorldData:
    """Training images (training concepts) and evaluation images (the demo's 200 test concepts)."""
    concepts = training_concepts(seed)
    if n_train_concepts is not None:
        concepts = concepts[:: max(1, len(concepts) // n_train_concepts)][:n_train_concepts]
    return WorldData(render_concepts(concepts, n_train_images, seed, "rendering training images"),
                     render_concepts(demo_test_concepts(seed), n_test_images, seed + 1, "rendering test images"))


def evaluate_generator(generator: WorldGenerator, clip: WorldCLIP, classifier: WorldClassifier, test: WorldImages,
                       n: int = 200, steps: int = 20, guidance_scale: float = 2.0, seed: int = 0) -> dict[str, float]:
    """Attribute match of samples generated from the true world-CLIP embeddings of ``n`` test images.

    Also returns the two-way identification accuracy of the samples in world-CLIP space
    (``clip_2way``: how often a sample is closer to its own image than to another test image of a
    different concept) and sampling speed.
    """
    idx = np.linspace(0, len(test.images) - 1, min(n, len(test.images))).astype(int)
    emb = clip.embed_images(test.images[idx])
    t0 = time.perf_counter()
    samples = generator.generate(emb, steps=steps, guidance_scale=guidance_scale, seed=seed)
    wall = time.perf_counter() - t0
    labels = {a: v[idx] for a, v in test.labels.items()}
    out = attribute_match(classifier, samples, labels)
    se = clip.embed_images(samples)
    sim = (se @ emb.T).numpy()
    diff = test.concept_ids[idx][:, None] != test.concept_ids[idx][None, :]
    out["clip_2way"] = float(((np.diag(sim)[:, None] > sim) & diff).sum() / diff.sum())
    out["n_samples"] = len(idx)
    out["sample_steps"] = steps
    out["guidance_scale"] = guidance_scale
    out["samples_per_s"] = len(idx) / wall
    return out


def train_world_models(out: str | Path, seed: int = WORLD_SEED, clip_steps: int = SHIPPED_STEPS["clip"],
                       classifier_steps: int = SHIPPED_STEPS["classifier"],
                       generator_steps: int = SHIPPED_STEPS["generator"], n_train_concepts: int | None = None,
                       n_eval_samples: int = 200, device: str | None = None, overwrite: bool = False,
                       reuse: tuple[str, ...] = (), clip_attribute_weight: float = SHIPPED_CLIP["attribute_weight"],
                       clip_patch_size: int = SHIPPED_CLIP["patch_size"], generator_init: str | Path | None = None,
                       generator_snr_gamma: float | None = None, generator_cross_attention: bool = False) -> dict:
    """Train the world CLIP, attribute classifier and generator and write them with ``world.json``.

    Parameters
    ----------
    out
        Output folder (must not hold a ``world.json`` unless ``overwrite``).
    seed
        World draw and training seed (the shipped models use 0, the simulator's default).
    clip_steps, classifier_steps, generator_steps
        Optimisation steps of each model (defaults: the shipped weights).
    n_train_concepts
        Train on a subset of the training concepts (for quick tests); ``None``: all of them.
    n_eval_samples
        Generator samples used to measure attribute match.
    reuse
        Models to load from ``out`` instead of training (``"clip"``, ``"classifier"``), e.g. to retrain
        only the generator for longer on the CLIP already shipped. Their steps (and the CLIP's training
        options) in ``world.json`` are kept from the existing file.
    clip_attribute_weight, clip_patch_size
        World-CLIP training options: weight of the auxiliary attribute loss and ViT patch side
        (see :func:`~eegvision.sim.world.clip_model.train_clip`; defaults: the shipped CLIP).
    generator_init
        Folder whose ``generator.safetensors`` warm-starts the generator (every tensor whose name and shape match;
        its sha256 is recorded in ``world.json``).
    generator_snr_gamma
        Min-SNR-γ loss weighting of the generator (``None``: plain MSE, as before).
    generator_cross_attention
        Use the cross-attention layout of :func:`~eegvision.sim.world.generator.unet_config`.

    The generator's training state is checkpointed every 250 steps in ``OUT/.generator-partial``; running the same
    command again after an interruption resumes from there (and the folder is removed once the models are written).

    Returns
    -------
    dict
        The ``world.json`` content (including the measured quality under ``"quality"``).
    """
    from eegvision.utils import default_device, write_text_atomic

    out = Path(out)
    if (out / "world.json").exists() and not overwrite:
        raise FileExistsError(f"{out / 'world.json'} exists; choose another folder or pass --overwrite.")
    if clip_attribute_weight < 0 or clip_patch_size < 1 or IMAGE_SIZE % clip_patch_size:
        raise ValueError(f"clip_attribute_weight must be >= 0 and clip_patch_size must divide {IMAGE_SIZE}; got "
                         f"{clip_attribute_weight} and {clip_patch_size}.")
    if min(clip_steps, classifier_steps, generator_steps) < 1:
        raise ValueError(f"Step counts must be >= 1; got clip={clip_steps}, classifier={classifier_steps}, "
                         f"generator={generator_steps}.")
    unknown = set(reuse) - {"clip", "classifier"}
    if unknown:
        raise ValueError(f"reuse accepts 'clip' and 'classifier'; got {sorted(unknown)}.")
    old = json.loads((out / "world.json").read_text()) if reuse and (out / "world.json").exists() else None
    if reuse and old is None:
        raise FileNotFoundError(f"reuse={list(reuse)} needs the existing models in {out}, but {out / 'world.json'} "
                                f"does not exist; train everything once without reuse.")
    device = default_device(device)
    t0 = time.perf_counter()
    data = world_data(seed, n_train_concepts=n_train_concepts)
    walls: dict = {}
    steps = {"clip": clip_steps, "classifier": classifier_steps}
    clip_options = {"attribute_weight": float(clip_attribute_weight), "patch_size": int(clip_patch_size)}
    train_fns = {"clip": lambda **kw: train_clip(**kw, attribute_weight=clip_options["attribute_weight"],
                                                 config=_clip_config(clip_options["patch_size"])),
                 "classifier": train_classifier}
    models = {}
    for name, cls in (("clip", WorldCLIP), ("classifier", WorldClassifier)):
        t = time.perf_counter()
        if name in reuse:  # keep the existing model, its steps and its recorded training time
            models[name], steps[name] = cls.load(out, device=device), old["steps"][name]
            walls[f"{name}_train_s"] = old.get("training", {}).get(f"{name}_train_s")
            if name == "clip":
                # manifests written before clip_options existed describe the contrastive-only 8x8-patch CLIP
                clip_options = old.get("clip_options", {"attribute_weight": 0.0, "patch_size": 8})
        else:
            models[name] = train_fns[name](data=data.train, steps=steps[name], seed=seed, device=device)
            walls[f"{name}_train_s"] = time.perf_counter() - t
    clip, classifier = models["clip"], models["classifier"]
    clip_steps, classifier_steps = steps["clip"], steps["classifier"]
    t = time.perf_counter()
    emb = clip.embed_images(data.train.images)
    gen_options = {"cross_attention": bool(generator_cross_attention), "snr_gamma": generator_snr_gamma}
    if generator_init is not None:
        from eegvision.utils import sha256_file

        init_file = Path(generator_init) / "generator.safetensors"
        if not init_file.is_file():
            raise FileNotFoundError(f"generator_init={generator_init} has no generator.safetensors; pass a folder "
                                    "written by `eegvision world-train` (e.g. the shipped src/eegvision/resources/world).")
        gen_options["init_sha256"] = sha256_file(init_file)
    generator = train_generator(to_model_input(data.train.images), emb, steps=generator_steps, seed=seed,
                                device=device, checkpoint_every=250, checkpoint_dir=out / ".generator-partial",
                                config=unet_config(emb.shape[1], cross_attention=generator_cross_attention),
                                snr_gamma=generator_snr_gamma, init_from=generator_init)
    walls["generator_train_s"] = time.perf_counter() - t
    shutil.rmtree(out / ".generator-partial", ignore_errors=True)
    quality = measure_quality(clip, classifier, generator, data.test, n_eval_samples)
    out.mkdir(parents=True, exist_ok=True)
    for model in (clip, classifier, generator):
        model.save(out)
    meta = world_manifest(out, seed, {"clip": clip_steps, "classifier": classifier_steps,
                                      "generator": generator_steps}, n_train_concepts, quality,
                          {**walls, "total_s": time.perf_counter() - t0}, clip_options, gen_options)
    previous = json.loads((out / "world.json").read_text()) if (out / "world.json").is_file() else {}
    if "vae" in previous and "vae.safetensors" in meta["files"]:  # the VAE is trained apart: keep its record
        meta["vae"] = previous["vae"]
    write_text_atomic(out / "world.json", json.dumps(meta, indent=1) + "\n")
    return meta


def measure_quality(clip: WorldCLIP, classifier: WorldClassifier, generator: WorldGenerator, test: WorldImages,
                    n_eval_samples: int = 200) -> dict:
    """CLIP retrieval, classifier accuracy and generator attribute match on held-out test concepts."""
    n_con = len(test.concepts)
    return {
        "eval_set": f"{n_con} held-out demo test concepts x {len(test.images) // n_con} images (seed+1)",
        "clip_top1": retrieval_top1(clip, test), "clip_chance_top1": 1.0 / n_con,
        "classifier": accuracy(classifier, test),
        "generator": evaluate_generator(generator, clip, classifier, test, n=n_eval_samples),
    }


def _clip_config(patch_size: int) -> dict:
    from eegvision.sim.world.clip_model import WorldTokenizer, clip_config

    tok = WorldTokenizer()
    return clip_config(len(tok.vocab), tok.max_length, patch_size=patch_size)


def world_manifest(out: Path, seed: int, steps: dict, n_train_concepts: int | None, quality: dict,
                   walls: dict, clip_options: dict, generator_options: dict | None = None) -> dict:
    """The ``world.json`` content for the model files in ``out``."""
    from eegvision import __version__
    from eegvision.utils import sha256_file

    files = {}
    for name in FILES + OPTIONAL_FILES:
        for ext in ("safetensors", "json"):
            p = out / f"{name}.{ext}"
            if name in FILES or p.is_file():
                files[p.name] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    gen = dict(generator_options or {})
    extra = ""
    if gen.get("init_sha256"):
        extra += " --generator-init DIR"
    if gen.get("snr_gamma") is not None:
        extra += f" --generator-snr-gamma {gen['snr_gamma']:g}"
    if gen.get("cross_attention"):
        extra += " --generator-cross-attention"
    return {
        "world_version": WORLD_VERSION, "eegvision_version": __version__, "seed": seed, "image_size": IMAGE_SIZE,
        "steps": steps, "clip_options": clip_options, "generator_options": gen,
        "n_train_concepts": n_train_concepts or len(training_concepts(seed)),
        "train_images_per_concept": TRAIN_IMAGES_PER_CONCEPT, "files": files, "quality": quality,
        "training": {**walls, "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "machine": platform.machine()},
        "command": (f"eegvision world-train OUT --seed {seed} --clip-steps {steps['clip']} "
                    f"--classifier-steps {steps['classifier']} --generator-steps {steps['generator']}"
                    f" --clip-attribute-weight {clip_options['attribute_weight']:g}"
                    f" --clip-patch-size {clip_options['patch_size']}{extra}"),
    }
