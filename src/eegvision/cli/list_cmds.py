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

    Each preset shows its published 200-way numbers and source, the paper's protocol, the image targets to
    extract and what it still requires: training options eegvision does not have yet (`fit --preset` refuses
    such a preset unless given --partial-preset). The simulator's sizes are separate: see `eegvision simulate
    --preset`.

    Example: eegvision presets
    """
    from eegvision.training.presets import PRESETS, unmet_requirements

    if as_json:
        print_json({name: {"description": p.description, "features": p.features, "reference": p.reference,
                           "source": p.source, "settings": p.overrides, "targets": p.targets,
                           "protocol": p.protocol, "requires": p.requires, "inputs": p.inputs,
                           "unmet_requirements": unmet_requirements(p), "notes": list(p.notes)}
                    for name, p in PRESETS.items()})
        return
    for name, p in PRESETS.items():
        stdout.print(f"[bold]{name}[/bold]  {p.description}", highlight=False)
        for line in _preset_lines(p, unmet_requirements(p)):
            stdout.print(f"    {line}", highlight=False)


def _preset_lines(p, unmet: dict) -> list[str]:
    """The indented lines under a preset's name: published numbers, protocol, targets, requirements."""
    from eegvision.training.preset_types import input_flag

    lines = []
    if "top1" in p.reference:
        protocol = {"within": "within-subject", "loso": "leave-one-subject-out", "joint": "joint"}.get(
            p.overrides.get("protocol", "within"), "")
        top5 = f", top-5 {p.reference['top5']:.3f}" if "top5" in p.reference else ""
        lines.append(f"published 200-way top-1 {p.reference['top1']:.3f}{top5}, {protocol} "
                     f"({p.source.split(';')[0].rstrip('.')})")
    if p.protocol:
        pr = p.protocol
        averaging = "averaged" if pr.get("average_train") else "single"
        lines.append(f"protocol: {pr.get('n_channels', '?')} channels ({pr.get('channels')}), {averaging} training "
                     f"trials; the paper selects by: {pr.get('selection', 'not stated')}")
    if p.targets:
        t = p.targets
        layers = ",".join(str(v) for v in t.get("layers", []))
        prior = t.get("prior")
        prior_text = f", image prior {prior['name']}" if isinstance(prior, dict) else ""
        lines.append(f"targets: {t.get('backbone')} ({t.get('pretrained')}), layers {layers}{prior_text}")
    for k, how in p.inputs.items():
        lines.append(f"needs your files: {input_flag(k)} {how}")
    if unmet:
        shown = [f"{k}={p.requires[k]!r}" if isinstance(p.requires[k], (str, int, float, bool)) else k for k in unmet]
        lines.append("requires (not in eegvision yet; fit refuses without --partial-preset): " + ", ".join(shown))
    return lines


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
    app.command("models")(models_cmd)
    app.command("presets")(presets_cmd)
