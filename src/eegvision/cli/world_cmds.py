"""CLI commands: world-train (:func:`eegvision.sim.world.train_world_models`), world-train-vae
(:func:`eegvision.sim.world.vae.train_world_vae_into`) and world-features
(:func:`eegvision.sim.world.features.rewrite_simulation_features`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from eegvision.cli._common import stdout, user_errors


def world_train_cmd(
    out: Path = typer.Argument(..., help="Output folder for the weights, configs and world.json."),
    seed: int = typer.Option(0, "--seed", help="World draw and training seed (shipped: 0)."),
    clip_steps: int = typer.Option(None, "--clip-steps", help="World-CLIP steps (default: the shipped value)."),
    classifier_steps: int = typer.Option(None, "--classifier-steps", help="Classifier steps (default: shipped)."),
    generator_steps: int = typer.Option(None, "--generator-steps", help="Generator steps (default: shipped)."),
    steps: int = typer.Option(None, "--steps", help="Use this many steps for all three models (quick runs)."),
    device: str = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing world.json in OUT."),
    reuse: list[str] = typer.Option([], "--reuse", help="Load this model from OUT instead of training it "
                                    "(clip, classifier; repeatable)."),
    clip_attribute_weight: float = typer.Option(None, "--clip-attribute-weight", min=0.0,
                                                help="Weight of the world CLIP's auxiliary attribute loss "
                                                     "(default: the shipped value)."),
    clip_patch_size: int = typer.Option(None, "--clip-patch-size", min=1,
                                        help="ViT patch side of the world CLIP (default: the shipped value)."),
    generator_init: Path = typer.Option(None, "--generator-init",
                                        help="Warm-start the generator from this folder's generator.safetensors."),
    generator_snr_gamma: float = typer.Option(None, "--generator-snr-gamma", min=0.0,
                                              help="Min-SNR-gamma loss weighting of the generator (e.g. 5)."),
    generator_cross_attention: bool = typer.Option(False, "--generator-cross-attention",
                                                   help="Generator layout with cross-attention on 32 embedding "
                                                        "tokens."),
) -> None:
    """Train the world's CLIP, attribute classifier and generator; this reproduces the shipped weights.

    Example: eegvision world-train src/eegvision/resources/world --overwrite
    Retrain only the generator on the shipped CLIP and classifier:
    eegvision world-train src/eegvision/resources/world --overwrite --reuse clip --reuse classifier
    An interrupted run resumes from OUT/.generator-partial when the same command is run again.
    """
    from eegvision.sim.world.train import SHIPPED_CLIP, SHIPPED_STEPS, train_world_models

    def pick(value: int | None, name: str) -> int:
        return value if value is not None else (steps if steps is not None else SHIPPED_STEPS[name])

    with user_errors():
        meta = train_world_models(out, seed=seed, clip_steps=pick(clip_steps, "clip"),
                                  classifier_steps=pick(classifier_steps, "classifier"),
                                  generator_steps=pick(generator_steps, "generator"), device=device,
                                  overwrite=overwrite, reuse=tuple(reuse),
                                  clip_attribute_weight=(SHIPPED_CLIP["attribute_weight"] if clip_attribute_weight
                                                         is None else clip_attribute_weight),
                                  clip_patch_size=SHIPPED_CLIP["patch_size"] if clip_patch_size is None
                                  else clip_patch_size, generator_init=generator_init,
                                  generator_snr_gamma=generator_snr_gamma,
                                  generator_cross_attention=generator_cross_attention)
    q = meta["quality"]
    stdout.print(f"world models written to {out}")
    stdout.print(f"world-CLIP test top-1 {q['clip_top1']:.3f} (chance {q['clip_chance_top1']:.3f}); "
                  f"classifier {json.dumps({k: round(v, 3) for k, v in q['classifier'].items()})}; "
                  f"generator colour {q['generator']['colour']:.3f}, shape {q['generator']['shape']:.3f}")


def world_features_cmd(
    sim: Path = typer.Argument(..., help="A folder written by `eegvision simulate`."),
    models: Path = typer.Option(None, "--models", help="World-model folder (default: the shipped models)."),
) -> None:
    """Replace a simulated folder's sim_features_{train,test}.pt with world-CLIP embeddings of its images.

    Example: eegvision world-features sim-data
    """
    from eegvision.sim.world.assets import load_world_models
    from eegvision.sim.world.features import rewrite_simulation_features

    with user_errors():
        paths = rewrite_simulation_features(sim, load_world_models(models) if models else None)
    for p in paths:
        stdout.print(f"wrote {p}")


def world_train_vae_cmd(
    out: Path = typer.Argument(..., help="World folder with world.json (e.g. src/eegvision/resources/world)."),
    steps: int = typer.Option(None, "--steps", min=1, help="Training steps (default: the shipped value, 2000)."),
    seed: int = typer.Option(None, "--seed", help="Training seed (default: the world's seed)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/.vae-partial (written every 250 steps)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a VAE already listed in world.json."),
) -> None:
    """Train the world's small VAE (low-level path) on the world's images and list it in OUT/world.json.

    Example: eegvision world-train-vae src/eegvision/resources/world --overwrite
    """
    from eegvision.sim.world.vae import SHIPPED_VAE_STEPS, train_world_vae_into

    with user_errors():
        entry = train_world_vae_into(out, steps=steps or SHIPPED_VAE_STEPS, seed=seed, resume=resume,
                                     overwrite=overwrite)
    q = entry["quality"]
    stdout.print(f"world VAE written to {out} (latents {'x'.join(map(str, entry['latent_shape']))}); held-out "
                 f"reconstruction PixCorr {q['pixcorr']:.3f}, SSIM {q['ssim']:.3f}")


def register(app: typer.Typer) -> None:
    app.command("world-train")(world_train_cmd)
    app.command("world-train-vae")(world_train_vae_cmd)
    app.command("world-features")(world_features_cmd)
