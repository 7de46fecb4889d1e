"""``simulate()``: write a complete simulated THINGS-EEG2-style dataset and its ground truth.

``family`` picks the simulator family (``docs/families.md``). This module simulates the default one,
``eegvision`` (the model of :mod:`eegvision.sim.forward`); every other family is simulated by
:func:`eegvision.sim.families.runner.simulate_family` in the same preprocessed layout, without raw files.

Output folder (the layouts of the real data, so the real readers are exercised)::

    OUT/Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_{training,test}.npy
    OUT/Raw_data/sub-XX/ses-0S/raw_eeg_{training,test}.npy           (unless write_raw=False)
    OUT/training_images/NNNNN_concept/*.jpg, OUT/test_images/NNNNN_concept/*.jpg
    OUT/sim_features_{train,test}.pt                                   ATM-style feature caches
    OUT/captions_{training,test}.tsv                                   one row per image
    OUT/simulation_latents.npz                                         latent factors of every image
    OUT/simulation.json                                                preset, seed, model, ground truth

The raw files are a separate recording of the same subjects from the same model (another draw of
jitter and noise, 1000 Hz, stimulus-onset-asynchrony 200 ms as in the RSVP of THINGS-EEG2, with
overlapping responses); preprocessing them gives data with the statistics of the preprocessed
files, not the same numbers. Preprocessed data are in arbitrary units with noise variance ≈ 1
per channel (like MVNN-whitened data, but spatially correlated); raw data are in volts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from eegvision.checks import check_choice
from eegvision.evaluation.linear import ResidualCovariance, whitened_ridge_retrieval
from eegvision.progress import track
from eegvision.sim.ceiling import bayes_ceiling, decimate_mean, ridge_retrieval
from eegvision.sim.embedding import RandomFeatureMap
from eegvision.sim.families.registry import EEGVISION, get_family
from eegvision.sim.families.runner import simulate_family
from eegvision.sim.forward import PARADIGMS, ForwardModel, ForwardParams, SubjectModel, eeg_layout
from eegvision.sim.presets import Preset
from eegvision.sim.result import SimulationResult
from eegvision.sim.scene import make_world
from eegvision.sim.stimuli import prepare_output, render_images, write_stimuli
from eegvision.sim.writers import write_preprocessed_eeg, write_raw_eeg
from eegvision.utils import write_text_atomic

FORMAT_VERSION = 1
RAW_SFREQ = 1000.0
RAW_SCALE = 1e-5            # volts per model unit (noise of ~10 µV per channel)
TARGET_CODE = 99999
SOA = 0.2                   # s between image onsets in a sequence
SEQUENCE = 20               # images per RSVP sequence
_BLOCK = 16                 # conditions per random-number block (fixes determinism across chunkings)
_RIDGE_DECIM = 10           # 250 Hz -> 25 Hz for the ridge baseline


def simulate(
    out: str | Path,
    preset: str | Preset | None = None,
    n_subjects: int | None = None,
    seed: int = 0,
    paradigm: str = "viewing",
    write_raw: bool | None = None,
    images: bool = True,
    params: ForwardParams | object | None = None,
    overwrite: bool = False,
    trial_seed: int | None = None,
    feature_model: str = "random",
    family: str = "eegvision",
) -> SimulationResult:
    """Simulate a dataset with known ground truth in the real THINGS-EEG2 layouts.

    Parameters
    ----------
    out
        Output folder; must be empty or absent (unless ``overwrite``).
    preset
        Size preset of the family (default: the family's own, see ``docs/families.md``). For the
        ``eegvision`` family ``"tiny"``, ``"demo"``, ``"things"`` or ``"bench"`` (its default; see
        :mod:`~eegvision.sim.presets`) or a :class:`Preset`; for the other families ``"default"`` or
        ``"small"`` (or a :class:`Preset`).
    n_subjects
        Overrides the preset's number of subjects.
    seed
        Every random step derives from it: same seed, identical files.
    paradigm
        ``"viewing"`` or ``"imagination"`` (weaker, later, more variable responses); ``eegvision`` family only.
    write_raw
        Write 1000 Hz raw sessions; default: the preset's choice (off for ``things`` and ``bench``, ≈ 8 GB);
        ``eegvision`` family only.
    images
        Write the JPEG folders (needed by readers that map images to conditions).
    params
        Forward-model parameters: :class:`ForwardParams` for ``eegvision`` (``paradigm`` overrides its field);
        the family's parameter class (e.g. :class:`~eegvision.sim.families.erp.ErpParams`) otherwise.
    overwrite
        Allow writing into a non-empty folder (files are replaced).
    trial_seed
        Seed of the per-trial jitter and noise only (default: ``seed``). The world, the features and
        the subjects' neural code derive from ``seed`` alone, so ``simulate(a, seed=0)`` and
        ``simulate(b, seed=0, paradigm="imagination", trial_seed=1)`` are two recordings of the same
        subjects and images (viewing, then imagination) with independent noise, as transfer studies need.
    feature_model
        ``"random"`` (the stand-in :class:`RandomFeatureMap` of the latents, ``preset.feature_dim``-d) or
        ``"world-clip"`` (the shipped world CLIP's embeddings of the rendered images and concept captions,
        see :mod:`eegvision.sim.world`; ``eegvision`` family only). With ``"world-clip"`` the images' latent
        factors are the leading principal components of their world-CLIP embeddings (see
        :func:`_latents_from_embeddings`), so the simulated brain responds to what the world's CLIP sees and
        the EEG carries its embedding.
    family
        Simulator family (:func:`eegvision.sim.families.list_families`): ``"eegvision"`` (this module's
        model, the default) or a component-ERP family (``"linear-erp"``, ``"ar1-noise"``, ``"few-images"``,
        ``"meg"``, ``"nonlinear"``; simulated by :func:`eegvision.sim.families.runner.simulate_family`).

    Returns
    -------
    SimulationResult
        Paths, the known-model decoder's score and the linear baselines (mean over subjects and per subject).
    """
    fam = get_family(family)
    if fam.name != EEGVISION:
        extra = {"paradigm": (paradigm, "viewing"), "write_raw": (write_raw, None),
                 "feature_model": (feature_model, "random")}
        bad = [f"{k}={v!r}" for k, (v, default) in extra.items() if v != default and not (k == "write_raw" and v is False)]
        if bad:
            raise ValueError(f"{', '.join(bad)} apply to the 'eegvision' family only; family {fam.name!r} "
                             "simulates viewing, writes no raw files and uses the random feature map. Drop them "
                             "or use family='eegvision'.")
        return simulate_family(fam, out, preset=preset, n_subjects=n_subjects, seed=seed, trial_seed=trial_seed,
                               images=images, overwrite=overwrite, params=params)
    t0 = time.perf_counter()
    check_choice("paradigm", paradigm, PARADIGMS)
    check_choice("feature_model", feature_model, ("random", "world-clip"))
    pr = fam.preset(preset, n_subjects)
    write_raw = pr.write_raw if write_raw is None else write_raw
    if write_raw and pr.name == "things":
        raise ValueError("Raw files at full THINGS size would take about 8 GB per subject and session set; "
                         "simulate the 'things' preset with write_raw=False (--no-raw), or raw with 'demo'.")
    root = prepare_output(out, overwrite)
    if params is not None and not isinstance(params, ForwardParams):
        raise TypeError(f"The 'eegvision' family takes ForwardParams; got {type(params).__name__}.")
    params = ForwardParams(**{**(params or ForwardParams()).to_dict(), "paradigm": paradigm})

    world = make_world(pr.n_train_concepts, pr.n_test_concepts, pr.n_train_images, 1, seed=seed)
    fmap = RandomFeatureMap(dim=pr.feature_dim, seed=seed)
    z = {"training": world.latents("training"), "test": world.latents("test")}
    feats = {s: fmap.image(z[s]) for s in z}
    texts = {s: fmap.text(world.concept_latents(s)) for s in z}
    rendered: dict[str, np.ndarray] = {}
    if images or feature_model == "world-clip":  # each image is rendered once, for its file and its features
        rendered = render_images(world, pr.image_size)
    if feature_model == "world-clip":
        from eegvision.sim.world.features import world_clip_features

        wc = world_clip_features(world, pr.image_size, rendered=rendered)
        feats, texts = {s: wc[s][0] for s in z}, {s: wc[s][1] for s in z}
        z = _latents_from_embeddings(feats, z["training"].shape[1])
    paths: dict[str, list[str]] = {"features": [], "images": [], "preprocessed": [], "raw": [], "tables": []}
    write_stimuli(root, world, feats, texts, z, rendered if images else None, paths)

    trial_seed = seed if trial_seed is None else int(trial_seed)
    layout = eeg_layout()
    model = ForwardModel(layout, params, seed=seed)
    subjects = [f"sub-{i + 1:02d}" for i in range(pr.n_subjects)]
    per_ceiling, per_ridge, per_white, subj_info = [], [], [], []
    groups = np.repeat(np.arange(pr.n_train_concepts), pr.n_train_images)
    for si, sub in enumerate(subjects):
        subj = model.subject(si)
        avgs = {}
        cov = ResidualCovariance() if pr.train_reps >= 2 else None
        for split, reps in (("training", pr.train_reps), ("test", pr.test_reps)):
            path = root / "Preprocessed_data_250Hz" / sub / f"preprocessed_eeg_{split}.npy"
            acc = _Averager(len(z[split]), decim=_RIDGE_DECIM if split == "training" else 1)
            shape = (len(z[split]), reps, layout.n_chans, layout.n_times)
            chunks = _epoch_blocks(subj, z[split], reps, [trial_seed, si, 0 if split == "training" else 1], acc,
                                   description=f"{sub} {split}", cov=cov if split == "training" else None)
            write_preprocessed_eeg(path, shape, chunks, layout.ch_names)
            paths["preprocessed"].append(str(path))
            avgs[split] = acc.mean
        ceil = bayes_ceiling(subj, avgs["test"], z["test"], pr.test_reps)
        test_decim = decimate_mean(avgs["test"], _RIDGE_DECIM)
        ridge = ridge_retrieval(avgs["training"].reshape(len(groups), -1), feats["training"],
                                test_decim.reshape(len(z["test"]), -1), feats["test"], groups, seed=seed)
        white = (whitened_ridge_retrieval(avgs["training"], feats["training"], test_decim, feats["test"], groups,
                                          cov.covariance, seed=seed) if cov is not None else None)
        per_ceiling.append(ceil)
        per_ridge.append(ridge)
        per_white.append(white)
        subj_info.append({"subject": sub, "latency_offset_s": subj.latency, "source_gains": subj.gains.tolist(),
                          "ceiling": ceil, "ridge": ridge, "whitened_ridge": white})
        if write_raw:
            paths["raw"] += [str(p) for p in _write_raw_sessions(root, sub, subj, z, pr, [trial_seed, si])]

    def mean(rows: list[dict]) -> dict:
        return {k: float(np.mean([r[k] for r in rows])) for k in ("top1", "top5")}

    ceiling = {**mean(per_ceiling), "per_subject": per_ceiling}
    ridge = {**mean(per_ridge), "per_subject": per_ridge}
    whitened = {**mean(per_white), "per_subject": per_white} if cov is not None else {}
    known = {"label": fam.decoder_label, "exact_bayes": fam.exact_bayes, **ceiling}
    wall = time.perf_counter() - t0
    from eegvision import __version__

    meta = {
        "format_version": FORMAT_VERSION, "eegvision_version": __version__, "generator": "eegvision.simulate",
        "family": fam.describe(), "preset": pr.to_dict(), "seed": seed, "trial_seed": trial_seed,
        "paradigm": paradigm, "subjects": subjects,
        "n_conditions": {"training": len(z["training"]), "test": len(z["test"])},
        "repetitions": {"training": pr.train_reps, "test": pr.test_reps},
        "eeg": {"sfreq": layout.sfreq, "n_times": layout.n_times, "ch_names": list(layout.ch_names),
                "units": "arbitrary (noise variance ~1 per channel)"},
        "raw": ({"sfreq": RAW_SFREQ, "volts_per_unit": RAW_SCALE, "soa_s": SOA, "sequence_length": SEQUENCE,
                 "target_code": TARGET_CODE, "n_sessions": pr.n_sessions,
                 "channel_order": "alphabetical EEG, then stim"} if write_raw else None),
        "forward_model": params.to_dict(),
        "feature_map": {"kind": "RandomFeatureMap", "dim": fmap.dim, "hidden": fmap.hidden, "gain": fmap.gain,
                        "gap": fmap.gap, "seed": fmap.seed, "normalized": True} if feature_model == "random"
                       else _world_clip_info(),
        "ground_truth": {"bayes_ceiling": ceiling, "known_model": known, "ridge": ridge,
                         "whitened_ridge": whitened or None, "chance_top1": 1.0 / len(z["test"]),
                         "chance_top5": min(1.0, 5.0 / len(z["test"])), "subjects": subj_info},
        "paths": {k: [str(Path(p).relative_to(root)) for p in v] for k, v in paths.items()},
        "wall_s": wall,
    }
    write_text_atomic(root / "simulation.json", json.dumps(meta, indent=2) + "\n")
    return SimulationResult(root, pr, seed, paradigm, subjects, ceiling, ridge, 1.0 / len(z["test"]), wall,
                            paths, world, fmap, model, family=fam.name, known_model=known, whitened_ridge=whitened)


class _Averager:
    """Running mean over repetitions (optionally decimated in time) of the blocks being written."""

    def __init__(self, n: int, decim: int = 1) -> None:
        self.n, self.decim, self.mean = n, decim, None

    def add(self, start: int, block: np.ndarray) -> None:
        m = block.mean(1)
        if self.decim > 1:
            m = decimate_mean(m, self.decim)
        if self.mean is None:
            self.mean = np.zeros((self.n, *m.shape[1:]))
        self.mean[start:start + len(m)] = m


def _epoch_blocks(subj: SubjectModel, z: np.ndarray, reps: int, key: list[int], acc: _Averager,
                  description: str, cov: ResidualCovariance | None = None):
    """Yield ``(block, reps, n_chans, n_times)`` float64 epochs, block by block (constant memory); ``acc``
    averages them and ``cov`` (training) accumulates their residual covariance."""
    lay = subj.model.layout
    starts = range(0, len(z), _BLOCK)
    for b, start in enumerate(track(starts, description=description)):
        zb = z[start:start + _BLOCK]
        rng = np.random.default_rng(np.random.SeedSequence([*key, b]))
        x = subj.trials(np.repeat(zb, reps, axis=0), rng).reshape(len(zb), reps, lay.n_chans, lay.n_times)
        acc.add(start, x)
        if cov is not None:
            cov.add(x)
        yield x


def _write_raw_sessions(root: Path, sub: str, subj: SubjectModel, z: dict, pr: Preset, key: list[int]) -> list[Path]:
    """Continuous 1000 Hz sessions with a stim channel, in the THINGS-EEG2 raw layout."""
    lay = subj.model.layout
    order = sorted(range(lay.n_chans), key=lambda i: lay.ch_names[i].lower())
    ch_names = [lay.ch_names[i] for i in order] + ["stim"]
    ch_types = ["eeg"] * lay.n_chans + ["stim"]
    half = np.random.default_rng(np.random.SeedSequence([*key, 0xA1])).permutation(len(z["training"])) % 2
    written = []
    for ses in track(range(pr.n_sessions), description=f"{sub} raw sessions"):
        for split in ("training", "test"):
            if split == "test":
                conds, reps = np.arange(len(z["test"])), pr.test_reps // pr.n_sessions
            else:
                conds = np.arange(len(z["training"]))
                if pr.n_sessions > 1:
                    conds = conds[half == ses % 2]
                reps = pr.train_reps // pr.train_sessions_per_condition
            rng = np.random.default_rng(np.random.SeedSequence([*key, 0xA2, ses, split == "test"]))
            data = _raw_recording(subj, z[split], np.repeat(conds, reps), rng)
            data = np.concatenate([data[:-1][order], data[-1:]])
            path = root / "Raw_data" / sub / f"ses-{ses + 1:02d}" / f"raw_eeg_{split}.npy"
            written.append(write_raw_eeg(path, data, ch_names, ch_types, RAW_SFREQ))
    return written


def _raw_recording(subj: SubjectModel, z: np.ndarray, trials: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(n_chans + 1, n_samples)``: RSVP sequences of ``trials`` (condition indices) plus ~6 % target
    trials (code 99999), overlapping evoked responses, continuous noise, channel offsets, stim last."""
    n_targets = max(1, int(round(0.06 * len(trials))))
    codes = np.concatenate([trials + 1, np.full(n_targets, TARGET_CODE)])
    codes = codes[rng.permutation(len(codes))]
    seq = np.arange(len(codes)) // SEQUENCE
    onsets_s = 1.0 + np.arange(len(codes)) * SOA + seq * 0.75
    onsets = np.round(onsets_s * RAW_SFREQ).astype(int)
    n_samples = int(onsets[-1] + 1.5 * RAW_SFREQ)
    n_chans = subj.model.layout.n_chans
    data = np.zeros((n_chans + 1, n_samples))
    data[:n_chans] = subj.model.noise(rng, 1, n_samples, RAW_SFREQ)[0]
    rel = np.arange(int(-0.2 * RAW_SFREQ), int(1.0 * RAW_SFREQ)) / RAW_SFREQ
    zz = np.where((codes == TARGET_CODE)[:, None], 0.0, z[np.minimum(codes, len(z)) - 1])
    for start in range(0, len(codes), 128):
        ev = subj.evoked(zz[start:start + 128], rel, rng)
        for i, e in enumerate(ev):
            o = onsets[start + i] + int(rel[0] * RAW_SFREQ)
            data[:n_chans, o:o + len(rel)] += e
    data[:n_chans] += rng.normal(0.0, 3.0, (n_chans, 1))
    data[:n_chans] *= RAW_SCALE
    for o, c in zip(onsets, codes):
        data[n_chans, o:o + 10] = c
    return data


def _world_clip_info() -> dict:
    from eegvision.sim.world.assets import shipped_world_models
    from eegvision.sim.world.features import world_clip_feature_info

    return world_clip_feature_info(shipped_world_models())


def _latents_from_embeddings(feats: dict[str, np.ndarray], n_latent: int) -> dict[str, np.ndarray]:
    """Latent factors that *are* the images' embeddings: the first ``n_latent`` principal components.

    With ``feature_model="world-clip"`` the brain is simulated as responding to what the world's CLIP
    sees: each image's latent vector is the projection of its world-CLIP embedding on the leading
    principal axes of the training images' embeddings, scaled to unit variance per axis (fitted on
    training images only). The forward model is unchanged; it just reads these latents, so the EEG
    carries the embedding the decoders are trained to predict (as real EEG carries CLIP-like features).
    """
    train = np.asarray(feats["training"], dtype=np.float64)
    mean = train.mean(0)
    _, sing, vt = np.linalg.svd(train - mean, full_matrices=False)
    k = min(n_latent, vt.shape[0])
    scale = sing[:k] / np.sqrt(max(len(train) - 1, 1))
    out = {}
    for split, f in feats.items():
        proj = (np.asarray(f, dtype=np.float64) - mean) @ vt[:k].T / scale
        if k < n_latent:
            proj = np.pad(proj, ((0, 0), (0, n_latent - k)))
        out[split] = proj
    return out

