"""The benchmark's loop: families × seeds × recipes, each cell cached as a small JSON, simulations made on demand.

Cache layout (``cache``, committed with the results)::

    CACHE/<family>/seed<k>/<recipe>.json      one cell (recipes.py, cells.py): scores, per-image ranks, times,
                                              the recipe's full config and hash, the data's description and hash
    CACHE/<family>/seed<k>/_simulation.json   what simulating that (family, seed) cost, the last time it was needed

A cell is reused when its recipe hash and data hash (family, size preset, the family's parameters, seed) match
(or the recipe differs only by FitConfig fields added since, at their defaults: :func:`same_recipe`); otherwise
(absent, changed recipe, recalibrated family) it is recomputed. Simulations live in ``workdir``
(``<family>/seed<k>/sim``; fit recipes' run folders beside it) and are deleted once every recipe of that
(family, seed) is done, unless ``keep_data``; a simulation found complete in ``workdir`` is reused. Stopping and
running again therefore continues where it stopped.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eegvision.checks import check_choice, check_list, check_names
from eegvision.sim.families.registry import get_family, list_families
from eegvision.sim.generalization import cells as _cells
from eegvision.sim.generalization.recipes import Recipe, json_hash
from eegvision.sim.presets import Preset
from eegvision.training.config import FitConfig
from eegvision.utils import write_text_atomic

__all__ = ["SIZES", "BenchmarkRun", "CellCache", "data_description", "family_preset", "run_benchmark",
           "same_recipe"]

#: ``default``: each family's default size (docs/families.md); ``small``: its reduced size (smoke runs, tests).
SIZES = ("default", "small")


def family_preset(family: str, size: str = "default") -> Preset:
    """The size preset of ``family`` for ``size`` (``eegvision``'s reduced size is ``bench`` with 40 × 2 × 2
    training and 50 test concepts, as in the tests)."""
    check_choice("size", size, SIZES)
    fam = get_family(family)
    if size == "default":
        return fam.preset(None)
    if fam.name == "eegvision":
        return replace(fam.preset("bench"), name="bench-small", n_train_concepts=40, n_train_images=2,
                       train_reps=2, n_test_concepts=50)
    return fam.preset("small")


def data_description(family: str, size: str, seed: int) -> dict[str, Any]:
    """What a cell's data is: family, its parameters, size preset, seed (world and trials), subject."""
    fam = get_family(family)
    return json.loads(json.dumps({
        "family": fam.name, "held_out": fam.held_out, "params": fam.describe()["params"],
        "preset": family_preset(family, size).to_dict(), "seed": int(seed), "trial_seed": int(seed),
        "subject": _cells.SUBJECT}))


class CellCache:
    """The cached cells under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, family: str, seed: int) -> Path:
        return self.root / family / f"seed{seed}"

    def path(self, family: str, seed: int, recipe: str) -> Path:
        return self.folder(family, seed) / f"{recipe}.json"

    def load(self, family: str, seed: int, recipe: Recipe, data_hash: str) -> dict | None:
        """The cell, or None when absent, unreadable or made with another recipe config or data."""
        path = self.path(family, seed, recipe.name)
        try:
            cell = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        ok = cell.get("data_hash") == data_hash and same_recipe(recipe, cell.get("recipe_config"),
                                                                 cell.get("recipe_hash"))
        return cell if ok else None

    def save(self, cell: dict) -> Path:
        path = self.path(cell["family"], cell["seed"], cell["recipe"])
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(cell, indent=1)
        one_line = lambda m: json.dumps(json.loads(m.group(0)), separators=(",", ":"))  # noqa: E731
        text = re.sub(r"\[\s*-?\d+(?:,\s*-?\d+)*\s*\]", one_line, text)   # integer lists (the ranks) on one line
        write_text_atomic(path, text + "\n")
        return path

    def save_simulation(self, record: dict) -> None:
        path = self.folder(record["family"], record["seed"]) / "_simulation.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(record, indent=1) + "\n")

    def simulation(self, family: str, seed: int, data_hash: str) -> dict | None:
        try:
            rec = json.loads((self.folder(family, seed) / "_simulation.json").read_text())
        except (OSError, ValueError):
            return None
        return rec if rec.get("data_hash") == data_hash else None


def same_recipe(recipe: Recipe, config: dict | None, config_hash: str | None) -> bool:
    """Whether a cell computed with ``config`` (hash ``config_hash``) is ``recipe``'s: equal hashes, or for a fit
    recipe a config that differs only by :class:`FitConfig` fields added since, at their defaults (a new field's
    default keeps the old behaviour, so adding one does not invalidate every cached training)."""
    if config_hash == recipe.config_hash:
        return True
    new = json.loads(json.dumps(recipe.config()))
    if not config or config.get("kind") != "fit" or new["kind"] != "fit":
        return False
    defaults = json.loads(json.dumps(FitConfig().to_dict()))
    added = set(new["fit"]) - set(config["fit"])
    if any(k not in defaults or new["fit"][k] != defaults[k] for k in added):
        return False
    return {**new, "fit": {k: v for k, v in new["fit"].items() if k not in added}} == config


@dataclass
class BenchmarkRun:
    """What :func:`run_benchmark` did: every requested cell available (cached or computed), failures,
    simulation records, and how many cells and simulations this call computed."""

    cells: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    simulations: list[dict] = field(default_factory=list)
    computed: int = 0
    simulated: int = 0


def _stderr(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def prepare_simulation(family: str, size: str, seed: int, folder: Path) -> tuple[Any, dict | None]:
    """The simulation of (family, size, seed) in ``folder``: reused when complete and matching, else made.
    Returns the loaded data and, when simulated now, its cost record."""
    from eegvision.sim.pipeline import simulate

    want = data_description(family, size, seed)
    if (folder / "simulation.json").is_file():
        try:
            data = _cells.load_simulation(folder)
            if data.preset.to_dict() == want["preset"] and data.seed == seed and data.family.name == family:
                return data, None
        except (ValueError, KeyError, OSError):
            pass
    if folder.exists():
        shutil.rmtree(folder)
    wall0, cpu0 = time.perf_counter(), _cells.cpu_seconds()
    # with images: a THINGS-EEG2 folder's concept table comes from its image folders (without them it is read
    # with THINGS-EEG2's 10 images per concept, and the concept-held-out splits of fit recipes would be wrong)
    simulate(folder, family=family, preset=family_preset(family, size), seed=seed, images=True)
    cost = {"simulate_wall_s": round(time.perf_counter() - wall0, 3),
            "simulate_cpu_s": round(_cells.cpu_seconds() - cpu0, 3)}
    return _cells.load_simulation(folder), cost


def run_benchmark(
    families: Sequence[str], seeds: Sequence[int], recipes: Sequence[Recipe], workdir: str | Path,
    cache: str | Path, size: str = "default", keep_data: bool = False, keep_going: bool = True,
    context: dict | None = None, log: Callable[[str], None] = _stderr,
) -> BenchmarkRun:
    """Compute (or reuse) every cell of ``families`` × ``seeds`` × ``recipes`` (see the module docstring).

    Parameters
    ----------
    families, seeds, recipes
        Family names (:func:`~eegvision.sim.families.list_families`), world seeds, and recipes
        (:func:`~eegvision.sim.generalization.recipes.get_recipes`).
    workdir
        Where simulations and run folders are made (outside the repository: gigabytes per family).
    cache
        The cells' folder.
    size
        ``"default"`` or ``"small"`` (:func:`family_preset`).
    keep_data
        Keep each simulation after its cells are done.
    keep_going
        Record a failing cell (or simulation) and go on; otherwise raise.
    context
        Stored in every computed cell (e.g. machine and git commit).
    log
        Progress messages (default: stderr with the time).
    """
    families = check_names("Simulator family", check_list("families", families, "['linear-erp', 'meg']"),
                           [f.name for f in list_families()], "the simulator families (docs/families.md)")
    seeds = [int(s) for s in check_list("seeds", seeds, "[0, 1, 2]")]
    check_choice("size", size, SIZES)
    store, work, out = CellCache(cache), Path(workdir), BenchmarkRun()
    for family in families:
        for seed in seeds:
            desc = data_description(family, size, seed)
            dhash = json_hash(desc)
            todo = []
            for r in recipes:
                cell = store.load(family, seed, r, dhash)
                if cell is not None:
                    out.cells.append(cell)
                else:
                    todo.append(r)
            sim_rec = store.simulation(family, seed, dhash)
            if not todo:
                log(f"{family} seed {seed}: all {len(recipes)} recipes cached")
                if sim_rec:
                    out.simulations.append(sim_rec)
                continue
            folder = work / family / f"seed{seed}"
            log(f"{family} seed {seed}: simulating ({desc['preset']['name']}) for {', '.join(r.name for r in todo)}")
            try:
                data, cost = prepare_simulation(family, size, seed, folder / "sim")
            except Exception as exc:  # noqa: BLE001 - recorded, the other cells go on
                if not keep_going:
                    raise
                log(f"{family} seed {seed}: simulation failed: {exc}")
                out.failures += [{"family": family, "seed": seed, "recipe": r.name, "error": f"simulation: {exc}"}
                                 for r in todo]
                continue
            if cost is not None:
                out.simulated += 1
                sim_rec = {"family": family, "seed": seed, "data_hash": dhash, "data": desc, **cost,
                           "computed_at": _now(), **({"machine": context["machine"]} if context and
                                                     "machine" in context else {})}
                store.save_simulation(sim_rec)
                log(f"{family} seed {seed}: simulated in {cost['simulate_wall_s']:.0f} s")
            if sim_rec:
                out.simulations.append(sim_rec)
            for r in todo:
                log(f"{family} seed {seed}: {r.name} ...")
                try:
                    result = _cells.compute_cell(r, data, folder / "runs" / r.name)
                except Exception as exc:  # noqa: BLE001
                    if not keep_going:
                        raise
                    log(f"{family} seed {seed}: {r.name} failed: {type(exc).__name__}: {exc}")
                    out.failures.append({"family": family, "seed": seed, "recipe": r.name,
                                         "error": f"{type(exc).__name__}: {exc}"})
                    continue
                cell = {"family": family, "seed": seed, "subject": _cells.SUBJECT, "recipe": r.name,
                        "recipe_hash": r.config_hash, "data_hash": dhash, **result, "recipe_config": r.config(),
                        "data": desc, "computed_at": _now(), **(context or {})}
                store.save(cell)
                out.cells.append(cell)
                out.computed += 1
                log(f"{family} seed {seed}: {r.name} top-1 {result['top1']:.3f} top-5 {result['top5']:.3f} "
                    f"({result['wall_s']:.0f} s wall, {result['cpu_s']:.0f} s CPU)")
            if not keep_data:
                shutil.rmtree(folder, ignore_errors=True)
                for empty in (folder.parent, work):
                    if empty.is_dir() and not any(empty.iterdir()):
                        empty.rmdir()
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
