"""Real data: the reference's ATM-S test embeddings of sub-08 against the real ViT-H-14 test features.

The fixture folder's README states 200-way top-1 0.360 and top-5 0.725 for image retrieval; the reference
README gives 12 % for EEG -> text classification.
"""

import numpy as np
import pytest
import torch

from eegvision.evaluation.embeddings import (
    evaluate_embedding_files,
    evaluate_embeddings,
    load_embeddings,
)
from eegvision.evaluation.kway import cosine_similarity, kway_exact, kway_montecarlo
from eegvision.evaluation.results import read_results
from eegvision.features.files import import_atm_features


@pytest.fixture(scope="module")
def real(data_dir):
    folder = data_dir / "things_eeg2_clip"
    eeg = folder / "ATM_S_eeg_features_sub-08_test.pt"
    feats = folder / "ViT-H-14_features_test.pt"
    return eeg, feats


def _row(rows, modality, method, k):
    (row,) = [r for r in rows if r["modality"] == modality and r["method"] == method and r["k"] == k]
    return row


def test_reference_numbers(real):
    eeg, feats = real
    d = torch.load(feats, weights_only=True)
    rows = evaluate_embeddings(load_embeddings(eeg), d["img_features"], d["text_features"],
                               info={"dataset": "things-eeg2", "subject": "sub-08", "encoder": "atms"})
    img = _row(rows, "image", "exact", 200)
    assert img["top1"] == pytest.approx(0.360, abs=1e-9)
    assert img["top5"] == pytest.approx(0.725, abs=1e-9)
    assert _row(rows, "text", "exact", 200)["top1"] == pytest.approx(0.12, abs=1e-9)
    # fractions, every k, monotone in k
    top1 = [_row(rows, "image", "exact", k)["top1"] for k in (2, 4, 10, 50, 100, 200)]
    assert all(0 <= v <= 1 for v in top1) and top1 == sorted(top1, reverse=True)
    assert img["subject"] == "sub-08" and img["transductive"] is False


def test_exact_matches_montecarlo_on_real_data(real):
    eeg, feats = real
    s = cosine_similarity(load_embeddings(eeg), load_embeddings(feats, key="img_features"))
    ks = (2, 4, 10)
    exact = kway_exact(s, ks=ks)
    mc = kway_montecarlo(s, ks=ks, n_draws=500, seed=0)
    # per-draw spread is ~0.02, so the mean of 500 draws has a standard error of ~0.001
    assert np.abs(mc.accuracy - exact.accuracy).max() < 0.005
    assert mc.draw_std[:, 0].max() > 0.005  # a single reference-style draw is noisy


def test_file_evaluation_all_forms(real, tmp_path):
    eeg, feats = real
    ref = evaluate_embeddings(load_embeddings(eeg), load_embeddings(feats, key="img_features"),
                              load_embeddings(feats, key="text_features"))
    # .npy embeddings + eegvision feature file (with text) + output folder
    np.save(tmp_path / "eeg.npy", load_embeddings(eeg))
    st = import_atm_features(feats, tmp_path / "test.safetensors", normalize=True)
    res = evaluate_embedding_files(tmp_path / "eeg.npy", st, out=tmp_path / "run",
                                   methods=("exact", "csls"), info={"encoder": "atms"})
    rows = res.rows
    assert res.files == [tmp_path / "run" / "metrics.json", tmp_path / "run" / "metrics.csv"]
    assert res.summary["image"] == {"modality": "image", "method": "exact", "k": 200, "n_subjects": 1,
                                    "top1": _row(rows, "image", "exact", 200)["top1"],
                                    "top5": _row(rows, "image", "exact", 200)["top5"]}
    assert {(r["modality"], r["method"]) for r in rows} == {
        ("image", "exact"), ("image", "csls"), ("text", "exact"), ("text", "csls")}
    for r0 in ref:
        r1 = _row(rows, r0["modality"], "exact", r0["k"])
        assert r1["top1"] == pytest.approx(r0["top1"], abs=1e-6)
    assert all(r["transductive"] for r in rows if r["method"] == "csls")
    back = read_results(tmp_path / "run" / "metrics.csv")
    assert len(back) == len(rows) and back[0]["k"] == rows[0]["k"]
    assert back[0]["top1"] == pytest.approx(rows[0]["top1"])
    assert read_results(tmp_path / "run" / "metrics.json")[0]["features"] == "ViT-H-14"
    # ATM-style dict directly, and a dict with an EEG key
    torch.save({"eeg_features": torch.load(eeg, weights_only=True)}, tmp_path / "eeg_dict.pt")
    rows2 = evaluate_embedding_files(tmp_path / "eeg_dict.pt", feats).rows
    assert _row(rows2, "image", "exact", 200)["top5"] == pytest.approx(0.725)


def test_input_errors(real, tmp_path):
    eeg, feats = real
    e = load_embeddings(eeg)
    with pytest.raises(ValueError, match="row i of both"):
        evaluate_embeddings(e[:100], load_embeddings(feats, key="img_features"))
    with pytest.raises(ValueError, match="embedding sizes differ"):
        evaluate_embeddings(e[:, :512], load_embeddings(feats, key="img_features"))
    with pytest.raises(ValueError, match="methods"):
        evaluate_embeddings(e, e, methods=("bogus",))
    with pytest.raises(ValueError, match=r"holds several arrays \(.*\); give a file with one"):
        torch.save({"a": torch.zeros(2, 2), "b": torch.zeros(2, 2)}, tmp_path / "two.pt")
        load_embeddings(tmp_path / "two.pt")
    with pytest.raises(FileNotFoundError):
        load_embeddings(tmp_path / "missing.pt")
    with pytest.warns(UserWarning, match="skipped"):
        rows = evaluate_embeddings(e[:20], e[:20], ks=(2, 10, 200))
    assert sorted({r["k"] for r in rows}) == [2, 10]


def test_every_k_against_closed_form_on_real_data(real):
    """Every k of the real evaluation against the hypergeometric sum written out with math.comb."""
    from math import comb as _comb

    def comb(a, b):
        return _comb(a, b) if 0 <= b else 0

    eeg, feats = real
    s = cosine_similarity(load_embeddings(eeg), load_embeddings(feats, key="img_features"))
    ks = (2, 4, 10, 50, 100, 200)
    acc = kway_exact(s, ks=ks)
    n = s.shape[0]
    m = [int((s[i] >= s[i, i]).sum()) - 1 for i in range(n)]
    for k in ks:
        for t in (1, 5):
            ref = np.mean([sum(comb(mi, j) * comb(n - 1 - mi, k - 1 - j) for j in range(t)) / comb(n - 1, k - 1)
                           for mi in m])
            assert acc.get(k, t) == pytest.approx(ref, abs=1e-12)
