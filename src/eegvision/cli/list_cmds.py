"""CLI commands: ``models`` (the encoders ``fit --encoder`` takes) and ``presets`` (the configs of ``fit --preset``)."""

from __future__ import annotations

import typer

from eegvision.cli._common import JSON_HELP, print_json, stdout


def models_cmd(
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the encoders `eegvision fit --encoder NAME` takes, one line each.

    Example: eegvision models
    """
    from eegvision.models.registry import model_descriptions

    described = model_descriptions()
    if as_json:
        print_json(described)
        return
    own = {n: d for n, d in described.items() if ":" not in n}
    variants = [n.partition(":")[2] for n in described if ":" in n]
    width = max(len(n) for n in own)
    for name, text in own.items():
        stdout.print(f"{name:<{width}}  {text}", highlight=False)
    if variants:
        stdout.print(f"\nbraindecode:CLASS, a braindecode model with an embedding head ({len(variants)}): "
                     + ", ".join(variants), highlight=False)


def presets_cmd(
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the named configurations of `eegvision fit --preset NAME` and the published result each targets.

    The simulator's sizes are separate: see `eegvision simulate --preset`.

    Example: eegvision presets
    """
    from eegvision.training.presets import PRESETS

    if as_json:
        print_json({name: {"description": p.description, "features": p.features, "reference": p.reference,
                           "source": p.source, "settings": p.overrides} for name, p in PRESETS.items()})
        return
    for name, p in PRESETS.items():
        published = f"published 200-way top-1 {p.reference['top1']:.3f}" if "top1" in p.reference else ""
        stdout.print(f"[bold]{name}[/bold]  {p.description}", highlight=False)
        if published:
            stdout.print(f"    {published} ({p.source.split(';')[0].rstrip('.')})", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
    app.command("models")(models_cmd)
    app.command("presets")(presets_cmd)
