"""Result rows: one row per (run, modality, method, k), written as CSV or JSON and read back.

Accuracies are **fractions in [0, 1]**, never percent. Every row records the protocol knobs that make
published numbers incomparable (``anchors.md`` §0): dataset, subject, encoder, seed, protocol, model-selection
rule, channel count, time window, features (backbone/layer), number of training samples.

**Inductive and transductive numbers are never mixed.** A row is transductive (``transductive=True``) when its
scores used the test set as a whole: CSLS (``method="csls"``) or a calibration of the test embeddings
(``calibration`` = ``centre``/``whiten``/``procrustes``/``score``, :mod:`eegvision.evaluation.calibration`).
:func:`split_rows` separates the two kinds, :func:`headline` quotes one kind only (inductive by default), and
:func:`markdown_table` refuses rows of both kinds in one table.

``best_epoch_on_test_top1`` is an optional, clearly named extra column for comparison with papers that select
the epoch with the best *test* accuracy (ATM does; ``atm.md`` §6.1). It is never used as the main number.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eegvision.checks import check_choice, check_file, check_names
from eegvision.utils import atomic_path

#: Identification columns, filled from the ``info`` mapping of :func:`make_rows`.
INFO_COLUMNS: tuple[str, ...] = (
    "dataset", "subject", "encoder", "seed", "protocol", "selection", "n_train", "n_chans", "window", "features",
)
#: Columns of every result row, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "dataset", "subject", "encoder", "seed", "protocol", "selection",
    "modality", "method", "transductive", "k", "top1", "top5",
    "n_queries", "n_candidates", "n_train", "n_chans", "window", "features",
)
#: Optional columns, written only when some row has them.
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "top1_draw_std", "top5_draw_std", "n_draws", "ties", "calibration", "best_epoch_on_test_top1",
)
MODALITIES = ("image", "text")
METHODS = ("exact", "montecarlo", "csls")
#: The result tables of a folder of results (a run, one of its units, ``evaluate --eeg-embeds --out DIR``).
RESULT_FILES: tuple[str, str] = ("metrics.json", "metrics.csv")

__all__ = [
    "Evaluation", "INFO_COLUMNS", "METHODS", "MODALITIES", "OPTIONAL_COLUMNS", "RESULT_COLUMNS", "RESULT_FILES",
    "ResultTables", "headline", "is_transductive", "make_rows", "markdown_table", "read_results", "results_frame",
    "split_rows", "write_result_files", "write_results",
]


def _clean(value):
    """JSON/CSV-friendly scalar: numpy types to Python, NaN to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return json.dumps([_clean(v) for v in value]) if value else None
    return value


def make_rows(acc, *, modality: str, method: str | None = None, info: Mapping | None = None,
              n_candidates: int | None = None, calibration: str | None = None) -> list[dict]:
    """Turn a :class:`~eegvision.evaluation.kway.KWayAccuracy` into result rows (one per k).

    Parameters
    ----------
    acc : KWayAccuracy
        Must contain top-1 and top-5 (other top-t values become ``top{t}`` columns).
    modality : {"image", "text"}
        What the candidates are: image features (retrieval) or concept text features (classification).
    method : {"exact", "montecarlo", "csls"}, optional
        Defaults to ``acc.method``. ``"csls"`` rows are marked ``transductive=True``.
    info : mapping, optional
        Values for :data:`INFO_COLUMNS` (missing ones are left empty) plus optional extras such as
        ``best_epoch_on_test_top1``. Unknown keys raise, so a typo never silently drops a field.
    n_candidates : int, optional
        Number of candidates in the pool (``N``); recorded for the chance level.
    calibration : str, optional
        The transductive calibration the scores were computed after (:data:`~eegvision.evaluation.calibration.
        CALIBRATIONS`); such rows carry ``calibration`` and ``transductive=True``.
    """
    check_choice("modality", modality, MODALITIES)
    method = check_choice("method", method or acc.method, METHODS)
    info = dict(info or {})
    check_names("Result info key", list(info), (*INFO_COLUMNS, "best_epoch_on_test_top1"), "the result columns")
    rows = []
    for a, k in enumerate(acc.ks):
        row = {c: _clean(info.get(c)) for c in INFO_COLUMNS}
        row.update(modality=modality, method=method, transductive=(method == "csls" or calibration is not None),
                   k=int(k))
        if calibration is not None:
            row["calibration"] = calibration
        for b, t in enumerate(acc.tops):
            row[f"top{t}"] = float(acc.accuracy[a, b])
            if acc.draw_std is not None:
                row[f"top{t}_draw_std"] = float(acc.draw_std[a, b])
        row["n_queries"] = acc.n_queries
        row["n_candidates"] = n_candidates
        if acc.n_draws is not None:
            row["n_draws"] = acc.n_draws
        if "ties" in acc.extra:
            row["ties"] = acc.extra["ties"]
        if "best_epoch_on_test_top1" in info:
            row["best_epoch_on_test_top1"] = _clean(info["best_epoch_on_test_top1"])
        rows.append(row)
    return rows


def _columns(rows: Sequence[Mapping]) -> list[str]:
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    cols = [c for c in RESULT_COLUMNS if c in present or c in ("top1", "top5")]
    extra_tops = sorted((c for c in present if c.startswith("top") and c[3:].isdigit() and c not in cols),
                        key=lambda c: int(c[3:]))
    cols += extra_tops
    cols += [c for c in OPTIONAL_COLUMNS if c in present]
    cols += sorted(present - set(cols))
    return cols


def write_results(rows: Iterable[Mapping], path: str | os.PathLike) -> Path:
    """Write result rows atomically to ``.csv`` or ``.json`` (chosen by the suffix).

    JSON holds ``{"columns": [...], "rows": [...]}``; CSV has one header line and empty cells for missing
    values. Accuracies are fractions.
    """
    rows = [{k: _clean(v) for k, v in r.items()} for r in rows]
    path = Path(path)
    cols = _columns(rows)
    suffix = check_choice(f"The suffix of the results file {path.name}", path.suffix.lower(), (".csv", ".json"))
    with atomic_path(path) as tmp:
        if suffix == ".json":
            tmp.write_text(json.dumps({"columns": cols, "rows": rows}, indent=1) + "\n")
        else:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
                w.writeheader()
                for r in rows:
                    w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
    return path


def write_result_files(rows: Sequence[Mapping], directory: str | os.PathLike) -> list[Path]:
    """Write ``rows`` to the :data:`RESULT_FILES` of ``directory`` (JSON and CSV); return their paths."""
    directory = Path(directory)
    return [write_results(rows, directory / name) for name in RESULT_FILES]


_INT_COLS = {"k", "seed", "n_queries", "n_candidates", "n_train", "n_chans", "n_draws"}
_FLOAT_PREFIX = ("top", "best_epoch")


def _parse_cell(col: str, value: str):
    if value == "":
        return None
    if col == "transductive":
        return value.lower() == "true"
    if col in _INT_COLS:
        try:
            return int(value)
        except ValueError:
            return value
    if col.startswith(_FLOAT_PREFIX):
        return float(value)
    return value


def read_results(path: str | os.PathLike) -> list[dict]:
    """Read rows written by :func:`write_results` (CSV or JSON) back as a list of dicts.

    The JSON form may also be a plain list of rows (as in ``RUN/metrics.json`` written by other tools).
    """
    path = check_file(path, "Results file", "Give a results.csv or metrics.json written by eegvision.")
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        rows = data["rows"] if isinstance(data, dict) and "rows" in data else data
        if not isinstance(rows, list):
            raise ValueError(f"{path} does not hold result rows (expected a list or {{'rows': [...]}})")
        return [dict(r) for r in rows]
    with open(path, newline="") as f:
        return [{c: _parse_cell(c, v) for c, v in r.items()} for r in csv.DictReader(f)]


def results_frame(rows_or_path):
    """Result rows (a list, or a CSV/JSON path, or several paths) as a pandas DataFrame."""
    import pandas as pd

    if isinstance(rows_or_path, (str, os.PathLike)):
        rows = read_results(rows_or_path)
    elif isinstance(rows_or_path, (list, tuple)) and rows_or_path and isinstance(rows_or_path[0], (str, os.PathLike)):
        rows = [r for p in rows_or_path for r in read_results(p)]
    else:
        rows = list(rows_or_path)
    return pd.DataFrame(rows, columns=_columns(rows) if rows else list(RESULT_COLUMNS))


def is_transductive(row: Mapping) -> bool:
    """Whether ``row``'s scores used the test set as a whole (CSLS or a calibration; see the module docstring)."""
    return bool(row.get("transductive")) or row.get("method") == "csls" or bool(row.get("calibration"))


@dataclass(frozen=True)
class ResultTables:
    """Result rows split by kind: ``inductive`` (each query scored on its own) and ``transductive``."""

    inductive: list[dict]
    transductive: list[dict]


def split_rows(rows: Iterable[Mapping]) -> ResultTables:
    """Separate inductive from transductive rows (:func:`is_transductive`), keeping their order."""
    rows = [dict(r) for r in rows]
    return ResultTables([r for r in rows if not is_transductive(r)], [r for r in rows if is_transductive(r)])


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str] = ("subject", "modality", "method", "k", "top1",
                                                                       "top5")) -> str:
    """A Markdown table of result rows, all inductive or all transductive (mixed rows raise ``ValueError``:
    split them with :func:`split_rows` and write two tables). Accuracies are printed with 3 decimals."""
    kinds = {is_transductive(r) for r in rows}
    if len(kinds) > 1:
        n = sum(is_transductive(r) for r in rows)
        raise ValueError(f"{n} of the {len(rows)} rows are transductive (CSLS or a calibration) and the rest "
                         "inductive; one table never mixes them. Split them with split_rows(rows) and write an "
                         "inductive and a transductive table.")
    cols = list(columns) + (["calibration"] if any(r.get("calibration") for r in rows) else [])

    def cell(v) -> str:
        return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def headline(rows: Sequence[Mapping], modality: str = "image", *, transductive: bool = False) -> dict:
    """The numbers a result is quoted by: mean top-1/top-5 over subjects at the largest k of ``modality``.

    Only rows of one kind count: inductive ones by default, transductive ones with ``transductive=True`` (never
    both). The method is ``exact`` when the rows have it, else the first of :data:`METHODS` they have; among
    transductive rows of several calibrations, the first calibration (in row order) is quoted and named.

    Returns
    -------
    dict
        ``{"modality", "method", "k", "n_subjects", "top1", "top5"}`` (``top5`` None where not computed), or an
        empty dict when no row has ``modality``.
    """
    rows = [r for r in rows if r.get("modality") == modality and is_transductive(r) == transductive]
    method = next((m for m in METHODS if any(r.get("method") == m for r in rows)), None)
    if method is None:
        return {}
    rows = [r for r in rows if r.get("method") == method]
    calibration = next((r.get("calibration") for r in rows if r.get("calibration")), None)
    rows = [r for r in rows if r.get("calibration") == calibration]
    k = max(int(r["k"]) for r in rows)
    at = [r for r in rows if int(r["k"]) == k]
    top5 = [r["top5"] for r in at if r.get("top5") is not None]
    out = {"modality": modality, "method": method, "k": k, "n_subjects": len({r.get("subject") for r in at}),
           "top1": float(np.mean([r["top1"] for r in at])), "top5": float(np.mean(top5)) if top5 else None}
    if transductive:
        out["calibration"] = calibration
    return out


@dataclass(frozen=True)
class Evaluation:
    """Result rows of one evaluation and the files they were written to.

    Attributes
    ----------
    rows : list of dict
        One row per (subject, modality, method, k); see :data:`RESULT_COLUMNS`.
    files : list of Path
        The result tables written (empty when nothing was written).
    """

    rows: list[dict]
    files: list[Path] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, dict]:
        """``{modality: headline(rows, modality)}`` for the modalities present: inductive rows only (see
        :func:`headline`)."""
        return {m: h for m in MODALITIES if (h := headline(self.rows, m))}

    @property
    def transductive_summary(self) -> dict[str, dict]:
        """The same headline of the transductive rows (CSLS, calibrations); empty when there are none."""
        return {m: h for m in MODALITIES if (h := headline(self.rows, m, transductive=True))}
