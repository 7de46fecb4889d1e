"""Prefix captioner: reproduces its training captions, beam ≥ greedy, save/load, EEG → prior → text, CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from eegvision.generation.captioner import (
    PrefixCaptioner,
    build_word_tokenizer,
    caption_embeddings,
    write_captions,
)
from eegvision.metrics.repetition import max_word_run, repeated_word_fraction
from eegvision.sim.scene import make_world
from eegvision.store.concepts import ConceptTable
from eegvision.training.caption_fit import CaptionFitConfig, fit_captioner, save_caption_fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"n_embd": 64, "n_layer": 2, "n_head": 4}




@pytest.fixture(scope="module")
def world_pairs():
    w = make_world(n_train_concepts=8, n_test_concepts=2, n_train_images=1, seed=0)
    caps = w.captions("training")
    emb = torch.as_tensor(w.latents("training"), dtype=torch.float32)
    assert len(set(caps)) == 8
    return emb, caps


@pytest.fixture(scope="module")
def trained(world_pairs):
    torch.set_num_threads(1)
    emb, caps = world_pairs
    cfg = CaptionFitConfig(decoder_options=TINY, prefix_length=4, max_length=24, epochs=80, batch_size=8,
                           learning_rate=3e-3, warmup_steps=0, val_fraction=0.0, seed=0, device="cpu")
    return fit_captioner(emb, caps, config=cfg)


def _manual_greedy(model: PrefixCaptioner, emb: torch.Tensor, steps: int = 30, no_repeat: int = 0,
                   penalty: float = 1.0) -> list[str]:
    """Greedy decoding written out: argmax of the next-token logits given prefix + tokens so far, after CTRL's
    repetition penalty (``penalty``) and with every token that would repeat an n-gram of size ``no_repeat`` banned."""
    tok = model.tokenizer
    out = []
    with torch.no_grad():
        for row in emb:
            ids: list[int] = []
            for _ in range(steps):
                x = torch.tensor([ids + [tok.pad_token_id]])          # the last slot is a dummy to predict
                logits = model.token_logits(row[None], x, torch.ones_like(x))[0, len(ids)].clone()
                for t in set(ids):
                    logits[t] = logits[t] / penalty if logits[t] > 0 else logits[t] * penalty
                if no_repeat:
                    head = ids[len(ids) - no_repeat + 1:] if no_repeat > 1 else []
                    for i in range(len(ids) - no_repeat + 1):
                        if ids[i:i + no_repeat - 1] == head:
                            logits[ids[i + no_repeat - 1]] = -float("inf")
                nxt = int(logits.argmax())
                if nxt == tok.eos_token_id:
                    break
                ids.append(nxt)
            out.append(tok.decode(ids, skip_special_tokens=True).strip())
    return out


def test_word_tokenizer_round_trips_captions(world_pairs):
    _, caps = world_pairs
    tok = build_word_tokenizer(caps)
    ids = tok(caps[0], add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == caps[0]                      # punctuation re-attached
    assert tok.pad_token_id == 0 and tok.eos_token_id is not None


def test_captioner_reproduces_training_captions(trained, world_pairs):
    emb, caps = world_pairs
    assert trained.history[-1]["loss"] < trained.history[0]["loss"] / 10
    assert trained.captioner.generate(emb) == caps


def test_generate_matches_written_out_greedy(trained, world_pairs):
    emb, _ = world_pairs
    assert trained.captioner.generate(emb[:3]) == _manual_greedy(trained.captioner, emb[:3])


def test_untrained_greedy_matches_written_out_greedy(world_pairs):
    """An untrained captioner loops, so here the guards against repetition decide every caption: the defaults
    (no repeated token pair, CTRL penalty 1.2) must be exactly the written-out rule, and turned off plain greedy."""
    emb, caps = world_pairs
    torch.manual_seed(1)
    model = PrefixCaptioner.create(build_word_tokenizer(caps), emb.shape[1], prefix_length=3, max_length=24,
                                   **TINY).eval()
    plain = model.generate(emb[:3], max_new_tokens=12, no_repeat_ngram_size=0, repetition_penalty=1.0)
    assert plain == _manual_greedy(model, emb[:3], steps=12)
    assert max_word_run(plain[0]) == 12                          # one word, 12 times
    guarded = model.generate(emb[:3], max_new_tokens=12)
    assert guarded == _manual_greedy(model, emb[:3], steps=12, no_repeat=2, penalty=1.2)
    assert guarded != plain and max(max_word_run(c) for c in guarded) == 2
    assert model.generate(emb[:3], max_new_tokens=12, no_repeat_ngram_size=3, repetition_penalty=1.0) == \
        _manual_greedy(model, emb[:3], steps=12, no_repeat=3)


def test_no_caption_says_a_word_three_times(trained, world_pairs):
    """The tiny captioners of these tests, trained (80 epochs), partly trained (4) and untrained, on their training
    embeddings and on 32 random ones, greedy and beam search: with the default decoding no caption says a word
    three times in a row; without the guards the weaker ones do."""
    emb, caps = world_pairs
    cfg = CaptionFitConfig(decoder_options=TINY, prefix_length=4, max_length=24, epochs=4, batch_size=8,
                           learning_rate=3e-3, warmup_steps=0, val_fraction=0.0, seed=0, device="cpu")
    partly = fit_captioner(emb, caps, config=cfg).captioner
    torch.manual_seed(1)
    untrained = PrefixCaptioner.create(build_word_tokenizer(caps), emb.shape[1], prefix_length=3, max_length=24,
                                       **TINY).eval()
    noise = torch.randn(32, emb.shape[1], generator=torch.Generator().manual_seed(0))
    looping = {}
    for name, model in (("trained", trained.captioner), ("partly", partly), ("untrained", untrained)):
        for x in (emb, noise):
            for beams in (1, 3):
                captions = model.generate(x, num_beams=beams)
                assert repeated_word_fraction(captions) == 0.0, (name, beams, captions)
                assert max(max_word_run(c) for c in captions) <= 2
                off = model.generate(x, num_beams=beams, no_repeat_ngram_size=0, repetition_penalty=1.0)
                looping[name] = max(looping.get(name, 0.0), repeated_word_fraction(off))
    assert looping["trained"] == 0.0                      # a trained captioner needs no guard …
    assert looping["partly"] > 0.5 and looping["untrained"] > 0.5   # … weaker ones loop without them


def test_beam_log_prob_at_least_greedy(world_pairs):
    emb, caps = world_pairs
    # a partly trained model, so that greedy and beam search can disagree
    cfg = CaptionFitConfig(decoder_options=TINY, prefix_length=4, max_length=24, epochs=12, batch_size=8,
                           learning_rate=3e-3, warmup_steps=0, val_fraction=0.0, seed=3, device="cpu")
    model = fit_captioner(emb, caps, config=cfg).captioner
    plain = {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0}   # the search itself, on the model's log p
    greedy = model.generate(emb, max_new_tokens=23, **plain)
    beam = model.generate(emb, num_beams=4, length_penalty=0.0, max_new_tokens=23, **plain)
    lp_g, lp_b = model.log_prob(emb, greedy), model.log_prob(emb, beam)
    assert torch.all(lp_b >= lp_g - 1e-4)


def test_log_prob_is_sum_of_token_log_probs(trained, world_pairs):
    emb, caps = world_pairs
    model = trained.captioner
    ids, mask = model.encode_captions(caps[:1])
    assert int(ids[0, -1]) == model.tokenizer.eos_token_id
    with torch.no_grad():
        logits = model.token_logits(emb[:1], ids, mask)[0].log_softmax(-1)
    by_hand = sum(float(logits[t, ids[0, t]]) for t in range(ids.shape[1]))
    assert float(model.log_prob(emb[:1], caps[:1])[0]) == pytest.approx(by_hand, abs=1e-4)


def test_input_scale_does_not_matter(trained, world_pairs):
    emb, caps = world_pairs
    assert trained.captioner.generate(emb * 22.0) == caps   # raw CLIP norms ≈ 22: normalised away


def test_save_load_same_captions(trained, world_pairs, tmp_path):
    emb, caps = world_pairs
    save_caption_fit(trained, tmp_path / "cap")
    loaded = PrefixCaptioner.from_pretrained(tmp_path / "cap")
    assert loaded.generate(emb) == caps
    assert loaded.generate(emb, num_beams=3) == trained.captioner.generate(emb, num_beams=3)
    assert (tmp_path / "cap" / "decoder" / "model.safetensors").is_file()
    assert (tmp_path / "cap" / "tokenizer" / "tokenizer.json").is_file()
    assert (tmp_path / "cap" / "training.json").is_file()
    with pytest.raises(FileNotFoundError, match="caption-fit"):
        PrefixCaptioner.from_pretrained(tmp_path / "missing")


def test_validation_split_holds_out_images(world_pairs):
    emb, caps = world_pairs
    idx = np.repeat(np.arange(8), 2)                       # two captions per image
    cfg = CaptionFitConfig(decoder_options=TINY, prefix_length=2, max_length=24, epochs=2, batch_size=8,
                           val_fraction=0.25, seed=0, device="cpu")
    res = fit_captioner(emb, [c for c in caps for _ in range(2)], idx, cfg)
    assert len(res.val_images) == 2 and len(res.val_captions) == 2
    assert {"val_loss", "val_BLEU-4", "val_CIDEr-D", "val_word_3x_in_a_row"} <= set(res.metrics)
    assert res.metrics["val_word_3x_in_a_row"] == 0.0
    assert (res.config["no_repeat_ngram_size"], res.config["repetition_penalty"]) == (2, 1.2)
    with pytest.raises(ValueError, match="repetition_penalty must be a number above 0; got 0"):
        fit_captioner(emb, caps, config=CaptionFitConfig(repetition_penalty=0.0))
    with pytest.raises(ValueError, match="image indices"):
        fit_captioner(emb, caps, np.arange(8) + 1, cfg)


def test_caption_embeddings_through_prior(trained, world_pairs, tmp_path):
    from eegvision.models.prior import DiffusionPrior

    emb, caps = world_pairs
    prior = DiffusionPrior(embed_dim=emb.shape[1], cond_dim=5, architecture_options={"hidden_dims": [16, 8]})
    eeg = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    a, h = caption_embeddings(eeg, trained.captioner, prior=prior, prior_steps=3, seed=1)
    b, h2 = caption_embeddings(eeg, trained.captioner, prior=prior, prior_steps=3, seed=1)
    assert a == b and torch.equal(h, h2) and h.shape == (3, emb.shape[1])
    assert a == trained.captioner.generate(h)
    with pytest.raises(ValueError, match="takes 18-d"):
        caption_embeddings(eeg, trained.captioner)              # 5-d EEG embeddings without the prior
    out = write_captions(tmp_path / "c", a, ConceptTable((4, 0, 2), ("x", "y", "z"), split="test"))
    assert (out / "captions.txt").read_text().splitlines() == a
    tsv = pd.read_csv(out / "captions.tsv", sep="\t")
    assert tsv["concept_index"].tolist() == [4, 0, 2] and tsv["concept"].tolist() == ["x", "y", "z"]
    assert json.loads((out / "captions.json").read_text())["concepts"]["concept_index"] == [4, 0, 2]
    with pytest.raises(ValueError, match="3 captions but a concept table of 2"):
        write_captions(tmp_path / "c2", a, ConceptTable.from_names(["x", "y"]))


def test_cli_caption_fit_caption_and_score(world_pairs, trained, tmp_path):
    from safetensors.torch import save_file

    from eegvision.cli.main import app

    emb, caps = world_pairs
    save_file({"image": emb.contiguous()}, str(tmp_path / "feat.safetensors"))
    (tmp_path / "caps.tsv").write_text("condition\tcaption\n" + "".join(f"{i}\t{c}\n" for i, c in enumerate(caps)))
    runner = CliRunner()
    res = runner.invoke(app, ["caption-fit", str(tmp_path / "feat.safetensors"), str(tmp_path / "caps.tsv"),
                              "--out", str(tmp_path / "cap_cli"), "--epochs", "2", "--n-embd", "64", "--n-layer",
                              "1", "--prefix-length", "2", "--val-fraction", "0.25", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cap_cli" / "config.json").is_file()

    trained.captioner.save_pretrained(tmp_path / "cap")
    torch.save(emb, tmp_path / "emb.pt")
    args = ["caption", str(tmp_path / "emb.pt"), "--captioner", str(tmp_path / "cap"), "--no-prior", "--out",
            str(tmp_path / "out"), "--device", "cpu"]
    res = runner.invoke(app, args)                    # an embedding file does not say which concept a row is
    assert res.exit_code == 2 and "holds embeddings only" in res.output and "--concepts" in res.output
    ConceptTable.from_names([f"c{i}" for i in range(8)]).write(tmp_path / "concepts.tsv")
    res = runner.invoke(app, args + ["--concepts", str(tmp_path / "concepts.tsv")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "captions.txt").read_text().splitlines() == caps
    tsv = pd.read_csv(tmp_path / "out" / "captions.tsv", sep="\t")
    assert tsv["concept_index"].tolist() == list(range(8)) and tsv["concept"].tolist()[:2] == ["c0", "c1"]
    assert json.loads((tmp_path / "out" / "captions.json").read_text())["decoding"] == {
        "num_beams": 1, "max_new_tokens": 30, "no_repeat_ngram_size": 2, "repetition_penalty": 1.2,
        "length_penalty": 1.0}
    res = runner.invoke(app, args + ["--concepts", str(tmp_path / "concepts.tsv"), "--no-repeat-ngram", "3",
                                     "--repetition-penalty", "1.0", "--beams", "2", "--out", str(tmp_path / "o3")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o3" / "captions.txt").read_text().splitlines() == caps
    decoding = json.loads((tmp_path / "o3" / "captions.json").read_text())["decoding"]
    assert (decoding["num_beams"], decoding["no_repeat_ngram_size"], decoding["repetition_penalty"]) == (2, 3, 1.0)
    res = runner.invoke(app, args + ["--concepts", str(tmp_path / "concepts.tsv"), "--no-repeat-ngram", "-1"])
    assert res.exit_code == 2 and "no_repeat_ngram_size must be a whole number of 0 or more; got -1" in res.output

    res = runner.invoke(app, ["score-captions", str(tmp_path / "caps.tsv"), str(tmp_path / "out" / "captions.txt"),
                              "--metrics", "BLEU-4,ROUGE-L,CIDEr-D", "--out", str(tmp_path / "s.csv"),
                              "--per-caption", str(tmp_path / "p.tsv")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "s.csv").set_index("metric")["value"]
    assert table["BLEU-4"] == pytest.approx(1.0) and table["ROUGE-L"] == pytest.approx(1.0)
    assert len(pd.read_csv(tmp_path / "p.tsv", sep="\t")) == 8

    res = runner.invoke(app, ["caption", str(tmp_path / "emb.pt"), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "caption-fit" in res.output


def test_cli_caption_reads_a_run_folder(world_pairs, trained, tmp_path):
    """`eegvision caption RUN`: every unit's test embeddings, RUN/captioner by default, no RUN/prior -> direct."""
    from eegvision.cli.main import app
    from eegvision.store.concepts import ConceptTable
    from eegvision.training.config import FitConfig
    from eegvision.training.rundir import RunFolder

    emb, caps = world_pairs
    run = RunFolder(tmp_path / "run")
    table = ConceptTable.from_names([f"concept_{i}" for i in range(len(emb))], split="test")
    run.write_config(FitConfig(data="store", subjects=["sub-01", "sub-02"]), ["sub-01", "sub-02"], {},
                     concepts={"test": table})
    for unit, rows in zip(run.units(), (emb, emb.flip(0))):
        unit.write_test_embeddings({unit.name: rows.contiguous()}, {})
    trained.captioner.save_pretrained(run.captioner_dir)
    res = CliRunner().invoke(app, ["caption", str(run.path), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "no prior found" in res.output
    assert (tmp_path / "out" / "sub-01" / "captions.txt").read_text().splitlines() == caps
    assert (tmp_path / "out" / "sub-02" / "captions.txt").read_text().splitlines() == caps[::-1]
