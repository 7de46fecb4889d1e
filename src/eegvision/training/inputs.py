"""What a run trains on: its units (the protocol's folds) and its feature files.

Shared by :func:`eegvision.training.fitting.fit`, :mod:`eegvision.training.unit`,
:mod:`eegvision.training.run` and :mod:`eegvision.training.finetune`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegvision.checks import check_finite
from eegvision.store.concepts import ConceptTable
from eegvision.training.config import FitConfig
from eegvision.utils import release_mapped_pages

__all__ = ["check_eeg_finite", "check_inputs", "load_target_features", "load_training_features", "plan_units", "resolve_feature_paths"]

#: Values of EEG checked per step of :func:`check_eeg_finite` (bounds its memory to ~128 MB of float64).
_EEG_CHUNK_VALUES = 1 << 24


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
    tokens = config.multi_view_target is not None  # its module layer-normalises the tokens: any scale will do
    free = tokens or config.fusion_encoder is not None  # so does a fusion encoder's first Linear
    return load_features(path, expect_normalized=None if free else expect_normalized, expect_concepts=concepts,
                         tokens=tokens)


def load_target_features(config: FitConfig, cache_dir: Path, tables: dict[str, ConceptTable]) -> list[tuple[Any, Any]]:
    """``[(train, test)]`` :class:`~eegvision.features.files.Features` of each of ``config.targets``, in order,
    each split checked against the data's concept table and its row count against the primary's (by
    :func:`check_inputs` for the primary) — the caller checks the rows against the primary's."""
    from eegvision.features.fused import TargetSpec

    out = []
    for t in config.targets:
        spec = TargetSpec.from_value(t)
        pair = []
        for split, path in (("training", spec.train_path), ("test", spec.test_path)):
            if not path.is_file():
                raise FileNotFoundError(f"Target {spec.train}: its {split} feature file {path} does not exist. "
                                        "Give --target TRAIN_FILE[:WEIGHT] with its test file next to it (the "
                                        "same name with 'test' for the last 'train').")
            pair.append(load_training_features(config, path, cache_dir, None, tables[split]))
        out.append((pair[0], pair[1]))
    return out


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


def check_inputs(config: FitConfig, store: Any, units: list[dict[str, Any]], train_feats: Any,
                 test_feats: Any) -> None:
    """Refuse, before the first training step, inputs that would fail or mislead a run.

    Checks that the training and test feature files have one image row per condition of their split (for every
    subject trained or tested), the same embedding size (the encoder's output), the same normalisation, no NaN
    or infinite value, and that the EEG of every subject × split used holds no NaN or infinite sample
    (:func:`check_eeg_finite`).
    """
    train_subjects = sorted({s for u in units for s in u["train_subjects"]})
    test_subjects = sorted({s for u in units for s in u["test_subjects"]})
    for split, feats, subjects, flag in (("training", train_feats, train_subjects, "--features-train"),
                                         ("test", test_feats, test_subjects, "--features-test")):
        for subject in subjects:
            n = int(store.array(subject, split).shape[0])
            if len(feats) != n:
                raise ValueError(
                    f"The {split} features {feats.path} hold {len(feats)} image rows but {subject}'s {split} split "
                    f"in {config.data} has {n} conditions; row i must be the image of condition i. Pass {flag} "
                    f"with the features of that split's images (`eegvision features {split}_images OUT ...`).")
        where = f"feature file {feats.path}"
        hint = f"Re-extract the features (`eegvision features`) and pass them with {flag}."
        check_finite("The image features", feats.image.numpy(), where, hint)
        if feats.text is not None:
            check_finite("The text features", feats.text.numpy(), where, hint)
    if test_feats.dim != train_feats.dim:
        raise ValueError(
            f"The test features {test_feats.path} have size {test_feats.dim} but the training features "
            f"{train_feats.path} have size {train_feats.dim} (the encoder's output); pass --features-test made "
            "with the same CLIP model as the training features.")
    if config.multi_view_target is not None and not (train_feats.is_tokens and test_feats.is_tokens
                                                     and train_feats.token_layers == test_feats.token_layers):
        raise ValueError(
            f"multi_view_target computes each image's target from its patch tokens: --features-train and "
            f"--features-test must be token files of the same layers and grid (`eegvision features IMAGES OUT "
            f"--pooling tokens --layers ...`); got image features of shapes {tuple(train_feats.image.shape)} "
            f"({train_feats.path}) and {tuple(test_feats.image.shape)} ({test_feats.path}).")
    if test_feats.normalized != train_feats.normalized:
        state = {True: "L2-normalised", False: "raw (unnormalised)"}
        raise ValueError(
            f"The test features {test_feats.path} are {state[test_feats.normalized]} but the training features "
            f"{train_feats.path} are {state[train_feats.normalized]}; pass --features-test made the same way "
            "(`eegvision features ... --normalize` or `--no-normalize` for both).")
    for split, subjects in (("training", train_subjects), ("test", test_subjects)):
        for subject in subjects:
            check_eeg_finite(store, subject, split)


def check_eeg_finite(store: Any, subject: str, split: str) -> None:
    """Refuse EEG holding NaN or infinite samples, reading ``store.array(subject, split)`` in chunks of conditions.

    The array is read once, in place (memory maps stay on disk), about 16M values at a time; it costs one pass
    over the subject's data: a full THINGS-EEG2 training split (16540 × 4 × 63 × 250 float16 values, 2 GB) takes
    about 3 s from the page cache on a busy 2-core machine (measured on an eighth of it: 0.4 s), or one read at disk
    speed the first time (which also warms the cache training reads from).
    """
    eeg = store.array(subject, split)
    per_condition = max(1, int(np.prod(eeg.shape[1:])))
    step = max(1, _EEG_CHUNK_VALUES // per_condition)
    for start in range(0, eeg.shape[0], step):
        chunk = eeg[start:start + step]
        finite = chunk.dtype.kind not in "fc" or bool(np.isfinite(chunk).all())
        release_mapped_pages(chunk)  # a memory map's pages leave this process (they stay in the page cache)
        if not finite:
            stop = start + len(chunk) - 1
            check_finite(f"The EEG of {subject} ({split} split, conditions {start}-{stop})", chunk,
                         hint=f"The index is (condition - {start}, repetition, channel, time). A NaN in the EEG "
                              "trains to a NaN loss: repair or re-export the recording, or leave this subject out "
                              "with --subject.")
