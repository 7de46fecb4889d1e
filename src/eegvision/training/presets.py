"""Named configurations that reproduce published table rows (``eegvision fit --preset NAME``).

Each preset fixes the protocol knobs of one row (encoder, protocol, trial averaging, channels,
batch size, optimiser, epochs) and records the published number and where it comes from, so a
result can be compared with the right reference. What a preset cannot fix is the image-feature
file: pass the features named in :attr:`Preset.features` (``eegvision features``; the presets of
:mod:`.presets_published` also give them as data, :attr:`Preset.targets`).

The presets of the post-ATM methods (:mod:`.presets_published`: ``ubp``, ``neurobridge``, ``samga``, ``svtl``, their
``-loso`` variants and ``brainhive``) list the training options their recipes need (:attr:`Preset.requires`); those
eegvision has are passed on (``ubp``'s blur prior, ``neurobridge``'s projectors and EEG smoothing, ``samga``'s learned
layer fusion, router and coarse MMD stage, ``svtl``'s multi-view target, projector, stages and MMD schedule), and for
the others :func:`preset_config` refuses the preset, naming the missing options, unless ``partial=True`` (``fit
--partial-preset``), which trains the rest of the recipe and records the run's
preset as ``"NAME[partial: without ...]"``. ``docs/presets.md`` describes each method and what only real data on a
GPU can confirm.

Important differences from the papers, by design:

* model selection is on a held-out *training-concept* validation split, never on the test set;
  the reference ATM numbers were selected as the maximum test accuracy over epochs
  (``atm.md`` §3.4, §6.1). The ATM presets therefore set ``report_test_curve`` so the labelled
  extra column ``best_epoch_on_test_top1`` can be compared with the paper;
* the temperature is exponentiated and clamped (the reference uses a raw logit scale; add
  ``reference=True``, ``eegvision fit --reference``, for the reference's whole training: encoder in reference
  mode, its ClipLoss, weight decay on every parameter);
* the ``atm-table8-*`` presets train with batch 1024, the batch of the paper's Table 8, also under
  ``--reference``; the reference script's own default is 64 (``--batch-size 64``).
"""

from __future__ import annotations

from typing import Any

from eegvision.training.config import FitConfig
from eegvision.training.preset_types import Preset, input_flag, unmet_requirements
from eegvision.training.presets_published import PUBLISHED_PRESETS

__all__ = ["Preset", "PRESETS", "get_preset", "list_presets", "preset_config", "unmet_requirements"]


_ATM_COMMON = {
    "encoder": "atms", "objective": "retrieval", "epochs": 40, "batch_size": 1024, "lr": 3e-4,
    "weight_decay": 0.01, "average_train": False, "channels": None, "report_test_curve": True,
}
_VIT_H = "OpenCLIP ViT-H-14 laion2b_s32b_b79k, final layer, L2-normalised (image and 'This picture is {concept}' text)"

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "atm-table8-within",
        "ATM-S, within-subject, single training trials, 63 channels, batch 1024 (the paper's Table 8; the reference "
        "script's default is 64, also kept at 1024 with --reference), AdamW 3e-4, 40 epochs.",
        _VIT_H,
        {"top1": 0.2613, "top1_std": 0.0815, "top5": 0.5532, "top5_std": 0.1057},
        "ATM NeurIPS 2024 camera-ready Table 8, ATM-S in-subject (arXiv v7: 0.2864 / 0.5847); "
        "The paper selected by max test accuracy over epochs.",
        {**_ATM_COMMON, "protocol": "within"},
    ),
    Preset(
        "atm-table8-loso",
        "ATM-S, leave-one-subject-out (fresh model per fold), single trials, 63 channels, batch 1024 (the paper's "
        "Table 8; the reference script's default is 64, also kept at 1024 with --reference), 40 epochs.",
        _VIT_H,
        {"top1": 0.0824, "top1_std": 0.0273, "top5": 0.2536, "top5_std": 0.0624},
        "ATM NeurIPS 2024 camera-ready Table 8, ATM-S cross-subject (arXiv v7: 0.1184 / 0.3373); "
        "atm.md §4.5, anchors.md §0 item 7 (early LOSO code leaked state between folds).",
        {**_ATM_COMMON, "protocol": "loso"},
    ),
    Preset(
        "nice",
        "NICE encoder under ATM's Table 8 protocol (within-subject, single trials, 63 channels, batch 1024).",
        _VIT_H,
        {"top1": 0.2152, "top1_std": 0.0590, "top5": 0.5157, "top5_std": 0.1097},
        "ATM NeurIPS 2024 Table 8, NICE in-subject re-run with ViT-H-14 (atm.md §4.5). The NICE paper itself "
        "reports 0.156 / 0.428 with averaged training repetitions, OpenAI ViT-L/14 and val-loss selection "
        "(anchors.md §1.1, atm.md §7).",
        {**_ATM_COMMON, "encoder": "nice", "protocol": "within"},
    ),
    Preset(
        "ubp-vanilla",
        "UBP 'vanilla' baseline: EEGProject, 17 occipito-parietal channels, averaged training repetitions, "
        "batch 1024, AdamW 1e-4, 50 epochs, no blur prior.",
        "OpenCLIP RN50 (openai), final layer, L2-normalised",
        {"top1": 0.421, "top5": 0.745},
        "UBP (CVPR 2025) Table 3 'vanilla' intra-subject (inter: 0.085 / 0.266); hyper-parameters from the UBP "
        "README exp.sh and main.py (AdamW weight decay 1e-4); anchors.md §0 items 1-2, §1.1, §3.",
        {"encoder": "eegproject", "protocol": "within", "objective": "retrieval", "epochs": 50, "batch_size": 1024,
         "lr": 1e-4, "weight_decay": 1e-4, "average_train": True, "channels": "occipito-parietal"},
        notes=("UBP scales its logits by softplus of a learnable parameter (initial value log(1/0.07), so a scale "
               "near 2.7) and L2-normalises only the image features; eegvision's temperature is exp-parameterised "
               "(scale 1/0.07 at the start) and both sides are normalised. See the 'ubp' preset, which lists both "
               "as requirements.",),
    ),
    Preset(
        "sim-demo",
        "Within-subject recipe for the simulator's demo preset (4000 training images x 4 repetitions): "
        "random mixtures of each image's repetitions (mix_repetitions), batch 128, AdamW 1e-3 with weight decay "
        "0.01, cosine schedule, 40 epochs, selection on 10 % held-out training concepts. Used by "
        "benchmarks/sim_encoders.py.",
        "The simulator's ATM-style feature files sim_features_{train,test}.pt (import with --features-normalized)",
        {},
        "No published number: compare with the simulation's own Bayes ceiling and ridge baseline "
        "(simulation.json ground_truth). Measured in benchmarks/results/sim_encoders.json.",
        {"encoder": "stconv", "protocol": "within", "objective": "retrieval", "epochs": 40, "batch_size": 128,
         "lr": 1e-3, "weight_decay": 0.01, "schedule": "cosine", "average_train": False, "mix_repetitions": True,
         "val_fraction": 0.1, "same_concept_positives": False},
    ),
)} | PUBLISHED_PRESETS


def list_presets() -> list[str]:
    """Names of the presets."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``ValueError`` with close matches otherwise)."""
    from eegvision.checks import check_name

    return PRESETS[check_name("Preset", name, PRESETS, "the training presets")]


def _requirement_text(option: str, settings: Any, why: str) -> str:
    """``option`` (with a scalar setting shown) and why it is not met, for the refusal message."""
    shown = f"={settings!r}" if isinstance(settings, (str, int, float, bool)) else ""
    return f"{option}{shown} ({why})"


def preset_config(name: str, *, partial: bool = False, **fields: Any) -> FitConfig:
    """A :class:`FitConfig` from preset ``name``; ``fields`` (data, subjects, ...) override it.

    Parameters
    ----------
    name : str
        A preset of :data:`PRESETS`.
    partial : bool
        Build the config even though some of the preset's ``requires`` are not eegvision options yet, or its
        ``inputs`` are not given: the run then trains *without* them and records the preset as
        ``"NAME[partial: without A, B]"``. Default: refuse.
    **fields
        :class:`FitConfig` fields that replace the preset's.

    Raises
    ------
    ValueError
        The preset needs training options that do not exist yet (their names, the paper's settings and how to go
        on are in the message), unless ``partial``; or one of its ``inputs`` (files only the user can make) is
        not in ``fields``.
    """
    preset = get_preset(name)
    unmet = unmet_requirements(preset)
    met = {k: v for k, v in preset.requires.items() if k not in unmet}
    missing = [k for k in preset.inputs if not fields.get(k)]
    label = name
    if unmet and not partial:
        listed = "; ".join(_requirement_text(k, preset.requires[k], why) for k, why in unmet.items())
        raise ValueError(
            f"Preset {name!r} needs training options that eegvision does not have yet: {listed}. Training it "
            f"without them would not be the paper's method (the settings: `eegvision presets --json`). Either "
            f"wait for those options, or train the rest of the recipe knowingly with `eegvision fit --preset "
            f"{name} --partial-preset` (library: preset_config({name!r}, partial=True)); the run is then "
            f"recorded as a partial preset.")
    if missing and not partial:
        listed = "; ".join(f"{k} ({preset.inputs[k]})" for k in missing)
        raise ValueError(f"Preset {name!r} trains on files only you can make: {listed}. Give "
                         + ", ".join(input_flag(k) for k in missing) + " (library: preset_config("
                         f"{name!r}, {', '.join(f'{k}=...' for k in missing)})), or train without them knowingly "
                         "with --partial-preset.")
    if unmet or missing:
        label = f"{name}[partial: without {', '.join([*unmet, *missing])}]"
    return FitConfig(**{**preset.overrides, **met, **fields, "preset": label})
