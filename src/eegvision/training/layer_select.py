"""Choose a target layer per subject on held-out *training* concepts (never the test set).

Given candidate feature files (e.g. the layers of one vision model, each a standard feature file), the closed-form
ridge encoder is solved per subject towards each candidate and scored by its grouped cross-validation over the
training concepts (:func:`eegvision.evaluation.ridge_cv.ridge_cv`: every fold holds out whole concepts, as the
test does; the score is the held-out folds' top-1 at the best penalty). The candidate with the highest score is
chosen (ties: the earlier candidate). Only the training split's EEG and features are read.

Cross-validated top-1 is comparable across candidates because every candidate is scored by retrieval among the
same held-out training images, each in its own space; it is a cheap, linear proxy for how well an encoder can
reach that layer from the subject's EEG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eegvision.training.config import FitConfig

__all__ = ["LayerChoice", "select_layers", "select_target_weights"]


@dataclass
class LayerChoice:
    """The choice for one subject: ``chosen`` (a candidate path), every candidate's cross-validated ``scores``
    (``scoring`` of the ridge, top-1 by default) and penalties, in candidate order."""

    subject: str
    chosen: str
    scores: dict[str, float]
    alphas: dict[str, float]
    scoring: str = "top1"
    rule: str = field(default="grouped CV over training concepts (held out whole); highest score, ties: first")

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "chosen": self.chosen, "scores": self.scores, "alphas": self.alphas,
                "scoring": self.scoring, "rule": self.rule}


def select_layers(config: FitConfig, candidates: list[str], ridge_options: dict[str, Any] | None = None
                  ) -> list[LayerChoice]:
    """For each subject of ``config.subjects`` (its data, channels and window; ``within`` protocol), the best of
    ``candidates`` (training feature files, one row per training condition) by the ridge encoder's grouped
    cross-validated top-1 (module docstring). ``ridge_options`` go to the ridge encoder (``decim``, ``alphas``,
    ``cv``, ``scoring``)."""
    from eegvision.data import sources
    from eegvision.training.closed_form import solve_linear
    from eegvision.training.inputs import load_training_features

    if not candidates:
        raise ValueError("select_layers needs at least one candidate feature file (one per layer).")
    if not config.subjects:
        raise ValueError("select_layers chooses per subject: give config.subjects (e.g. ['sub-01']).")
    store = sources.open_data(config.data)
    table = store.concept_table("training")
    cfg = config.replace(encoder="ridge", targets=[], target_mode="heads", target_dim=None, target_weights="fixed",
                         ridge_init=False,
                         ridge_options={}, encoder_options={}, ensemble=1, mix_repetitions=False, time_shift=0,
                         amplitude_scale=0.0, channel_dropout=0.0, noise=0.0)
    feats = {c: load_training_features(cfg, Path(c), Path(c).parent, None, table) for c in candidates}
    out = []
    for subject in config.subjects:
        unit = {"name": subject, "train_subjects": [subject], "test_subjects": [subject]}
        scores, alphas, scoring = {}, {}, "top1"
        for c in candidates:
            _, res, _, _ = solve_linear(cfg, store, unit, feats[c], options=dict(ridge_options or {}))
            scoring = res.scoring
            scores[c], alphas[c] = float(res.best[res.scoring]), float(res.alpha)
        best = max(candidates, key=lambda c: (scores[c], -candidates.index(c)))
        out.append(LayerChoice(subject, best, scores, alphas, scoring))
    return out


def select_target_weights(config: FitConfig, store: Any, unit: dict, primary: Any, extras: list[Any]) -> Any:
    """The fused target's weights for ``unit`` (one subject): the weight of each of ``extras`` (training
    :class:`~eegvision.features.files.Features`, one row per training condition, as ``primary``) from
    ``config.target_weight_grid`` and the ridge penalty, by
    :func:`eegvision.evaluation.fusion_cv.fusion_cv` on the unit's training EEG (the ridge encoder's design:
    repetition-averaged, binned, standardised). Returns its :class:`~eegvision.evaluation.fusion_cv.FusionCVResult`."""
    import numpy as np

    from eegvision.evaluation.fusion_cv import fusion_cv
    from eegvision.training.closed_form import ROW_CHUNK, linear_design

    encoder, x, _, _, train, _ = linear_design(config, store, unit, primary.dim)
    rows = train.condition_index
    targets = [f.image.numpy()[rows].astype(np.float64) for f in [primary, *extras]]
    return fusion_cv(x, targets, train.concepts, config.target_weight_grid, encoder.alphas,
                     primary_weight=config.primary_weight, n_splits=encoder.cv, chunk_rows=ROW_CHUNK)
