"""THINGS high-level categories (27) of concepts, from the bundled THINGS tables.

``Categories_final_20200131.tsv`` lists the 1854 THINGS concepts in THINGS order (row i = THINGS
index i + 1) with one 0/1 column per category; the first 27 category columns are the 27
high-level categories and the file ends with a summary row (column totals), which is dropped.
``test_images.tsv`` maps the 200 THINGS-EEG2 test concepts to their ``things_index``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

__all__ = ["N_CATEGORIES", "primary_category", "test_categories", "things_categories"]

N_CATEGORIES = 27


def _resource(name: str):
    return resources.files("eegvision").joinpath("resources", "things", name)


@lru_cache(maxsize=1)
def things_categories() -> Any:
    """DataFrame indexed by THINGS index (1..1854): ``word`` and 27 boolean category columns."""
    import pandas as pd

    with _resource("Categories_final_20200131.tsv").open("r", encoding="utf-8") as f:
        raw = pd.read_csv(f, sep="\t", dtype=str, keep_default_na=False)
    raw = raw[raw.iloc[:, 0].str.strip() != ""]  # the trailing summary row has no word
    cats = list(raw.columns[2:2 + N_CATEGORIES])
    table = pd.DataFrame({"word": raw.iloc[:, 0].to_numpy()})
    for c in cats:
        table[c] = raw[c].str.strip().isin(["1", "1.0"]).to_numpy()
    table.index = np.arange(1, len(table) + 1)
    table.index.name = "things_index"
    return table


def primary_category(things_index: Any, level: str = "general") -> list[str]:
    """One category per concept: the most general (largest) or most specific (smallest) it belongs to.

    Concepts in none of the 27 categories get ``"uncategorized"``.
    """
    if level not in ("general", "specific"):
        raise ValueError(f"level must be 'general' or 'specific'; got {level!r}.")
    table = things_categories()
    cats = [c for c in table.columns if c != "word"]
    member = table.loc[np.asarray(things_index, dtype=np.int64), cats].to_numpy()
    sizes = table[cats].to_numpy().sum(0)
    order = np.argsort(-sizes if level == "general" else sizes, kind="stable")
    out = []
    for row in member:
        hit = [cats[j] for j in order if row[j]]
        out.append(hit[0] if hit else "uncategorized")
    return out


def test_categories(level: str = "general") -> Any:
    """The 200 THINGS-EEG2 test concepts (test order) with ``things_index``, ``word``, ``category``."""
    import pandas as pd

    with _resource("test_images.tsv").open("r", encoding="utf-8") as f:
        test = pd.read_csv(f, sep="\t", keep_default_na=False)
    out = test[["eeg2_test_index", "things_uniqueID", "things_index", "word", "categories27"]].copy()
    out["category"] = primary_category(out["things_index"], level=level)
    return out
