"""Exact k-way accuracy against brute-force enumeration of distractor sets, Monte-Carlo, chance, CSLS."""

from itertools import combinations

import numpy as np
import pytest

from eegvision.evaluation.csls import csls_scores
from eegvision.evaluation.kway import (
    cosine_similarity,
    hit_probability_table,
    kway_exact,
    kway_montecarlo,
    rank_counts,
)


def brute_force(scores, targets, k, top, ties):
    """Average hit over every (k-1)-subset of the other candidates, for every query."""
    n, m = scores.shape
    total = 0.0
    for i in range(n):
        y = targets[i]
        others = [j for j in range(m) if j != y]
        hits, count = 0.0, 0
        for subset in combinations(others, k - 1):
            d = scores[i, list(subset)]
            greater = int((d > scores[i, y]).sum())
            equal = int((d == scores[i, y]).sum())
            if ties == "pessimistic":
                hits += (greater + equal) < top
            elif ties == "optimistic":
                hits += greater < top
            else:  # true class at a uniformly random place inside its tie group
                hits += np.mean([greater + r < top for r in range(equal + 1)])
            count += 1
        total += hits / count
    return total / n


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic", "average"])
def test_exact_equals_brute_force_square(ties):
    rng = np.random.default_rng(1)
    n = 8
    # small integer scores so that ties happen often
    scores = rng.integers(0, 4, size=(n, n)).astype(float)
    ks, tops = tuple(range(2, n + 1)), (1, 2, 3, 5)
    acc = kway_exact(scores, ks=ks, tops=tops, ties=ties)
    for a, k in enumerate(ks):
        for b, t in enumerate(tops):
            assert acc.accuracy[a, b] == pytest.approx(brute_force(scores, np.arange(n), k, t, ties), abs=1e-12)


def test_exact_equals_brute_force_rectangular_with_targets():
    rng = np.random.default_rng(2)
    n_q, n_c = 10, 7  # several queries share a class, as in text classification
    scores = rng.normal(size=(n_q, n_c))
    targets = rng.integers(0, n_c, size=n_q)
    ks, tops = (2, 3, 5, 7), (1, 5)
    acc = kway_exact(scores, targets, ks=ks, tops=tops)
    for a, k in enumerate(ks):
        for b, t in enumerate(tops):
            assert acc.get(k, t) == pytest.approx(brute_force(scores, targets, k, t, "pessimistic"), abs=1e-12)


def test_full_k_is_plain_rank_accuracy_and_per_query():
    rng = np.random.default_rng(3)
    s = rng.normal(size=(50, 50))
    acc = kway_exact(s, ks=(50,), tops=(1, 5))
    ranks = (s > np.diag(s)[:, None]).sum(1)
    assert acc.get(50, 1) == pytest.approx(np.mean(ranks < 1))
    assert acc.get(50, 5) == pytest.approx(np.mean(ranks < 5))
    assert acc.per_query.shape == (1, 2, 50)
    assert set(np.unique(acc.per_query)) <= {0.0, 1.0}


def test_exact_chance_when_true_ranks_are_uniform():
    """If the true candidate sits at each rank 0..N-1 exactly once, accuracy is exactly min(t, k) / k."""
    n = 40
    rng = np.random.default_rng(4)
    s = rng.normal(size=(n, n))
    # make query i's true score the i-th largest of its row
    for i in range(n):
        row = np.sort(s[i])[::-1]
        others = np.delete(np.arange(n), i)
        s[i, i] = row[i]
        s[i, others] = np.delete(row, i)
    higher, tied = rank_counts(s)
    assert np.array_equal(np.sort(higher), np.arange(n)) and not tied.any()
    acc = kway_exact(s, ks=(2, 4, 10, 40), tops=(1, 5))
    for k in (2, 4, 10, 40):
        assert acc.get(k, 1) == pytest.approx(1 / k, abs=1e-12)
        assert acc.get(k, 5) == pytest.approx(min(5, k) / k, abs=1e-12)


def test_random_embeddings_near_chance():
    rng = np.random.default_rng(5)
    vals = [kway_exact(cosine_similarity(rng.normal(size=(200, 32)), rng.normal(size=(200, 32)))).accuracy
            for _ in range(5)]
    mean = np.mean(vals, axis=0)
    chance = np.array([[min(t, k) / k for t in (1, 5)] for k in (2, 4, 10, 50, 100, 200)])
    assert np.abs(mean - chance).max() < 0.03


def test_table_matches_closed_form():
    from math import comb

    n = 12
    table = hit_probability_table(n, (3, 6), (1, 2))
    for a, k in enumerate((3, 6)):
        for b, t in enumerate((1, 2)):
            for m in range(n):
                ref = sum(comb(m, j) * comb(n - 1 - m, k - 1 - j) for j in range(t)) / comb(n - 1, k - 1)
                assert table[a, b, m] == pytest.approx(ref, abs=1e-12)


def test_montecarlo_converges_to_exact_and_is_seeded():
    rng = np.random.default_rng(6)
    q = rng.normal(size=(60, 16))
    s = cosine_similarity(q + 0.8 * rng.normal(size=q.shape), q)
    ks = (2, 4, 10, 60)
    exact = kway_exact(s, ks=ks)
    mc = kway_montecarlo(s, ks=ks, n_draws=400, seed=0)
    assert np.abs(mc.accuracy - exact.accuracy).max() < 0.01
    assert mc.draw_std[0, 0] > 0 and mc.draw_std[-1, 0] == 0.0  # k = N is deterministic
    again = kway_montecarlo(s, ks=ks, n_draws=400, seed=0)
    assert np.array_equal(mc.accuracy, again.accuracy)
    other = kway_montecarlo(s, ks=ks, n_draws=400, seed=1)
    assert not np.array_equal(mc.accuracy, other.accuracy)


def test_montecarlo_ties_go_to_distractors():
    s = np.ones((5, 5))  # every candidate ties: the reference's argmax never picks the last (true) one
    mc = kway_montecarlo(s, ks=(2, 5), tops=(1,), n_draws=3)
    assert np.all(mc.accuracy == 0.0)
    assert np.all(kway_exact(s, ks=(2, 5), tops=(1,)).accuracy == 0.0)
    assert np.all(kway_exact(s, ks=(2, 5), tops=(1,), ties="optimistic").accuracy == 1.0)
    assert kway_exact(s, ks=(2, 5), tops=(1,), ties="average").get(2, 1) == pytest.approx(0.5)


def test_torch_input_and_errors():
    torch = pytest.importorskip("torch")
    s = torch.eye(4)
    assert kway_exact(s, ks=(2, 4)).get(4, 1) == 1.0
    with pytest.raises(ValueError, match="between 2 and the number of candidates"):
        kway_exact(np.eye(4), ks=(5,))
    with pytest.raises(ValueError, match="pass targets"):
        kway_exact(np.zeros((3, 4)), ks=(2,))
    with pytest.raises(ValueError, match="ties"):
        kway_exact(np.eye(4), ks=(2,), ties="random")
    with pytest.raises(ValueError, match="NaN"):
        kway_exact(np.full((3, 3), np.nan), ks=(2,))
    with pytest.raises(ValueError, match="embedding sizes differ"):
        cosine_similarity(np.ones((2, 3)), np.ones((2, 4)))


def test_csls_matches_naive_definition_and_demotes_hubs():
    rng = np.random.default_rng(7)
    s = rng.normal(size=(9, 6))
    kk = 3
    ref = np.empty_like(s)
    for i in range(9):
        for j in range(6):
            rq = np.sort(s[i])[::-1][:kk].mean()
            rc = np.sort(s[:, j])[::-1][:kk].mean()
            ref[i, j] = 2 * s[i, j] - rq - rc
    assert np.allclose(csls_scores(s, kk), ref)

    # candidate 0 is a hub: close to every query; the true matches are slightly less close
    n = 20
    base = np.eye(n) * 0.5 + 0.1 * rng.normal(size=(n, n))
    base[:, 0] += 0.6
    plain = kway_exact(base, ks=(n,), tops=(1,)).get(n, 1)
    corrected = kway_exact(csls_scores(base, 5), ks=(n,), tops=(1,)).get(n, 1)
    assert corrected > plain
