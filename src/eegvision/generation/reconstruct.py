"""Two-stage reconstruction: EEG embeddings → (prior) → image embeddings → images, with a manifest.

Output layout::

    OUT/images/<concept_index:05d>_<concept>/<sample>.png
    OUT/image_embeddings.safetensors      the Stage I embeddings fed to the generator (one row per concept)
    OUT/manifest.json / manifest.csv      one row per image: file, subject, concept_index, concept, sample, seed,
                                          prior and generation settings; manifest.json's header also holds
                                          ``concepts``, the concept table of the reconstructed rows

``concept_index`` is the 0-based index of :class:`~eegvision.store.concepts.ConceptTable` (the store's), and
``concept`` its name: scoring pairs images with the ground truth by both. Manifests of ``format_version`` 1
(eegvision 0.1.0) numbered concepts as their caller did (THINGS' 1-based folder numbers from the CLI); see
:func:`eegvision.metrics.pairing.read_manifest`.

Seeds: image (concept c, sample s) uses ``image_seed(seed, c, s)``, the prior sample of concept c uses
``prior_seed(seed, c)`` — independent streams (numpy ``SeedSequence``) that do not depend on batching, on the
number of samples or on how concepts are spread over GPUs.

Several GPUs: run under ``torchrun --nproc-per-node G`` (or set ``RANK``/``WORLD_SIZE``); rank r handles concepts
r, r + G, … on ``cuda:LOCAL_RANK`` and writes ``manifest.part-r-of-G.json``; the last rank to finish merges the
parts into ``manifest.json``/``manifest.csv``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from eegvision.generation.generator import EmbeddingGenerator
from eegvision.metrics.pairing import MANIFEST_FORMAT_VERSION
from eegvision.store.concepts import ConceptTable

MANIFEST_COLUMNS = ("file", "subject", "concept_index", "concept", "sample", "seed", "prior", "prior_steps",
                    "prior_guidance", "prior_seed", "steps", "guidance", "low_level", "strength", "prompt")


@dataclass
class ReconstructionSettings:
    """How images are drawn (defaults: the reference's reconstruction notebook)."""

    samples: int = 10              # images per concept (reference: 10)
    seed: int = 0
    steps: int = 4                 # generator steps (SDXL-Turbo: 4)
    guidance: float = 0.0          # generator guidance (SDXL-Turbo: 0 → no CFG)
    prior_steps: int = 50          # reference: 50
    prior_guidance: float = 5.0    # reference: 5
    batch_size: int = 10           # images per pipeline call (samples of one concept)
    height: int | None = None      # default: the pipeline's (512 for SDXL-Turbo)
    width: int | None = None
    strength: float = 0.5          # img2img strength of the low-level init (paper: 0.5)
    noise_level: int = 0           # unCLIP embedding noise
    resume: bool = False           # keep images already on disk


def image_seed(seed: int, concept_index: int, sample: int) -> int:
    """Seed of image (concept, sample): a SeedSequence draw, independent of batching and sharding."""
    return int(np.random.SeedSequence([int(seed), 1, int(concept_index), int(sample)]).generate_state(1)[0])


def prior_seed(seed: int, concept_index: int) -> int:
    """Seed of the prior sample of a concept."""
    return int(np.random.SeedSequence([int(seed), 0, int(concept_index)]).generate_state(1)[0])


def concept_folder(concept_index: int, concept: str) -> str:
    """``<concept_index:05d>_<concept>`` with unsafe characters replaced."""
    return f"{int(concept_index):05d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', str(concept))}"


def distributed_rank() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment (``0, 1, 0`` when absent)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def stage_one(eeg_embeddings: torch.Tensor, concept_indices: Sequence[int], prior=None, steps: int = 50,
              guidance: float = 5.0, seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
    """Image embeddings for each EEG embedding: the prior's sample (seeded per concept), or the EEG embedding
    itself when ``prior`` is None (an encoder trained straight onto raw image features)."""
    eeg_embeddings = torch.as_tensor(eeg_embeddings, dtype=torch.float32)
    if prior is None:
        return eeg_embeddings
    seeds = [prior_seed(seed, c) for c in concept_indices]
    return prior.sample(eeg_embeddings, num_inference_steps=steps, guidance_scale=guidance, seed=seeds,
                        batch_size=batch_size).float().cpu()


def reconstruct(eeg_embeddings: torch.Tensor, concepts: ConceptTable,
                generator: EmbeddingGenerator, out_dir: str | Path, prior=None,
                settings: ReconstructionSettings | None = None, subject: str = "sub-01",
                prompts: Sequence[str] | None = None, init_latents: torch.Tensor | None = None,
                rank: int | None = None, world_size: int | None = None, extra: dict | None = None) -> Path:
    """Reconstruct ``settings.samples`` images per concept and write them with a manifest.

    Parameters
    ----------
    eeg_embeddings : tensor (N, d)
        One EEG embedding per concept (e.g. the averaged test trials).
    concepts : ConceptTable
        The concept of each embedding row (N rows; e.g. ``store.concept_table("test")`` or a run's recorded
        table): its 0-based index and name name the output folders, seed the images and pair them with the
        ground truth at scoring time; the table is recorded in the manifest.
    generator : EmbeddingGenerator
        From :func:`eegvision.generation.generator.load_generator`.
    out_dir : path
        Output folder; must not already hold a manifest unless ``settings.resume``.
    prior : DiffusionPrior, optional
        Stage I; ``None`` feeds the EEG embeddings to the generator directly.
    prompts : sequence of str, optional
        One text prompt (caption) per concept; default empty.
    init_latents : tensor (N, C, h, w), optional
        Low-level img2img init per concept (scaled VAE latents, see :mod:`eegvision.generation.lowlevel`).
    rank, world_size : int, optional
        Shard of the concepts to do (default: from ``RANK``/``WORLD_SIZE``).
    extra : dict, optional
        More settings to record in the manifest (e.g. the run and prior paths).

    Returns
    -------
    Path to ``manifest.json`` (when this process merged it) or to its manifest part.
    """
    from eegvision.progress import track
    from eegvision.utils import atomic_path, write_text_atomic

    s = settings or ReconstructionSettings()
    emb = torch.as_tensor(eeg_embeddings, dtype=torch.float32)
    n = emb.shape[0]
    if not isinstance(concepts, ConceptTable):
        raise ValueError(f"concepts must be a ConceptTable (eegvision.store.concepts), one row per embedding row; "
                         f"got {type(concepts).__name__}. Take it from the data: open_data(DATA).concept_table('test').")
    if len(concepts) != n:
        raise ValueError(f"Got {n} embeddings but a concept table of {len(concepts)} concepts; give one table row per "
                         "embedding row.")
    concept_indices, names = concepts.index, concepts.name
    if prompts is not None and len(prompts) != n:
        raise ValueError(f"Got {len(prompts)} prompts for {n} concepts.")
    if init_latents is not None and len(init_latents) != n:
        raise ValueError(f"Got {len(init_latents)} low-level latents for {n} concepts.")
    if s.samples < 1:
        raise ValueError(f"samples must be ≥ 1, got {s.samples}.")
    env_rank, env_world, _ = distributed_rank()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    out_dir = Path(out_dir)
    if (out_dir / "manifest.json").exists() and not s.resume:
        raise FileExistsError(f"{out_dir} already holds reconstructions (manifest.json); choose another --out or "
                              "pass --resume to keep existing images and fill in the missing ones.")
    (out_dir / "images").mkdir(parents=True, exist_ok=True)

    # Stage I, for this rank's concepts only
    mine = np.arange(n)[rank::world_size]
    idx = [int(concept_indices[i]) for i in mine]
    image_emb = stage_one(emb[mine], idx, prior, s.prior_steps, s.prior_guidance, s.seed)
    from safetensors.torch import save_file

    emb_name = "image_embeddings.safetensors" if world_size == 1 else f"image_embeddings.part-{rank}.safetensors"
    with atomic_path(out_dir / emb_name, suffix=".safetensors") as tmp:
        save_file({"image_embeds": image_emb.contiguous(), "concept_index": torch.tensor(idx)}, str(tmp))

    rows = []
    base = {"subject": subject, "prior": prior is not None, "prior_steps": s.prior_steps if prior else None,
            "prior_guidance": s.prior_guidance if prior else None, "steps": s.steps, "guidance": s.guidance,
            "low_level": init_latents is not None, "strength": s.strength if init_latents is not None else None}
    # one pipeline call per (concept, chunk of its samples): the samples of a concept share its embedding
    chunks = [(j, list(range(k, min(k + s.batch_size, s.samples))))
              for j in range(len(mine)) for k in range(0, s.samples, s.batch_size)]
    for j, samples in track(chunks, f"reconstruct {subject}"):
        i = int(mine[j])
        c_idx, name = concept_indices[i], names[i]
        prompt = prompts[i] if prompts is not None else ""
        records = [{"file": f"images/{concept_folder(c_idx, name)}/{k}.png", "concept_index": c_idx, "concept": name,
                    "sample": k, "seed": image_seed(s.seed, c_idx, k),
                    "prior_seed": prior_seed(s.seed, c_idx) if prior else None, "prompt": prompt, **base}
                   for k in samples]
        todo = [r for r in records if not (s.resume and (out_dir / r["file"]).is_file())]
        if todo:
            images = generator.generate(
                image_emb[j], [r["seed"] for r in todo], prompt=prompt, num_inference_steps=s.steps,
                guidance_scale=s.guidance, height=s.height, width=s.width, noise_level=s.noise_level,
                strength=s.strength, init_latents=None if init_latents is None else init_latents[i])
            for rec, im in zip(todo, images):
                target = out_dir / rec["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(target, suffix=".png") as tmp:
                    im.save(tmp, format="PNG")
        rows += records

    header = {"format": "eegvision-reconstructions", "format_version": MANIFEST_FORMAT_VERSION,
              "settings": asdict(s), **generator.describe(), **(extra or {}), "concepts": concepts.to_json()}
    if world_size == 1:
        return write_manifest(out_dir, header, rows)
    part = out_dir / f"manifest.part-{rank}-of-{world_size}.json"
    write_text_atomic(part, json.dumps({**header, "images": rows}) + "\n")
    parts = sorted(out_dir.glob(f"manifest.part-*-of-{world_size}.json"))
    if len(parts) == world_size:
        return merge_manifests(out_dir, world_size)
    return part


def write_manifest(out_dir: str | Path, header: dict, rows: list[dict]) -> Path:
    """Write ``manifest.json`` (header + ``images``) and ``manifest.csv`` (one row per image), sorted by
    (subject, concept_index, sample)."""
    import pandas as pd

    from eegvision import __version__
    from eegvision.utils import atomic_path, write_text_atomic

    out_dir = Path(out_dir)
    rows = sorted(rows, key=lambda r: (str(r["subject"]), int(r["concept_index"]), int(r["sample"])))
    write_text_atomic(out_dir / "manifest.json", json.dumps(
        {**header, "eegvision_version": __version__, "n_images": len(rows), "images": rows}, indent=1) + "\n")
    df = pd.DataFrame(rows)
    df = df[[c for c in MANIFEST_COLUMNS if c in df.columns] + [c for c in df.columns if c not in MANIFEST_COLUMNS]]
    with atomic_path(out_dir / "manifest.csv") as tmp:
        df.to_csv(tmp, index=False)
    return out_dir / "manifest.json"


def merge_manifests(out_dir: str | Path, world_size: int) -> Path:
    """Merge the per-rank manifest parts of a multi-GPU run into ``manifest.json``/``manifest.csv``."""
    out_dir = Path(out_dir)
    parts = [out_dir / f"manifest.part-{r}-of-{world_size}.json" for r in range(world_size)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Cannot merge: {missing} not written yet (a rank is still running or failed).")
    loaded = [json.loads(p.read_text()) for p in parts]
    header = {k: v for k, v in loaded[0].items() if k != "images"}
    header["world_size"] = world_size
    rows = [r for part in loaded for r in part["images"]]
    return write_manifest(out_dir, header, rows)
