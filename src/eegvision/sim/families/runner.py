"""``simulate_family()``: any family (:mod:`~eegvision.sim.families.base`) written in the THINGS-EEG2 layout.

Output folder (as :func:`eegvision.sim.simulate` writes for the ``eegvision`` family, without raw files)::

    OUT/Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_{training,test}.npy   pickled dicts, float64
    OUT/training_images/NNNNN_concept/*.jpg, OUT/test_images/NNNNN_concept/*.jpg
    OUT/sim_features_{train,test}.pt, OUT/captions_{training,test}.tsv, OUT/simulation_latents.npz
    OUT/simulation.json        family, parameters, seeds, known-model decoder and baseline scores

The pickles hold ``preprocessed_eeg_data`` ``(conditions, repetitions, channels, times)``, ``ch_names`` and
``times`` — the epoch's sample times preceded by 0.2 s of baseline times that the data do not contain, as in
the published files (for 250 Hz exactly their 300 entries). MEG-shaped families use the same layout with their
271 sensor names and 200 Hz; read them with ``open_things_eeg2(OUT, expected_channels=None)``.

Everything streams: epochs are drawn 16 conditions at a time (random numbers from
``SeedSequence([trial_seed, subject, split, block])``, so the files do not depend on memory), written, and
reduced on the way to the repetition averages (ridge), the training residual covariance (whitened ridge) and
the known-model decoder's scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eegvision.evaluation.linear import (
    ResidualCovariance,
    decimate_mean,
    ridge_retrieval,
    topk_from_scores,
    whitened_ridge_retrieval,
)
from eegvision.progress import track
from eegvision.sim.embedding import RandomFeatureMap
from eegvision.sim.families.base import Family, FamilySubject, Stimuli
from eegvision.sim.families.registry import get_family
from eegvision.sim.presets import Preset
from eegvision.sim.result import SimulationResult
from eegvision.sim.scene import make_world
from eegvision.sim.stimuli import prepare_output, render_images, write_stimuli
from eegvision.sim.writers import write_preprocessed_eeg
from eegvision.utils import write_text_atomic

__all__ = ["BASELINE_RATE", "known_model_accuracy", "simulate_family"]

FORMAT_VERSION = 1
BLOCK = 16                  # conditions per random-number block
BASELINE_RATE = 25.0        # Hz: the ridge baselines' time resolution (decimation by bin means)
_BASELINE_S = 0.2           # s of baseline named in ``times`` but absent from the data (as in THINGS-EEG2)


def simulate_family(
    family: Family | str, out: str | Path, preset: str | Preset | None = None, n_subjects: int | None = None,
    seed: int = 0, trial_seed: int | None = None, images: bool = True, overwrite: bool = False, params: Any = None,
) -> SimulationResult:
    """Simulate ``family`` into ``out`` (see the module docstring); :func:`eegvision.sim.simulate` calls this
    for every family but ``eegvision``.

    Parameters
    ----------
    family
        A :class:`Family` or its registry name (:func:`~eegvision.sim.families.get_family`).
    out
        Output folder; must be empty or absent (unless ``overwrite``).
    preset
        The family's size preset (default: its own default) or a :class:`Preset`.
    n_subjects
        Overrides the preset's number of subjects.
    seed
        World, features, forward model, subjects and the baselines' validation split.
    trial_seed
        Latency, gain and noise of every trial (default: ``seed``).
    images
        Write the JPEG folders.
    overwrite
        Allow writing into a non-empty folder.
    params
        Overrides the family's forward-model parameters.

    Returns
    -------
    SimulationResult
        With ``known_model`` (= ``ceiling``), ``ridge`` and ``whitened_ridge`` (mean and per subject).
    """
    t0 = time.perf_counter()
    family = get_family(family)
    pr = family.preset(preset, n_subjects)
    root = prepare_output(out, overwrite)
    trial_seed = seed if trial_seed is None else int(trial_seed)

    world = make_world(pr.n_train_concepts, pr.n_test_concepts, pr.n_train_images, 1, seed=seed)
    fmap = RandomFeatureMap(dim=pr.feature_dim, seed=seed)
    z = {"training": world.latents("training"), "test": world.latents("test")}
    feats = {s: fmap.image(z[s]) for s in z}
    texts = {s: fmap.text(world.concept_latents(s)) for s in z}
    rendered = render_images(world, pr.image_size) if images or family.needs_pixels else None
    paths: dict[str, list[str]] = {"features": [], "images": [], "preprocessed": [], "raw": [], "tables": []}
    write_stimuli(root, world, feats, texts, z, rendered if images else None, paths)
    stim = {s: Stimuli(feats[s], z[s], rendered[s] if rendered is not None else None) for s in z}

    model = family.build(stim["training"], seed, params)
    codes = {s: model.codes(stim[s]) for s in stim}
    lay = model.layout
    decim = max(1, int(round(lay.sfreq / BASELINE_RATE)))
    n_base = int(round(_BASELINE_S * lay.sfreq))
    times = np.arange(-n_base, lay.n_times, dtype=np.float64) / lay.sfreq
    groups = np.repeat(np.arange(pr.n_train_concepts), pr.n_train_images)
    n_test = len(z["test"])
    subjects = [f"sub-{i + 1:02d}" for i in range(pr.n_subjects)]
    per: dict[str, list] = {"known_model": [], "ridge": [], "whitened_ridge": []}
    subj_info = []
    for si, sub in enumerate(subjects):
        subj = model.subject(si)
        sinks = {"training": _Sink(len(z["training"]), decim, cov=pr.train_reps >= 2),
                 "test": _Sink(n_test, decim, candidates=codes["test"])}
        for flag, (split, reps) in enumerate((("training", pr.train_reps), ("test", pr.test_reps))):
            path = root / "Preprocessed_data_250Hz" / sub / f"preprocessed_eeg_{split}.npy"
            shape = (len(z[split]), reps, lay.n_chans, lay.n_times)
            chunks = _blocks(subj, codes[split], reps, [trial_seed, si, flag], sinks[split], f"{sub} {split}")
            write_preprocessed_eeg(path, shape, chunks, lay.ch_names, times)
            paths["preprocessed"].append(str(path))
        tr, te = sinks["training"].mean, sinks["test"].mean
        known = topk_from_scores(sinks["test"].scores)
        ridge = ridge_retrieval(tr.reshape(len(tr), -1), feats["training"], te.reshape(n_test, -1), feats["test"],
                                groups, seed=seed)
        white = (whitened_ridge_retrieval(tr, feats["training"], te, feats["test"], groups,
                                          sinks["training"].cov.covariance, seed=seed)
                 if sinks["training"].cov is not None else None)
        for k, v in (("known_model", known), ("ridge", ridge), ("whitened_ridge", white)):
            per[k].append(v)
        subj_info.append({**subj.info(), "known_model": known, "ridge": ridge, "whitened_ridge": white})

    def mean(rows: list[dict | None]) -> dict:
        if any(r is None for r in rows):
            return {}
        return {**{k: float(np.mean([r[k] for r in rows])) for k in ("top1", "top5")}, "per_subject": rows}

    known_model = {"label": family.decoder_label, "exact_bayes": family.exact_bayes, **mean(per["known_model"])}
    ridge, whitened = mean(per["ridge"]), mean(per["whitened_ridge"])
    wall = time.perf_counter() - t0
    from eegvision import __version__

    meta = {
        "format_version": FORMAT_VERSION, "eegvision_version": __version__, "generator": "eegvision.simulate",
        "family": family.describe(getattr(model, "params", None)), "preset": pr.to_dict(), "seed": seed,
        "trial_seed": trial_seed, "paradigm": "viewing", "subjects": subjects,
        "n_conditions": {"training": len(z["training"]), "test": n_test},
        "repetitions": {"training": pr.train_reps, "test": pr.test_reps},
        "eeg": {"kind": lay.kind, "sfreq": lay.sfreq, "n_times": lay.n_times, "ch_names": list(lay.ch_names),
                "units": "arbitrary (noise variance ~1 per channel; not whitened)"},
        "raw": None,
        "forward_model": model.to_dict(),
        "feature_map": {"kind": "RandomFeatureMap", "dim": fmap.dim, "hidden": fmap.hidden, "gain": fmap.gain,
                        "gap": fmap.gap, "seed": fmap.seed, "normalized": True},
        "ground_truth": {"known_model": known_model, "bayes_ceiling": known_model, "ridge": ridge,
                         "whitened_ridge": whitened or None, "baseline_rate_hz": lay.sfreq / decim,
                         "chance_top1": 1.0 / n_test, "chance_top5": min(1.0, 5.0 / n_test),
                         "subjects": subj_info},
        "paths": {k: [str(Path(p).relative_to(root)) for p in v] for k, v in paths.items()},
        "wall_s": wall,
    }
    write_text_atomic(root / "simulation.json", json.dumps(meta, indent=2) + "\n")
    return SimulationResult(root, pr, seed, "viewing", subjects, known_model, ridge, 1.0 / n_test, wall, paths,
                            world, fmap, model, family=family.name, known_model=known_model,
                            whitened_ridge=whitened)


def known_model_accuracy(
    family: Family | str, preset: str | Preset | None = None, seed: int = 0, trial_seed: int | None = None,
    subject: int = 0, params: Any = None,
) -> dict[str, float]:
    """The known-model decoder's top-1/top-5 on the test split that :func:`simulate_family` would write for
    ``subject`` — the same world, model and random numbers — without writing or simulating anything else.

    For calibration and range checks: the known-model decoder needs only the test trials, a fraction of the work.
    """
    family = get_family(family)
    pr = family.preset(preset, subject + 1)
    trial_seed = seed if trial_seed is None else int(trial_seed)
    world = make_world(pr.n_train_concepts, pr.n_test_concepts, pr.n_train_images, 1, seed=seed)
    fmap = RandomFeatureMap(dim=pr.feature_dim, seed=seed)
    rendered = render_images(world, pr.image_size) if family.needs_pixels else None
    stim = {s: Stimuli(fmap.image(world.latents(s)), world.latents(s), rendered[s] if rendered else None)
            for s in ("training", "test")}
    model = family.build(stim["training"], seed, params)
    codes = model.codes(stim["test"])
    sink = _Sink(len(codes), 1, candidates=codes)
    for _ in _blocks(model.subject(subject), codes, pr.test_reps, [trial_seed, subject, 1], sink, "test"):
        pass
    return topk_from_scores(sink.scores)


class _Sink:
    """Reduces the blocks being written: decimated repetition means, and the training residual covariance
    (``cov``) or the known-model scores against ``candidates`` (test)."""

    def __init__(self, n: int, decim: int, cov: bool = False, candidates: np.ndarray | None = None) -> None:
        self.n, self.decim, self.mean = n, decim, None
        self.cov = ResidualCovariance() if cov else None
        self.candidates = candidates
        self.scores = None if candidates is None else np.zeros((n, len(candidates)))

    def add(self, start: int, block: np.ndarray, subject: FamilySubject) -> None:
        m = decimate_mean(block.mean(1), self.decim)
        if self.mean is None:
            self.mean = np.zeros((self.n, *m.shape[1:]))
        self.mean[start:start + len(m)] = m
        if self.cov is not None:
            self.cov.add(block)
        if self.scores is not None:
            self.scores[start:start + len(block)] = subject.known_model_scores(block, self.candidates)


def _blocks(subject: FamilySubject, codes: np.ndarray, reps: int, key: list[int], sink: _Sink,
            description: str) -> Iterator[np.ndarray]:
    """Yield ``(block, reps, n_chans, n_times)`` float64 epochs of :data:`BLOCK` conditions at a time."""
    for b, start in enumerate(track(range(0, len(codes), BLOCK), description=description)):
        cb = codes[start:start + BLOCK]
        rng = np.random.default_rng(np.random.SeedSequence([*key, b]))
        x = subject.trials(np.repeat(cb, reps, axis=0), rng)
        x = x.reshape(len(cb), reps, *x.shape[1:])
        sink.add(start, x, subject)
        yield x
