"""The stages of :func:`eegvision.demo.run.run_demo`, one function each.

Every stage takes the shared ``state`` dict (``out``, ``seed``, ``settings`` and what earlier stages
added), does its work through the library's public functions, and returns the outputs recorded in
``demo.json``. A stage that cannot run honestly raises :class:`eegvision.demo.records.Skip` with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eegvision.demo.records import Skip
from eegvision.progress import enabled as progress_enabled
from eegvision.utils import relative_path

HEADLINE_K = 200


# ----------------------------------------------------------------------------- core stages
def simulate_stage(state: dict) -> dict:
    """Simulated subjects in the THINGS-EEG2 layout (no raw recordings: the demo reads the preprocessed files)."""
    from eegvision.sim import get_preset, simulate

    s = state["settings"]
    preset = get_preset(s["preset"], n_subjects=s["n_subjects"], **s.get("preset_overrides", {}))
    models, why = world_models()
    state["world"] = models
    if models is not None:
        state["feature_space"] = ("world-CLIP (the world's own trained CLIP-style model; the demo's test concepts "
                                  "are held out of its training)")
        extra = {"feature_model": "world-clip"}
    else:
        state["feature_space"] = ("the simulator's fixed random feature map of each image's latent attributes "
                                  f"(stand-in for CLIP, because {why})")
        extra = {}
    if s.get("forward_params"):
        from eegvision.sim import ForwardParams

        extra["params"] = ForwardParams(**s["forward_params"])
    sim = simulate(state["out"] / "data", preset=preset, seed=state["seed"], write_raw=False, **extra)
    state["sim"] = sim
    return {"feature_space": state["feature_space"], "subjects": sim.subjects, "ceiling": {k: sim.ceiling[k] for k in ("top1", "top5")},
            "ridge": {k: sim.ridge[k] for k in ("top1", "top5")}, "data": "data/"}


def convert_stage(state: dict) -> dict:
    """The real THINGS-EEG2 reader converts the simulated download into a float16 store."""
    from eegvision.store.convert import convert_things_eeg2
    from eegvision.store.disk import open_store

    store = convert_things_eeg2(state["out"] / "data", state["out"] / "store")
    st = open_store(store)
    state["store"] = store
    return {"store": "store/", "subjects": st.subjects,
            "shapes": {sub: {sp: list(st.array(sub, sp).shape) for sp in st.splits(sub)} for sub in st.subjects}}


def features_stage(state: dict) -> dict:
    """Import the simulator's ATM-style caches (image + concept text features), L2-normalised for retrieval, with
    the store's concept table of their split."""
    from eegvision.features.files import import_atm_features
    from eegvision.store.disk import open_store

    data, feats = state["out"] / "data", state["store"] / "features"
    space = state["feature_space"]
    model_name = "world-clip" if state.get("world") is not None else "simulated-world-features"
    store = open_store(state["store"])
    paths = {}
    for split, store_split in (("train", "training"), ("test", "test")):
        paths[split] = import_atm_features(data / f"sim_features_{split}.pt", feats / f"{split}.safetensors",
                                           normalize=True, model=model_name, pretrained="none", split=split,
                                           concepts=store.concept_table(store_split))
    state["features"] = paths
    return {**{k: relative_path(v, state["out"]) for k, v in paths.items()}, "space": space}


def fit_stage(state: dict) -> dict:
    """One encoder per subject (``within``), model selection on held-out training concepts."""
    from eegvision.training import FitConfig, fit

    s = state["settings"]
    sim = state["sim"]
    cfg = FitConfig(
        data=str(state["store"]), subjects=list(sim.subjects), protocol="within", encoder=s["encoder"],
        encoder_options=dict(s["encoder_options"]), epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"],
        weight_decay=s["weight_decay"], average_train=s["average_train"],
        mix_repetitions=s.get("mix_repetitions", False), seed=state["seed"],
        schedule="cosine", val_fraction=0.1, eval_ks=_ks(sim.preset.n_test_concepts),
        eval_methods=["exact", "montecarlo"], progress=progress_enabled(),
    )
    state["run"] = fit(cfg, state["out"] / "run").run
    return {"run": "run/", "encoder": s["encoder"], "epochs": s["epochs"], "config": cfg.to_dict()}


def _ks(n: int) -> list[int]:
    return sorted({k for k in (2, 4, 10, 50, 100, 200) if k <= n} | {n})


def evaluate_stage(state: dict) -> dict:
    """Exact (and Monte-Carlo, the reference protocol) k-way accuracy, image and text, every k."""
    from eegvision.training import evaluate_run

    rows = evaluate_run(state["run"].path).rows
    state["rows"] = rows
    k = max(r["k"] for r in rows)
    head = [r for r in rows if r["modality"] == "image" and r["method"] == "exact" and r["k"] == k]
    return {"metrics": "run/metrics.json", "k": k, "n_rows": len(rows),
            "top1_mean": float(np.mean([r["top1"] for r in head])),
            "top5_mean": float(np.mean([r["top5"] for r in head]))}


# ----------------------------------------------------------------------------- generation stages
def prior_stage(state: dict) -> dict:
    """Fit the Stage I prior on (EEG embedding, image feature) pairs of the training set.

    Targets are the retrieval feature space the encoder was trained on (the simulator's features are
    L2-normalised; it has no separate unnormalised "generation" space), so the prior maps EEG embeddings
    to image embeddings in that space. The settings ``prior_*`` choose how (``docs/prior.md`` has the
    measurements behind them): the prior is fitted on each training image's *averaged* EEG embedding (the
    noise level of the averaged test embeddings it is used on), reads the L2-normalised embedding, diffuses the
    correction to it (``residual``), and its output is the mean of ``prior_samples`` samples at guidance
    ``prior_guidance``. Its benefit is measured on the test set, side by side with the raw EEG embedding (cosine
    and 200-way retrieval).
    """
    from eegvision.features.files import load_features
    from eegvision.training import load_run, open_data
    from eegvision.training.prior_fit import PriorFitConfig, evaluate_prior, fit_prior

    s = state["settings"]
    store = open_data(state["store"])
    train_f = load_features(state["features"]["train"]).image
    test_f = load_features(state["features"]["test"]).image
    average = bool(s.get("prior_train_average", False))
    out: dict[str, Any] = {"space": "the retrieval feature space (L2-normalised): " + state.get("feature_space", ""),
                           "output": {"num_samples": int(s.get("prior_samples", 1)),
                                      "guidance_scale": float(s.get("prior_guidance", 5.0)),
                                      "steps": int(s["prior_steps"]), "residual": bool(s.get("prior_residual")),
                                      "normalize_condition": bool(s.get("prior_normalize_condition")),
                                      "prediction": "x0 (sample)",
                                      "fitted_on": "per-image averaged training EEG embeddings" if average
                                      else "single training trials"},
                           "subjects": {}}
    priors = {}
    for sub in state["sim"].subjects:
        run = load_run(state["run"].path, subject=sub)
        eeg = run.embed(store, sub, "training", average=average)
        cond = torch.as_tensor(store.metadata(sub, "training")["condition"].to_numpy(copy=True))
        if average:  # one row per condition, in condition order
            cond = torch.unique(cond)
        test_eeg = run.embed(store, sub, "test", average=True)
        cfg = PriorFitConfig(epochs=s["prior_epochs"], batch_size=512, warmup_steps=50, seed=state["seed"],
                             architecture_options={"hidden_dims": [256, 128, 64]}, eval_steps=s["prior_steps"],
                             eval_max=200, eval_guidance=float(s.get("prior_guidance", 5.0)),
                             residual=bool(s.get("prior_residual")),
                             normalize_condition=bool(s.get("prior_normalize_condition")),
                             num_samples=int(s.get("prior_samples", 1)), prediction_type="sample")
        res = fit_prior(eeg, train_f[cond], groups=cond.numpy(), config=cfg)
        test_metrics = evaluate_prior(res.prior, test_eeg, test_f, num_inference_steps=s["prior_steps"],
                                      guidance_scale=float(s.get("prior_guidance", 5.0)),
                                      seed=state["seed"]).as_dict()
        directory = state["out"] / "prior" / sub
        res.prior.save_pretrained(directory)
        priors[sub] = (res.prior, test_eeg)
        out["subjects"][sub] = {"dir": relative_path(directory, state["out"]), "val": res.metrics, "test": test_metrics,
                                "final_loss": res.history[-1]["loss"] if res.history else None}
    state["priors"] = priors
    return out


def world_models() -> tuple[Any | None, str]:
    """The world's trained models (CLIP, attribute classifier, generator), or ``(None, reason)``."""
    from eegvision.sim.world import load_world_models

    try:
        return load_world_models(), ""
    except (FileNotFoundError, ValueError, OSError) as err:
        return None, f"the world's trained models could not be loaded ({err})"


def reconstruct_stage(state: dict) -> dict:
    """Images from the world's trained generator, conditioned on the prior's samples (one per test concept).

    Beside them, as a reference for what the generator can do, the image it draws from the *true*
    image's world-CLIP embedding.
    """
    from PIL import Image

    from eegvision.readers.images import scan_image_folder
    from eegvision.sim.world import to_uint8

    models = state.get("world")
    if models is None:
        raise Skip("no trained world generator (" + world_models()[1] + "); images are never drawn by a stand-in")
    s = state["settings"]
    from eegvision.features.files import load_features

    test_f = load_features(state["features"]["test"]).image
    gt_paths = [str(p) for p in scan_image_folder(state["out"] / "data" / "test_images").paths]
    n = min(len(gt_paths), s["max_recon"])
    root = state["out"] / "recon"
    files: dict[str, list[str]] = {}
    embeds = {"true embedding": test_f[:n]}
    for sub, (prior, test_eeg) in state["priors"].items():
        embeds[sub] = prior.sample(test_eeg[:n], num_inference_steps=s["prior_steps"],
                                   guidance_scale=float(s.get("prior_guidance", 5.0)), seed=state["seed"]).float().cpu()
    for name, emb in embeds.items():
        imgs = to_uint8(models.generate(emb, seed=state["seed"]))
        folder = root / name.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        files[name] = []
        for i, im in enumerate(imgs):
            path = folder / f"{i:05d}_{Path(gt_paths[i]).parent.name.split('_', 1)[-1]}.png"
            Image.fromarray(im).save(path)
            files[name].append(relative_path(path, state["out"]))
    state["recon_files"] = files
    state["recon_embeds"] = embeds
    state["gt_paths"] = gt_paths[:n]
    show = np.linspace(0, n - 1, min(8, n)).astype(int)
    names = [k for k in files if k != "true embedding"] + ["true embedding"]
    grid = [[relative_path(gt_paths[i], state["out"])] + [files[k][i] for k in names] for i in show]
    labels = [Path(gt_paths[i]).parent.name.split("_", 1)[-1] for i in show]
    return {"n_concepts": n, "columns": ["seen"] + names, "grid": grid, "labels": labels, "folders": {
        k: relative_path(root / k.replace(" ", "_"), state["out"]) for k in files}}


def lowlevel_stage(state: dict) -> dict:
    """The low-level path (EEG → VAE latent → img2img), on the first subject.

    A ridge regressor (:func:`eegvision.training.lowlevel_fit.fit_lowlevel`, penalty by grouped CV) maps the
    repetition-averaged training EEG to the world VAE's scaled latents of the training images; the latents it
    predicts for the test EEG are decoded into a low-level image, which the world generator takes as img2img init
    (noised to the start of the last ``strength`` of its schedule, :func:`eegvision.sim.world.img2img
    .generate_from_images`), conditioned on the same prior samples as the reconstruct stage. PixCorr and SSIM
    (at the ground truth's resolution, as the score stage) are recorded with and without the low-level path, for
    the decoded low-level image alone, and for the VAE's own reconstruction of the seen image (what a perfect
    latent would give); attribute match of the images with and without it shows what the init costs or brings.
    """
    import time

    from PIL import Image

    from eegvision.metrics.images import load_image_uint8
    from eegvision.sim.world import to_model_input, to_uint8
    from eegvision.sim.world.img2img import generate_from_images
    from eegvision.sim.world.vae import latents_to_images, load_world_vae
    from eegvision.training.lowlevel_fit import (
        LowLevelFitConfig,
        fit_lowlevel,
        predict_split_latents,
    )

    models = state.get("world")
    if models is None:
        raise Skip("no trained world generator (" + world_models()[1] + ")")
    try:
        vae = load_world_vae(models.path, device="cpu")
    except (FileNotFoundError, ValueError) as err:
        raise Skip(f"no world VAE ({err})") from err
    s, out = state["settings"], state["out"]
    sub = state["sim"].subjects[0]
    n = len(state["gt_paths"])
    t0 = time.perf_counter()
    fit = fit_lowlevel(state["store"], vae, out / "lowlevel" / sub,
                       LowLevelFitConfig(subject=sub, time_bin=s["lowlevel_time_bin"], seed=state["seed"]),
                       vae_path=relative_path(models.path, out))
    latents = predict_split_latents(fit.directory)[:n]
    init = latents_to_images(vae, latents)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    with_ll = generate_from_images(models.generator, state["recon_embeds"][sub], init, strength=s["lowlevel_strength"],
                                   seed=state["seed"])
    img2img_s = time.perf_counter() - t1
    gt_u8 = torch.stack([load_image_uint8(p) for p in state["gt_paths"]])
    with torch.no_grad():
        gt_model = to_model_input(gt_u8.permute(0, 2, 3, 1))
        vae_rec = vae.decode(vae.encode(gt_model).latent_dist.mean).sample.clamp(-1, 1)
    files: dict[str, list[str]] = {}
    images = {f"{sub} low-level init": init, f"{sub} with low-level": with_ll, "VAE of the seen image": vae_rec}
    for name, ims in images.items():
        folder = out / "recon" / name.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        files[name] = []
        for i, im in enumerate(to_uint8(ims)):
            path = folder / f"{i:05d}.png"
            Image.fromarray(im).save(path)
            files[name].append(relative_path(path, out))
    rec_u8 = {f"{sub} without low-level": torch.stack([load_image_uint8(out / f) for f in state["recon_files"][sub]]),
              **{k: torch.from_numpy(to_uint8(v)).permute(0, 3, 1, 2) for k, v in images.items()}}
    metrics = _pixel_metrics(gt_u8, rec_u8)
    concepts = state["sim"].world.concepts("test")[:n]
    for name in (f"{sub} without low-level", f"{sub} with low-level"):
        for a, v in models.attribute_match(rec_u8[name].permute(0, 2, 3, 1).numpy(), concepts).items():
            metrics[f"{name.replace(' ', '_')}/attribute_{a}"] = float(v)
    show = np.linspace(0, n - 1, min(8, n)).astype(int)
    grid = [[relative_path(state["gt_paths"][i], out), state["recon_files"][sub][i], files[f"{sub} low-level init"][i],
             files[f"{sub} with low-level"][i], files["VAE of the seen image"][i]] for i in show]
    return {"subject": sub, "ran": True, "regressor": relative_path(fit.directory, out), "alpha": fit.alpha,
            "cv_r2": fit.cv["r2"], "latent_shape": fit.latent_shape, "test_latents": fit.test,
            "strength": s["lowlevel_strength"], "time_bin": s["lowlevel_time_bin"], "n_concepts": n,
            "fit_and_decode_s": fit_s, "img2img_s": img2img_s, "metrics": metrics,
            "columns": ["seen", "without\nlow-level", "low-level\ninit", "with\nlow-level", "VAE of\nthe seen"],
            "grid": grid, "labels": [Path(state["gt_paths"][i]).parent.name.split("_", 1)[-1] for i in show]}


def _pixel_metrics(gt_u8: torch.Tensor, recs: dict[str, torch.Tensor]) -> dict[str, float]:
    """``{name/pixcorr, name/ssim}``: each uint8 set resized to the ground truth's size (bilinear), as the score
    stage does."""
    from eegvision.metrics.images import pixcorr, ssim

    gt = gt_u8.float() / 255
    out = {}
    for name, rec_u8 in recs.items():
        rec = torch.nn.functional.interpolate(rec_u8.float() / 255, size=gt.shape[-2:], mode="bilinear",
                                              align_corners=False)
        tag = name.replace(" ", "_")
        out[f"{tag}/pixcorr"] = float(pixcorr(gt, rec, size=gt.shape[-1]).mean())
        out[f"{tag}/ssim"] = float(ssim(gt, rec, size=gt.shape[-1]).mean())
    return out


def caption_stage(state: dict) -> dict:
    """Caption the decoded embeddings: a prefix captioner trained here on the *training* images' features and
    captions, fed the prior's samples for the test EEG; scored against the test images' captions, next to each
    score's chance floor (every caption against another image's references) and the fraction of captions that say a
    word three times in a row. Decoding uses the library's defaults (greedy, no repeated word pair, CTRL penalty
    1.2: :mod:`eegvision.generation.decoding`), recorded under ``decoding``."""
    import pandas as pd

    from eegvision.features.files import load_features
    from eegvision.generation.captioner import caption_embeddings
    from eegvision.generation.decoding import decoding_settings
    from eegvision.metrics.captions import score_captions
    from eegvision.metrics.repetition import repetition_summary
    from eegvision.training.caption_fit import CaptionFitConfig, fit_captioner

    s = state["settings"]
    data = state["out"] / "data"
    train_caps = pd.read_csv(data / "captions_training.tsv", sep="\t")
    test_caps = pd.read_csv(data / "captions_test.tsv", sep="\t")
    train_f = load_features(state["features"]["train"]).image
    cfg = CaptionFitConfig(epochs=s["caption_epochs"], batch_size=64, warmup_steps=20, seed=state["seed"],
                           decoder_options={"n_embd": 64, "n_layer": 2, "n_head": 2}, eval_max=50)
    fit = fit_captioner(train_f, train_caps["caption"].tolist(), config=cfg)
    fit.captioner.save_pretrained(state["out"] / "captioner")
    sub = next(iter(state["priors"]))
    prior, test_eeg = state["priors"][sub]
    decoding = decoding_settings()
    caps, _ = caption_embeddings(test_eeg, fit.captioner, prior=prior, prior_steps=s["prior_steps"],
                                 prior_guidance=float(s.get("prior_guidance", 5.0)),
                                 seed=state["seed"], num_beams=decoding["num_beams"],
                                 max_new_tokens=decoding["max_new_tokens"],
                                 no_repeat_ngram_size=decoding["no_repeat_ngram_size"],
                                 repetition_penalty=decoding["repetition_penalty"])
    refs = test_caps["caption"].tolist()
    scores = score_captions(refs, caps, metrics=["BLEU-4", "ROUGE-L", "CIDEr-D"], seed=state["seed"])
    # a shuffled pairing of the same captions: what the metrics give for the wrong image
    perm = np.random.default_rng(state["seed"]).permutation(len(caps))
    shuffled = score_captions(refs, [caps[i] for i in perm], metrics=["BLEU-4", "ROUGE-L", "CIDEr-D"])
    metrics = {k: float(v) for k, v in scores.corpus.items()}
    metrics.update({f"{k} (shuffled pairs)": float(v) for k, v in shuffled.corpus.items()})
    metrics.update({f"{k} (chance)": float(v) for k, v in scores.chance.items()})
    repetition = repetition_summary(caps)
    metrics["captions with a word 3x in a row (fraction)"] = repetition["word_3x_in_a_row"]
    metrics["longest run of one word"] = repetition["max_word_run"]
    show = np.linspace(0, len(caps) - 1, min(8, len(caps))).astype(int)
    examples = [{"concept": test_caps["concept"][i], "caption": caps[i], "reference": refs[i]} for i in show]
    return {"subject": sub, "metrics": metrics, "examples": examples, "captions": list(caps), "captioner": "captioner/",
            "decoding": decoding,
            "captioner_val": {k: float(v) for k, v in fit.metrics.items() if isinstance(v, (int, float))}}


def score_stage(state: dict) -> dict:
    """PixCorr, SSIM, two-way identification in world-CLIP space, and attribute match (world classifier)."""
    from eegvision.metrics.identification import correlation_matrix, two_way_identification
    from eegvision.metrics.images import load_image_uint8, pixcorr, ssim

    models = state["world"]
    gt_u8 = torch.stack([load_image_uint8(p) for p in state["gt_paths"]])
    gt = gt_u8.float() / 255
    concepts = state["sim"].world.concepts("test")[: len(gt)]
    metrics: dict[str, float] = {}
    for name, files in state["recon_files"].items():
        rec_u8 = torch.stack([load_image_uint8(state["out"] / f) for f in files])
        rec = torch.nn.functional.interpolate(rec_u8.float() / 255, size=gt.shape[-2:], mode="bilinear",
                                              align_corners=False)
        tag = name.replace(" ", "_")
        metrics[f"{tag}/pixcorr"] = float(pixcorr(gt, rec, size=gt.shape[-1]).mean())
        metrics[f"{tag}/ssim"] = float(ssim(gt, rec, size=gt.shape[-1]).mean())
        e_gt = models.embed_images(gt_u8.permute(0, 2, 3, 1).numpy())
        e_rec = models.embed_images(rec_u8.permute(0, 2, 3, 1).numpy())
        corr = correlation_matrix(e_gt, e_rec)
        metrics[f"{tag}/two_way_world_clip"] = float(two_way_identification(corr, np.arange(len(gt))).mean())
        match = models.attribute_match(rec_u8.permute(0, 2, 3, 1).numpy(), concepts)
        for a, v in match.items():
            metrics[f"{tag}/attribute_{a}"] = float(v)
    return {"metrics": metrics, "note": (
        "PixCorr and SSIM at the ground truth's resolution; two-way identification in the world-CLIP image space "
        "(chance 0.5); attribute match read by the world's attribute classifier (chance in the *_chance rows). "
        "Skipped: AlexNet(2/5), Inception, CLIP ViT-L, EffNet-B and SwAV metrics, which need pretrained networks "
        "that cannot be downloaded offline (pass them with `eegvision score-images --weights DIR` on real data).")}


def analysis_stage(state: dict) -> dict:
    """Channel importance (occlusion: drop of cosine to the true image when a channel is replaced by its mean)."""
    from eegvision.analysis import importance_for_run

    maps = {}
    for sub in state["sim"].subjects:
        res = importance_for_run(state["run"].path, state["out"] / "analysis" / sub, data=str(state["store"]),
                                 subject=sub)
        col = "occlusion_similarity_drop"
        maps[sub] = {"values": res.table[col].astype(float).tolist(), "ch_names": res.table["channel"].tolist(),
                     "what": "occlusion: drop in cosine to the seen image", "csv": relative_path(res.csv, state["out"]),
                     "top_channels": res.ranking(col)[:5], "baseline_top1": float(res.baseline_top1)}
    figures = _time_and_region_figures(state)
    return {"topomaps": maps, "figures": figures}


def _time_and_region_figures(state: dict) -> dict:
    """Sliding-window and per-region ridge decoding of the first subject (table + figure each)."""
    from eegvision.analysis import region_analysis, time_analysis

    sub = state["sim"].subjects[0]
    out = state["out"] / "analysis" / sub
    feats = {"features_train": str(state["features"]["train"]), "features_test": str(state["features"]["test"])}
    timing = time_analysis(state["store"], sub, out / "time", **feats)
    regions = region_analysis(state["store"], sub, out / "regions", **feats)
    from eegvision.analysis.maps import tsne_for_run
    from eegvision.analysis.similarity import rsa_for_run

    run = state["run"].path
    rsa = rsa_for_run(run, out / "rsa", subject=sub, features_test=feats["features_test"], seed=state["seed"])
    from eegvision.sim.labels import test_concept_shapes

    shapes = test_concept_shapes(state["out"] / "data")
    tsne = tsne_for_run(run, out / "tsne", subject=sub, labels=shapes, seed=state["seed"])
    return {
        "rsa": {"figure": relative_path(rsa.figure, state["out"]), "csv": relative_path(rsa.csv, state["out"]),
                "rho": float(rsa.rho), "p_value": float(rsa.p_value)},
        "tsne": {"figure": relative_path(tsne.figure, state["out"]), "csv": relative_path(tsne.csv, state["out"])},
        "time": {"figure": relative_path(timing.figure, state["out"]), "csv": relative_path(timing.csv, state["out"]),
                 "best_window": [float(x) for x in timing.best_window], "best_top1": float(timing.best_top1)},
        "regions": {"figure": relative_path(regions.figure, state["out"]), "csv": relative_path(regions.csv, state["out"]),
                    "ranking": list(regions.ranking)},
    }


# ----------------------------------------------------------------------------- summary
def summarize(state: dict, stages: list, wall_s: float) -> dict:
    """Everything the report shows, read back from the files the stages wrote (``demo.json``)."""
    from dataclasses import asdict

    out: Path = state["out"]
    sim_meta = json.loads((out / "data" / "simulation.json").read_text()) if (out / "data" / "simulation.json").is_file() else {}
    gt = sim_meta.get("ground_truth", {})
    rows = state.get("rows") or []
    k = max((r["k"] for r in rows), default=HEADLINE_K)
    per_subject = {}
    for r in rows:
        if r["modality"] == "image" and r["method"] == "exact" and r["k"] == k:
            per_subject.setdefault(r["subject"], {})["top1"] = r["top1"]
            per_subject[r["subject"]]["top5"] = r["top5"]
    for r in rows:
        if r["modality"] == "text" and r["method"] == "exact" and r["k"] == k and r["subject"] in per_subject:
            per_subject[r["subject"]]["text_top1"] = r["top1"]
            per_subject[r["subject"]]["text_top5"] = r["top5"]
    for sub_info in gt.get("subjects", []):
        if sub_info["subject"] in per_subject:
            per_subject[sub_info["subject"]].update(
                ceiling_top1=sub_info["ceiling"]["top1"], ceiling_top5=sub_info["ceiling"]["top5"],
                ridge_top1=sub_info["ridge"]["top1"], ridge_top5=sub_info["ridge"]["top5"])
    mean = lambda key: float(np.mean([v[key] for v in per_subject.values()])) if per_subject else float("nan")  # noqa: E731
    n_test = sim_meta.get("n_conditions", {}).get("test", k)
    headline = {
        "k": int(k), "top1": mean("top1"), "top5": mean("top5"),
        "text_top1": mean("text_top1") if any("text_top1" in v for v in per_subject.values()) else None,
        "ceiling_top1": gt.get("bayes_ceiling", {}).get("top1"), "ceiling_top5": gt.get("bayes_ceiling", {}).get("top5"),
        "ridge_top1": gt.get("ridge", {}).get("top1"), "ridge_top5": gt.get("ridge", {}).get("top5"),
        "chance_top1": 1.0 / k, "chance_top5": min(1.0, 5.0 / k), "n_test": n_test,
    }
    units = {}
    run = state.get("run")
    if run is not None:
        for sub in per_subject:
            units[sub] = relative_path(run.unit_for_subject(sub).path, out)
    return {
        "eegvision_demo": 1, "seed": state["seed"], "settings": state["settings"],
        "preset": sim_meta.get("preset", {}), "headline": headline, "per_subject": per_subject,
        "units": units, "stages": [asdict(s) for s in stages], "wall_s": wall_s,
        "metrics_file": "run/metrics.json" if rows else None,
    }
