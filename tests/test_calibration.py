"""Transductive calibration (evaluation/calibration.py) and the separation of transductive from inductive rows."""

import numpy as np
import pytest

from eegvision.evaluation.calibration import calibrate, centre, orthogonal_map, whiten
from eegvision.evaluation.embeddings import evaluate_embeddings
from eegvision.evaluation.results import Evaluation, headline, markdown_table, split_rows


def test_orthogonal_map_recovers_a_hand_rotation():
    # a 90-degree rotation about the z axis followed by a reflection of x: an orthogonal matrix written by hand
    r0 = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([-1.0, 1.0, 1.0])
    a = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 0.0, -1.0], [-1.5, 1.0, 1.0]])
    r = orthogonal_map(a, a @ r0)
    np.testing.assert_allclose(r, r0, atol=1e-12)
    # a by hand: source rows [1, 0], [0, 1] onto [0, 1], [-1, 0] is the rotation by +90 degrees
    np.testing.assert_allclose(orthogonal_map(np.eye(2), np.array([[0.0, 1.0], [-1.0, 0.0]])),
                               [[0.0, 1.0], [-1.0, 0.0]], atol=1e-12)


def test_centre_and_whiten_values():
    x = np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]])
    np.testing.assert_allclose(centre(x), [[-1.0, -1.0], [1.0, -1.0], [0.0, 2.0]])
    # without shrinkage the whitened rows have identity sample covariance
    w = whiten(x, shrinkage=0.0)
    np.testing.assert_allclose(w.T @ w / 2, np.eye(2), atol=1e-10)
    # full shrinkage: S -> tr(S)/d I (tr S = 1 + 3 = 4, d = 2), so whitening divides by sqrt(2)
    np.testing.assert_allclose(whiten(x, shrinkage=1.0), centre(x) / np.sqrt(2.0), atol=1e-12)


def test_score_recovers_a_rotated_subject_without_labels():
    # the unseen "subject" is the candidates rotated by a large angle (expm of a skew matrix), scaled and noisy:
    # plain cosine, centring and one Procrustes step stay far from it, the iterated label-free alignment finds it
    from scipy.linalg import expm

    rng = np.random.default_rng(0)
    n, d = 60, 12
    cands = rng.standard_normal((n, d)) * np.linspace(3.0, 0.5, d)     # anisotropic: principal axes defined
    a = rng.standard_normal((d, d))
    a = (a - a.T) / 2
    rot = expm(1.6 * a / np.linalg.norm(a, 2))
    queries = (cands @ rot) * 1.7 + 0.1 * rng.standard_normal((n, d))

    def top1(q, c):
        q, c = q / np.linalg.norm(q, axis=1, keepdims=True), c / np.linalg.norm(c, axis=1, keepdims=True)
        return np.mean((q @ c.T).argmax(1) == np.arange(n))

    assert top1(queries, cands) < 0.3
    cen = calibrate(queries, cands, "centre")
    assert top1(cen.queries, cen.candidates) < 0.3
    cal = calibrate(queries, cands, "score", rank=12)
    assert top1(cal.queries, cal.candidates) == 1.0
    assert cal.rotation.shape == (12, 12) and cal.n_iter >= 2 and cal.details["last_change"] == 0.0
    np.testing.assert_allclose(cal.rotation @ cal.rotation.T, np.eye(12), atol=1e-10)


def _mixed_rows():
    rng = np.random.default_rng(1)
    img = rng.standard_normal((20, 8))
    eeg = img + 0.8 * rng.standard_normal((20, 8))
    return evaluate_embeddings(eeg, img, ks=[2, 20], methods=["exact", "csls"], calibrations=["centre", "score"],
                               info={"subject": "sub-01"})


def test_no_transductive_number_in_the_inductive_table():
    rows = _mixed_rows()
    tables = split_rows(rows)
    assert {r["method"] for r in tables.inductive} == {"exact"}
    assert all(r.get("calibration") is None and not r["transductive"] for r in tables.inductive)
    assert {(r["method"], r.get("calibration")) for r in tables.transductive} == {
        ("csls", None), ("exact", "centre"), ("exact", "score")}
    text = markdown_table(tables.inductive)
    trans_values = {f"{r['top1']:.3f}" for r in tables.transductive} | {f"{r['top5']:.3f}"
                                                                       for r in tables.transductive}
    ind_values = {f"{r['top1']:.3f}" for r in tables.inductive} | {f"{r['top5']:.3f}" for r in tables.inductive}
    cells = {c.strip() for line in text.splitlines()[2:] for c in line.split("|")}
    assert cells & trans_values <= ind_values       # a shared value may only come from an inductive row
    assert "csls" not in text and "centre" not in text and "score" not in text
    with pytest.raises(ValueError, match="never mixes"):
        markdown_table(rows)
    # the headline quotes inductive rows only, the transductive one is separate and named
    ev = Evaluation(rows=rows)
    at20 = [r for r in tables.inductive if r["k"] == 20]
    assert ev.summary["image"]["top1"] == at20[0]["top1"]
    assert ev.transductive_summary["image"]["method"] == "exact"
    assert ev.transductive_summary["image"]["calibration"] == "centre"
    assert headline([r for r in rows if r["method"] == "csls"]) == {}


def test_evaluate_calibrate_prints_a_separate_transductive_table(tmp_path):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    rng = np.random.default_rng(2)
    img = rng.standard_normal((20, 8)).astype(np.float32)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "eeg.npy", (img + rng.standard_normal((20, 8))).astype(np.float32))
    res = CliRunner().invoke(app, ["evaluate", "--eeg-embeds", str(tmp_path / "eeg.npy"), "--image-features",
                                   str(tmp_path / "img.npy"), "--methods", "exact", "--ks", "2,20",
                                   "--calibrate", "centre,score"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    inductive, _, transductive = res.stdout.partition("zero-shot evaluation — transductive")
    assert "zero-shot evaluation — inductive" in inductive
    assert "centre" not in inductive and "score" not in inductive
    assert transductive.count("centre") >= 2 and transductive.count("score") >= 2
    assert "transductive: image 20-way (exact after centre" in res.stdout
    bad = CliRunner().invoke(app, ["evaluate", "--eeg-embeds", str(tmp_path / "eeg.npy"), "--image-features",
                                   str(tmp_path / "img.npy"), "--calibrate", "center"])
    assert bad.exit_code != 0 and "Did you mean centre" in bad.output
