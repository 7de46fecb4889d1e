"""Caption metrics against values computed by hand on tiny examples and against pycocoevalcap's numbers."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from eegvision.metrics.captions import (
    align_captions,
    bleu,
    derangement,
    meteor,
    read_caption_file,
    rouge_l,
    score_captions,
    sentence_similarity,
    tokenize,
)
from eegvision.metrics.cider import cider_d
from eegvision.metrics.coco import meteor15_available, ptb_tokenize

DATA = Path(__file__).parent / "data" / "captions"


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A red Circle, on the LEFT.") == ["a", "red", "circle", "on", "the", "left"]


def test_bleu1_with_brevity_penalty_by_hand():
    # hypothesis 4 words, 3 of them in the 6-word reference: p1 = 3/4, BP = exp(1 - 6/4)
    corpus, per = bleu([["the cat sat on the mat"]], ["the cat sat down"])
    expected = 0.75 * math.exp(1 - 6 / 4)
    assert corpus["BLEU-1"] == pytest.approx(expected, abs=1e-9)
    assert per["BLEU-1"][0] == pytest.approx(expected, abs=1e-9)


def test_tokenizers_ptb_and_simple():
    # PTB (COCO): possessive and contraction split, hyphenated word whole, "&" kept, brackets as -lrb-/-rrb-
    text = "A dog's t-shirt (red) isn't on Main St. & 5th Ave."
    assert tokenize(text) == ["a", "dog", "'s", "t-shirt", "-lrb-", "red", "-rrb-", "is", "n't", "on", "main",
                              "st.", "&", "5th", "ave."]
    assert tokenize(text, "simple") == ["a", "dog's", "t", "shirt", "red", "isn't", "on", "main", "st", "5th",
                                        "ave"]
    # a period inside a caption goes unless it ends an abbreviation; typographic apostrophes are plain ones
    assert ptb_tokenize("A dog sits. Mr. Smith’s cat, etc.") == ["a", "dog", "sits", "mr.", "smith", "'s",
                                                                       "cat", "etc."]
    with pytest.raises(ValueError, match="Unknown tokenizer 'nltk'"):
        tokenize("a", "nltk")


# strings where the Java PTB tokenizer does something the Treebank rules do not (documented in metrics/coco.py)
PTB_KNOWN_DIFFERENCES = {"A rock 'n' roll band on stage.", "Y'all gonna love this wanna-be chef.",
                         "A sign with 2+2=4 on it.", "A sign says <open> now.", "The train's arriving at 6:45pm."}


def test_ptb_tokenize_equals_java_ptb_tokenizer():
    """Every string of the caption set and of the edge-case list, tokenised by COCO's Java tokenizer."""
    items = json.loads((DATA / "coco_set.json").read_text())
    ref = json.loads((DATA / "coco_reference.json").read_text())["tokens"]
    pairs = [(it["candidate"], ref["candidates"][i]) for i, it in enumerate(items)]
    pairs += [(r, ref["references"][i][j]) for i, it in enumerate(items) for j, r in enumerate(it["references"])]
    pairs += [(p["text"], p["tokens"]) for p in json.loads((DATA / "ptb_tokens.json").read_text())["pairs"]]
    assert len(pairs) == 303
    differ = {text for text, java in pairs if " ".join(ptb_tokenize(text)) != java}
    assert differ == PTB_KNOWN_DIFFERENCES


def _coco_set():
    items = json.loads((DATA / "coco_set.json").read_text())
    ref = json.loads((DATA / "coco_reference.json").read_text())
    return [it["references"] for it in items], [it["candidate"] for it in items], ref


NGRAM_METRICS = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"]


def test_ngram_metrics_equal_pycocoevalcap_on_caption_set():
    """Corpus, per-caption and chance values of 40 captions (1-5 references) equal pycocoevalcap + Java PTB."""
    refs, hyps, ref = _coco_set()
    scores = score_captions(refs, hyps, metrics=NGRAM_METRICS)
    assert scores.protocol["chance_pairs"] == ref["chance"]["derangement"]
    for m in NGRAM_METRICS:
        coco = ref["scores"][m]
        assert scores.corpus[m] == pytest.approx(coco["corpus"], abs=1e-12), m
        np.testing.assert_allclose(scores.per_caption[m], coco["per_caption"], rtol=1e-12, atol=1e-12, err_msg=m)
        assert scores.chance[m] == pytest.approx(ref["chance"]["scores"][m]["corpus"], abs=1e-12), m
        assert scores.direction[m] == "↑"
    # the old whitespace tokenizer misses COCO's values by far more than rounding
    simple = score_captions(refs, hyps, metrics=["BLEU-1", "CIDEr-D"], tokenizer="simple", chance=False)
    assert abs(simple.corpus["BLEU-1"] - ref["scores"]["BLEU-1"]["corpus"]) > 0.02
    assert abs(simple.corpus["CIDEr-D"] - ref["scores"]["CIDEr-D"]["corpus"]) > 0.03
    table = scores.table().set_index("metric")
    assert list(table.columns[:3]) == ["direction", "value", "chance"]
    assert (table["chance"] < table["value"]).all()


@pytest.mark.skipif(not meteor15_available(), reason="METEOR 1.5 needs pycocoevalcap and java")
def test_meteor15_equals_pycocoevalcap_on_caption_set():
    refs, hyps, ref = _coco_set()
    scores = score_captions(refs, hyps, metrics=["METEOR"], meteor_variant="1.5")
    assert scores.corpus["METEOR"] == pytest.approx(ref["scores"]["METEOR"]["corpus"], abs=1e-12)
    np.testing.assert_allclose(scores.per_caption["METEOR"], ref["scores"]["METEOR"]["per_caption"], atol=1e-12)
    assert scores.chance["METEOR"] == pytest.approx(ref["chance"]["scores"]["METEOR"]["corpus"], abs=1e-12)


def test_meteor_without_java_is_labelled_exact_stem(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)   # no java on the PATH
    assert not meteor15_available()
    refs, hyps, ref = _coco_set()
    scores = score_captions(refs[:6], hyps[:6], metrics=["METEOR"])
    assert list(scores.corpus) == ["METEOR_exact_stem"] and "not METEOR 1.5" in scores.notes["METEOR_exact_stem"]
    # nltk's parameters score far higher than METEOR 1.5 on the same captions
    assert scores.corpus["METEOR_exact_stem"] > 1.5 * np.mean(ref["scores"]["METEOR"]["per_caption"][:6])
    with pytest.raises(RuntimeError, match="METEOR 1.5 needs"):
        meteor(refs[:2], hyps[:2], variant="1.5")


def test_derangement_and_chance_floor():
    d = derangement(7, seed=3)
    assert sorted(d) == list(range(7)) and np.all(d != np.arange(7))
    np.testing.assert_array_equal(d, derangement(7, seed=3))
    with pytest.raises(ValueError, match="at least 2 captions"):
        derangement(1)
    refs = ["a red circle", "a blue square", "a green star"]
    scores = score_captions(refs, refs, metrics=["BLEU-1", "ROUGE-L"], seed=1)
    pairs = scores.protocol["chance_pairs"]
    # each hypothesis against another image's reference: ROUGE-L by hand, LCS = "a" (1 of 3 words) → F = 1/3
    assert scores.chance["ROUGE-L"] == pytest.approx(1 / 3)
    assert scores.chance["BLEU-1"] == pytest.approx(bleu([refs[j] for j in pairs], refs)[0]["BLEU-1"])
    assert np.isnan(score_captions(["a b"], ["a b"], metrics=["BLEU-1"]).chance["BLEU-1"])


def test_bleu_clips_repeated_words():
    # "the the the the" against "the cat": count of "the" clipped to 1 → p1 = 1/4, c = 4 > r = 2 → BP = 1
    corpus, _ = bleu([["the cat"]], ["the the the the"])
    assert corpus["BLEU-1"] == pytest.approx(0.25, abs=1e-9)


def test_bleu4_corpus_by_hand():
    # one 5-word hypothesis equal to the first 5 words of a 5-word reference: all p_n = 1, BP = 1 → 1;
    # second hypothesis: "a b c d" vs ref "a b c e": p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0/1
    # corpus counts: p1 = (5+3)/(5+4), p2 = (4+2)/(4+3), p3 = (3+1)/(3+2), p4 = (2+0)/(2+1); c = r = 9 → BP = 1
    corpus, _ = bleu([["v w x y z"], ["a b c e"]], ["v w x y z", "a b c d"])
    p = [8 / 9, 6 / 7, 4 / 5, 2 / 3]
    assert corpus["BLEU-4"] == pytest.approx(math.exp(sum(math.log(x) for x in p) / 4), abs=1e-9)


def test_per_caption_bleu_unsmoothed_as_coco_or_method1():
    # "the cat sat down" vs "the cat sat on the mat": p = 3/4, 2/3, 1/2, 0/1, BP = exp(1 - 6/4)
    bp = math.exp(1 - 6 / 4)
    _, coco = bleu([["the cat sat on the mat"]], ["the cat sat down"])
    # COCO keeps its 1e-15 / 1e-9 guards: BLEU-4 is tiny but not 0
    expected = bp * (0.75 * 2 / 3 * 0.5 * 1e-15 / (1 + 1e-9)) ** 0.25
    assert coco["BLEU-4"][0] == pytest.approx(expected, rel=1e-6) and 0 < coco["BLEU-4"][0] < 1e-3
    _, smooth = bleu([["the cat sat on the mat"]], ["the cat sat down"], smoothing="method1")
    assert smooth["BLEU-4"][0] == pytest.approx(bp * (0.75 * 2 / 3 * 0.5 * 0.1) ** 0.25, abs=1e-12)
    assert smooth["BLEU-2"][0] == pytest.approx(bp * (0.75 * 2 / 3) ** 0.5, abs=1e-12)


def test_rouge_l_from_hand_counted_lcs():
    hyp = "a red big circle on the left"          # 7 words
    ref = "a big red circle at the far left"      # 8 words
    # LCS = a, big (or red), circle, the, left → 5
    p, r, beta = 5 / 7, 5 / 8, 1.2
    expected = (1 + beta ** 2) * p * r / (r + beta ** 2 * p)
    assert rouge_l([[ref]], [hyp])[0] == pytest.approx(expected, abs=1e-12)


def test_rouge_l_max_over_references():
    # P and R are each maximised over the references (COCO): P from ref 1 (3/3), R from ref 2 (2/2)
    out = rouge_l([["x a b c y z", "a b"]], ["a b c"])
    p, r, beta = 1.0, 1.0, 1.2
    assert out[0] == pytest.approx((1 + beta ** 2) * p * r / (r + beta ** 2 * p))


def test_meteor_exact_matches_and_fragmentation_by_hand():
    # hyp "a cat sat" vs ref "a dog sat": m = 2, P = R = 2/3 → Fmean = 2/3; chunks: "a" and "sat" are not
    # adjacent → 2 chunks, frag = 2/2 = 1, penalty = 0.5 · 1³ → METEOR = 2/3 · 0.5
    name, score = meteor([["a dog sat"]], ["a cat sat"], use_wordnet=False)
    assert name == "METEOR_exact_stem"
    assert score[0] == pytest.approx(1 / 3, abs=1e-9)


def test_meteor_stem_matches_by_hand():
    # "cats running" vs "cat runs": both match on Porter stems (cat, run), m = 2, P = R = 1, one chunk,
    # frag = 1/2, penalty = 0.5 · (1/2)³ = 0.0625 → 0.9375
    _, score = meteor([["cat runs"]], ["cats running"], use_wordnet=False)
    assert score[0] == pytest.approx(0.9375, abs=1e-9)


def test_cider_d_two_image_corpus_step_by_step():
    refs = [[["red", "circle"]], [["red", "square"]]]
    cands = [["red", "circle"], ["a", "red", "square"]]
    corpus, per = cider_d(refs, cands)
    # N = 2 images, idf(g) = ln 2 − ln df(g). "red" is in both reference sets → idf 0.
    # image 1: 1-grams: only "circle" (ln 2) on both sides → cos 1; 2-grams: "red circle" → cos 1;
    #          3-, 4-grams empty → 0. Same length → no penalty. 10 · (1 + 1 + 0 + 0) / 4 = 5.
    assert per[0] == pytest.approx(5.0, abs=1e-12)
    # image 2: candidate 1-grams a (df 0 → ln 2), red (0), square (ln 2): norm √2 ln 2; reference square: ln 2
    #          → cos = ln2² / (√2 ln2 · ln2) = 1/√2; 2-grams "a red" (ln 2), "red square" (ln 2) vs "red square"
    #          → 1/√2; 3-gram has no reference counterpart → 0. Length 3 vs 2 → penalty exp(−1/72).
    expected2 = 10 * math.exp(-1 / 72) * (2 / math.sqrt(2)) / 4
    assert per[1] == pytest.approx(expected2, abs=1e-12)
    assert corpus == pytest.approx((5.0 + expected2) / 2, abs=1e-12)


def test_cider_d_clips_candidate_weights():
    # repeating a reference word increases the candidate's tf but the numerator is clipped at the reference's
    refs = [[["red", "circle"]], [["blue", "square"]]]
    _, once = cider_d(refs, [["circle"], ["square"]])
    _, thrice = cider_d(refs, [["circle", "circle", "circle"], ["square"]])
    assert thrice[0] < once[0]


def test_identical_captions_score_one():
    refs = ["a small red circle on the left, on a white background", "a large blue star at the top"]
    scores = score_captions(refs, refs, metrics=["BLEU-1", "BLEU-4", "ROUGE-L", "SentSim"])
    assert scores.corpus["BLEU-1"] == pytest.approx(1.0)
    assert scores.corpus["BLEU-4"] == pytest.approx(1.0)
    assert scores.corpus["ROUGE-L"] == pytest.approx(1.0)
    assert scores.corpus["SentSim"] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(scores.per_caption["BLEU-4"], 1.0)


def test_minilm_paraphrase_beats_unrelated():
    refs = [["a dog is running across the grass"], ["a dog is running across the grass"]]
    sim = sentence_similarity(refs, ["a puppy runs over the lawn", "the stock market fell sharply today"])
    assert sim[0] > sim[1] + 0.2


def test_unknown_metric_and_count_mismatch_are_clear():
    with pytest.raises(ValueError, match=r"Caption metric 'CIDEr' is not in the caption metrics \(available: .*\)\. Did you mean CIDEr-D\?"):
        score_captions(["a"], ["a"], metrics=["CIDEr"])
    with pytest.raises(ValueError, match="Unknown METEOR variant"):
        score_captions(["a"], ["a"], metrics=["METEOR"], meteor_variant="2.0")
    with pytest.raises(ValueError, match="one hypothesis per image"):
        score_captions(["a", "b"], ["a"], metrics=["BLEU-1"])


def test_caption_files_group_references_and_align(tmp_path):
    ref = tmp_path / "refs.tsv"
    ref.write_text("condition\tcaption\n0\ta red circle\n1\ta blue star\n0\ta circle that is red\n")
    hyp = tmp_path / "hyp.tsv"
    hyp.write_text("condition\tcaption\n1\ta blue star\n0\ta red circle\n")
    key, keys, groups = read_caption_file(ref)
    assert key == "condition" and keys == [0, 1]
    assert groups == [["a red circle", "a circle that is red"], ["a blue star"]]
    refs, hyps = align_captions(ref, hyp)
    assert hyps == ["a blue star", "a red circle"]
    assert refs == [["a blue star"], ["a red circle", "a circle that is red"]]
    txt = tmp_path / "hyp.txt"
    txt.write_text("only one\n")
    with pytest.raises(ValueError, match="2 images but"):
        align_captions(ref, txt)


def test_captions_paired_by_concept_index_must_name_the_same_concepts(tmp_path):
    ref = tmp_path / "refs.tsv"
    ref.write_text("concept_index\tconcept\tcaption\n0\taircraft_carrier\ta ship\n1\tantelope\tan animal\n")
    hyp = tmp_path / "captions.tsv"
    hyp.write_text("subject\tconcept_index\tconcept\tcaption\nsub-01\t1\tantelope\tdeer\n"
                   "sub-01\t0\taircraft carrier\tboat\n")
    refs, hyps = align_captions(ref, hyp)
    assert hyps == ["deer", "boat"] and refs == [["an animal"], ["a ship"]]
    # 0.1.0's `caption` counted THINGS concepts from 1: the names show it
    hyp.write_text("subject\tconcept_index\tconcept\tcaption\nsub-01\t1\taircraft_carrier\tboat\n")
    with pytest.raises(ValueError, match="concept 1 is 'aircraft_carrier' in captions.tsv and 'antelope' in refs.tsv"):
        align_captions(ref, hyp)


def test_clip_score_equals_manual_cosine(tiny_hf_clip, tmp_path):
    """CLIPScore = 100 · max(cos(text, image), 0), computed with a tiny local CLIP and checked by hand.

    A copy of the model with the text projection negated flips every cosine's sign, so both the clipped
    (zero) and the unclipped branch are compared with real values.
    """
    import shutil

    import numpy as np
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    from eegvision.metrics.captions import clip_score

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    captions = ["a red circle", "a blue square on sand", "green"]
    model = CLIPModel.from_pretrained(str(tiny_hf_clip)).eval()
    proc = CLIPProcessor.from_pretrained(str(tiny_hf_clip))
    cos = []
    with torch.no_grad():
        for cap, im in zip(captions, images):
            b = proc(text=[cap], images=[im], return_tensors="pt", padding=True)
            t = model.get_text_features(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
            v = model.get_image_features(pixel_values=b["pixel_values"])
            t, v = getattr(t, "pooler_output", t), getattr(v, "pooler_output", v)
            cos.append(float(torch.nn.functional.cosine_similarity(t, v).item()))
    cos = np.array(cos)
    flipped = tmp_path / "flipped"
    shutil.copytree(tiny_hf_clip, flipped)
    with torch.no_grad():
        model.text_projection.weight.neg_()
    model.save_pretrained(flipped)
    np.testing.assert_allclose(clip_score(captions, images, tiny_hf_clip, device="cpu"),
                               100 * np.maximum(cos, 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(clip_score(captions, images, flipped, device="cpu"),
                               100 * np.maximum(-cos, 0), rtol=1e-4, atol=1e-4)
    assert np.abs(cos).min() > 1e-3  # every pair is non-zero in one of the two models
    # CLIP-S's chance floor: each caption against another image (the derangement of score_captions)
    scores = score_captions(["x", "y", "z"], captions, metrics=["CLIP-S"], clip=tiny_hf_clip, images=images)
    pairs = scores.protocol["chance_pairs"]
    wrong = clip_score(captions, [images[j] for j in pairs], tiny_hf_clip, device="cpu")
    assert scores.corpus["CLIP-S"] == pytest.approx(100 * np.maximum(cos, 0).mean(), abs=1e-3)
    assert scores.chance["CLIP-S"] == pytest.approx(wrong.mean(), abs=1e-4)
    with pytest.raises(ValueError, match="one image per caption"):
        clip_score(captions[:2], images, tiny_hf_clip)
