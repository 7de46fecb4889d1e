"""Sub-command groups shared by several CLI modules (``eegvision convert ...``, ``eegvision prior ...``)."""

from __future__ import annotations

import typer

convert_app = typer.Typer(help="Convert datasets as users hold them into an eegvision store.", no_args_is_help=True)
preprocess_app = typer.Typer(help="Preprocess raw recordings (THINGS-EEG2 raw → 250 Hz epochs).", no_args_is_help=True)
prior_app = typer.Typer(help="Stage I diffusion prior: EEG embedding → CLIP image embedding.", no_args_is_help=True)
lowlevel_app = typer.Typer(help="Low-level path: EEG → VAE latent regressor (img2img init of reconstructions).",
                           no_args_is_help=True)
