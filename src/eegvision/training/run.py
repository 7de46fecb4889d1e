"""Use a trained run: load a unit's encoder, embed data with it, evaluate its test embeddings.

>>> run = load_run("runs/atms-sub-01")                       # doctest: +SKIP
>>> emb = run.embed(open_data("store/"), "sub-01")           # (200, 1024) averaged test trials
>>> evaluate_run("runs/atms-sub-01").summary                 # rewrites RUN/metrics.json  # doctest: +SKIP

The run's files are read through :class:`~eegvision.training.rundir.RunFolder`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from eegvision.evaluation.results import Evaluation
from eegvision.training.config import FitConfig, eval_ks_for
from eegvision.training.rundir import RunFolder, UnitFolder

__all__ = ["RunEmbeddings", "TrainedRun", "embed_run", "evaluate_run", "load_run"]


@dataclass
class TrainedRun:
    """One trained unit: its config, subject ids and the selected encoder.

    Attributes
    ----------
    folder : UnitFolder
        The unit's folder.
    config : FitConfig
    description : dict
        The unit's ``config.json`` (data description, subject ids, feature metadata).
    encoder : torch.nn.Module
        The validation-selected encoder, in eval mode.
    subject_ids : dict
        Model id of each training subject.
    image_projector : torch.nn.Module or None
        The unit's image projector (``FitConfig.projector``; the encoder then ends with the EEG projection, so its
        embeddings are in the projected space): score them against ``image_projector(image_features)``.
    """

    folder: UnitFolder
    config: FitConfig
    description: dict
    encoder: torch.nn.Module
    subject_ids: dict[str, int] = field(default_factory=dict)
    image_projector: torch.nn.Module | None = None

    @property
    def path(self) -> Path:
        """The unit folder's path."""
        return self.folder.path

    @property
    def test_subjects(self) -> list[str]:
        """The subjects the unit was tested on (its training subjects when none is recorded)."""
        return list(self.description.get("unit", {}).get("test_subjects", [])) or list(self.subject_ids)

    def subject_id(self, subject: str) -> int:
        """Model id of ``subject`` (``-1``, the shared token, for subjects not seen in training)."""
        return int(self.subject_ids.get(subject, -1))

    def dataset(self, store: Any, subject: str, split: str = "test", average: bool = True):
        """An :class:`~eegvision.data.dataset.EEGDataset` with this run's channels, window and subject id."""
        from eegvision.data.dataset import EEGDataset

        store = self.aligned(store, subject)
        return EEGDataset(store, [subject], split, average=average, channels=self.config.channels,
                          window=self.config.window, subject_ids={subject: self.subject_id(subject)})

    def aligned(self, store: Any, subject: str) -> Any:
        """``store`` with this run's alignment of ``subject`` (``config.align``): the recorded one, or for a
        subject the run never saw, one computed from that subject's training split (no labels)."""
        if self.config.align is None:
            return store
        from eegvision.data.alignment import AlignedStore, subject_alignments

        alignments = self.folder.read_alignment()
        if subject not in alignments:
            alignments = subject_alignments(store, [subject], self.config.align)
        return AlignedStore(store, {subject: alignments[subject]})

    def embed(self, store: Any, subject: str, split: str = "test", average: bool = True,
              batch_size: int = 256, device: str | None = None) -> torch.Tensor:
        """Embeddings ``(n, n_outputs)`` of one subject's ``split`` (averaged repetitions by default)."""
        from eegvision.training.module import embed_data
        from eegvision.utils import default_device

        device = default_device(device)
        enc = self.encoder.to(device)
        emb, _ = embed_data(enc, self.dataset(store, subject, split, average), batch_size=batch_size, device=device)
        self.encoder.cpu()
        return emb


def load_run(run_dir: str | os.PathLike, unit: str | None = None, map_location: str = "cpu", *,
             subject: str | None = None) -> TrainedRun:
    """Load one unit of a run.

    Parameters
    ----------
    run_dir : path
        A run folder (or one unit's folder of a several-unit run).
    unit : str, optional
        The unit's name (the fold's held-out subject, ``joint``); needed when the run has several units.
    map_location : str
        Device of the loaded encoder.
    subject : str, optional
        Instead of ``unit``: the unit tested on this subject.
    """
    run = RunFolder.open(run_dir)
    folder = run.unit_for_subject(subject) if subject is not None and unit is None else run.unit(unit)
    desc = folder.read_config()
    ids = {k: int(v) for k, v in desc.get("subject_ids", {}).items()}  # training subjects; others are unseen
    return TrainedRun(folder=folder, config=FitConfig.from_dict(desc["fit"]), description=desc,
                      encoder=folder.load_encoder(map_location), subject_ids=ids,
                      image_projector=folder.load_image_projector(map_location))


def evaluate_run(run_dir: str | os.PathLike, *, ks: list[int] | None = None, tops: list[int] | None = None,
                 methods: list[str] | None = None, features_test: str | None = None, write: bool = True,
                 calibrations: list[str] | None = None) -> Evaluation:
    """Evaluate a run's stored test embeddings against its test features; write ``metrics.{json,csv}``.

    A unit trained with ``FitConfig.projector`` is scored against the test features projected by its own image
    projector (those given with ``features_test`` too).

    Parameters
    ----------
    run_dir : path
        A run folder.
    ks, tops, methods : lists, optional
        Override the run's evaluation settings (default: those of its config).
    features_test : path, optional
        Evaluate against other test features (default: the file the run was trained with, found relative to the
        run folder, else at its absolute path; see :meth:`RunFolder.input_path`; a unit trained with
        ``target_mode="learned"`` is evaluated against its own ``fusion_test.safetensors``).
    write : bool
        Write ``metrics.json``/``metrics.csv`` in each unit and (with several units) in the run.
    calibrations : list of str, optional
        Also score each subject's test embeddings after these transductive calibrations
        (:mod:`eegvision.evaluation.calibration`: ``centre``, ``whiten``, ``procrustes``, ``score``); their rows
        carry ``transductive=True`` and ``calibration`` and are quoted apart (``Evaluation.transductive_summary``).

    Returns
    -------
    Evaluation
        The result rows of every unit, and the files written.
    """
    from eegvision.checks import check_file
    from eegvision.evaluation.embeddings import evaluate_embeddings
    from eegvision.training.inputs import load_training_features
    from eegvision.training.unit import run_info

    run = RunFolder.open(run_dir)
    cfg = run.fit_config()
    if features_test is not None:
        feats_path = check_file(features_test, "Test feature file", "Pass the test-split features of the run's "
                                "test images (`eegvision features test_images OUT ...`).")
    else:
        feats_path = run.feature_file("test") or (Path(cfg.features_test) if cfg.features_test else None)
        if feats_path is None:
            raise ValueError(f"Run {run.path} records no test features (an imported checkpoint): pass the test "
                             "image features with --image-features FILE.")
    feats = load_training_features(cfg, feats_path, run.feature_cache, None, run.concepts("test"))
    all_rows: list[dict] = []
    files: list[Path] = []
    units = run.units()
    for unit in units:
        desc = unit.read_config()
        best = _best_on_test(unit)
        unit_feats = feats
        if features_test is None and unit.fused_test_features_path.is_file():  # target_mode="learned"
            unit_feats = load_training_features(cfg, unit.fused_test_features_path, run.feature_cache, None,
                                                run.concepts("test"))
        projector = unit.load_image_projector()
        if projector is not None:  # FitConfig.projector: score in the projected space
            unit_feats = projector.project_features(unit_feats)
        rows = []
        for subject, emb in unit.read_test_embeddings().items():
            info = run_info(cfg, subject, desc["data"]["n_train"], desc["data"]["n_chans"], unit_feats)
            if best is not None:
                info["best_epoch_on_test_top1"] = best
            rows += evaluate_embeddings(emb, unit_feats.image, unit_feats.text,
                                        ks=ks or eval_ks_for(cfg.eval_ks, len(emb)),
                                        tops=tops or cfg.eval_tops,
                                        methods=methods or cfg.eval_methods, seed=cfg.seed, info=info,
                                        calibrations=calibrations or ())
        if write:
            files += unit.write_metrics(rows)
        all_rows += rows
    if write and len(units) > 1:
        files += run.write_metrics(all_rows)
    return Evaluation(rows=all_rows, files=files)


def _best_on_test(unit: UnitFolder) -> float | None:
    vals = [r["test_top1_curve"] for r in unit.read_history() if r.get("test_top1_curve") is not None]
    return max(vals) if vals else None


@dataclass(frozen=True)
class RunEmbeddings:
    """What :func:`embed_run` returns: the file written and what it holds.

    Attributes
    ----------
    path : Path
        The ``.safetensors`` file (one tensor per subject).
    embeddings : dict
        ``{subject: (n, dim) tensor}``; row i = sample i of the dataset (condition i when averaged).
    unit : str
        The unit whose encoder embedded them.
    split : str
    average : bool
    """

    path: Path
    embeddings: dict[str, torch.Tensor]
    unit: str
    split: str
    average: bool


def embed_run(run_dir: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
              subjects: list[str] | None = None, split: str = "test", average: bool = True,
              unit: str | None = None, device: str | None = None) -> RunEmbeddings:
    """Embed ``split`` of ``subjects`` (default: the unit's test subjects) and write a safetensors file.

    The file holds one tensor per subject (row i = sample i of the dataset: condition i when
    averaged) and metadata ``run``, ``split``, ``average``. In a run made by ``import-checkpoint``, averaged
    test embeddings are also stored as the run's test embeddings (for ``evaluate`` and ``reconstruct``).
    """
    from eegvision.data.sources import open_data
    from eegvision.utils import save_safetensors

    run = load_run(run_dir, unit=unit)
    store = open_data(data)
    tensors = {s: run.embed(store, s, split, average, device=device).contiguous()
               for s in subjects or run.test_subjects}
    out = save_safetensors(out, tensors, {"run": str(run.path), "split": split, "average": str(average)})
    if split == "test" and average is True:
        from eegvision.training.imported import record_test_embeddings

        record_test_embeddings(run_dir, tensors, store.concept_table("test"))  # imported runs only
    return RunEmbeddings(path=out, embeddings=tensors, unit=run.folder.name, split=split, average=average)
