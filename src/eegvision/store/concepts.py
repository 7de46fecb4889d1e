"""The concept table: which concept each row of a split is, in the one numbering used everywhere.

A :class:`ConceptTable` lists concepts of one split: per row a **0-based** ``index`` (the store's
``concept_index``: position of the concept in the split's sorted concept folders), a ``name`` and,
where the split shows one image per concept, that ``image``. It is read from a store
(:meth:`eegvision.store.base.Store.concept_table`) or an image folder, and travels unchanged into
feature files (safetensors metadata), runs (``config.json``) and reconstruction manifests, so that
scoring pairs by it instead of rebuilding the numbering (THINGS' ``NNNNN_`` folder numbers count
from 1; they are names, not indices).

Row order: the split's condition order when every condition is its own concept (the test sets),
else concept order. Indices are unique; a table may hold a subset of a split's concepts.

Files: ``.json`` (``{"split", "concept_index": [...], "concept": [...], "image": [...] or null}``,
also the form stored in metadata) or ``.tsv``/``.csv`` (columns ``concept_index``, ``concept``,
optional ``image``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ConceptTable", "normalize_concept"]

_SHOWN = 5


def normalize_concept(name: str) -> str:
    """Lower case, spaces and hyphens as underscores (``"aircraft carrier" == "aircraft_carrier"``)."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _listed(items: Sequence[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return "; ".join(items[:_SHOWN]) + more


@dataclass(frozen=True)
class ConceptTable:
    """Concepts of one split: 0-based ``index``, ``name`` and optional ``image`` per row.

    Attributes
    ----------
    index : tuple of int
        0-based concept index of each row (unique, ≥ 0).
    name : tuple of str
        Concept name of each row.
    image : tuple of (str or None)
        The concept's image where the split shows one image per concept, else None.
    split : str
        The split the table describes (``"test"``, ``"training"``; ``""`` when not known).
    """

    index: tuple[int, ...]
    name: tuple[str, ...]
    image: tuple[str | None, ...] = ()
    split: str = ""

    def __post_init__(self) -> None:
        index = tuple(int(i) for i in self.index)
        name = tuple(str(n) for n in self.name)
        image = tuple(None if p is None or str(p) in ("", "nan") else str(p) for p in self.image) \
            if len(self.image) else (None,) * len(index)
        if len(name) != len(index) or len(image) != len(index):
            raise ValueError(f"A concept table needs one name and one image (or none) per index; got {len(index)} "
                             f"indices, {len(name)} names and {len(image)} images.")
        if any(i < 0 for i in index):
            raise ValueError(f"Concept indices count from 0; got negative indices "
                             f"{sorted({i for i in index if i < 0})[:_SHOWN]}.")
        seen: dict[int, str] = {}
        repeated = []
        for i, n in zip(index, name):
            if i in seen:
                repeated.append(f"{i} ({seen[i]!r} and {n!r})")
            seen[i] = n
        if repeated:
            raise ValueError(f"A concept table lists each concept once; repeated concept_index: {_listed(repeated)}. "
                             "Give one row per concept.")
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "split", str(self.split or ""))

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_names(cls, names: Iterable[str], images: Iterable[str | None] | None = None,
                   split: str = "") -> ConceptTable:
        """Concepts ``0..n-1`` in the order of ``names``."""
        names = [str(n) for n in names]
        return cls(tuple(range(len(names))), tuple(names), tuple(images) if images is not None else (), split)

    @classmethod
    def from_conditions(cls, condition_concepts: Sequence[int], names: Sequence[str],
                        condition_images: Sequence[str | None] | None = None, split: str = "") -> ConceptTable:
        """The table of a split from the concept index of each condition (in condition order).

        When every condition is its own concept, rows follow the conditions and carry their images;
        otherwise rows are the concepts ``0..len(names)-1`` without images.
        """
        cond = np.asarray(condition_concepts, dtype=np.int64)
        if len(cond) == len(names) and np.array_equal(np.sort(cond), np.arange(len(names))):
            images = list(condition_images) if condition_images is not None else None
            return cls(tuple(cond.tolist()), tuple(str(names[i]) for i in cond), tuple(images or ()), split)
        if len(cond) and (cond.min() < 0 or cond.max() >= len(names)):
            raise ValueError(f"Conditions refer to concepts {int(cond.min())}..{int(cond.max())} but the {split or ''} "
                             f"split names {len(names)} concepts; the store's metadata is damaged.")
        return cls.from_names(names, split=split)

    @classmethod
    def from_image_set(cls, images: Any, split: str = "") -> ConceptTable:
        """The table of a THINGS-style image folder (:class:`eegvision.readers.images.ImageSet`)."""
        return cls.from_conditions(np.asarray(images.concept_index), list(images.concepts),
                                   [str(p) for p in images.paths], split)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, split: str = "", where: str = "the table") -> ConceptTable:
        """Rows of a DataFrame with ``concept_index`` (0-based), ``concept`` and optional ``image``."""
        missing = [c for c in ("concept_index", "concept") if c not in frame.columns]
        if missing:
            raise ValueError(f"{where} lacks column(s) {', '.join(missing)}; got columns {list(frame.columns)}. A "
                             "concept table has columns concept_index (0-based), concept and optionally image.")
        try:
            index = [int(i) for i in frame["concept_index"]]
        except (TypeError, ValueError):
            raise ValueError(f"{where}: concept_index must hold whole numbers; got "
                             f"{frame['concept_index'].head(3).tolist()}.") from None
        images = [None if pd.isna(p) else p for p in frame["image"]] if "image" in frame.columns else ()
        return cls(tuple(index), tuple(frame["concept"].astype(str)), tuple(images), split)

    @classmethod
    def from_json(cls, obj: Any, where: str = "the concept table") -> ConceptTable:
        """The table from its JSON form (see :meth:`to_json`)."""
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} is not valid JSON ({exc}).") from None
        if not isinstance(obj, dict) or not {"concept_index", "concept"} <= set(obj):
            got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"{where} must be an object with lists concept_index and concept; got {got}.")
        return cls(tuple(obj["concept_index"]), tuple(obj["concept"]), tuple(obj.get("image") or ()),
                   obj.get("split") or "")

    @classmethod
    def read(cls, path: str | os.PathLike, split: str = "") -> ConceptTable:
        """Read a ``.json``, ``.tsv`` or ``.csv`` concept table."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Concept table {path} not found.")
        suffix = path.suffix.lower()
        if suffix == ".json":
            table = cls.from_json(path.read_text(encoding="utf-8"), where=str(path))
            return table if table.split or not split else table.with_split(split)
        if suffix in (".tsv", ".csv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False, dtype=str)
            frame = frame.replace({"image": {"": None}}) if "image" in frame.columns else frame
            return cls.from_frame(frame, split, where=str(path))
        raise ValueError(f"Concept table {path.name}: use .json, .tsv or .csv.")

    # -- output ---------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """``{"split", "concept_index", "concept", "image"}`` (``image`` null when no row has one)."""
        return {"split": self.split, "concept_index": list(self.index), "concept": list(self.name),
                "image": list(self.image) if any(p is not None for p in self.image) else None}

    def to_frame(self) -> pd.DataFrame:
        """Columns ``concept_index``, ``concept``, ``image``; one row per table row."""
        return pd.DataFrame({"concept_index": np.asarray(self.index, dtype=np.int64), "concept": list(self.name),
                             "image": list(self.image)})

    def write(self, path: str | os.PathLike) -> Path:
        """Write as ``.json``, ``.tsv`` or ``.csv`` (atomically)."""
        from eegvision.utils import write_text_atomic

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = json.dumps(self.to_json(), indent=1) + "\n"
        elif suffix in (".tsv", ".csv"):
            text = self.to_frame().to_csv(index=False, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise ValueError(f"Concept table {path.name}: use .json, .tsv or .csv.")
        write_text_atomic(path, text)
        return path

    # -- use ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        shown = ", ".join(f"{i} {n!r}" for i, n in list(zip(self.index, self.name))[:3])
        more = ", ..." if len(self) > 3 else ""
        return f"ConceptTable(split={self.split!r}, {len(self)} concepts: {shown}{more})"

    def with_split(self, split: str) -> ConceptTable:
        return ConceptTable(self.index, self.name, self.image, split)

    def select(self, rows: Iterable[int]) -> ConceptTable:
        """The table of the given row positions, in that order."""
        rows = [int(r) for r in rows]
        return ConceptTable(tuple(self.index[r] for r in rows), tuple(self.name[r] for r in rows),
                            tuple(self.image[r] for r in rows), self.split)

    def differences(self, other: ConceptTable, here: str = "here", there: str = "there") -> list[str]:
        """What differs between the concepts (index → name) of two tables; images and row order are ignored."""
        mine = dict(zip(self.index, self.name))
        theirs = dict(zip(other.index, other.name))
        out = [f"concept {i} is {mine[i]!r} in {here} and {theirs[i]!r} in {there}"
               for i in sorted(set(mine) & set(theirs))
               if normalize_concept(mine[i]) != normalize_concept(theirs[i])]
        for table, names, where in ((mine, set(mine) - set(theirs), here), (theirs, set(theirs) - set(mine), there)):
            if names:
                shown = ", ".join(f"{i} {table[i]!r}" for i in sorted(names)[:_SHOWN])
                out.append(f"{len(names)} concept(s) only in {where}: {shown}")
        return out

    def check_matches(self, other: ConceptTable, here: str, there: str, fix: str) -> None:
        """Raise ``ValueError`` naming the concepts that differ between this table (``here``) and ``other``."""
        diffs = self.differences(other, here, there)
        if diffs:
            raise ValueError(f"The concepts of {here} and {there} do not match: {_listed(diffs)}. {fix}")

    def indices_of(self, names: Iterable[str], where: str) -> list[int]:
        """The concept index of each name (compared with :func:`normalize_concept`).

        Raises
        ------
        ValueError
            A name is not in the table, or the table gives one name to several concepts.
        """
        by_name: dict[str, list[int]] = {}
        for i, n in zip(self.index, self.name):
            by_name.setdefault(normalize_concept(n), []).append(i)
        names = [str(n) for n in names]
        unknown = sorted({n for n in names if normalize_concept(n) not in by_name})
        if unknown:
            raise ValueError(f"{where} names {len(unknown)} concept(s) that are not in the {self.split or ''} concept "
                             f"table ({len(self)} concepts): {_listed([repr(n) for n in unknown])}.")
        shared = sorted({n for n in names if len(by_name[normalize_concept(n)]) > 1})
        if shared:
            raise ValueError(f"{where}: the concept table gives the name(s) {_listed([repr(n) for n in shared])} to "
                             "several concepts, so a name does not say which one is meant.")
        return [by_name[normalize_concept(n)][0] for n in names]
