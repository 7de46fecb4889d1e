"""Read a run directory written by :func:`eegvision.training.fit.fit`: load, embed, evaluate.

>>> run = load_run("runs/atms-sub-01")                       # doctest: +SKIP
>>> emb = run.embed(open_data("store/"), "sub-01")           # (200, 1024) averaged test trials
>>> rows = evaluate_run("runs/atms-sub-01")                  # rewrites RUN/metrics.json
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from eegvision.training.config import FitConfig

__all__ = ["TrainedRun", "list_units", "load_run", "evaluate_run", "embed_run", "read_test_embeddings"]


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {path.parent} is not an eegvision run directory (made by "
                                "`eegvision fit`).")
    return json.loads(path.read_text())


def list_units(run_dir: str | os.PathLike) -> list[Path]:
    """The unit directories of a run: the run itself (one model) or ``RUN/<subject>/`` (one per fold)."""
    run_dir = Path(run_dir)
    top = _read_json(run_dir / "config.json")
    dirs = top.get("unit_dirs") or []
    return [run_dir / d for d in dirs] if dirs else [run_dir]


@dataclass
class TrainedRun:
    """One trained unit: its config, subject ids and the selected encoder.

    Attributes
    ----------
    path : Path
        The unit directory.
    config : FitConfig
    description : dict
        The unit's ``config.json`` (data description, subject ids, feature metadata).
    encoder : torch.nn.Module
        The validation-selected encoder, in eval mode.
    """

    path: Path
    config: FitConfig
    description: dict
    encoder: torch.nn.Module
    subject_ids: dict[str, int] = field(default_factory=dict)

    def subject_id(self, subject: str) -> int:
        """Model id of ``subject`` (``-1``, the shared token, for subjects not seen in training)."""
        return int(self.subject_ids.get(subject, -1))

    def dataset(self, store: Any, subject: str, split: str = "test", average: bool | int = True):
        """An :class:`~eegvision.data.dataset.EEGDataset` with this run's channels, window and subject id."""
        from eegvision.data.dataset import EEGDataset

        return EEGDataset(store, [subject], split, average=average, channels=self.config.channels,
                          window=self.config.window, subject_ids={subject: self.subject_id(subject)})

    def embed(self, store: Any, subject: str, split: str = "test", average: bool | int = True,
              batch_size: int = 256, device: str | None = None) -> torch.Tensor:
        """Embeddings ``(n, n_outputs)`` of one subject's ``split`` (averaged repetitions by default)."""
        from eegvision.training.module import embed_data
        from eegvision.utils import default_device

        device = default_device(device)
        enc = self.encoder.to(device)
        emb, _ = embed_data(enc, self.dataset(store, subject, split, average), batch_size=batch_size, device=device)
        self.encoder.cpu()
        return emb


def load_run(run_dir: str | os.PathLike, unit: str | None = None, map_location: str = "cpu") -> TrainedRun:
    """Load one unit of a run (``unit`` = the fold/subject name when the run has several)."""
    from eegvision.models import load_encoder

    units = list_units(run_dir)
    if unit is not None:
        match = [u for u in units if u.name == unit]
        if not match:
            raise ValueError(f"Run {run_dir} has no unit {unit!r}; it has {[u.name for u in units]}.")
        path = match[0]
    elif len(units) == 1:
        path = units[0]
    else:
        raise ValueError(f"Run {run_dir} has {len(units)} units ({', '.join(u.name for u in units)}); pick one "
                         "with unit=... (--unit).")
    desc = _read_json(path / "config.json")
    cfg = FitConfig.from_dict(desc["fit"])
    if not (path / "encoder").is_dir():
        raise FileNotFoundError(f"{path} has no encoder/ (the run did not finish). Resume it with "
                                "`eegvision fit ... --resume`.")
    enc = load_encoder(path / "encoder", map_location=map_location)
    ids = {k: int(v) for k, v in desc.get("subject_ids", {}).items()}  # training subjects; others are unseen
    return TrainedRun(path=path, config=cfg, description=desc, encoder=enc, subject_ids=ids)


def read_test_embeddings(unit_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``{subject: (n_test, dim)}`` from ``test_embeddings.safetensors``."""
    from safetensors.torch import load_file

    path = Path(unit_dir) / "test_embeddings.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; the run did not finish. Resume it with `eegvision fit --resume`.")
    return load_file(str(path))


def evaluate_run(run_dir: str | os.PathLike, *, ks: list[int] | None = None, tops: list[int] | None = None,
                 methods: list[str] | None = None, features_test: str | None = None, write: bool = True,
                 ) -> list[dict]:
    """Evaluate a run's stored test embeddings against its test features; write ``metrics.{json,csv}``.

    Parameters
    ----------
    run_dir : path
        A run directory.
    ks, tops, methods : lists, optional
        Override the run's evaluation settings (default: those of its config).
    features_test : path, optional
        Evaluate against other test features (default: the file the run was trained with).
    write : bool
        Write ``metrics.json``/``metrics.csv`` in each unit and (with several units) in the run.
    """
    from eegvision.evaluation.embeddings import evaluate_embeddings
    from eegvision.evaluation.results import write_results
    from eegvision.training.fit import load_training_features
    from eegvision.training.unit import run_info

    run_dir = Path(run_dir)
    top = _read_json(run_dir / "config.json")
    cfg = FitConfig.from_dict(top["fit"])
    feats_path = Path(features_test or top.get("feature_files", {}).get("test") or cfg.features_test or "")
    feats = load_training_features(cfg, feats_path, run_dir / "features", None)
    all_rows: list[dict] = []
    for unit_dir in list_units(run_dir):
        desc = _read_json(unit_dir / "config.json")
        best = _best_on_test(unit_dir)
        rows = []
        for subject, emb in read_test_embeddings(unit_dir).items():
            info = run_info(cfg, subject, desc["data"]["n_train"], desc["data"]["n_chans"], feats)
            if best is not None:
                info["best_epoch_on_test_top1"] = best
            rows += evaluate_embeddings(emb, feats.image, feats.text, ks=ks or cfg.eval_ks, tops=tops or cfg.eval_tops,
                                        methods=methods or cfg.eval_methods, seed=cfg.seed, info=info)
        if write:
            write_results(rows, unit_dir / "metrics.json")
            write_results(rows, unit_dir / "metrics.csv")
        all_rows += rows
    if write and list_units(run_dir) != [run_dir]:
        write_results(all_rows, run_dir / "metrics.json")
        write_results(all_rows, run_dir / "metrics.csv")
    return all_rows


def _best_on_test(unit_dir: Path) -> float | None:
    import csv

    path = unit_dir / "history.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        vals = [float(r["test_top1_curve"]) for r in csv.DictReader(f) if r.get("test_top1_curve")]
    return max(vals) if vals else None


def embed_run(run_dir: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
              subjects: list[str] | None = None, split: str = "test", average: bool | int = True,
              unit: str | None = None, device: str | None = None) -> Path:
    """Embed ``split`` of ``subjects`` (default: the unit's test subjects) and write a safetensors file.

    The file holds one tensor per subject (row i = sample i of the dataset: condition i when
    averaged) and metadata ``run``, ``split``, ``average``.
    """
    from safetensors.torch import save_file

    from eegvision.data.sources import open_data
    from eegvision.utils import atomic_path

    run = load_run(run_dir, unit=unit)
    store = open_data(data)
    subjects = subjects or list(run.description.get("unit", {}).get("test_subjects", [])) or list(run.subject_ids)
    tensors = {s: run.embed(store, s, split, average, device=device).contiguous() for s in subjects}
    out = Path(out)
    with atomic_path(out, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"run": str(run.path), "split": split, "average": str(average)})
    return out
