"""Generic MNE epochs + metadata table → store (eegvision.readers.epochs)."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

from eegvision.readers.epochs import group_repetitions
from eegvision.store.convert import convert_epochs
from eegvision.store.disk import open_store

CH = ["Oz", "O1", "O2", "Pz"]


def _write(tmp_path, meta_rows, seed=0, tmin=-0.2):
    rng = np.random.default_rng(seed)
    n = len(meta_rows)
    data = rng.normal(0, 5e-6, (n, len(CH), 60))
    data += np.arange(n)[:, None, None] * 1e-6  # epoch k carries k µV: order checks
    info = mne.create_info(CH, 50.0, "eeg")
    ep = mne.EpochsArray(data, info, events=np.c_[np.arange(n) * 100, np.zeros(n, int), np.ones(n, int)], tmin=tmin,
                         verbose=False)
    fif = tmp_path / "rec-epo.fif"
    ep.save(fif, overwrite=True, verbose=False)
    meta = pd.DataFrame(meta_rows)
    table = tmp_path / "meta.tsv"
    meta.to_csv(table, sep="\t", index=False)
    return fif, table, mne.read_epochs(fif, verbose=False).get_data() * 1e6


def _paradigm(rng, n_reps_train=3, n_reps_test=4):
    rows = []
    for concept, imgs in (("zebra", ["z2.png", "z1.png"]), ("apple", ["a1.png"]), ("cat", ["c1.png", "c2.png"])):
        for img in imgs:
            rows += [{"image_path": f"stim/{concept}/{img}", "concept": concept, "split": "training"}] * n_reps_train
    for concept in ("dog", "bee"):
        rows += [{"image_path": f"stim/test/{concept}.png", "concept": concept, "split": "test"}] * n_reps_test
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def test_round_trip_values_and_metadata(tmp_path):
    rows = _paradigm(np.random.default_rng(1))
    fif, table, data = _write(tmp_path, rows)
    s = open_store(convert_epochs(fif, table, tmp_path / "store", dtype="float32", tmin=0.0, tmax=0.5))
    assert s.subjects == ["sub-01"] and s.ch_names == CH and s.sfreq == 50.0
    np.testing.assert_allclose(s.times, np.arange(26) / 50.0, atol=1e-9)  # 0 .. 0.5 s inclusive
    train, meta = np.asarray(s.array("sub-01", "training")), s.metadata("sub-01", "training")
    assert train.shape == (5, 3, 4, 26)
    first = meta[meta.repetition == 0]
    # conditions sorted by concept, then image path
    assert first["image_path"].tolist() == ["stim/apple/a1.png", "stim/cat/c1.png", "stim/cat/c2.png",
                                            "stim/zebra/z1.png", "stim/zebra/z2.png"]
    assert first["concept"].tolist() == ["apple", "cat", "cat", "zebra", "zebra"]
    assert first["concept_index"].tolist() == [0, 1, 1, 2, 2]
    assert first["image_index"].tolist() == [0, 0, 1, 0, 1]
    assert s.concepts("training") == ["apple", "cat", "zebra"]
    paths = [r["image_path"] for r in rows]
    for i, path in enumerate(first["image_path"]):
        epochs_of_image = [k for k, p in enumerate(paths) if p == path]  # recording order
        np.testing.assert_allclose(train[i], data[epochs_of_image][..., 10:36], rtol=1e-5, atol=1e-4)
    test = np.asarray(s.array("sub-01", "test"))
    assert test.shape == (2, 4, 4, 26) and s.concepts("test") == ["bee", "dog"]


def test_subject_column_and_image_id(tmp_path):
    rows = _paradigm(np.random.default_rng(2), n_reps_train=2, n_reps_test=2)
    rows = [dict(r, subject=sub, image_id=r["image_path"].split("/")[-1]) for sub in ("sub-01", "2") for r in rows]
    fif, table, _ = _write(tmp_path, rows)
    s = open_store(convert_epochs(fif, table, tmp_path / "store"))
    assert s.subjects == ["sub-01", "sub-02"]
    assert s.array("sub-02", "training").shape == (5, 2, 4, 60)
    assert s.array("sub-01", "training").dtype == np.float16


def test_unequal_repetitions_error_and_min_reps(tmp_path):
    rows = _paradigm(np.random.default_rng(3))
    drop = next(k for k, r in enumerate(rows) if r["image_path"].endswith("c2.png"))
    rows = rows[:drop] + rows[drop + 1 :]  # c2 has 2 epochs, the others 3
    fif, table, _ = _write(tmp_path, rows)
    with pytest.raises(ValueError, match=r"sub-01 training: .*unequal numbers of epochs \(1 with 2, 4 with 3; e\.g\. "
                                         r"'stim/cat/c2.png' has 2\).*--min-reps"):
        convert_epochs(fif, table, tmp_path / "a")
    with pytest.warns(UserWarning, match=r"kept 5 of 5 conditions with 2 repetitions each; dropped 0 condition\(s\)"
                                         r" with fewer than 2 epochs and 4 epoch\(s\)"):
        s = open_store(convert_epochs(fif, table, tmp_path / "b", min_reps=2))
    assert s.array("sub-01", "training").shape == (5, 2, 4, 60)
    with pytest.warns(UserWarning, match=r"kept 4 of 5 conditions with 3 repetitions each; dropped 1 condition"):
        s = open_store(convert_epochs(fif, table, tmp_path / "c", min_reps=3))
    assert "stim/cat/c2.png" not in set(s.metadata("sub-01", "training")["image_path"])


def test_group_repetitions_brute_force():
    rng = np.random.default_rng(0)
    cond = rng.integers(-1, 5, 200)
    counts = np.bincount(cond[cond >= 0], minlength=5)
    with pytest.warns(UserWarning, match="kept"):
        kept, slots = group_repetitions(cond, 5, min_reps=int(np.median(counts)))
    for i, c in enumerate(kept):
        assert slots[i].tolist() == np.flatnonzero(cond == c)[: slots.shape[1]].tolist()
    assert slots.shape[1] == counts[kept].min()


def _columns(table: Path) -> list[str]:
    return table.read_text().splitlines()[0].split(",")


def test_input_errors(tmp_path):
    rows = _paradigm(np.random.default_rng(4))
    fif, table, _ = _write(tmp_path, rows)
    short = tmp_path / "short.csv"
    pd.DataFrame(rows[:-2]).to_csv(short, index=False)
    with pytest.raises(ValueError, match=rf"has {len(rows) - 2} rows but the epochs file holds {len(rows)} epochs"):
        convert_epochs(fif, short, tmp_path / "a")
    bad = tmp_path / "bad.csv"
    pd.DataFrame(rows).rename(columns={"concept": "concepts"}).to_csv(bad, index=False)
    with pytest.raises(ValueError) as err:
        convert_epochs(fif, bad, tmp_path / "b")
    assert err.value.args[0] == (f"Column 'concept' is not in {bad} (available: {', '.join(_columns(bad))}). Did you "
                                 "mean concepts? Needed: image_path, concept, split (training/test); optional: "
                                 "subject, image_id.")
    wrong = tmp_path / "wrong.csv"
    renamed = [dict(r, split="train" if r["split"] == "training" else "val") for r in rows]
    pd.DataFrame(renamed).to_csv(wrong, index=False)
    with pytest.raises(ValueError) as err:
        convert_epochs(fif, wrong, tmp_path / "c")
    line = 2 + [r["split"] for r in renamed].index("train")
    assert err.value.args[0] == (f"{wrong}, line {line}: split must be one of training, test; got 'train'. "
                                 "Did you mean training?")
    with pytest.raises(FileNotFoundError, match=r"Metadata table .*nope.csv does not exist\. Give a CSV/TSV"):
        convert_epochs(fif, tmp_path / "nope.csv", tmp_path / "d")
    with pytest.raises(ValueError, match="reaches outside the epochs"):
        convert_epochs(fif, table, tmp_path / "e", tmax=5.0)
    assert not (tmp_path / "e" / "manifest.json").exists()


def test_cli_convert_epochs(tmp_path):
    from typer.testing import CliRunner

    from eegvision.cli.main import app

    rows = _paradigm(np.random.default_rng(5))
    fif, table, _ = _write(tmp_path, rows)
    runner = CliRunner()
    res = runner.invoke(app, ["convert", "epochs", str(fif), str(table), str(tmp_path / "store"), "--tmin", "0"])
    assert res.exit_code == 0, res.output
    assert open_store(tmp_path / "store").array("sub-01", "training").shape == (5, 3, 4, 50)
    bad = tmp_path / "bad.tsv"
    pd.DataFrame(rows[:3]).to_csv(bad, sep="\t", index=False)
    res = runner.invoke(app, ["convert", "epochs", str(fif), str(bad), str(tmp_path / "s2")])
    assert res.exit_code == 2 and "has 3 rows but the epochs file holds 23 epochs" in " ".join(res.output.split())
    res = runner.invoke(app, ["convert", "epochs", "--help"])
    assert "Example:" in res.output
