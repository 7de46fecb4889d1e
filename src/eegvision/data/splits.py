"""Subject folds and a held-out-concept validation split.

THINGS-EEG2 test concepts never occur in training, so a validation split that mimics the test
must hold out whole *training concepts* (all their images), never single images of concepts
the model still trains on. :func:`validation_split` does that, seeded. Model selection on it
replaces the reference code's max-over-epochs-on-test (anchors.md §0).

Subject protocols (atm.md §1.7):

* :func:`within_subject` -- train and test on one subject;
* :func:`loso_folds` -- leave one subject out: train on the others, test on the held-out one;
* :func:`joint` -- train on all listed subjects *including* the test subject (ATM's "joint").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from eegvision.checks import check_list, check_name


class Fold(NamedTuple):
    """Which subjects to train on and which one to test."""

    train_subjects: tuple[str, ...]
    test_subject: str


class ValidationSplit(NamedTuple):
    """Condition indices (sorted) of the training and held-out validation parts."""

    train_conditions: np.ndarray
    val_conditions: np.ndarray


def _condition_table(source: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Unique ``(condition, concept_index)`` pairs from a store or a metadata table."""
    if hasattr(source, "metadata") and hasattr(source, "subjects") and callable(source.metadata):
        subjects = [s for s in source.subjects if split in source.splits(s)]
        if not subjects:
            raise ValueError(f"No subject of the store has a {split!r} split.")
        table = source.metadata(subjects[0], split)
    else:
        table = source
        if "split" in getattr(table, "columns", ()):
            table = table[table["split"] == split]
    try:
        cond = np.asarray(table["condition"], dtype=np.int64)
        concept = np.asarray(table["concept_index"], dtype=np.int64)
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError(
            "validation_split needs a store or a metadata table with columns 'condition' and "
            f"'concept_index'; got {type(source).__name__} ({err})."
        ) from None
    if len(cond) == 0:
        raise ValueError(f"The metadata has no row for split {split!r}.")
    pairs = np.unique(np.stack([cond, concept], axis=1), axis=0)
    if len(np.unique(pairs[:, 0])) != len(pairs):
        raise ValueError("The metadata maps one condition to more than one concept; it is corrupt.")
    return pairs[:, 0], pairs[:, 1]


def validation_split(
    store_or_metadata: Any,
    split: str = "training",
    n_val_concepts: int | None = None,
    fraction: float = 0.05,
    seed: int = 0,
) -> ValidationSplit:
    """Hold out whole training concepts (all their images) for validation.

    Parameters
    ----------
    store_or_metadata : Store or pandas.DataFrame
        A store (the first subject with ``split`` provides the condition -> concept map, which
        is the same for every THINGS subject) or a metadata table with columns ``condition``
        and ``concept_index`` (and optionally ``split``).
    split : str
        The split to divide, normally ``"training"``.
    n_val_concepts : int, optional
        Number of concepts to hold out. Overrides ``fraction``.
    fraction : float
        Fraction of the concepts to hold out when ``n_val_concepts`` is not given, rounded to
        the nearest integer and at least 1 (THINGS-EEG2: 5 % of 1654 = 83 concepts, 830
        images).
    seed : int
        The concepts are drawn without replacement by ``numpy.random.default_rng(seed)`` from
        the sorted list of concept indices, so the same seed and data give the same split on
        every machine.

    Returns
    -------
    ValidationSplit
        ``(train_conditions, val_conditions)``: sorted condition indices; their concepts are
        disjoint and together they cover every condition. Pass them as ``conditions=`` to
        :class:`eegvision.data.dataset.EEGDataset`.
    """
    cond, concept = _condition_table(store_or_metadata, split)
    concepts = np.unique(concept)
    n = len(concepts)
    if n_val_concepts is None:
        if not 0.0 < float(fraction) < 1.0:
            raise ValueError(f"fraction must be strictly between 0 and 1; got {fraction!r}.")
        n_val = max(1, int(round(float(fraction) * n)))
    else:
        n_val = int(n_val_concepts)
    if not 1 <= n_val < n:
        raise ValueError(
            f"Cannot hold out {n_val} of {n} concepts; choose between 1 and {n - 1} "
            "(n_val_concepts or fraction)."
        )
    rng = np.random.default_rng(int(seed))
    val_concepts = np.sort(rng.choice(concepts, size=n_val, replace=False))
    is_val = np.isin(concept, val_concepts)
    return ValidationSplit(np.sort(cond[~is_val]), np.sort(cond[is_val]))


def _subject_list(subjects: Sequence[str]) -> list[str]:
    subjects = [str(s) for s in check_list("subjects", subjects, "['sub-01', 'sub-02']")]
    if len(set(subjects)) != len(subjects):
        raise ValueError(f"Subjects are listed more than once: {', '.join(subjects)}; give each subject once.")
    return subjects


def loso_folds(subjects: Sequence[str]) -> list[Fold]:
    """Leave-one-subject-out folds: for each subject, train on all the others.

    Each fold trains a *fresh* model (the reference code once did not; anchors.md §0.7).
    """
    subjects = _subject_list(subjects)
    if len(subjects) < 2:
        raise ValueError(f"Leave-one-subject-out needs at least 2 subjects; got {subjects}.")
    return [Fold(tuple(s for s in subjects if s != test), test) for test in subjects]


def within_subject(subject: str) -> Fold:
    """Train and test on the same subject (the "intra-subject" protocol)."""
    return Fold((str(subject),), str(subject))


def joint(subjects: Sequence[str], test_subject: str) -> Fold:
    """Train on all ``subjects`` (which include ``test_subject``) and test on ``test_subject``.

    This is ATM's joint multi-subject training; for a subject unseen in training use
    :func:`loso_folds`.
    """
    subjects = _subject_list(subjects)
    check_name("Test subject", test_subject, subjects, "the training subjects",
               hint="Joint training includes the test subject: add it, or use loso_folds() to test on an unseen "
                    "subject.")
    return Fold(tuple(subjects), str(test_subject))
