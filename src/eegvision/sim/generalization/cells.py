"""One cell of the benchmark: one recipe on one family's simulation (sub-01, one seed), scored per test image.

:func:`load_simulation` reads a folder that :func:`eegvision.sim.simulate` wrote and regenerates what the
simulation drew from its seed (the world's features and latents, the family's model); :func:`compute_cell`
scores a :class:`~eegvision.sim.generalization.recipes.Recipe` on it and returns the cell: 200-way top-1/top-5 of
sub-01's test set, every test image's rank of its true candidate (0 = correct at top-1; ties count against),
the training wall time and the cell's wall and CPU seconds.

The known-model decoder and the linear baselines are recomputed from the files on disk, block by block exactly
as the simulation computed them, and their top-1/top-5 (and the ridge penalty) must equal what
``simulation.json`` stored; a difference raises an error naming both.
"""

from __future__ import annotations

import json
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegvision.checks import check_file
from eegvision.evaluation.kway import cosine_similarity, rank_counts
from eegvision.evaluation.linear import (
    ResidualCovariance,
    decimate_mean,
    ranks_from_scores,
    ridge_retrieval,
    whitened_ridge_retrieval,
)
from eegvision.readers.channels import THINGS_EEG2_CHANNELS
from eegvision.readers.things_eeg2 import open_preprocessed
from eegvision.sim.embedding import RandomFeatureMap
from eegvision.sim.families.base import Family, Stimuli
from eegvision.sim.families.registry import get_family
from eegvision.sim.families.runner import BASELINE_RATE, BLOCK
from eegvision.sim.generalization.recipes import Recipe
from eegvision.sim.presets import Preset
from eegvision.sim.scene import make_world
from eegvision.sim.stimuli import render_images

__all__ = ["SUBJECT", "SimulatedData", "compute_cell", "cpu_seconds", "load_simulation"]

#: The benchmark scores the first simulated subject.
SUBJECT = "sub-01"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) and its waited-for children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class SimulatedData:
    """A simulated folder as the benchmark reads it: ``simulation.json``, the family, size and seed, and the
    world's features/latents regenerated from the seed (float64, as the simulation used them)."""

    root: Path
    meta: dict
    family: Family
    preset: Preset
    seed: int
    _stimuli: dict[str, Stimuli] = field(default_factory=dict, repr=False)

    @property
    def sfreq(self) -> float:
        return float(self.meta["eeg"]["sfreq"])

    def features_file(self, split: str) -> Path:
        return self.root / f"sim_features_{'train' if split == 'training' else split}.pt"

    def epochs(self, split: str) -> np.ndarray:
        """``(conditions, repetitions, channels, times)`` of sub-01, memory-mapped from its pickle."""
        path = self.root / "Preprocessed_data_250Hz" / SUBJECT / f"preprocessed_eeg_{split}.npy"
        return open_preprocessed(path, expected_channels=None).data

    def stimuli(self, split: str) -> Stimuli:
        if not self._stimuli:
            pr = self.preset
            world = make_world(pr.n_train_concepts, pr.n_test_concepts, pr.n_train_images, 1, seed=self.seed)
            fmap = RandomFeatureMap(dim=pr.feature_dim, seed=self.seed)
            rendered = render_images(world, pr.image_size) if self.family.needs_pixels else None
            for s in ("training", "test"):
                z = world.latents(s)
                self._stimuli[s] = Stimuli(fmap.image(z), z, rendered[s] if rendered else None)
        return self._stimuli[split]

    @property
    def groups(self) -> np.ndarray:
        """Concept of each training condition (the baselines' validation split holds concepts out)."""
        return np.repeat(np.arange(self.preset.n_train_concepts), self.preset.n_train_images)

    def stored(self, name: str) -> dict:
        """sub-01's ``known_model`` / ``ridge`` / ``whitened_ridge`` entry of ``simulation.json``."""
        entry = self.meta["ground_truth"].get(name) or {}
        rows = entry.get("per_subject") or []
        if not rows or rows[0] is None:
            raise ValueError(f"{self.root / 'simulation.json'} records no {name} score for {SUBJECT}; simulate "
                             "again with a current eegvision (the whitened baseline needs >= 2 training "
                             "repetitions).")
        return rows[0]


def load_simulation(root: str | Path) -> SimulatedData:
    """Read a folder written by :func:`eegvision.sim.simulate` (any family) for the benchmark.

    The family's forward-model parameters must be its registry defaults (the benchmark rebuilds the model from
    the family and the seed), and the features regenerated from the seed must equal the folder's feature file.
    """
    root = Path(root)
    meta = json.loads(check_file(root / "simulation.json", "Simulation record",
                                 "Simulate the family first (eegvision simulate OUT --family NAME).").read_text())
    family = get_family(meta["family"]["name"])
    if meta["family"].get("params") != json.loads(json.dumps(family.describe()["params"])):
        raise ValueError(f"{root} was simulated with other parameters than family {family.name!r}'s defaults; the "
                         "benchmark rebuilds the family's model from its registry, so simulate it with defaults.")
    if meta.get("trial_seed", meta["seed"]) != meta["seed"]:
        raise ValueError(f"{root} has trial_seed {meta['trial_seed']} != seed {meta['seed']}; the benchmark's "
                         "seed is both. Simulate with trial_seed left out.")
    data = SimulatedData(root, meta, family, Preset(**meta["preset"]), int(meta["seed"]))
    from eegvision.tensorfiles import load_torch

    on_disk = load_torch(data.features_file("test"), "Simulated test features")["img_features"]
    if not np.allclose(on_disk.numpy(), data.stimuli("test").features, atol=1e-6):
        raise ValueError(f"The features regenerated from seed {data.seed} differ from {data.features_file('test')}"
                         "; the folder was not written by this eegvision's simulate.")
    return data


#: The recipes whose scores simulate records in simulation.json (a recomputation must reproduce them).
STORED = ("known_model", "ridge", "whitened_ridge")


def compute_cell(recipe: Recipe, data: SimulatedData, run_dir: Path) -> dict[str, Any]:
    """Score ``recipe`` on ``data`` (sub-01's test set). ``run_dir`` holds a ``fit`` recipe's run folder
    (replaced if present). Returns the cell's fields (see the module docstring)."""
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    if recipe.kind == "known_model":
        ranks, extra, train_s = _known_model(data), {}, 0.0
    elif recipe.kind == "linear":
        ranks, extra = _linear(data, bool(recipe.options.get("whiten")), recipe.options.get("method", "ridge"))
        train_s = time.perf_counter() - wall0
    else:
        ranks, extra, train_s = _fit(recipe, data, Path(run_dir))
    top = {f"top{k}": float(np.mean(ranks < k)) for k in (1, 5)}
    if recipe.kind != "fit" and recipe.name in STORED:
        stored = data.stored(recipe.name)
        for key in ("top1", "top5", "alpha"):
            mine = extra.get(key, top.get(key))
            if key in stored and mine != stored[key]:
                raise RuntimeError(f"{recipe.name} on {data.root}: recomputed {key} {mine} != {stored[key]} stored "
                                   "in simulation.json; the per-image recomputation must reproduce the simulation.")
    return {**top, "n_test": int(len(ranks)), "ranks": [int(r) for r in ranks],
            "top1_correct": "".join("1" if r < 1 else "0" for r in ranks), "train_s": round(train_s, 3),
            "wall_s": round(time.perf_counter() - wall0, 3), "cpu_s": round(cpu_seconds() - cpu0, 3),
            "extra": extra}


def _blocks(x: np.ndarray):
    for start in range(0, len(x), BLOCK):
        yield np.asarray(x[start:start + BLOCK], np.float64)


def _known_model(data: SimulatedData) -> np.ndarray:
    """Per-image ranks of the known-model decoder, scored block by block as the simulation did."""
    model = data.family.build(data.stimuli("training"), data.seed)
    codes = model.codes(data.stimuli("test"))
    subject = model.subject(0)
    scores = np.concatenate([subject.known_model_scores(b, codes) for b in _blocks(data.epochs("test"))])
    return ranks_from_scores(scores)


def _linear(data: SimulatedData, whiten: bool, method: str = "ridge") -> tuple[np.ndarray, dict]:
    """Ridge or whitened ridge as the simulation computed it (decimated averages per block, residual
    covariance of the training blocks), with per-image ranks; ``method="encoding"``: the encoding-model
    identification (:mod:`eegvision.evaluation.encoding`) on the same averages."""
    decim = max(1, int(round(data.sfreq / BASELINE_RATE)))
    cov = ResidualCovariance() if whiten else None
    avgs = {}
    for split in ("training", "test"):
        parts = []
        for block in _blocks(data.epochs(split)):
            if cov is not None and split == "training":
                cov.add(block)
            parts.append(decimate_mean(block.mean(1), decim))
        avgs[split] = np.concatenate(parts)
    y_tr, y_te = data.stimuli("training").features, data.stimuli("test").features
    tr, te = avgs["training"], avgs["test"]
    if method == "encoding":
        from eegvision.evaluation.encoding import encoding_identification

        res = encoding_identification(tr.reshape(len(tr), -1), y_tr, te.reshape(len(te), -1), y_te, data.groups,
                                      seed=data.seed, return_ranks=True)
    elif cov is not None:
        res = whitened_ridge_retrieval(tr, y_tr, te, y_te, data.groups, cov.covariance, seed=data.seed,
                                       return_ranks=True)
    else:
        res = ridge_retrieval(tr.reshape(len(tr), -1), y_tr, te.reshape(len(te), -1), y_te, data.groups,
                              seed=data.seed, return_ranks=True)
    ranks = res.pop("ranks")
    return ranks, {k: v for k, v in res.items() if k not in ("top1", "top5")}


def _fit(recipe: Recipe, data: SimulatedData, run_dir: Path) -> tuple[np.ndarray, dict, float]:
    """Train ``recipe``'s FitConfig on the folder, then rank each test image from the run's test embeddings
    (cosine with the test features, as ``evaluate`` scores; the 200-way top-1 must equal the run's)."""
    from eegvision.features.files import load_features
    from eegvision.training.fitting import fit

    if run_dir.exists():
        shutil.rmtree(run_dir)
    source = data.root
    if tuple(data.meta["eeg"]["ch_names"]) != THINGS_EEG2_CHANNELS:
        # fit reads a THINGS-EEG2 folder only with its 63 channels; other sensors (meg) go through a store
        from eegvision.store.convert import convert_things_eeg2

        source = convert_things_eeg2(data.root, run_dir.parent / f"{run_dir.name}-store", dtype="float32",
                                     overwrite=True, with_images=True, expected_channels=None)
    from eegvision.data.sources import open_data

    n_concepts = len(open_data(str(source)).concept_table("training"))
    if n_concepts != data.preset.n_train_concepts:
        raise ValueError(f"{data.root} reads as {n_concepts} training concepts, the simulation has "
                         f"{data.preset.n_train_concepts}: without its image folders a THINGS-EEG2 folder is read "
                         "with THINGS-EEG2's 10 images per concept. Simulate it with images (the validation split "
                         "and the penalty's cross-validation hold out whole concepts).")
    feature_inputs = {"features_train": str(data.features_file("training")),
                      "features_test": str(data.features_file("test"))}
    if recipe.targets is not None:
        from eegvision.sim.generalization.recipes import TARGET_SETS
        from eegvision.sim.world.features import write_target_files

        files = write_target_files(data.root, data.root / "targets")
        primary, extra = TARGET_SETS[recipe.targets]
        feature_inputs = {"features_train": str(files[primary]["train"]), "features_test": str(files[primary]["test"]),
                          "targets": [{"train": str(files[e]["train"]), "test": str(files[e]["test"]), "weight": 1.0}
                                      for e in extra]}
    cfg = recipe.fit_config(data=str(source), seed=data.seed, **feature_inputs)
    t0 = time.perf_counter()
    result = fit(cfg, run_dir)
    train_s = time.perf_counter() - t0
    emb = result.run.test_embeddings()[SUBJECT]
    test_file = result.run.feature_file("test") or data.features_file("test")     # fused targets: the run's file
    higher, tied = rank_counts(cosine_similarity(emb, load_features(test_file).image))
    ranks = higher + tied
    n = len(ranks)
    row = [r for r in result.rows if r["method"] == "exact" and r["modality"] == "image" and r["k"] == n
           and r.get("subject", SUBJECT) == SUBJECT]
    if not row or abs(row[0]["top1"] - float(np.mean(ranks < 1))) > 1e-9:
        raise RuntimeError(f"{recipe.name}: per-image ranks give top-1 {np.mean(ranks < 1)}, the run's metrics "
                           f"{row[0]['top1'] if row else 'no exact image row'} (run {run_dir}).")
    selection = result.run.unit_for_subject(SUBJECT).read_selection()
    extra = {"selection": selection, "run_top5": row[0]["top5"]}
    unit = result.run.unit_for_subject(SUBJECT)
    if (result.run.path / "target_weights.json").is_file():  # target_weights="cv": the subject's choice
        tw = json.loads((result.run.path / "target_weights.json").read_text())
        extra["target_weights"] = {k: tw[k] for k in ("targets", "weights", "alpha", "pairwise", "top1",
                                                      "primary_only")}
    if unit.auto_path.is_file():  # encoder "auto": both candidates' validation scores, the winner, each one's test
        auto = unit.read_auto()
        tests = {"ridge" if auto["winner"] == "ridge" else "stconv": row[0]["top1"]}
        for name in ("stconv",):
            rows = unit.candidate_folder(name).read_metrics()
            tests[name] = next(r["top1"] for r in rows if r["method"] == "exact" and r["modality"] == "image"
                               and r["k"] == n)
        extra["auto"] = {"winner": auto["winner"], "val_top1": auto["val_top1"], "test_top1": tests}
    return ranks, extra, train_s
