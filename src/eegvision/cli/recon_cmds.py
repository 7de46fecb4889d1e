"""CLI: Stage I prior (``prior fit``/``prior sample``), ``reconstruct`` and ``score-images``."""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.checks import show_list
from eegvision.cli._apps import prior_app
from eegvision.cli._common import JSON_HELP, print_json, split_list, stderr, stdout, user_errors
from eegvision.cli._concepts import CONCEPTS_HELP, embedding_concepts


# ---------------------------------------------------------------------------- inputs
def _test_embeddings(source: Path, subject: str | None) -> dict:
    """``{subject: (n, d) tensor}`` from a run folder or an embedding file."""
    import torch

    if source.is_dir():
        from eegvision.training.rundir import RunFolder

        out = RunFolder.open(source).test_embeddings()
    else:
        from eegvision.evaluation.embeddings import load_embeddings

        out = {subject or "sub-01": torch.as_tensor(load_embeddings(source))}
    if subject is not None:
        if subject not in out:
            raise ValueError(f"No test embeddings for '{subject}' in {source}; it has {show_list(sorted(out))}.")
        out = {subject: out[subject]}
    return out


# ---------------------------------------------------------------------------- prior fit / sample
@prior_app.command("fit")
def prior_fit_cmd(
    run: Path = typer.Argument(..., help="Run directory (encoder trained with the `generation` objective)."),
    embeddings: Path = typer.Option(None, help="Training EEG embeddings (.pt/.npy/.safetensors; one row per trial "
                                                "in store order, or per condition) instead of embedding the run's "
                                                "training data."),
    image_features: Path = typer.Option(None, help="Raw (unnormalised) training image features; default: the "
                                                    "run's training feature file."),
    data: Path = typer.Option(None, help="Store or THINGS-EEG2 folder (default: the run's data); its metadata "
                                         "pairs each EEG row with its image."),
    subject: str = typer.Option(None, help="Subject whose training trials condition the prior (default: the "
                                           "run's training subject)."),
    out: Path = typer.Option(None, help="Output folder (default RUN/prior)."),
    architecture: str = typer.Option("unet", help="unet (reference MLP U-Net) or transformer (PriorTransformer)."),
    epochs: int = typer.Option(150), batch_size: int = typer.Option(1024), lr: float = typer.Option(1e-3),
    val_fraction: float = typer.Option(0.1, help="Fraction of training images held out."),
    standardize: bool = typer.Option(False, help="Diffuse per-dimension standardised embeddings."),
    eval_steps: int = typer.Option(50), eval_guidance: float = typer.Option(5.0),
    num_samples: int = typer.Option(8, "--num-samples", min=1,
                                    help="The prior's output is the mean of this many samples (saved with it; "
                                         "1 = one sample, the reference)."),
    prediction: str = typer.Option("sample", "--prediction",
                                   help="What the denoiser predicts: sample (x0, default) or epsilon (reference)."),
    residual: bool = typer.Option(False, "--residual", help="Diffuse the correction to the (normalised) EEG "
                                  "embedding; needs EEG embeddings in the image space."),
    normalize_condition: bool = typer.Option(False, "--normalize-condition",
                                             help="L2-normalise the EEG embedding the prior reads."),
    seed: int = typer.Option(0), device: str = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Fit the Stage I diffusion prior (EEG embedding → raw CLIP image embedding) and report whether it helps.

    Example: eegvision prior fit runs/atms-gen-sub-08 --epochs 150
    """
    with user_errors():
        from eegvision.training.prior_fit import PriorFitConfig, fit_run_prior

        cfg = PriorFitConfig(architecture=architecture, epochs=epochs, batch_size=batch_size, learning_rate=lr,
                             val_fraction=val_fraction, standardize=standardize, eval_steps=eval_steps,
                             eval_guidance=eval_guidance, num_samples=num_samples, seed=seed, device=device,
                             prediction_type=prediction, residual=residual, normalize_condition=normalize_condition)
        res = fit_run_prior(run, subject=subject, data=data, embeddings=embeddings, image_features=image_features,
                            out=out, config=cfg)
    v = res.fit.validation
    if as_json:
        print_json({"subject": res.subject, "directory": res.directory, "n_rows": res.n_rows,
                    "n_images": res.n_images, "validation": res.fit.metrics, "history": res.fit.history})
        return
    stdout.print(f"{res.subject}: prior fitted on {res.n_rows} EEG rows of {res.n_images} images, saved to "
                  f"{res.directory}")
    if v is not None:
        line = f"validation ({v.n_candidates} images): prior top-1 {v.prior_top1:.3f}, cosine {v.prior_cosine:.3f}"
        if v.raw_top1 is not None:
            line += f"; raw EEG embedding top-1 {v.raw_top1:.3f}, cosine {v.raw_cosine:.3f}"
        stdout.print(line + f"; chance {v.chance_top1:.3f}")


@prior_app.command("sample")
def prior_sample_cmd(
    prior: Path = typer.Argument(..., help="Prior folder (from `eegvision prior fit`)."),
    embeddings: Path = typer.Option(..., help="EEG embeddings (n, d) to map to image embeddings."),
    out: Path = typer.Option(..., help="Output .safetensors with tensor `image_embeds`."),
    steps: int = typer.Option(50), guidance: float = typer.Option(5.0), seed: int = typer.Option(0),
    scheduler: str = typer.Option("ddpm", help="ddpm or ddim."), device: str = typer.Option(None),
    num_samples: int = typer.Option(None, "--num-samples", min=1,
                                    help="Average this many samples per row (default: the prior's own)."),
) -> None:
    """Sample image embeddings from a fitted prior for a file of EEG embeddings.

    Example: eegvision prior sample runs/x/prior --embeddings test_emb.pt --out image_embeds.safetensors
    """
    with user_errors():
        import torch
        from safetensors.torch import save_file

        from eegvision.evaluation.embeddings import load_embeddings
        from eegvision.models.prior import DiffusionPrior
        from eegvision.utils import atomic_path, default_device

        model = DiffusionPrior.from_pretrained(prior, device=default_device(device))
        eeg = torch.as_tensor(load_embeddings(embeddings))
        h = model.sample(eeg, num_inference_steps=steps, guidance_scale=guidance, seed=seed, scheduler=scheduler,
                         num_samples=num_samples)
        with atomic_path(out, suffix=".safetensors") as tmp:
            save_file({"image_embeds": h.cpu().contiguous()}, str(tmp),
                      metadata={"prior": str(prior), "steps": str(steps), "guidance": str(guidance),
                                "seed": str(seed)})
        stdout.print(f"{len(h)} image embeddings → {out}")


# ---------------------------------------------------------------------------- reconstruct
def reconstruct_cmd(
    run: Path = typer.Argument(..., help="Run directory (its test embeddings) or an EEG test-embedding file."),
    generator: Path = typer.Option(..., help="Local diffusers pipeline folder (e.g. sdxl-turbo)."),
    out: Path = typer.Option(..., help="Output folder (images/ + manifest)."),
    prior: Path = typer.Option(None, help="Prior folder; default RUN/prior when it exists."),
    no_prior: bool = typer.Option(False, "--no-prior", help="Feed the EEG embeddings to the generator directly."),
    ip_adapter: Path = typer.Option(None, help="Folder with sdxl_models/ip-adapter_sdxl_vit-h.safetensors."),
    subject: str = typer.Option(None, help="Only this subject."),
    concepts: Path = typer.Option(None, help=CONCEPTS_HELP),
    samples: int = typer.Option(10), seed: int = typer.Option(0), steps: int = typer.Option(4),
    guidance: float = typer.Option(0.0), prior_steps: int = typer.Option(50),
    prior_guidance: float = typer.Option(5.0), height: int = typer.Option(None), width: int = typer.Option(None),
    batch_size: int = typer.Option(10, help="Images per pipeline call (samples of one concept)."),
    low_level: Path = typer.Option(None, help="safetensors file with `latents` (n, 4, h, w): low-level img2img "
                                              "init per concept (see docs/reconstruction.md)."),
    low_level_run: Path = typer.Option(None, help="Folder written by `eegvision lowlevel fit`: its regressor "
                                                  "predicts each test concept's img2img init from the EEG."),
    strength: float = typer.Option(0.5, help="img2img strength with --low-level or --low-level-run."),
    prompt: str = typer.Option("", help="One text prompt for every image."),
    captions: Path = typer.Option(None, help="Text file, one caption per concept (used as prompts)."),
    device: str = typer.Option(None), dtype: str = typer.Option(None, help="float16/float32 (default fp16 on GPU)."),
    resume: bool = typer.Option(False, help="Keep existing images and fill in the missing ones."),
) -> None:
    """Two-stage reconstruction: EEG test embeddings → prior → image embeddings → images, with a manifest.

    Example: eegvision reconstruct runs/atms-gen-sub-08 --generator weights/sdxl-turbo --ip-adapter weights/IP-Adapter --out recon/sub-08
    """
    with user_errors():
        from eegvision.generation.generator import load_generator
        from eegvision.generation.reconstruct import (
            ReconstructionSettings,
            distributed_rank,
            reconstruct,
        )
        from eegvision.models.prior import DiffusionPrior
        from eegvision.training.rundir import RunFolder
        from eegvision.utils import default_device

        per_subject = _test_embeddings(run, subject)
        _, world, local = distributed_rank()
        dev = default_device(device)
        if world > 1 and dev == "cuda":
            dev = f"cuda:{local}"
        prior_dir = None if no_prior else (prior or (RunFolder(run).prior_dir if run.is_dir() else None))
        if prior_dir is not None and not DiffusionPrior.is_saved(prior_dir):
            if prior is not None:
                raise FileNotFoundError(f"No prior in {prior_dir}; fit one with `eegvision prior fit`.")
            prior_dir = None
        if prior_dir is None and not no_prior:
            stderr.print("[yellow]no prior found: EEG embeddings go to the generator directly (--no-prior)[/]")
        model = DiffusionPrior.from_pretrained(prior_dir, device=dev) if prior_dir else None
        gen = load_generator(generator, ip_adapter=ip_adapter, device=dev, dtype=dtype)
        settings = ReconstructionSettings(samples=samples, seed=seed, steps=steps, guidance=guidance,
                                          prior_steps=prior_steps, prior_guidance=prior_guidance,
                                          batch_size=batch_size, height=height, width=width, strength=strength,
                                          resume=resume)
        latents = None
        if low_level is not None and low_level_run is not None:
            raise ValueError("Got both --low-level (a latents file) and --low-level-run (a fitted regressor); pass "
                             "one of them.")
        if low_level is not None:
            from eegvision.tensorfiles import load_safetensors

            latents = load_safetensors(low_level, "Low-level latents file")["latents"]
        elif low_level_run is not None:
            from eegvision.training.lowlevel_fit import predict_split_latents, read_lowlevel_record

            if len(per_subject) > 1:
                raise ValueError(f"--low-level-run predicts one subject's latents ("
                                 f"{read_lowlevel_record(low_level_run)['subject']}); the run holds "
                                 f"{sorted(per_subject)}: pass --subject.")
            subj = next(iter(per_subject))
            fitted_on = read_lowlevel_record(low_level_run)["subject"]
            if fitted_on != subj:
                stderr.print(f"[yellow]the low-level regressor was fitted on {fitted_on}; it now reads {subj}'s "
                             "EEG[/]")
            latents = predict_split_latents(low_level_run, subject=subj)
        for subj, emb in per_subject.items():
            table = embedding_concepts(run, len(emb), concepts)
            prompts = None
            if captions is not None:
                prompts = [line.rstrip("\n") for line in captions.read_text().splitlines()]
            elif prompt:
                prompts = [prompt] * len(emb)
            target = out if len(per_subject) == 1 else out / subj
            path = reconstruct(emb, table, gen, target, prior=model, settings=settings, subject=subj,
                               prompts=prompts, init_latents=latents,
                               extra={"run": str(run), "prior_path": str(prior_dir) if prior_dir else None,
                                      "ip_adapter": getattr(gen, "ip_adapter", None),
                                      "low_level_run": str(low_level_run) if low_level_run else None})
            stdout.print(f"{subj}: images and manifest in {path.parent}")


# ---------------------------------------------------------------------------- score
def score_images_cmd(
    gt: Path = typer.Argument(..., help="test_images/ root with NNNNN_concept folders."),
    recon: Path = typer.Argument(..., help="Reconstruction folder (with manifest.json) or folder of subjects."),
    out: Path = typer.Option(..., help="Result table (.csv, .tsv or .md)."),
    weights: Path = typer.Option(None, help="Folder with the metric networks (see docs/reconstruction.md)."),
    metrics: str = typer.Option(None, help="Comma-separated subset, e.g. 'PixCorr,SSIM,CLIP'."),
    no_resize_256: bool = typer.Option(False, "--no-resize-256", help="Skip MindEye's first 256-px resize."),
    no_antialias: bool = typer.Option(False, "--no-antialias",
                                      help="Resize without antialiasing, as MindEye2's published environment "
                                           "(torchvision 0.15) did: for comparisons with published tables."),
    batch_size: int = typer.Option(32), device: str = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score reconstructions with the MindEye suite (PixCorr, SSIM, AlexNet, Inception, CLIP, EffNet, SwAV).

    Example: eegvision score-images data/test_images recon/ --weights weights/metrics --out recon_scores.csv
    """
    with user_errors():
        from rich.markdown import Markdown

        from eegvision.metrics.pairing import format_table, score_images, write_results

        res = score_images(gt, recon, weights_dir=weights,
                           metrics=split_list(metrics),
                           base_size=None if no_resize_256 else 256, batch_size=batch_size, device=device,
                           antialias=not no_antialias)
        write_results(res, out)
        if as_json:
            print_json({"table": res.table, "protocol": res.protocol, "out": out})
            return
        stdout.print(Markdown(format_table(res.table, "first")))
        stdout.print(f"table: {out} (rules 'first' and 'mean'; per-image scores beside it)")


def register(app: typer.Typer) -> None:
    """Attach ``reconstruct`` and ``score-images`` to the root app (``prior`` lives on the shared prior_app)."""
    app.command("reconstruct")(reconstruct_cmd)
    app.command("score-images")(score_images_cmd)
