"""CLI: ``lowlevel fit`` (:func:`eegvision.training.lowlevel_fit.fit_lowlevel`)."""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.cli._apps import lowlevel_app
from eegvision.cli._common import JSON_HELP, number_list, print_json, stdout, user_errors


@lowlevel_app.command("fit")
def lowlevel_fit_cmd(
    data: Path = typer.Argument(..., help="Store or THINGS-EEG2 folder (its training images are the targets)."),
    vae: Path = typer.Option(..., help="Local diffusers AutoencoderKL folder, or a pipeline folder with vae/ "
                                       "(e.g. sdxl-turbo)."),
    out: Path = typer.Option(..., help="Output folder (regressor, lowlevel.json, latents/ cache)."),
    subject: str = typer.Option(None, help="Subject (default: the store's first)."),
    regressor: str = typer.Option("ridge", help="ridge (closed form, penalty by grouped CV) or neural (the "
                                                "reference's encoder_low_level)."),
    image_size: int = typer.Option(None, min=8, help="VAE input side in px (default: the VAE's sample_size; "
                                                     "ATM/SDXL: 512 → 4x64x64 latents)."),
    time_bin: int = typer.Option(1, min=1, help="Ridge: average the time course in blocks of this many samples."),
    alphas: str = typer.Option(None, help="Ridge: comma-separated penalties to try (default: a grid around "
                                          "the data's scale)."),
    folds: int = typer.Option(5, min=2, help="Ridge: grouped cross-validation folds."),
    epochs: int = typer.Option(200, min=1, help="Neural: epochs."),
    batch_size: int = typer.Option(30, min=2, help="Neural: batch size."),
    lr: float = typer.Option(1e-3, help="Neural: learning rate."),
    images: Path = typer.Option(None, help="Training image folder (default: the store's recorded images)."),
    test_images: Path = typer.Option(None, help="Test image folder (default: the store's recorded images)."),
    cache: Path = typer.Option(None, help="Latent cache folder (default OUT/latents)."),
    seed: int = typer.Option(0), device: str = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Fit the EEG → VAE-latent regressor of the low-level path on one subject's training data.

    Example: eegvision lowlevel fit store/ --vae weights/sdxl-turbo --image-size 512 --out runs/lowlevel-sub-01
    Use it: eegvision reconstruct RUN --generator weights/sdxl-turbo --low-level-run runs/lowlevel-sub-01 --out recon
    """
    with user_errors():
        from eegvision.generation.lowlevel import load_vae
        from eegvision.training.lowlevel_fit import LowLevelFitConfig, fit_lowlevel

        cfg = LowLevelFitConfig(subject=subject, regressor=regressor, image_size=image_size, time_bin=time_bin,
                                alphas=number_list(alphas, float, "--alphas") if alphas else None, n_splits=folds,
                                epochs=epochs, batch_size=batch_size, learning_rate=lr, seed=seed, device=device,
                                cache=str(cache) if cache else None)
        res = fit_lowlevel(data, load_vae(vae, device=device), out, cfg, images=images, test_images=test_images,
                           vae_path=str(vae))
    if as_json:
        print_json({"directory": res.directory, "subject": res.subject, "regressor": res.regressor,
                    "n_train": res.n_train, "latent_shape": res.latent_shape, "alpha": res.alpha, "cv": res.cv,
                    "test": res.test})
        return
    stdout.print(f"{res.subject}: {res.regressor} regressor EEG → latents {'x'.join(map(str, res.latent_shape))} "
                 f"fitted on {res.n_train} images, saved to {res.directory}")
    if res.alpha is not None:
        stdout.print(f"penalty {res.alpha:.3g} (grouped CV R² {res.cv['r2']:.3f})")
    if res.test:
        t = res.test
        stdout.print(f"test ({t['n_images']} images): latent correlation {t['latent_corr']:.3f} (shuffled pairs "
                     f"{t['latent_corr_shuffled']:.3f}); MSE {t['mse']:.4g} (mean latent {t['mse_mean_latent']:.4g})")


def register(app: typer.Typer) -> None:
    """Attach the ``lowlevel`` group."""
    app.add_typer(lowlevel_app, name="lowlevel")
