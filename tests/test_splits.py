"""Subject folds and the held-out-concept validation split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eegvision.data.splits import Fold, joint, loso_folds, validation_split, within_subject

SUBJECTS = [f"sub-{i:02d}" for i in range(1, 6)]


def training_metadata(n_concepts=40, per_concept=10, n_rep=2):
    cond = np.repeat(np.arange(n_concepts * per_concept), n_rep)
    return pd.DataFrame({
        "subject": "sub-01", "split": "training", "condition": cond,
        "repetition": np.tile(np.arange(n_rep), n_concepts * per_concept),
        "concept_index": cond // per_concept,
    })


def test_loso_folds_leave_out_each_subject_once():
    folds = loso_folds(SUBJECTS)
    assert [f.test_subject for f in folds] == SUBJECTS
    for f in folds:
        assert isinstance(f, Fold)
        assert f.test_subject not in f.train_subjects
        assert sorted(f.train_subjects + (f.test_subject,)) == SUBJECTS
    assert len({f.train_subjects for f in folds}) == len(SUBJECTS)
    with pytest.raises(ValueError, match="at least 2"):
        loso_folds(["sub-01"])
    with pytest.raises(ValueError, match="more than once"):
        loso_folds(["sub-01", "sub-01"])


def test_within_and_joint():
    assert within_subject("sub-03") == Fold(("sub-03",), "sub-03")
    f = joint(SUBJECTS, "sub-02")
    assert f.train_subjects == tuple(SUBJECTS) and f.test_subject == "sub-02"
    with pytest.raises(ValueError, match="loso_folds"):
        joint(["sub-01", "sub-03"], "sub-02")


def test_validation_split_holds_out_whole_concepts():
    md = training_metadata()
    train, val = validation_split(md, fraction=0.1, seed=0)
    concept_of = md.drop_duplicates("condition").set_index("condition")["concept_index"]
    train_concepts = set(concept_of[train])
    val_concepts = set(concept_of[val])
    assert len(val_concepts) == 4  # 10 % of 40 concepts
    assert not train_concepts & val_concepts
    assert len(val) == 4 * 10  # every image of a held-out concept
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(400))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    # deterministic in the seed
    again = validation_split(md, fraction=0.1, seed=0)
    np.testing.assert_array_equal(again.val_conditions, val)
    other = validation_split(md, fraction=0.1, seed=1)
    assert not np.array_equal(other.val_conditions, val)
    # n_val_concepts overrides fraction; at least one concept
    assert len(validation_split(md, n_val_concepts=7).val_conditions) == 70
    assert len(validation_split(md, fraction=0.001).val_conditions) == 10
    with pytest.raises(ValueError, match="Cannot hold out 40 of 40"):
        validation_split(md, n_val_concepts=40)
    with pytest.raises(ValueError, match="concept_index"):
        validation_split(md.drop(columns=["concept_index"]))


def test_validation_split_from_store():
    md = training_metadata(n_concepts=20, per_concept=3, n_rep=1)

    class Store:
        subjects = ["sub-01"]

        def splits(self, subject):
            return ["training", "test"]

        def metadata(self, subject, split):
            return md

    train, val = validation_split(Store(), n_val_concepts=2, seed=5)
    assert len(val) == 6 and len(train) == 54
    same = validation_split(md, n_val_concepts=2, seed=5)
    np.testing.assert_array_equal(val, same.val_conditions)
