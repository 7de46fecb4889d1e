"""The generalisation benchmark (issue #15, benchmarks/sim_generalization.py): the paired bootstrap against a
hand-computed case, per-image ridge ranks against the aggregate, the cell cache (resumes without recomputing; a
changed recipe is recomputed), the summary's held-out handling, and one small end-to-end run of the linear
recipes whose numbers must equal the simulation's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eegvision.evaluation.linear import ranks_from_scores, ridge_retrieval, whitened_ridge_retrieval
from eegvision.evaluation.stats import paired_item_bootstrap
from eegvision.sim.generalization import (
    REFERENCE,
    Recipe,
    get_recipes,
    harness,
    markdown_tables,
    run_benchmark,
    summarize,
)
from eegvision.sim.generalization import cells as cells_mod


# ------------------------------------------------------------------------------------------ paired bootstrap
def test_paired_bootstrap_hand_computed():
    # One seed, 4 images, differences [1, 0, 0, 0]: a resampled mean is Binomial(4, 1/4) / 4, with
    # P(0) = 81/256 = 0.316, P(<= 0.5) = 243/256 = 0.949, P(<= 0.75) = 255/256 = 0.996: the 2.5 % quantile is 0
    # and the 97.5 % quantile 0.75.
    one = paired_item_bootstrap([1, 0, 0, 0], [0, 0, 0, 0], n_boot=20_000, seed=3)
    assert one["mean_diff"] == 0.25
    assert (one["ci_low"], one["ci_high"]) == (0.0, 0.75)
    assert (one["n_strata"], one["n_items"], one["level"]) == (1, 4, 0.95)
    # A second seed whose three images all differ by 1: seeds are averaged with equal weights, so the statistic
    # is (1 + X / 4) / 2: mean 0.625, interval (0.5, 0.875).
    two = paired_item_bootstrap([[1, 1, 1], [1, 0, 0, 0]], [[0, 0, 0], [0, 0, 0, 0]], n_boot=20_000, seed=3)
    assert two["mean_diff"] == 0.625
    assert (two["ci_low"], two["ci_high"]) == (0.5, 0.875)
    assert (two["n_strata"], two["n_items"]) == (2, 7)
    # Pairing: the same correct images in both give a zero-width interval, however many are correct.
    a = [1, 0, 1, 1, 0, 1]
    assert paired_item_bootstrap(a, a, n_boot=500) == {"mean_diff": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                                                       "n_strata": 1, "n_items": 6, "level": 0.95, "n_boot": 500}
    # Seeded: the same seed gives the same interval.
    x, y = np.random.default_rng(0).integers(0, 2, (2, 200))
    assert paired_item_bootstrap(x, y, seed=7) == paired_item_bootstrap(x, y, seed=7)


def test_paired_bootstrap_refuses_bad_input():
    with pytest.raises(ValueError, match="Stratum 0: a has 3 items and b 2"):
        paired_item_bootstrap([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="same number of strata"):
        paired_item_bootstrap([[1, 0], [1, 1]], [[1, 0]])
    with pytest.raises(ValueError, match="level must be in"):
        paired_item_bootstrap([1, 0], [0, 0], level=95)
    with pytest.raises(ValueError, match="n_boot must be a number above 0"):
        paired_item_bootstrap([1, 0], [0, 0], n_boot=0)


# ----------------------------------------------------------------------------------------- per-image ridge
def test_ranks_from_scores_counts_ties_against():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 3.0], [0.5, 0.1, 0.9]])
    assert ranks_from_scores(scores).tolist() == [1, 1, 0]


def test_ridge_per_image_ranks_equal_the_aggregate():
    rng = np.random.default_rng(0)
    n_tr, n_te, dim, c, t = 120, 40, 16, 6, 5
    w = rng.normal(size=(c * t, dim))
    y_tr, y_te = rng.normal(size=(n_tr, dim)), rng.normal(size=(n_te, dim))
    x_tr = y_tr @ w.T + 3 * rng.normal(size=(n_tr, c * t))
    x_te = y_te @ w.T + 3 * rng.normal(size=(n_te, c * t))
    groups = np.repeat(np.arange(30), 4)
    plain = ridge_retrieval(x_tr, y_tr, x_te, y_te, groups, seed=1)
    ranked = ridge_retrieval(x_tr, y_tr, x_te, y_te, groups, seed=1, return_ranks=True)
    ranks = ranked.pop("ranks")
    assert ranked == plain                                   # the existing numbers do not change
    assert ranks.shape == (n_te,) and ranks.dtype == np.int64
    assert 0.1 < plain["top1"] < 1.0                         # informative, so the equality below means something
    assert plain["top1"] == np.mean(ranks < 1) and plain["top5"] == np.mean(ranks < 5)
    cov = np.cov(rng.normal(size=(c, 500))) + np.eye(c)
    white = whitened_ridge_retrieval(x_tr.reshape(n_tr, c, t), y_tr, x_te.reshape(n_te, c, t), y_te, groups, cov,
                                     seed=1, return_ranks=True)
    assert white["top1"] == np.mean(white["ranks"] < 1) and white["top5"] == np.mean(white["ranks"] < 5)


# ------------------------------------------------------------------------------------------------- cache
FAKE_FIT = Recipe("tiny-stconv", "fit", "a FitConfig recipe (never trained here)", {"encoder": "stconv", "epochs": 1})


@pytest.fixture
def fake_cells(monkeypatch):
    """Simulation and cell computation replaced by counters (the harness's caching alone is under test)."""
    calls = {"simulate": 0, "cell": []}

    def prepare(family, size, seed, folder):
        calls["simulate"] += 1
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "simulation.json").write_text("{}")
        return object(), {"simulate_wall_s": 2.0, "simulate_cpu_s": 3.0}

    def compute(recipe, data, run_dir):
        calls["cell"].append(recipe.name)
        ranks = [0, 1, 0, 5] if recipe.name == REFERENCE else [0, 0, 0, 2]
        return {"top1": float(np.mean(np.array(ranks) < 1)), "top5": float(np.mean(np.array(ranks) < 5)),
                "n_test": 4, "ranks": ranks, "top1_correct": "", "train_s": 1.0, "wall_s": 1.5, "cpu_s": 2.5,
                "extra": {}}

    monkeypatch.setattr(harness, "prepare_simulation", prepare)
    monkeypatch.setattr(cells_mod, "compute_cell", compute)
    return calls


def test_cache_resumes_and_a_changed_recipe_is_recomputed(tmp_path, fake_cells):
    recipes = [*get_recipes(["ridge", REFERENCE]), FAKE_FIT]
    kw = dict(workdir=tmp_path / "work", cache=tmp_path / "cache", log=lambda m: None)
    first = run_benchmark(["linear-erp", "meg"], [0, 1], recipes, **kw)
    assert (first.computed, first.simulated, len(fake_cells["cell"]), fake_cells["simulate"]) == (12, 4, 12, 4)
    assert not (tmp_path / "work" / "meg" / "seed1").exists()          # data deleted once its cells are done
    cell = json.loads((tmp_path / "cache" / "meg" / "seed1" / "tiny-stconv.json").read_text())
    assert cell["recipe_config"]["fit"]["epochs"] == 1 and cell["recipe_hash"] == FAKE_FIT.config_hash
    assert cell["ranks"] == [0, 0, 0, 2] and cell["data"]["preset"]["name"] == "default"

    again = run_benchmark(["linear-erp", "meg"], [0, 1], recipes, **kw)
    assert (again.computed, again.simulated, len(fake_cells["cell"]), fake_cells["simulate"]) == (0, 0, 12, 4)
    assert len(again.cells) == 12 and len(again.simulations) == 4

    changed = Recipe("tiny-stconv", "fit", "the same name, two epochs", {"encoder": "stconv", "epochs": 2})
    assert changed.config_hash != FAKE_FIT.config_hash
    third = run_benchmark(["linear-erp", "meg"], [0, 1], [*recipes[:2], changed], keep_data=True, **kw)
    assert third.computed == 4 and fake_cells["cell"][12:] == ["tiny-stconv"] * 4 and fake_cells["simulate"] == 8
    assert (tmp_path / "work" / "meg" / "seed1" / "sim" / "simulation.json").is_file()     # --keep-data

    small = run_benchmark(["meg"], [0], recipes[:1], size="small", **kw)   # other data: another hash
    assert small.computed == 1


def test_a_new_fitconfig_field_at_its_default_keeps_the_cells(tmp_path, fake_cells):
    """A cell computed before FitConfig had a field (here: report_test_curve, at its default False, removed from
    the cached config as if it were new) is still the recipe's; one whose missing field the recipe sets to a
    non-default value (epochs=1) is not."""
    kw = dict(workdir=tmp_path / "work", cache=tmp_path / "cache", log=lambda m: None)
    run_benchmark(["meg"], [0], [FAKE_FIT], **kw)
    path = tmp_path / "cache" / "meg" / "seed0" / "tiny-stconv.json"
    cell = json.loads(path.read_text())
    for field, recomputed in (("report_test_curve", 0), ("epochs", 1)):
        old = json.loads(json.dumps(cell))
        del old["recipe_config"]["fit"][field]
        old["recipe_hash"] = "older-fitconfig"
        path.write_text(json.dumps(old))
        assert harness.same_recipe(FAKE_FIT, old["recipe_config"], old["recipe_hash"]) == (not recomputed)
        assert run_benchmark(["meg"], [0], [FAKE_FIT], **kw).computed == recomputed, field


def test_harness_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="Simulator family 'linear_erp' is not in .* Did you mean linear-erp"):
        run_benchmark(["linear_erp"], [0], get_recipes(["ridge"]), tmp_path, tmp_path)
    with pytest.raises(ValueError, match="Recipe 'ridg' is not in the benchmark's recipes.*Did you mean ridge"):
        get_recipes(["ridg"])
    with pytest.raises(ValueError, match="sets data, seed, which the benchmark sets per cell"):
        Recipe("bad", "fit", "", {"data": "x", "seed": 3})
    with pytest.raises(ValueError, match="FitConfig field 'epoch' is not in FitConfig"):
        Recipe("bad", "fit", "", {"epoch": 3})
    with pytest.raises(ValueError, match="size must be one of"):
        run_benchmark(["meg"], [0], get_recipes(["ridge"]), tmp_path, tmp_path, size="tiny")


# ------------------------------------------------------------------------------------------------ summary
def test_summary_keeps_the_held_out_family_apart():
    def cell(family, seed, recipe, ranks):
        r = np.array(ranks)
        return {"family": family, "seed": seed, "recipe": recipe, "ranks": ranks, "top1": float(np.mean(r < 1)),
                "top5": float(np.mean(r < 5)), "n_test": len(ranks), "train_s": 1.0, "wall_s": 2.0, "cpu_s": 4.0}

    fams = ["linear-erp", "meg", "nonlinear"]
    cells = [cell(f, s, REFERENCE, [0, 9, 9, 9]) for f in fams for s in (0, 1)]
    cells += [cell(f, s, "ridge", [0, 0, 9, 9] if f != "nonlinear" else [0, 0, 0, 0]) for f in fams for s in (0, 1)]
    sims = [{"family": f, "seed": s, "simulate_wall_s": 10.0, "simulate_cpu_s": 20.0} for f in fams for s in (0, 1)]
    out = summarize(cells[:-1], fams, ["ridge", REFERENCE], [0, 1], sims, n_boot=200)
    assert out["linear-erp.ridge.top1_mean"] == 0.5 and out["linear-erp.whitened_ridge.top1_mean"] == 0.25
    assert out["linear-erp.ridge.top1_diff_mean_vs_whitened_ridge"] == 0.25
    assert out["development_families"] == ["linear-erp", "meg"] and out["held_out_families"] == ["nonlinear"]
    assert out["development_families_mean.ridge.top1_mean"] == 0.5      # nonlinear's 1.0 is not averaged in
    assert out["nonlinear.ridge.top1_mean"] == 1.0 and out["nonlinear.ridge.n_seeds"] == 1
    assert out["missing_cells"] == ["nonlinear/seed1/ridge"]
    assert out["linear-erp.ridge.cpu_s_total"] == 8.0 and out["linear-erp.simulate.cpu_s_mean"] == 20.0
    # measured: 11 cells x 4 s + 6 simulations x 20 s; expected adds the missing cell at ridge's mean (4 s)
    assert out["budget.measured_cpu_s_total"] == 164.0 and out["budget.expected_cpu_s_total_full_grid"] == 168.0
    md = markdown_tables(out, fams, ["ridge", REFERENCE], [0, 1])
    assert "| *held out:* `nonlinear` | 1.000 (1.000) (1 seed) | 0.250 (0.250) |" in md
    assert "| **mean of the 2 development families** | 0.500 (0.500) | 0.250 (0.250) |" in md
    assert md.startswith("4-way top-1 (top-5)")


# ------------------------------------------------------------------------------------------ end to end
def test_small_end_to_end_linear_recipes_equal_the_simulation(tmp_path):
    recipes = get_recipes(["known_model", "ridge", REFERENCE])
    run = run_benchmark(["linear-erp"], [0], recipes, tmp_path / "work", tmp_path / "cache", size="small",
                        keep_data=True, log=lambda m: None)
    assert run.computed == 3 and not run.failures
    sim = json.loads((tmp_path / "work" / "linear-erp" / "seed0" / "sim" / "simulation.json").read_text())
    by = {c["recipe"]: c for c in run.cells}
    for name in ("known_model", "ridge", "whitened_ridge"):
        stored = sim["ground_truth"][name]["per_subject"][0]
        assert (by[name]["top1"], by[name]["top5"]) == (stored["top1"], stored["top5"]), name
        assert len(by[name]["ranks"]) == 50 and by[name]["top1"] == np.mean(np.array(by[name]["ranks"]) < 1)
    assert by["known_model"]["top1"] > by["ridge"]["top1"] + 0.2      # the ceiling is far above ridge
    out = summarize(run.cells, ["linear-erp"], [r.name for r in recipes], [0], run.simulations, n_boot=500)
    lo, hi = out["linear-erp.known_model.top1_ci95_low_vs_whitened_ridge"], \
        out["linear-erp.known_model.top1_ci95_high_vs_whitened_ridge"]
    assert 0 < lo < out["linear-erp.known_model.top1_diff_mean_vs_whitened_ridge"] < hi


@pytest.mark.slow
def test_fit_recipe_through_the_harness_on_meg(tmp_path, one_torch_thread):
    """A FitConfig recipe on the 271-sensor family: converted to a store, trained, ranked per image (the top-1
    of the ranks equals the run's own metric, checked inside compute_cell)."""
    tiny = Recipe("tiny-stconv", "fit", "one epoch", {"encoder": "stconv", "epochs": 1, "batch_size": 16,
                                                       "mix_repetitions": True})
    run = run_benchmark(["meg"], [0], [tiny], tmp_path / "work", tmp_path / "cache", size="small",
                        keep_going=False, log=lambda m: None)
    (cell,) = run.cells
    assert cell["n_test"] == 30 and len(cell["ranks"]) == 30 and cell["train_s"] > 0
    assert cell["extra"]["run_top5"] == cell["top5"] and cell["recipe_config"]["fit"]["encoder"] == "stconv"
    assert not (tmp_path / "work").exists()                  # simulation, store and run folder deleted
