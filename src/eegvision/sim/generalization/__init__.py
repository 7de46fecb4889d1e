"""The generalisation benchmark across simulator families (issue #15; ``benchmarks/sim_generalization.py``).

* :mod:`.recipes` — the registry of named recipes (known-model decoder, ridge, whitened ridge, FitConfig recipes).
* :mod:`.cells` — one recipe on one family's simulation: sub-01's 200-way top-1/top-5, per-image ranks, times.
* :mod:`.harness` — families × seeds × recipes, each cell cached as JSON (resumable), simulations on demand.
* :mod:`.summary` — means over seeds, paired bootstrap against whitened ridge, CPU budget, markdown tables.

Nothing here chooses anything: the held-out family is scored and reported separately, never averaged in.
"""

from eegvision.sim.generalization.harness import (
           BenchmarkRun,
           CellCache,
           family_preset,
           run_benchmark,
)
from eegvision.sim.generalization.recipes import (
           RECIPES,
           REFERENCE,
           Recipe,
           get_recipes,
           list_recipes,
)
from eegvision.sim.generalization.summary import markdown_tables, summarize

__all__ = ["RECIPES", "REFERENCE", "BenchmarkRun", "CellCache", "Recipe", "family_preset", "get_recipes",
           "list_recipes", "markdown_tables", "run_benchmark", "summarize"]
