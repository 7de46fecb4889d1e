"""Decoding that cannot loop: n-gram blocking and CTRL's repetition penalty on scripted decoders, worked out by
hand; the repetition metrics reported next to caption scores."""

import pytest
import torch

from eegvision.generation.captioner import PrefixCaptioner, build_word_tokenizer
from eegvision.generation.decoding import DECODING_DEFAULTS, decoding_settings
from eegvision.metrics.captions import score_captions
from eegvision.metrics.repetition import max_word_run, repeated_word_fraction, repetition_summary

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scripted_captioner(table: dict[str, dict[str, float]]) -> PrefixCaptioner:
    """A captioner whose decoder's next-token logits depend on the last token only: ``table[last][token]`` (row
    ``"<start>"`` for the first token; tokens not named get −5). Vocabulary: [PAD] [UNK] [BOS] [EOS] a on red the."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = build_word_tokenizer(["a on red the"])
    vocab = tok.get_vocab()
    rows = torch.full((len(tok) + 1, len(tok)), -5.0)     # one row per last token, the extra last row = start
    for last, logits in table.items():
        r = len(tok) if last == "<start>" else vocab[last]
        for word, value in logits.items():
            rows[r, vocab[word]] = value

    class Scripted(GPT2LMHeadModel):
        def forward(self, input_ids=None, inputs_embeds=None, **kwargs):
            out = super().forward(input_ids=input_ids, inputs_embeds=inputs_embeds, **kwargs)
            logits = out.logits.clone()
            first = input_ids is None or input_ids.shape[1] == 0       # the prefix, as embeddings: nothing said yet
            logits[:, -1] = rows[-1].expand(len(logits), -1) if first else rows[input_ids[:, -1]]
            out.logits = logits
            return out

    config = GPT2Config(vocab_size=len(tok), n_embd=8, n_layer=1, n_head=1, n_positions=40,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return PrefixCaptioner(Scripted(config), tok, embed_dim=4, prefix_length=2, max_length=30).eval()


#: a decoder that always prefers the word it just said: base scores red 3 > the 2 > a 1 > [EOS] 0.5, +10 for
#: the last token
_BASE = {"red": 3.0, "the": 2.0, "a": 1.0, "[EOS]": 0.5}
LOOPING = {"<start>": _BASE, **{w: {**_BASE, w: _BASE.get(w, -5.0) + 10} for w in ("red", "the", "a", "on")}}


def test_no_repeat_ngram_blocks_a_decoder_that_repeats_its_last_token():
    cap = _scripted_captioner(LOOPING)
    x = torch.zeros(1, 4)
    off = cap.generate(x, max_new_tokens=12, no_repeat_ngram_size=0, repetition_penalty=1.0)
    assert off == ["red " * 11 + "red"]
    # size 2 by hand: red; red (pair "red red" new); "red red" said → red banned after red, next best the; the
    # ("the the" new); the banned after the → red ("the red" new); after red: red and the banned → a; a; a banned
    # after a → red ("a red" new); after red: red, the, a banned → [EOS]
    blocked = cap.generate(x, max_new_tokens=12, no_repeat_ngram_size=2, repetition_penalty=1.0)
    assert blocked == ["red red the the red a a red"]
    words = blocked[0].split()
    pairs = list(zip(words, words[1:]))
    assert len(pairs) == len(set(pairs)) == 7 and max_word_run(blocked[0]) == 2
    # beam search gets the same blocking; ranking by sum log p / length (length_penalty 1), it goes on past
    # greedy's [EOS], since the near-certain "on on" lowers the mean cost of the unlikely "on"
    beam = cap.generate(x, num_beams=3, max_new_tokens=12, no_repeat_ngram_size=2, repetition_penalty=1.0)
    assert beam == ["red red the the red a a red on on"]
    words = beam[0].split()
    assert len(set(zip(words, words[1:]))) == len(words) - 1
    # size 3 lets a word come three times before it blocks: why the default is 2
    assert cap.generate(x, max_new_tokens=8, no_repeat_ngram_size=3, repetition_penalty=1.0) == \
        ["red red red the the the red red"]
    # the defaults (size 2, penalty 1.2) stop the loop too
    assert max_word_run(cap.generate(x, max_new_tokens=12)[0]) <= 2


def test_repetition_penalty_is_ctrl_on_hand_computed_logits():
    from transformers import RepetitionPenaltyLogitsProcessor

    # the formula on one logit vector, tokens 0 and 2 already said: 2.4 / 1.2 = 2.0, -1.5 * 1.2 = -1.8
    scores = torch.tensor([[2.4, 1.0, -1.5, -0.5]])
    got = RepetitionPenaltyLogitsProcessor(1.2)(torch.tensor([[0, 2, 2]]), scores.clone())
    assert torch.allclose(got, torch.tensor([[2.0, 1.0, -1.8, -0.5]]))

    # through the captioner: each step's choice flips only under CTRL's rule with penalty 1.2
    cap = _scripted_captioner({
        "<start>": {"a": 1.0},
        "a": {"a": -1.0, "on": -1.1},     # a said: -1.0 × 1.2 = -1.2 < -1.1 → on (dividing would keep a: -0.83)
        "on": {"on": 2.3, "red": 2.0},    # on said: 2.3 / 1.2 = 1.917 < 2.0 → red (minus log 1.2 would keep on: 2.12)
        "red": {"[EOS]": 1.0},
    })
    x = torch.zeros(1, 4)
    assert cap.generate(x, max_new_tokens=10, no_repeat_ngram_size=0, repetition_penalty=1.2) == ["a on red"]
    assert cap.generate(x, max_new_tokens=10, no_repeat_ngram_size=0, repetition_penalty=1.0) == ["a " * 9 + "a"]
    # a penalty of 1.05 is too weak to flip the first choice (-1.05 > -1.1): the caption loops on a
    assert cap.generate(x, max_new_tokens=5, no_repeat_ngram_size=0, repetition_penalty=1.05) == ["a a a a a"]


def test_decoding_settings_defaults_and_errors():
    assert decoding_settings() == DECODING_DEFAULTS == {
        "num_beams": 1, "max_new_tokens": 30, "no_repeat_ngram_size": 2, "repetition_penalty": 1.2,
        "length_penalty": 1.0}
    assert decoding_settings(num_beams=4, no_repeat_ngram_size=0, repetition_penalty=1)["repetition_penalty"] == 1.0
    with pytest.raises(ValueError, match=r"no_repeat_ngram_size must be a whole number of 0 or more; got 2.5"):
        decoding_settings(no_repeat_ngram_size=2.5)
    with pytest.raises(ValueError, match=r"repetition_penalty must be a number above 0; got -1"):
        decoding_settings(repetition_penalty=-1)
    with pytest.raises(ValueError, match=r"num_beams must be a whole number of 1 or more; got 0"):
        _scripted_captioner(LOOPING).generate(torch.zeros(1, 4), num_beams=0)


def test_max_word_run_and_repeated_word_fraction():
    assert max_word_run("a medium red red red red the the, on a sand background") == 4
    assert max_word_run("A red, RED red square") == 3            # case and punctuation ignored
    assert max_word_run("a red car next to a red hat") == 1
    assert max_word_run("the the") == 2 and max_word_run("") == 0 and max_word_run(",") == 0
    caps = ["a red red red square", "a red square", "a blue blue square", "a ring"]
    assert repeated_word_fraction(caps) == 0.25
    assert repeated_word_fraction(caps, run=2) == 0.5
    assert repetition_summary(caps) == {"max_word_run": 3.0, "word_3x_in_a_row": 0.25}
    with pytest.raises(ValueError, match="at least one caption"):
        repeated_word_fraction([])
    with pytest.raises(ValueError, match="run must be a whole number of 2 or more"):
        repeated_word_fraction(caps, run=1)


def test_score_captions_reports_repetition_next_to_scores():
    refs = ["a red square on a sand background", "a blue ring on a sky background", "a green star on a grey background"]
    hyps = ["a red red red square on a sand background", "a blue ring on a sky background", "a green star"]
    scores = score_captions(refs, hyps, metrics=["ROUGE-L"])
    assert scores.repetition == {"max_word_run": 3.0, "word_3x_in_a_row": pytest.approx(1 / 3)}
    assert scores.per_caption["max_word_run"].tolist() == [3, 1, 1]
    assert scores.corpus["ROUGE-L"] > scores.chance["ROUGE-L"]    # each caption beats another image's references
