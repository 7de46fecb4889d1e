"""What a run trains on: its units (the protocol's folds) and its feature files.

Shared by :func:`eegvision.training.fitting.fit`, :mod:`eegvision.training.unit`,
:mod:`eegvision.training.run` and :mod:`eegvision.training.finetune`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eegvision.store.concepts import ConceptTable
from eegvision.training.config import FitConfig

__all__ = ["load_training_features", "plan_units", "resolve_feature_paths"]


def resolve_feature_paths(config: FitConfig) -> dict[str, Path]:
    """``{"train": path, "test": path}``: the configured files, else ``DATA/features/{split}.safetensors``."""
    out = {}
    for split, given in (("train", config.features_train), ("test", config.features_test)):
        p = Path(given).expanduser() if given else Path(config.data) / "features" / f"{split}.safetensors"
        if not p.is_file():
            raise FileNotFoundError(
                f"{split} features not found at {p}. Pass --features-{split} FILE (an eegvision .safetensors "
                f"feature file, or an ATM-style .pt with --features-normalized/--no-features-normalized), or "
                f"extract them into DATA/features/{split}.safetensors with `eegvision features`.")
        out[split] = p
    return out


def load_training_features(config: FitConfig, path: Path, cache_dir: Path, expect_normalized: bool | None,
                           concepts: ConceptTable | None = None):
    """Load a feature file; an ATM-style ``.pt`` is first imported (into ``cache_dir``, the run's
    ``features/``) with the explicit normalisation flag. ``concepts`` (the data split's table) is checked against
    the table the file records, when it records one."""
    from eegvision.features.files import import_atm_features, load_features

    path = Path(path)
    if path.suffix.lower() in (".pt", ".pth"):
        if config.features_normalized is None:
            raise ValueError(f"{path} is an ATM-style .pt feature file: say whether to L2-normalise it with "
                             "--features-normalized (retrieval) or --no-features-normalized (raw, generation).")
        target = Path(cache_dir) / f"{path.stem}.{'normalized' if config.features_normalized else 'raw'}.safetensors"
        if not target.is_file():
            import_atm_features(path, target, normalize=bool(config.features_normalized))
        path = target
    return load_features(path, expect_normalized=expect_normalized, expect_concepts=concepts)


def plan_units(config: FitConfig, store_subjects: list[str]) -> list[dict[str, Any]]:
    """The units (folds) of a run: ``[{name, train_subjects, test_subjects}]``."""
    subjects = list(config.subjects)
    if not subjects and config.protocol != "loso":
        raise ValueError("No subject given: pass --subject sub-01 (several as sub-01,sub-02).")
    from eegvision.checks import check_names

    check_names("Subject", subjects + list(config.train_subjects), store_subjects, f"the data {config.data}")
    if config.protocol == "within":
        return [{"name": s, "train_subjects": [s], "test_subjects": [s]} for s in subjects]
    if config.protocol == "joint":
        return [{"name": "joint", "train_subjects": subjects, "test_subjects": subjects}]
    held_out = subjects or list(store_subjects)
    units = []
    for s in held_out:
        train = [t for t in (config.train_subjects or store_subjects) if t != s]
        if not train:
            raise ValueError(f"LOSO fold {s} has no training subject; the data holds only {store_subjects}.")
        units.append({"name": s, "train_subjects": train, "test_subjects": [s]})
    return units
