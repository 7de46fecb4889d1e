"""CLI: ``caption`` (EEG → prior → captioner → captions), ``caption-fit`` (train a captioner) and
``score-captions`` (BLEU, METEOR, ROUGE-L, CIDEr-D, MiniLM similarity, CLIPScore)."""

from __future__ import annotations

from pathlib import Path

import typer

from eegvision.cli._common import JSON_HELP, print_json, split_list, stderr, stdout, user_errors
from eegvision.cli._concepts import CONCEPTS_HELP, embedding_concepts


def _write_table(df, out: Path) -> None:
    from eegvision.utils import write_text_atomic

    suffix = out.suffix.lower()
    if suffix == ".md":
        try:
            text = df.to_markdown(index=False) + "\n"
        except ImportError:  # pandas needs `tabulate` for Markdown
            text = df.to_string(index=False) + "\n"
    elif suffix in (".csv", ".tsv"):
        text = df.to_csv(index=False, sep="\t" if suffix == ".tsv" else ",")
    else:
        raise ValueError(f"Unsupported table format {out.name}; use .csv, .tsv or .md.")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, text)


def caption_cmd(
    run: Path = typer.Argument(..., help="Run directory (its test embeddings) or an EEG test-embedding file."),
    out: Path = typer.Option(..., help="Output folder (captions.txt, captions.tsv, captions.json)."),
    captioner: Path = typer.Option(None, help="Captioner folder (from `eegvision caption-fit`); default "
                                              "RUN/captioner."),
    beams: int = typer.Option(1, help="Beam width (1 = greedy)."),
    use_prior: bool = typer.Option(True, "--prior/--no-prior", help="Map EEG embeddings through the diffusion "
                                                                    "prior first (default when one exists)."),
    prior: Path = typer.Option(None, "--prior-dir", help="Prior folder; default RUN/prior."),
    subject: str = typer.Option(None, help="Only this subject."),
    concepts: Path = typer.Option(None, help=CONCEPTS_HELP),
    prior_steps: int = typer.Option(50), prior_guidance: float = typer.Option(5.0), seed: int = typer.Option(0),
    max_new_tokens: int = typer.Option(30),
    no_repeat_ngram: int = typer.Option(2, "--no-repeat-ngram", help="No token n-gram of this size twice in a "
                                        "caption (2: no word pair twice, so no word three times in a row; 0 = "
                                        "off)."),
    repetition_penalty: float = typer.Option(1.2, help="CTRL penalty on tokens already in the caption (scores "
                                                       "divided by it when positive, multiplied when negative; "
                                                       "1.0 = off)."),
    device: str = typer.Option(None),
) -> None:
    """Caption what each test image looked like from EEG: EEG embedding → prior → CLIP embedding → text.

    Decoding is greedy (or beam search with --beams) and cannot loop on a word: by default no word pair comes twice
    (--no-repeat-ngram 2) and words already said are penalised (--repetition-penalty 1.2); both are recorded in
    captions.json.

    Example: eegvision caption runs/atms-gen-sub-08 --captioner weights/captioner-vith --out captions/sub-08
    """
    with user_errors():
        from eegvision.cli.recon_cmds import _test_embeddings
        from eegvision.generation.captioner import (
            PrefixCaptioner,
            caption_embeddings,
            write_captions,
        )
        from eegvision.generation.decoding import decoding_settings
        from eegvision.models.prior import DiffusionPrior
        from eegvision.training.rundir import RunFolder
        from eegvision.utils import default_device

        decoding = decoding_settings(beams, max_new_tokens, no_repeat_ngram, repetition_penalty)  # before loading
        dev = default_device(device)
        folder = RunFolder(run) if run.is_dir() else None
        cap_dir = captioner or (folder.captioner_dir if folder is not None else None)
        if cap_dir is None or not PrefixCaptioner.is_saved(cap_dir):
            raise FileNotFoundError(f"No captioner at {cap_dir}; train one with `eegvision caption-fit FEATURES "
                                    "CAPTIONS --out DIR` and pass --captioner DIR.")
        model = PrefixCaptioner.from_pretrained(cap_dir, device=dev)
        prior_dir = None
        if use_prior:
            prior_dir = prior or (folder.prior_dir if folder is not None else None)
            if prior_dir is None or not DiffusionPrior.is_saved(prior_dir):
                if prior is not None:
                    raise FileNotFoundError(f"No prior in {prior}; fit one with `eegvision prior fit`.")
                stderr.print("[yellow]no prior found: captioning the EEG embeddings directly (--no-prior)[/]")
                prior_dir = None
        prior_model = DiffusionPrior.from_pretrained(prior_dir, device=dev) if prior_dir else None
        per_subject = _test_embeddings(run, subject)
        for subj, emb in per_subject.items():
            table = embedding_concepts(run, len(emb), concepts)
            caps, _ = caption_embeddings(emb, model, prior=prior_model, concept_indices=table.index,
                                         prior_steps=prior_steps, prior_guidance=prior_guidance, seed=seed,
                                         num_beams=beams, max_new_tokens=max_new_tokens,
                                         no_repeat_ngram_size=no_repeat_ngram, repetition_penalty=repetition_penalty)
            target = out if len(per_subject) == 1 else out / subj
            write_captions(target, caps, table, subject=subj, settings={
                "run": str(run), "captioner": str(cap_dir), "prior": str(prior_dir) if prior_dir else None,
                "prior_steps": prior_steps, "prior_guidance": prior_guidance, "seed": seed, "beams": beams,
                "max_new_tokens": max_new_tokens, "decoding": decoding})
            stdout.print(f"{subj}: {len(caps)} captions → {target / 'captions.txt'}")


def caption_fit_cmd(
    features: Path = typer.Argument(..., help="Image feature file (.safetensors `image`, .pt, .npy); row i = "
                                              "image i."),
    captions: Path = typer.Argument(..., help="Reference captions: .tsv/.csv with `caption` (+ `condition` = "
                                              "feature row; several rows per image allowed), .txt or .json."),
    out: Path = typer.Option(..., help="Output captioner folder."),
    decoder: Path = typer.Option(None, help="Local causal-LM folder (e.g. gpt2/); default: a new small GPT-2 "
                                            "with a word-level tokenizer built from the captions."),
    tokenizer: Path = typer.Option(None, help="Local tokenizer folder (default: the decoder's)."),
    prefix_length: int = typer.Option(10), epochs: int = typer.Option(10), batch_size: int = typer.Option(40),
    lr: float = typer.Option(None, help="Default 2e-5 with --decoder, 1e-3 from scratch."),
    freeze_decoder: bool = typer.Option(False, help="Train the prefix mapping only."),
    n_embd: int = typer.Option(256, help="Width of the new small GPT-2 (ignored with --decoder)."),
    n_layer: int = typer.Option(4, help="Layers of the new small GPT-2 (ignored with --decoder)."),
    val_fraction: float = typer.Option(0.1, help="Fraction of images held out and captioned at the end."),
    seed: int = typer.Option(0), device: str = typer.Option(None),
) -> None:
    """Train a ClipCap-style captioner on image embeddings and reference captions.

    Example: eegvision caption-fit features/ViT-H-14_train.safetensors captions_training.tsv --decoder weights/gpt2 --out weights/captioner-vith
    """
    with user_errors():
        import numpy as np

        from eegvision.evaluation.embeddings import load_embeddings
        from eegvision.metrics.captions import read_caption_file
        from eegvision.training.caption_fit import CaptionFitConfig, fit_captioner, save_caption_fit

        emb = load_embeddings(features)
        key, keys, groups = read_caption_file(captions)
        if key is None:
            rows = list(range(len(groups)))
        else:
            try:
                rows = [int(k) for k in keys]
            except (TypeError, ValueError):
                raise ValueError(f"{captions}: the {key!r} column must hold integer feature rows.") from None
        idx = np.concatenate([[r] * len(g) for r, g in zip(rows, groups)]).astype(int)
        flat = [c for g in groups for c in g]
        options = {} if decoder is not None else {"n_embd": n_embd, "n_layer": n_layer,
                                                  "n_head": max(1, n_embd // 64)}
        cfg = CaptionFitConfig(decoder=str(decoder) if decoder else None,
                               tokenizer=str(tokenizer) if tokenizer else None, decoder_options=options,
                               prefix_length=prefix_length, epochs=epochs, batch_size=batch_size, learning_rate=lr,
                               freeze_decoder=freeze_decoder, val_fraction=val_fraction, seed=seed, device=device)
        res = fit_captioner(emb, flat, idx, cfg)
        save_caption_fit(res, out)
        m = res.metrics
        line = f"captioner saved to {out}; final loss {m['final_loss']:.3f}"
        if "val_CIDEr-D" in m:
            shown = ", ".join(f"{k[4:]} {m[k]:.3f}" for k in ("val_BLEU-4", "val_ROUGE-L", "val_CIDEr-D") if k in m)
            line += f"; held-out images ({int(m['n_val_images'])}): {shown}"
        stdout.print(line)


def score_captions_cmd(
    references: Path = typer.Argument(..., help="Reference captions (.txt, .tsv/.csv with `caption`, .json)."),
    hypotheses: Path = typer.Argument(..., help="Generated captions (e.g. OUT/captions.txt of `eegvision "
                                                "caption`)."),
    out: Path = typer.Option(None, help="Corpus table (.csv, .tsv or .md)."),
    per_caption: Path = typer.Option(None, help="Per-caption table (.csv, .tsv or .md)."),
    clip: Path = typer.Option(None, help="Local transformers CLIPModel folder, for CLIP-S (needs --images)."),
    images: Path = typer.Option(None, help="The images, one per hypothesis: a folder (sorted recursively) or a "
                                           ".txt of paths."),
    metrics: str = typer.Option(None, help="Comma-separated subset, e.g. 'BLEU-4,CIDEr-D'."),
    sentence_model: Path = typer.Option(None, help="Local sentence-transformers folder (default: packaged "
                                                   "all-MiniLM-L6-v2)."),
    device: str = typer.Option(None),
    tokenizer: str = typer.Option("ptb", help="'ptb': COCO's tokenisation (default); 'simple': lower case, "
                                              "punctuation dropped, split on spaces."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score generated captions: BLEU-1/4, METEOR, ROUGE-L, CIDEr-D, MiniLM similarity (+ CLIP-S with --clip).

    Each metric comes with its direction and a chance floor (every caption scored against another image's
    references). METEOR is COCO's METEOR 1.5 when pycocoevalcap and java are installed, else METEOR_exact_stem.

    Example: eegvision score-captions refs_test.tsv captions/sub-08/captions.txt --out caption_scores.md
    """
    with user_errors():
        from rich.table import Table

        from eegvision.metrics.captions import align_captions, score_captions

        refs, hyps = align_captions(references, hypotheses)
        pics = None
        if images is not None:
            if images.is_dir():
                exts = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
                pics = sorted(p for p in images.rglob("*") if p.suffix.lower() in exts)
            elif images.is_file():
                pics = [Path(line.strip()) for line in images.read_text().splitlines() if line.strip()]
            else:
                raise FileNotFoundError(f"--images {images} not found.")
            if len(pics) != len(hyps):
                raise ValueError(f"--images gives {len(pics)} images for {len(hyps)} captions; give one per caption.")
        if clip is not None and pics is None:
            raise ValueError("--clip needs --images (one image per hypothesis).")
        wanted = split_list(metrics)
        scores = score_captions(refs, hyps, metrics=wanted, sentence_model=sentence_model, clip=clip, images=pics,
                                device=device, tokenizer=tokenizer)
        if out is not None:
            _write_table(scores.table(), out)
        if per_caption is not None:
            _write_table(scores.per_caption, per_caption)
        if as_json:
            print_json({"n_captions": len(hyps), "corpus": scores.corpus, "chance": scores.chance,
                        "direction": scores.direction, "notes": scores.notes, "repetition": scores.repetition,
                        "files": [p for p in (out, per_caption) if p is not None]})
            return
        table = Table(title=f"{len(hyps)} captions")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_column("chance", justify="right")
        table.add_column("implementation")
        for k, v in scores.corpus.items():
            table.add_row(f"{k} {scores.direction[k]}", f"{v:.4f}", f"{scores.chance[k]:.4f}", scores.notes.get(k, ""))
        stdout.print(table)
        rep = scores.repetition
        stdout.print(f"repetition ↓: {rep['word_3x_in_a_row']:.1%} of captions say a word 3 times in a row; longest "
                     f"run of one word {int(rep['max_word_run'])}")
        if out is not None:
            stdout.print(f"corpus scores → {out}")
        if per_caption is not None:
            stdout.print(f"per-caption scores → {per_caption}")


def register(app: typer.Typer) -> None:
    """Attach this topic's commands to the root app."""
    app.command("caption")(caption_cmd)
    app.command("caption-fit")(caption_fit_cmd)
    app.command("score-captions")(score_captions_cmd)
