"""Category labels of a simulated dataset's test concepts (for maps and tables coloured by category)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eegvision.sim.scene import make_world

__all__ = ["test_concept_shapes"]


def test_concept_shapes(data: str | os.PathLike) -> list[str] | None:
    """The shape of each test concept of a folder written by ``eegvision simulate`` (None for other data).

    The world is re-drawn from the preset and seed recorded in ``simulation.json``; shapes are the
    simulated counterpart of THINGS' high-level categories.
    """
    meta_path = Path(data) / "simulation.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    pr = meta["preset"]
    world = make_world(pr["n_train_concepts"], pr["n_test_concepts"], pr["n_train_images"], 1, seed=meta["seed"])
    return [c.shape for c in world.concepts("test")]
