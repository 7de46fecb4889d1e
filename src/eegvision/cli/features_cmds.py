"""CLI commands: ``features`` (CLIP features of an image folder) and ``import-features`` (ATM ``.pt`` caches)."""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.cli._common import stdout, user_errors


def features(
    images: Path = typer.Argument(..., help="Image folder in THINGS layout (concept sub-folders)."),
    out: Path = typer.Argument(..., help="Output feature file (.safetensors)."),
    model: str = typer.Option("ViT-H-14", "--model", help="open_clip architecture (ViT-H-14, RN50, ...)."),
    pretrained: str = typer.Option(..., "--pretrained", help="Local weights: checkpoint file or model folder."),
    backend: str = typer.Option("open_clip", "--backend", help="open_clip or transformers."),
    layer: int | None = typer.Option(None, "--layer", help="Intermediate block (1-based, negative from the end)."),
    pooling: str = typer.Option("cls", "--pooling", help="Token pooling for --layer: cls or mean."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: str | None = typer.Option(None, "--device", help="cuda or cpu (default: cuda if available)."),
    normalize: bool = typer.Option(True, "--normalize/--no-normalize",
                                   help="L2-normalise image rows (retrieval) or keep raw (generation prior)."),
    text: bool = typer.Option(True, "--text/--no-text", help="Also embed one prompt per concept."),
    prompt_template: str = typer.Option("This picture is {concept}", "--prompt-template"),
    split: str | None = typer.Option(None, "--split", help="Split name stored in the metadata."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
) -> None:
    """Embed every image of a folder with CLIP (validation transform, no random crop) into a feature file.

    Example: eegvision features test_images feats.safetensors --pretrained vith14.bin
    """
    from eegvision.features.vision import extract_features

    with user_errors():
        if out.exists() and not force:
            raise FileExistsError(f"{out} exists; pass --force to overwrite it or choose another name")
        path = extract_features(images, out, model=model, pretrained=pretrained, backend=backend, layer=layer,
                                pooling=pooling, batch_size=batch_size, device=device, normalize=normalize,
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
