"""CLI commands: ``features`` (features of an image folder: CLIP, or any layer of any local backbone) and ``import-features`` (ATM ``.pt`` caches)."""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.cli._common import stdout, user_errors


def _uses_targets(backend: str, pretrained: str, layers: str | None, pooling: str | None, prior: str) -> bool:
    """Whether the request needs the any-layer path (features/targets.py) rather than the CLIP path (vision.py)."""
    if layers or prior != "none" or backend not in ("open_clip", "transformers") or pooling not in (None, "cls", "mean"):
        return True
    if backend == "transformers":
        from eegvision.features.backbones import transformers_model_type

        return transformers_model_type(pretrained) not in (None, "clip")
    return False


def features(
    images: Path = typer.Argument(..., help="Image folder in THINGS layout (concept sub-folders)."),
    out: Path = typer.Argument(..., help="Output feature file (.safetensors); a folder when several files result "
                                         "(several --layers, or --prior blur)."),
    model: str = typer.Option("ViT-H-14", "--model", help="open_clip or timm architecture (ViT-H-14, RN50, ...); "
                                                         "a label for transformers and vae."),
    pretrained: str = typer.Option(..., "--pretrained", help="Local weights: checkpoint file or model folder."),
    backend: str = typer.Option("open_clip", "--backend",
                                help="open_clip, transformers (CLIP, SigLIP, DINOv2), timm, or vae (AutoencoderKL)."),
    layer: int | None = typer.Option(None, "--layer", help="Intermediate block (1-based, negative from the end)."),
    layers: str | None = typer.Option(
        None, "--layers", help="Comma list of layers, one file each: final, block numbers (1-based, negative from "
                               "the end) or depth fractions such as 2/3. Example: --layers 2/3,-1,final"),
    pooling: str | None = typer.Option(
        None, "--pooling", help="Token pooling: cls, mean, cls+mean (DINOv2 probe), map (SigLIP head, last block); "
                                "one for all or a comma list per layer. Default: the model's (cls; mean for SigLIP "
                                "and CNNs). tokens: no pooling, the patch tokens of all --layers in one token file "
                                "(for fit --multi-view)."),
    token_grid: int = typer.Option(0, "--token-grid", min=0, help="--pooling tokens: average-pool each layer's "
                                   "patch grid to G x G tokens (0: all; full THINGS token files need e.g. 2 or 4 "
                                   "to fit in memory)."),
    prior: str = typer.Option("none", "--prior", help="Image prior: none, blur (UBP fovea blur; one file per level "
                                                     "low/medium/high) or cpa (NeuroBridge, 4 degraded views averaged)."),
    prior_size: int = typer.Option(224, "--prior-size", min=0, help="Resize images to N x N before the prior."),
    blur_kernel: int = typer.Option(51, "--blur-kernel", help="UBP Gaussian kernel (odd) of the medium level."),
    blur_shift: int = typer.Option(6, "--blur-shift", help="UBP: low/high levels use kernel -/+ this."),
    blur_levels: str = typer.Option("low,medium,high", "--blur-levels", help="Blur levels to extract."),
    fovea: bool = typer.Option(True, "--fovea/--uniform-blur", help="UBP fovea blending or uniform blur."),
    system_g: float = typer.Option(3.0, "--system-g", help="UBP fovea fall-off."),
    cpa_kernel: int = typer.Option(15, "--cpa-kernel", help="CPA Gaussian blur kernel (odd)."),
    cpa_noise_std: float = typer.Option(25.0, "--cpa-noise-std", help="CPA Gaussian noise std (grey levels)."),
    cpa_scale: float = typer.Option(0.1, "--cpa-scale", help="CPA low-resolution factor."),
    cpa_mosaic: int = typer.Option(5, "--cpa-mosaic", help="CPA mosaic block size (pixels)."),
    cpa_repeats: int = typer.Option(1, "--cpa-repeats", min=1, help="CPA noisy repeats averaged."),
    seed: int = typer.Option(0, "--seed", help="Seed of the CPA noise."),
    vae_size: int = typer.Option(256, "--vae-size", help="VAE input size (pixels)."),
    vae_pool: int = typer.Option(0, "--vae-pool", min=0, help="Average-pool the VAE latent to N x N (0: whole)."),
    vae_scale: bool = typer.Option(False, "--vae-scale/--no-vae-scale", help="Multiply latents by the VAE's "
                                                                             "scaling_factor."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: str | None = typer.Option(None, "--device", help="cuda or cpu (default: cuda if available)."),
    normalize: bool = typer.Option(True, "--normalize/--no-normalize",
                                   help="L2-normalise image rows (retrieval) or keep raw (generation prior)."),
    text: bool = typer.Option(True, "--text/--no-text", help="Also embed one prompt per concept (CLIP path only)."),
    prompt_template: str = typer.Option("This picture is {concept}", "--prompt-template"),
    split: str | None = typer.Option(None, "--split", help="Split name stored in the metadata."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists (recompute cached files)."),
) -> None:
    """Embed every image of a folder (validation transform, no random crop) into feature files.

    Examples: eegvision features test_images feats.safetensors --pretrained vith14.bin;
    eegvision features test_images targets/ --backend transformers --pretrained dinov2-giant/ --layers 2/3,final
    """
    from eegvision.cli._common import split_list

    with user_errors():
        if layer is not None and layers:
            raise ValueError("give either --layer N (one CLIP block) or --layers LIST, not both")
        if pooling == "tokens":
            from eegvision.features.tokens import extract_tokens

            if prior != "none":
                raise ValueError("--pooling tokens takes no --prior (token files are made of the images themselves)")
            chosen = split_list(layers) or ([str(layer)] if layer is not None else [])
            got = extract_tokens(images, out, backend=backend, weights=pretrained,
                                 model="" if backend != "open_clip" and model == "ViT-H-14" else model, layers=chosen,
                                 token_grid=token_grid, normalize=normalize, batch_size=batch_size, device=device,
                                 split=split, force=force)
            stdout.print(f"{'cached' if got.cached else 'wrote'} {got.path}")
            return
        if token_grid:
            raise ValueError("--token-grid applies to --pooling tokens only")
        if _uses_targets(backend, pretrained, layers, pooling, prior):
            from eegvision.features.image_priors import ImagePrior
            from eegvision.features.targets import extract_targets

            image_prior = ImagePrior(prior, size=prior_size, blur_kernel=blur_kernel, blur_shift=blur_shift,
                                     blur_levels=tuple(split_list(blur_levels) or ()), fovea=fovea,
                                     system_g=system_g, cpa_kernel=cpa_kernel, cpa_noise_std=cpa_noise_std,
                                     cpa_scale=cpa_scale, cpa_mosaic=cpa_mosaic, cpa_repeats=cpa_repeats, seed=seed)
            chosen = split_list(layers) or ([str(layer)] if layer is not None else ["final"])
            pools = split_list(pooling)
            result = extract_targets(images, out, backend=backend, weights=pretrained,
                                     model="" if backend != "open_clip" and model == "ViT-H-14" else model,
                                     layers=chosen, pooling=pools, prior=image_prior, normalize=normalize,
                                     batch_size=batch_size, device=device, split=split, force=force,
                                     vae_size=vae_size, vae_pool=vae_pool, vae_scale=vae_scale)
            for f in result.files:
                stdout.print(f"{'cached' if f.cached else 'wrote'} {f.path}")
            return
        if out.exists() and not force:
            raise FileExistsError(f"{out} exists; pass --force to overwrite it or choose another name")
        from eegvision.features.vision import extract_features

        path = extract_features(images, out, model=model, pretrained=pretrained, backend=backend, layer=layer,
                                pooling=pooling or "cls", batch_size=batch_size, device=device, normalize=normalize,
                                text=text, prompt_template=prompt_template, split=split)
    stdout.print(f"wrote {path}")


def import_features(
    atm_file: Path = typer.Argument(..., help="ATM cache (.pt): {'img_features', 'text_features'} or a tensor."),
    out: Path = typer.Argument(..., help="Output feature file (.safetensors)."),
    normalize: bool = typer.Option(..., "--normalize/--no-normalize",
                                   help="Required: normalise rows (retrieval) or keep them raw (generation)."),
    model: str = typer.Option(None, "--model", help="Model that produced the features (metadata; default: the "
                                                   "MODEL of an ATM name MODEL_features_SPLIT.pt, else unknown)."),
    pretrained: str = typer.Option(None, "--pretrained", help="Weights tag (metadata; default: unknown)."),
    split: str | None = typer.Option(None, "--split", help="Split (default: guessed from the file name)."),
    concepts: Path | None = typer.Option(
        None, "--concepts", help="Concept table of that split, recorded in OUT: the store or THINGS-EEG2 folder, "
                                 "or a .tsv/.csv/.json table (concept_index, 0-based, and concept)."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
) -> None:
    """Convert an ATM-style feature cache into an eegvision feature file (safetensors + metadata).

    Example: eegvision import-features ViT-H-14_features_test.pt test_features.safetensors --normalize --concepts store/
    """
    from eegvision.cli._concepts import read_concepts_option
    from eegvision.features.files import import_atm_features, load_features, split_from_name

    with user_errors():
        if out.exists() and not force:
            raise FileExistsError(f"{out} exists; pass --force to overwrite it or choose another name")
        table = None
        if concepts is not None:
            which = {"train": "training", "val": "validation"}.get(split, split) if split else split_from_name(atm_file)
            if not which:
                raise ValueError(f"Cannot tell the split of {atm_file.name} from its name; pass --split training or "
                                 "--split test with --concepts.")
            table = read_concepts_option(concepts, which)
        path = import_atm_features(atm_file, out, normalize=normalize, model=model, pretrained=pretrained,
                                   split=split, concepts=table)
        feats = load_features(path)
    text = f", text {tuple(feats.text.shape)}" if feats.text is not None else ""
    stdout.print(f"wrote {path}: image {tuple(feats.image.shape)}{text}, normalized={feats.normalized}")


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
    app.command("features")(features)
    app.command("import-features")(import_features)
