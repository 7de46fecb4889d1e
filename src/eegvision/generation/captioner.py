"""Caption from an embedding: a ClipCap-style prefix captioner over a transformers causal LM.

A CLIP image embedding ``h`` (d) — at inference the prior's prediction from EEG, or the EEG embedding itself —
is L2-normalised and mapped by an MLP (``Linear(d, P·H/2) → Tanh → Linear(P·H/2, P·H)``, ClipCap's "MLP"
mapping) to ``P`` prefix vectors in the decoder's token-embedding space (width ``H``). The decoder (GPT-2 built
from a small ``GPT2Config``, or any causal LM loaded from a local folder) continues the prefix with the caption.

Training is teacher forcing: the input is ``[prefix; caption tokens]`` and the cross-entropy runs over the caption
tokens and the end-of-sequence token only (the prefix positions carry label −100). Decoding goes through
``decoder.generate(inputs_embeds=prefix)`` — greedy (``num_beams=1``) or beam search — so every decoding option of
transformers is available. Two of them are on by default so that a weak captioner cannot loop on a word
(``a medium red red red red the the``): ``no_repeat_ngram_size=2`` (transformers' n-gram blocking: no token pair
occurs twice in a caption, so no word can come three times in a row) and ``repetition_penalty=1.2`` (CTRL's
penalty: the next-token score of every token already generated is divided by 1.2 when positive and multiplied by
1.2 when negative; with beam search transformers applies it to the log-probabilities). They are defined, and the
choice explained, in :mod:`eegvision.generation.decoding`; ``0`` and ``1.0`` turn them off. The normalisation makes the captioner indifferent to the scale of its input, so raw
ViT-H embeddings (norm ≈ 22), normalised features and EEG embeddings can all be fed to it.

Saved layout (``save_pretrained`` / ``from_pretrained``)::

    DIR/config.json             {"class": "PrefixCaptioner", embed_dim, prefix_length, hidden_dim, ...}
    DIR/prefix.safetensors      the mapping MLP
    DIR/decoder/                the causal LM (transformers save_pretrained: config.json + model.safetensors)
    DIR/tokenizer/              the tokenizer (tokenizer.json + tokenizer_config.json)

For captions without a pretrained tokenizer (the simulator), :func:`build_word_tokenizer` makes a word-level
``PreTrainedTokenizerFast`` from the captions themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eegvision.generation.decoding import (
    NO_REPEAT_NGRAM_SIZE,
    REPETITION_PENALTY,
    decoding_settings,
)
from eegvision.store.concepts import ConceptTable

__all__ = ["PrefixCaptioner", "build_word_tokenizer", "caption_embeddings", "load_tokenizer", "small_gpt2_config",
           "write_captions"]

_CONFIG_NAME = "config.json"
_PREFIX_WEIGHTS = "prefix.safetensors"
PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"


# ---------------------------------------------------------------------------- tokenizers
def build_word_tokenizer(captions: Sequence[str], min_count: int = 1, lowercase: bool = True):
    """A word-level tokenizer whose vocabulary is the words (and punctuation) of ``captions``.

    Parameters
    ----------
    captions : sequence of str
        The training captions.
    min_count : int
        Words seen fewer times become ``[UNK]``.
    lowercase : bool
        Lower-case text before splitting.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        With special tokens ``[PAD]`` (id 0), ``[UNK]``, ``[BOS]``, ``[EOS]``; words are split on white space and
        punctuation, and decoding re-attaches punctuation (``clean_up_tokenization_spaces``).
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    captions = [str(c) for c in captions]
    if not captions:
        raise ValueError("build_word_tokenizer needs at least one caption; got an empty list.")
    pre = pre_tokenizers.Whitespace()
    norm = normalizers.Lowercase() if lowercase else None
    counts: Counter[str] = Counter()
    for text in captions:
        text = norm.normalize_str(text) if norm is not None else text
        counts.update(w for w, _ in pre.pre_tokenize_str(text))
    words = sorted(w for w, c in counts.items() if c >= min_count)
    vocab = {tok: i for i, tok in enumerate([PAD, UNK, BOS, EOS] + words)}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre
    if norm is not None:
        tok.normalizer = norm
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=UNK, bos_token=BOS,
                                   eos_token=EOS, clean_up_tokenization_spaces=True)


def load_tokenizer(path: str | os.PathLike):
    """A tokenizer from a local folder (``AutoTokenizer``); a missing pad token is set to the EOS token.

    GPT-2's tokenizer has no pad token and no EOS token added to inputs; :class:`PrefixCaptioner` appends EOS itself.
    """
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Tokenizer folder {path} not found; give a local folder with tokenizer.json (e.g. "
                                "a copy of gpt2/ made with `huggingface-cli download gpt2`).")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.eos_token_id is None:
        raise ValueError(f"The tokenizer in {path} has no EOS token; the captioner needs one to end captions.")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def small_gpt2_config(tokenizer, n_embd: int = 128, n_layer: int = 2, n_head: int = 4, n_positions: int = 64,
                      dropout: float = 0.0):
    """A small :class:`transformers.GPT2Config` for ``tokenizer`` (vocabulary size and special ids)."""
    from transformers import GPT2Config

    return GPT2Config(vocab_size=len(tokenizer), n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                      n_positions=n_positions, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                      bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None
                      else tokenizer.eos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


# ---------------------------------------------------------------------------- model
class PrefixCaptioner(nn.Module):
    """Embedding → ``prefix_length`` decoder-input vectors → caption (ClipCap, MLP mapping).

    Parameters
    ----------
    decoder : transformers.PreTrainedModel
        A causal LM (``GPT2LMHeadModel`` or any ``AutoModelForCausalLM``) that accepts ``inputs_embeds``.
    tokenizer : transformers tokenizer
        Its tokenizer; must have EOS and pad tokens.
    embed_dim : int
        Size of the input embedding (1024 for ViT-H-14, 768 for ViT-L-14).
    prefix_length : int
        Number of prefix vectors P (ClipCap: 10).
    hidden_dim : int, optional
        Hidden width of the mapping MLP; default ``P·H/2`` as in ClipCap.
    normalize_input : bool
        L2-normalise the input embedding (default True; makes raw, normalised and EEG embeddings comparable).
    max_length : int
        Caption tokens (plus EOS) kept in training; longer captions are truncated.
    """

    def __init__(self, decoder, tokenizer, embed_dim: int, prefix_length: int = 10, hidden_dim: int | None = None,
                 normalize_input: bool = True, max_length: int = 40) -> None:
        super().__init__()
        if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError("The tokenizer needs EOS and pad tokens (load it with eegvision's load_tokenizer or "
                             "build_word_tokenizer).")
        if prefix_length < 1:
            raise ValueError(f"prefix_length must be ≥ 1, got {prefix_length}.")
        n_positions = getattr(decoder.config, "n_positions", None) or getattr(decoder.config,
                                                                              "max_position_embeddings", None)
        if n_positions is not None and prefix_length + max_length > n_positions:
            raise ValueError(f"prefix_length + max_length = {prefix_length + max_length} exceeds the decoder's "
                             f"{n_positions} positions; lower max_length or prefix_length.")
        self.decoder = decoder
        self.tokenizer = tokenizer
        width = decoder.get_input_embeddings().embedding_dim
        hidden = int(hidden_dim or max(1, prefix_length * width // 2))
        self.prefix_projection = nn.Sequential(nn.Linear(embed_dim, hidden), nn.Tanh(),
                                               nn.Linear(hidden, prefix_length * width))
        self.config: dict[str, Any] = {"embed_dim": int(embed_dim), "prefix_length": int(prefix_length),
                                       "hidden_dim": hidden, "decoder_width": int(width),
                                       "normalize_input": bool(normalize_input), "max_length": int(max_length)}

    # ------------------------------------------------------------------ building blocks
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prefix(self, embeds: torch.Tensor) -> torch.Tensor:
        """``(B, P, H)`` decoder-input vectors for ``embeds`` ``(B, embed_dim)``."""
        if embeds.ndim != 2 or embeds.shape[1] != self.config["embed_dim"]:
            raise ValueError(f"embeddings must have shape (N, {self.config['embed_dim']}), got "
                             f"{tuple(embeds.shape)}.")
        x = embeds.to(device=self.device, dtype=self.prefix_projection[0].weight.dtype)
        if self.config["normalize_input"]:
            x = F.normalize(x, dim=-1)
        return self.prefix_projection(x).view(len(x), self.config["prefix_length"], self.config["decoder_width"])

    def encode_captions(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``(B, T)`` (caption + EOS, right-padded) and their attention mask."""
        tok = self.tokenizer
        ids = tok([str(c) for c in captions], add_special_tokens=False)["input_ids"]
        ids = [seq[: self.config["max_length"] - 1] + [tok.eos_token_id] for seq in ids]
        length = max(len(s) for s in ids)
        out = torch.full((len(ids), length), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for i, seq in enumerate(ids):
            out[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        return out.to(self.device), mask.to(self.device)

    def token_logits(self, embeds: torch.Tensor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, V)`` predicting each caption token (position t predicts ``input_ids[:, t]``)."""
        pre = self.prefix(embeds)
        tokens = self.decoder.get_input_embeddings()(input_ids).to(pre.dtype)
        full_mask = torch.cat([torch.ones(pre.shape[:2], dtype=attention_mask.dtype, device=pre.device),
                               attention_mask], dim=1)
        logits = self.decoder(inputs_embeds=torch.cat([pre, tokens], dim=1), attention_mask=full_mask).logits
        p = self.config["prefix_length"]
        return logits[:, p - 1: -1]          # the last prefix position predicts the first caption token

    def forward(self, embeds: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        """Teacher-forced cross-entropy, averaged over the caption and EOS tokens of the batch."""
        ids, mask = self.encode_captions(captions)
        logits = self.token_logits(embeds, ids, mask)
        labels = ids.masked_fill(mask == 0, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def log_prob(self, embeds: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        """Sum of token log-probabilities (caption tokens and EOS) of each caption given its embedding, ``(B,)``."""
        ids, mask = self.encode_captions(captions)
        logp = self.token_logits(embeds, ids, mask).float().log_softmax(-1)
        picked = logp.gather(-1, ids[..., None])[..., 0]
        return (picked * mask).sum(1).cpu()

    # ------------------------------------------------------------------ decoding
    @torch.no_grad()
    def generate(self, embeds: torch.Tensor, num_beams: int = 1, max_new_tokens: int = 30,
                 length_penalty: float = 1.0, batch_size: int = 64,
                 no_repeat_ngram_size: int = NO_REPEAT_NGRAM_SIZE, repetition_penalty: float = REPETITION_PENALTY,
                 **generate_kwargs: Any) -> list[str]:
        """One caption per embedding row, decoded by ``decoder.generate(inputs_embeds=prefix)``.

        Parameters
        ----------
        embeds : tensor (N, embed_dim)
            Image (or predicted image / EEG) embeddings.
        num_beams : int
            1 = greedy; > 1 = beam search (deterministic).
        max_new_tokens : int
            Maximum caption length in tokens.
        length_penalty : float
            Beam score = sum log p / length ** length_penalty (transformers' convention); 0 ranks by sum log p.
        batch_size : int
            Rows per ``generate`` call.
        no_repeat_ngram_size : int
            No n-gram of this many tokens occurs twice in a caption (transformers' ``no_repeat_ngram_size``);
            default 2, so no word comes three times in a row; 0 = off.
        repetition_penalty : float
            CTRL's penalty on tokens already in the caption (transformers' ``repetition_penalty``): their score is
            divided by it when positive, multiplied when negative; default 1.2; 1.0 = off.
        **generate_kwargs
            More options for ``generate``.
        """
        opts = decoding_settings(num_beams, max_new_tokens, no_repeat_ngram_size, repetition_penalty,
                                 length_penalty)
        n_positions = getattr(self.decoder.config, "n_positions", None) or getattr(
            self.decoder.config, "max_position_embeddings", None)
        if n_positions is not None:  # never run past the decoder's position table
            max_new_tokens = max(1, min(max_new_tokens, n_positions - self.config["prefix_length"]))
        was_training = self.training
        self.eval()
        tok = self.tokenizer
        embeds = torch.as_tensor(embeds, dtype=torch.float32)
        out: list[str] = []
        for start in range(0, len(embeds), batch_size):
            pre = self.prefix(embeds[start:start + batch_size])
            mask = torch.ones(pre.shape[:2], dtype=torch.long, device=pre.device)
            with warnings.catch_warnings():
                # the prefix is embeddings only, so the n-grams blocked and the tokens penalised are the caption's
                # own: what is wanted, and what transformers warns about
                warnings.filterwarnings("ignore", message=r"Passing `(no_repeat_ngram_size|repetition_penalty)` "
                                        "with `inputs_embeds`")
                seqs = self.decoder.generate(
                    inputs_embeds=pre, attention_mask=mask, max_new_tokens=max_new_tokens, num_beams=num_beams,
                    do_sample=False, length_penalty=opts["length_penalty"], early_stopping=num_beams > 1,
                    no_repeat_ngram_size=opts["no_repeat_ngram_size"],
                    repetition_penalty=opts["repetition_penalty"],
                    eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **generate_kwargs)
            out.extend(t.strip() for t in tok.batch_decode(seqs, skip_special_tokens=True))
        self.train(was_training)
        return out

    # ------------------------------------------------------------------ construction and persistence
    @classmethod
    def create(cls, tokenizer, embed_dim: int, decoder: str | os.PathLike | Any | None = None,
               prefix_length: int = 10, hidden_dim: int | None = None, normalize_input: bool = True,
               max_length: int = 40, **gpt2_options: Any) -> PrefixCaptioner:
        """Build a captioner around a new small GPT-2 (``decoder=None``, options of :func:`small_gpt2_config`),
        a ``PretrainedConfig``, or a causal LM loaded from a local folder (``decoder=PATH``)."""
        from transformers import AutoModelForCausalLM, GPT2LMHeadModel, PretrainedConfig

        if decoder is None:
            gpt2_options.setdefault("n_positions", prefix_length + max_length)
            model = GPT2LMHeadModel(small_gpt2_config(tokenizer, **gpt2_options))
        elif isinstance(decoder, PretrainedConfig):
            model = AutoModelForCausalLM.from_config(decoder)
        else:
            path = Path(decoder)
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"No config.json in decoder folder {path}; give a local causal LM folder "
                                        "(e.g. gpt2/ with config.json and model.safetensors).")
            model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        return cls(model, tokenizer, embed_dim, prefix_length=prefix_length, hidden_dim=hidden_dim,
                   normalize_input=normalize_input, max_length=max_length)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config, mapping weights, decoder and tokenizer; the folder appears complete or not at all."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            state = {k: v.detach().cpu().contiguous() for k, v in self.prefix_projection.state_dict().items()}
            save_file(state, str(tmp / _PREFIX_WEIGHTS), metadata={"format": "pt"})
            self.decoder.save_pretrained(str(tmp / "decoder"))
            self.tokenizer.save_pretrained(str(tmp / "tokenizer"))
            (tmp / _CONFIG_NAME).write_text(json.dumps({"class": "PrefixCaptioner", **self.config}, indent=2)
                                            + "\n")
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                directory.rename(old)
                tmp.rename(directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @staticmethod
    def is_saved(directory: str | os.PathLike) -> bool:
        """Whether ``directory`` holds a captioner written by :meth:`save_pretrained`."""
        names = (_CONFIG_NAME, _PREFIX_WEIGHTS, "decoder", "tokenizer")
        return all((Path(directory) / name).exists() for name in names)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device | None = None,
                        ) -> PrefixCaptioner:
        """Rebuild a captioner written by :meth:`save_pretrained`."""
        from transformers import AutoModelForCausalLM

        from eegvision.tensorfiles import load_safetensors

        directory = Path(directory)
        for name in (_CONFIG_NAME, _PREFIX_WEIGHTS, "decoder", "tokenizer"):
            if not (directory / name).exists():
                raise FileNotFoundError(f"No {name} in {directory}; expected a captioner folder written by "
                                        "PrefixCaptioner.save_pretrained (`eegvision caption-fit`).")
        config = json.loads((directory / _CONFIG_NAME).read_text())
        tokenizer = load_tokenizer(directory / "tokenizer")
        decoder = AutoModelForCausalLM.from_pretrained(str(directory / "decoder"), local_files_only=True)
        model = cls(decoder, tokenizer, config["embed_dim"], prefix_length=config["prefix_length"],
                    hidden_dim=config["hidden_dim"], normalize_input=config["normalize_input"],
                    max_length=config["max_length"])
        model.prefix_projection.load_state_dict(load_safetensors(directory / _PREFIX_WEIGHTS, "Captioner weights",
                                                                         "Train it again with `eegvision caption-fit`."))
        model.eval()
        return model.to(device) if device is not None else model


# ---------------------------------------------------------------------------- EEG → captions
def caption_embeddings(eeg_embeddings: torch.Tensor, captioner: PrefixCaptioner, prior=None,
                       concept_indices: Sequence[int] | None = None, prior_steps: int = 50,
                       prior_guidance: float = 5.0, seed: int = 0, num_beams: int = 1,
                       max_new_tokens: int = 30, no_repeat_ngram_size: int = NO_REPEAT_NGRAM_SIZE,
                       repetition_penalty: float = REPETITION_PENALTY) -> tuple[list[str], torch.Tensor]:
    """Captions for EEG embeddings: EEG → (prior → predicted CLIP image embedding) → captioner.

    Parameters
    ----------
    eeg_embeddings : tensor (N, d_eeg)
        One EEG embedding per concept (e.g. averaged test trials).
    captioner : PrefixCaptioner
        Trained on image embeddings of the space the prior predicts (or the EEG encoder's target space).
    prior : DiffusionPrior, optional
        Stage I; ``None`` captions the EEG embeddings directly.
    concept_indices : sequence of int, optional
        Seed the prior sample of each row with the reconstruction's per-concept seed
        (:func:`eegvision.generation.reconstruct.prior_seed`), so captions and images come from the same Stage I
        embedding. Default ``0..N-1``.
    prior_steps, prior_guidance, seed : prior sampling (reference: 50 steps, w = 5).
    num_beams, max_new_tokens, no_repeat_ngram_size, repetition_penalty : decoding (1 = greedy; see
        :meth:`PrefixCaptioner.generate`).

    Returns
    -------
    (captions, the embeddings fed to the captioner ``(N, d)``)
    """
    from eegvision.generation.reconstruct import stage_one

    eeg_embeddings = torch.as_tensor(eeg_embeddings, dtype=torch.float32)
    idx = list(range(len(eeg_embeddings))) if concept_indices is None else [int(i) for i in concept_indices]
    if len(idx) != len(eeg_embeddings):
        raise ValueError(f"{len(idx)} concept indices for {len(eeg_embeddings)} embeddings.")
    if prior is not None:
        prior_dev = next(prior.parameters()).device
        h = stage_one(eeg_embeddings.to(prior_dev), idx, prior=prior, steps=prior_steps, guidance=prior_guidance,
                      seed=seed)
    else:
        h = eeg_embeddings
    if h.shape[1] != captioner.config["embed_dim"]:
        raise ValueError(f"The captioner takes {captioner.config['embed_dim']}-d embeddings but the "
                         f"{'prior' if prior is not None else 'EEG encoder'} gives {h.shape[1]}-d ones; train the "
                         "captioner on features of the same CLIP model.")
    return captioner.generate(h, num_beams=num_beams, max_new_tokens=max_new_tokens,
                              no_repeat_ngram_size=no_repeat_ngram_size,
                              repetition_penalty=repetition_penalty), h.cpu()


def write_captions(out_dir: str | os.PathLike, captions: Sequence[str], concepts: ConceptTable,
                   subject: str = "sub-01", settings: dict | None = None) -> Path:
    """Write ``captions.txt`` (one per line, the ``reconstruct --captions`` format), ``captions.tsv``
    (subject, concept_index, concept, caption; one row per caption, the 0-based index and name of the
    ``concepts`` row) and ``captions.json`` (settings and the concept table). Returns the folder."""
    import csv
    import io

    from eegvision.utils import write_text_atomic

    if len(concepts) != len(captions):
        raise ValueError(f"Got {len(captions)} captions but a concept table of {len(concepts)} concepts; give one "
                         "table row per caption.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = [" ".join(str(c).split()) for c in captions]     # one line each, whatever the decoder emitted
    write_text_atomic(out_dir / "captions.txt", "".join(c + "\n" for c in clean))
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["subject", "concept_index", "concept", "caption"])
    w.writerows([subject, i, c, t] for i, c, t in zip(concepts.index, concepts.name, clean))
    write_text_atomic(out_dir / "captions.tsv", buf.getvalue())
    write_text_atomic(out_dir / "captions.json", json.dumps(
        {"subject": subject, **(settings or {}), "concepts": concepts.to_json()}, indent=2) + "\n")
    return out_dir
