"""The run folder: one object knows every file of a run, and reads and writes them.

A *run* is what :func:`eegvision.training.fitting.fit` (or :func:`eegvision.training.finetune.finetune`)
writes; a *unit* is one freshly initialised model of it (one per subject under ``within``, one per
held-out subject under ``loso``, one for ``joint``). With one unit the run folder *is* the unit folder;
with several, unit ``NAME`` lives in ``RUN/NAME/``. Layout::

    RUN/config.json                  the run: {"fit": FitConfig, "eegvision_version", "units": [unit names],
                                     "unit_dirs": [the units' sub-folders; [] when the run is its one unit],
                                     "data_path", "feature_files": {"train", "test"} (each input as {"relative"
                                     to RUN, "absolute"}, see RunFolder.input_path), "concepts": {split: table}}
    RUN/features/                    ATM-style .pt feature files imported for the run (as .safetensors)
    RUN/metrics.json, metrics.csv    result rows of every unit (runs with several units)
    RUN/prior/                       Stage I prior of ``eegvision prior fit`` (the prior's files + training.json)
    RUN/captioner/                   the captioner ``eegvision caption`` uses when no --captioner is given
    UNIT/config.json                 the unit: FitConfig, unit plan, subject ids, data and feature description
                                     (a one-unit run: merged into the run's config.json)
    UNIT/encoder/                    the selected encoder (its files belong to eegvision.models.registry)
    UNIT/last.ckpt, best-EEE.ckpt    Lightning checkpoints: the last epoch (resume), the selected epoch
    UNIT/history.csv                 one row per validation: epoch, train_loss, val_loss, val_top1, val_top5,
                                     lr, temperature (+ test_top1_curve with report_test_curve)
    UNIT/selection.json              selected epoch, selection rule, best validation value
    UNIT/test_embeddings.safetensors one tensor per test subject (row i = test condition i)
    UNIT/image_projector/            FitConfig.projector: the image-side projector (config.json + model.safetensors,
                                     eegvision.models.image_projector); FitConfig.multi_view_target: the
                                     multi-view target module (eegvision.models.multi_view); FitConfig.fusion_encoder:
                                     the fusion encoder (eegvision.models.fusion_encoder)
    UNIT/test_features.safetensors   FitConfig.projector: the test image features projected by it (a feature file;
                                     what the unit's test embeddings are scored against)
    UNIT/metrics.json, metrics.csv   result rows
    UNIT/finetune.json               fine-tuned runs: parent, frozen parameters, trials used
    UNIT/finetune_trials.tsv         fine-tuned runs: the training trials used
    UNIT/members/seed-S/             seed ensembles (FitConfig.ensemble > 1): member S, a unit folder of its own
                                     (its config, checkpoints, history, selection, encoder, embeddings, metrics);
                                     UNIT/config.json records them ("members"), UNIT/encoder/ is the ensemble,
                                     UNIT/test_embeddings and metrics are the ensemble's; no UNIT/history.csv

A tuning folder (:class:`TuneFolder`, ``eegvision tune``) holds ``tune.json`` (base config, search space, seed),
``study.db`` (the Optuna study, SQLite), ``trials/NNNN/`` (one run folder per trial), ``trials.csv`` and
``best_config.json`` (the best trial's FitConfig, for ``eegvision fit --config``).

Reconstructions and captions go where their command's ``--out`` says (their manifests record the run);
the run folder holds their inputs: test embeddings, prior, captioner. The units of a run are those its
``config.json`` records, never guessed from which sub-folders exist. ``concepts`` (the concept names of
each split, entry ``j`` = concept index ``j``, from the store) is new after 0.1.0 and optional: runs
written by 0.1.0 read the same way.

This module is the only place that spells these names. The files *inside* ``encoder/``, ``prior/`` and
``captioner/`` belong to what saves them (:mod:`eegvision.models.registry`,
:class:`~eegvision.models.prior.DiffusionPrior`, :class:`~eegvision.generation.captioner.PrefixCaptioner`,
:func:`eegvision.training.prior_fit.save_fit`), and the names of the result tables to
:data:`eegvision.evaluation.results.RESULT_FILES`.

>>> run = RunFolder.open("runs/atms-loso")                     # doctest: +SKIP
>>> [u.name for u in run.units()]                              # doctest: +SKIP
['sub-01', 'sub-02']
>>> run.unit_for_subject("sub-02").read_history()[-1]["val_top1"]  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eegvision import __version__
from eegvision.evaluation.results import RESULT_FILES, read_results, write_result_files
from eegvision.store.concepts import ConceptTable
from eegvision.training.config import FitConfig
from eegvision.utils import atomic_path, save_safetensors, write_text_atomic

__all__ = ["RunFolder", "TuneFolder", "UnitFolder"]

_CONFIG = "config.json"
_HISTORY = "history.csv"
_SELECTION = "selection.json"
_ENCODER = "encoder"
_LAST_CHECKPOINT = "last.ckpt"  # Lightning's name for ModelCheckpoint(save_last=True)
_BEST_CHECKPOINT = "best-{epoch:03d}"  # ModelCheckpoint's filename template (it adds .ckpt)
_TEST_EMBEDDINGS = "test_embeddings.safetensors"
_ALIGNMENT = "alignment.safetensors"
_IMAGE_PROJECTOR = "image_projector"
_TEST_FEATURES = "test_features.safetensors"
_FEATURE_CACHE = "features"
_PRIOR = "prior"
_CAPTIONER = "captioner"
_FINETUNE_RECORD = "finetune.json"
_FINETUNE_TRIALS = "finetune_trials.tsv"
_MEMBERS = "members"
_MEMBER = "seed-{seed}"
_CANDIDATES = "candidates"
_AUTO = "auto.json"
_TUNE = "tune.json"
_STUDY = "study.db"
_TRIALS = "trials"
_TRIAL = "{number:04d}"
_TRIALS_TABLE = "trials.csv"
_BEST_CONFIG = "best_config.json"

_NOT_A_RUN = "is not an eegvision run folder (made by `eegvision fit`)"


def _read_json(path: Path, folder: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {folder} {_NOT_A_RUN}.")
    return json.loads(path.read_text())


@dataclass(frozen=True)
class _Folder:
    """What run and unit folders share: ``config.json`` and the result tables."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())

    @property
    def config_path(self) -> Path:
        """``config.json``."""
        return self.path / _CONFIG

    @property
    def metrics_path(self) -> Path:
        """``metrics.json`` (the JSON result table; ``metrics.csv`` beside it)."""
        return self.path / RESULT_FILES[0]

    def exists(self) -> bool:
        """Whether the folder holds a ``config.json``."""
        return self.config_path.is_file()

    def read_config(self) -> dict:
        """The folder's ``config.json``; ``FileNotFoundError`` when the folder is not a run."""
        return _read_json(self.config_path, self.path)

    def fit_config(self) -> FitConfig:
        """The :class:`~eegvision.training.config.FitConfig` recorded in ``config.json``."""
        return FitConfig.from_dict(self.read_config()["fit"])

    def has_metrics(self) -> bool:
        """Whether ``metrics.json`` exists (the run or unit finished, or was evaluated)."""
        return self.metrics_path.is_file()

    def read_metrics(self) -> list[dict]:
        """The result rows of ``metrics.json``."""
        if not self.has_metrics():
            raise FileNotFoundError(f"{self.metrics_path} not found: the run did not finish. Resume it with "
                                    "`eegvision fit ... --resume`, or evaluate it with `eegvision evaluate RUN`.")
        return read_results(self.metrics_path)

    def write_metrics(self, rows: Sequence[Mapping]) -> list[Path]:
        """Write ``metrics.json`` and ``metrics.csv``; return their paths."""
        return write_result_files(rows, self.path)


@dataclass(frozen=True)
class UnitFolder(_Folder):
    """One unit (one trained model) of a run: its description, checkpoints, history, encoder and results.

    Attributes
    ----------
    path : Path
        The unit folder (the run folder itself for a one-unit run).
    name : str
        The unit's name in the run's config (a subject, or ``joint``).
    """

    name: str

    # ------------------------------------------------------------------ names
    @property
    def history_path(self) -> Path:
        """``history.csv``."""
        return self.path / _HISTORY

    @property
    def encoder_dir(self) -> Path:
        """``encoder/``, the selected encoder (see :func:`eegvision.models.registry.load_encoder`)."""
        return self.path / _ENCODER

    @property
    def last_checkpoint(self) -> Path:
        """``last.ckpt``, the Lightning checkpoint of the last epoch (what a resume continues from)."""
        return self.path / _LAST_CHECKPOINT

    @property
    def test_embeddings_path(self) -> Path:
        """``test_embeddings.safetensors``."""
        return self.path / _TEST_EMBEDDINGS

    @property
    def finetune_record_path(self) -> Path:
        """``finetune.json`` of a fine-tuned run."""
        return self.path / _FINETUNE_RECORD

    @property
    def finetune_trials_path(self) -> Path:
        """``finetune_trials.tsv`` of a fine-tuned run."""
        return self.path / _FINETUNE_TRIALS

    # ------------------------------------------------------------------ description
    def write_config(self, description: Mapping[str, Any]) -> None:
        """Write the unit's ``config.json``; keys already there and not in ``description`` are kept (the
        run-level keys of a one-unit run)."""
        desc = dict(description)
        if self.config_path.is_file():
            desc = {**json.loads(self.config_path.read_text()), **desc}
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config_path, json.dumps(desc, indent=2, default=str) + "\n")

    def test_subjects(self) -> list[str]:
        """The subjects this unit was tested on (from its ``config.json``)."""
        return list(self.read_config().get("unit", {}).get("test_subjects", []))

    # ------------------------------------------------------------------ training records
    def checkpoint_callback(self, monitor: str, mode: str):
        """The Lightning ``ModelCheckpoint`` that keeps ``best-EEE.ckpt`` (selected on ``monitor``) and
        ``last.ckpt`` in this folder."""
        from lightning.pytorch.callbacks import ModelCheckpoint

        return ModelCheckpoint(dirpath=self.path, filename=_BEST_CHECKPOINT, monitor=monitor, mode=mode,
                               save_top_k=1, save_last=True, auto_insert_metric_name=False)

    def write_history(self, rows: Sequence[Mapping], columns: Sequence[str]) -> None:
        """Rewrite ``history.csv`` (atomically): one row per validation, ``columns`` in order."""
        with atomic_path(self.history_path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(columns))
            w.writeheader()
            w.writerows(rows)

    def read_history(self) -> list[dict[str, float | None]]:
        """Rows of ``history.csv`` as floats (empty cells → None); ``[]`` before the first validation."""
        if not self.history_path.is_file():
            return []
        with open(self.history_path, newline="") as f:
            return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()}
                    for r in csv.DictReader(f)]

    def write_selection(self, summary: Mapping[str, Any]) -> None:
        """Write ``selection.json`` (selected epoch, rule, best validation value)."""
        write_text_atomic(self.path / _SELECTION, json.dumps(dict(summary), indent=2) + "\n")

    def read_selection(self) -> dict:
        """``selection.json``, or ``{}`` when the unit has none (not finished)."""
        path = self.path / _SELECTION
        return json.loads(path.read_text()) if path.is_file() else {}

    # ------------------------------------------------------------------ encoder and embeddings
    def save_encoder(self, encoder: Any) -> Path:
        """Save the selected encoder to ``encoder/``."""
        from eegvision.models import save_pretrained

        return save_pretrained(encoder, self.encoder_dir)

    def load_encoder(self, map_location: str = "cpu") -> Any:
        """The selected encoder from ``encoder/`` (eval mode)."""
        from eegvision.models import load_encoder

        if not self.encoder_dir.is_dir():
            raise FileNotFoundError(f"{self.path} has no {_ENCODER}/ (the run did not finish). Resume it with "
                                    "`eegvision fit ... --resume`.")
        return load_encoder(self.encoder_dir, map_location=map_location)

    def write_test_embeddings(self, embeddings: Mapping[str, Any], metadata: Mapping[str, str]) -> None:
        """Write ``{subject: (n_test, dim) tensor}`` with string ``metadata`` (byte-identical for identical
        embeddings and metadata, see :func:`eegvision.utils.save_safetensors`)."""
        save_safetensors(self.test_embeddings_path, dict(embeddings), dict(metadata))

    def read_test_embeddings(self) -> dict[str, Any]:
        """``{subject: (n_test, dim) tensor}`` from ``test_embeddings.safetensors``."""
        from eegvision.tensorfiles import load_safetensors

        if not self.test_embeddings_path.is_file():
            raise FileNotFoundError(f"{self.test_embeddings_path} not found; the run did not finish. Resume it "
                                    "with `eegvision fit --resume`.")
        return load_safetensors(self.test_embeddings_path, "Test embeddings",
                                "Write them again with `eegvision evaluate RUN` after `eegvision fit --resume`.")

    # ------------------------------------------------------------------ image projector (FitConfig.projector)
    @property
    def test_features_path(self) -> Path:
        """``test_features.safetensors``: the projected test features of a unit trained with a projector."""
        return self.path / _TEST_FEATURES

    def save_image_projector(self, projector: Any) -> Path:
        """Save the image projector to ``image_projector/``."""
        return projector.save_pretrained(self.path / _IMAGE_PROJECTOR)

    def load_image_projector(self, map_location: str = "cpu") -> Any:
        """The unit's :class:`~eegvision.models.image_projector.ImageProjector`,
        :class:`~eegvision.models.multi_view.MultiViewTarget` or
        :class:`~eegvision.models.fusion_encoder.FusionEncoder` (eval mode), or None when it was trained without."""
        from eegvision.models.multi_view import load_image_module

        path = self.path / _IMAGE_PROJECTOR
        return load_image_module(path, map_location) if path.is_dir() else None

    def write_test_features(self, feats: Any) -> Path:
        """Write the projected test features (a feature file, metadata and concept table kept)."""
        from eegvision.features.files import save_features

        meta = {k: v for k, v in feats.metadata.items() if k not in ("normalized", "eegvision_version")}
        return save_features(self.test_features_path, feats.image, None, normalized=False,
                             concepts=feats.concepts, **meta)

    def write_alignment(self, alignments: Mapping[str, Any], method: str) -> None:
        """Write the per-subject alignments ``{subject: SubjectAlignment}`` the unit used (``alignment.safetensors``:
        ``SUBJECT`` the ``(C, C)`` matrix, ``SUBJECT.mean`` the ``(C, T)`` mean trial where there is one)."""
        import torch

        tensors = {}
        for s, a in sorted(alignments.items()):
            tensors[s] = torch.as_tensor(a.matrix, dtype=torch.float64)
            if a.mean is not None:
                tensors[f"{s}.mean"] = torch.as_tensor(a.mean, dtype=torch.float64)
        save_safetensors(self.path / _ALIGNMENT, tensors,
                         {"method": method, "computed_from": "each subject's training split, no labels"})

    def read_alignment(self) -> dict[str, Any]:
        """``{subject: SubjectAlignment}`` written by :meth:`write_alignment` (``{}`` when there is none)."""
        from eegvision.data.alignment import SubjectAlignment
        from eegvision.tensorfiles import load_safetensors

        path = self.path / _ALIGNMENT
        if not path.is_file():
            return {}
        tensors = {k: t.numpy() for k, t in load_safetensors(path, "Alignment matrices",
                                                             "Train the run again with `eegvision fit`.").items()}
        return {s: SubjectAlignment(m, tensors.get(f"{s}.mean")) for s, m in tensors.items()
                if not s.endswith(".mean")}

    # ------------------------------------------------------------------ seed ensembles
    def member_folders(self, seeds: Sequence[int]) -> list[UnitFolder]:
        """The folders of the ensemble members trained with ``seeds`` (``members/seed-S/``)."""
        return [UnitFolder(self.path / _MEMBERS / _MEMBER.format(seed=int(s)), self.name) for s in seeds]

    def member_dirs(self, members: Sequence[UnitFolder]) -> list[str]:
        """What ``config.json`` records of ``members``: their paths relative to this unit."""
        return [Path(m.path).relative_to(self.path).as_posix() for m in members]

    def members(self) -> list[UnitFolder]:
        """The ensemble members ``config.json`` records (``[]`` for a unit that is one model)."""
        return [UnitFolder(self.path / d, self.name) for d in self.read_config().get("members", [])]

    def candidate_folder(self, name: str) -> UnitFolder:
        """The folder of candidate ``name`` of an ``encoder="auto"`` unit (``candidates/NAME/``)."""
        return UnitFolder(self.path / _CANDIDATES / name, self.name)

    @property
    def auto_path(self) -> Path:
        """``auto.json``: an ``encoder="auto"`` unit's candidates, their validation scores and the winner."""
        return self.path / _AUTO

    def write_auto(self, record: Mapping[str, Any]) -> None:
        """Write ``auto.json`` (see :mod:`eegvision.training.auto`)."""
        write_text_atomic(self.auto_path, json.dumps(dict(record), indent=2, default=str) + "\n")

    def read_auto(self) -> dict:
        """``auto.json`` of an ``encoder="auto"`` unit."""
        if not self.auto_path.is_file():
            raise FileNotFoundError(f"{self.auto_path} not found: {self.path} was not fitted with encoder 'auto'.")
        return _read_json(self.auto_path, self.path)

    @property
    def fusion_path(self) -> Path:
        """``fusion.json``: the learned layer weights of ``target_mode="learned"`` (:mod:`.fusion`)."""
        return self.path / "fusion.json"

    @property
    def fused_test_features_path(self) -> Path:
        """``fusion_test.safetensors``: the test images' features fused with the unit's learned shared weights
        (what the unit is evaluated against)."""
        return self.path / "fusion_test.safetensors"

    def write_fusion(self, record: Mapping[str, Any]) -> None:
        """Write ``fusion.json``."""
        write_text_atomic(self.fusion_path, json.dumps(dict(record), indent=2) + "\n")

    def read_finetune_record(self) -> dict:
        """``finetune.json`` of a fine-tuned run."""
        if not self.finetune_record_path.is_file():
            raise FileNotFoundError(f"{self.finetune_record_path} not found: {self.path} is not a finished "
                                    "fine-tuned run (made by `eegvision finetune`).")
        return json.loads(self.finetune_record_path.read_text())

    def write_finetune_record(self, record: Mapping[str, Any]) -> None:
        """Write ``finetune.json``."""
        write_text_atomic(self.finetune_record_path, json.dumps(dict(record), indent=2) + "\n")


@dataclass(frozen=True)
class RunFolder(_Folder):
    """A run folder: its config, its units (as recorded in ``config.json``) and the folders beside them.

    ``RunFolder(path)`` names a folder (it may not exist yet, e.g. before :func:`fit` writes it);
    :meth:`open` checks that it holds a run.

    Attributes
    ----------
    path : Path
        The run folder.
    """

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunFolder:
        """The run at ``path``; ``FileNotFoundError`` when ``path`` holds no run ``config.json``."""
        run = cls(Path(path))
        if not run.exists():
            raise FileNotFoundError(f"{run.config_path} not found: {run.path} {_NOT_A_RUN}.")
        return run

    # ------------------------------------------------------------------ names
    @property
    def feature_cache(self) -> Path:
        """``features/``: ATM-style ``.pt`` feature files imported for this run."""
        return self.path / _FEATURE_CACHE

    @property
    def prior_dir(self) -> Path:
        """``prior/``: the default folder of the Stage I prior (``eegvision prior fit``)."""
        return self.path / _PRIOR

    @property
    def captioner_dir(self) -> Path:
        """``captioner/``: the default captioner of ``eegvision caption``."""
        return self.path / _CAPTIONER

    def has_checkpoints(self) -> bool:
        """Whether any unit wrote a Lightning checkpoint (training started)."""
        return any(self.path.rglob("*.ckpt"))

    # ------------------------------------------------------------------ config
    def write_config(self, config: FitConfig, units: Sequence[str], feature_files: Mapping[str, Any],
                     concepts: Mapping[str, ConceptTable] | None = None, *,
                     data: str | os.PathLike | None = None) -> None:
        """Write the run's ``config.json`` (creating the folder).

        Input paths (``data`` and the feature files) are recorded twice, relative to the run folder and absolute
        (``{"relative": ..., "absolute": ...}``), so that the run can be evaluated from any folder and moved
        together with its inputs; :meth:`input_path` reads them back.

        Parameters
        ----------
        config : FitConfig
        units : list of str
            The units' names, in training order (their folders follow from them, see :meth:`planned_units`).
        feature_files : mapping
            ``{"train": path, "test": path}``, the feature files the run trains and tests with.
        concepts : mapping, optional
            ``{split: ConceptTable}`` of the data (0-based concept identity, see :mod:`eegvision.store.concepts`).
        data : path, optional
            The data (store or THINGS-EEG2 folder) the run trains on; default ``config.data``.
        """
        top: dict[str, Any] = {"fit": config.to_dict(), "eegvision_version": __version__, "units": list(units),
                               "unit_dirs": [] if len(units) == 1 else list(units),
                               "data_path": self._record_path(data if data is not None else config.data),
                               "feature_files": {k: self._record_path(v) for k, v in feature_files.items()}}
        if concepts is not None:
            top["concepts"] = {split: table.to_json() for split, table in concepts.items()}
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config_path, json.dumps(top, indent=2) + "\n")

    def update_config(self, entries: Mapping[str, Any]) -> None:
        """Add or replace top-level keys of the run's ``config.json`` (e.g. an imported checkpoint's record)."""
        top = {**self.read_config(), **dict(entries)}
        write_text_atomic(self.config_path, json.dumps(top, indent=2, default=str) + "\n")

    def write_concepts(self, concepts: Mapping[str, ConceptTable]) -> None:
        """Record (or replace) the concept tables of some splits in ``config.json``."""
        recorded = dict(self.read_config().get("concepts", {}))
        recorded.update({split: table.to_json() for split, table in concepts.items()})
        self.update_config({"concepts": recorded})

    def _record_path(self, path: str | os.PathLike) -> dict[str, str]:
        absolute = Path(path).expanduser().absolute()
        return {"relative": os.path.relpath(absolute, self.path.absolute()), "absolute": str(absolute)}

    def input_path(self, entry: str | Mapping[str, str], what: str, how_to_fix: str) -> Path:
        """The existing file or folder a recorded input ``entry`` names.

        ``entry`` is ``{"relative", "absolute"}`` (tried in that order: the path relative to the run folder,
        so a run moved with its inputs finds them, then the absolute path) or a plain path (runs written by
        0.1.0, tried as given). ``FileNotFoundError`` names ``what``, every path tried and ``how_to_fix``.
        """
        if isinstance(entry, Mapping):
            tried = [self.path / entry["relative"], Path(entry["absolute"])]
        else:
            tried = [self.path / entry, Path(entry)] if not Path(entry).is_absolute() else [Path(entry)]
        for path in tried:
            if path.exists():
                return path
        shown = ", ".join(str(p) for p in dict.fromkeys(tried))
        raise FileNotFoundError(f"The {what} of run {self.path} is not at any recorded place (tried {shown}). "
                                f"{how_to_fix}")

    def data_path(self) -> Path:
        """The data (store or THINGS-EEG2 folder) the run trained on, found as :meth:`input_path` says."""
        top = self.read_config()
        return self.input_path(top.get("data_path") or top["fit"]["data"], "data",
                               "Pass --data DATA (the store or THINGS-EEG2 folder the run was trained on).")

    def feature_file(self, split: str) -> Path | None:
        """The ``split`` (``"train"``/``"test"``) feature file the run used, found as :meth:`input_path` says;
        None when the run records none."""
        entry = self.read_config().get("feature_files", {}).get(split)
        if entry is None:
            return None
        flag = "--image-features" if split == "test" else "--features-train"
        return self.input_path(entry, f"{split} feature file", f"Pass {flag} FILE (the {split}-split features).")

    def feature_files(self) -> dict[str, Path]:
        """``{"train": path, "test": path}`` the run was trained and tested with (see :meth:`feature_file`)."""
        return {split: self.feature_file(split) for split in self.read_config().get("feature_files", {})}

    def concepts(self, split: str) -> ConceptTable | None:
        """The concept table of ``split`` recorded by the run; None for runs that recorded none (0.1.0)."""
        recorded = self.read_config().get("concepts", {}).get(split)
        if recorded is None:
            return None
        return ConceptTable.from_json(recorded, where=f"{self.config_path} concepts.{split}")

    # ------------------------------------------------------------------ units
    def planned_units(self, names: Sequence[str]) -> list[UnitFolder]:
        """The folders of units ``names``: the run itself for one unit, ``RUN/NAME/`` for several."""
        if len(names) == 1:
            return [UnitFolder(self.path, names[0])]
        return [UnitFolder(self.path / n, n) for n in names]

    def units(self) -> list[UnitFolder]:
        """The units recorded in ``config.json``, in training order.

        A unit folder opened as a run (``RUN/sub-02``) is a run of that one unit.
        """
        top = self.read_config()
        dirs = top.get("unit_dirs") or []
        if dirs:
            return [UnitFolder(self.path / d, d) for d in dirs]
        name = (top.get("units") or [top.get("unit", {}).get("name") or self.path.name])[0]
        return [UnitFolder(self.path, name)]

    def unit(self, name: str | None = None) -> UnitFolder:
        """Unit ``name``; without a name, the run's only unit."""
        units = self.units()
        names = [u.name for u in units]
        if name is None:
            if len(units) == 1:
                return units[0]
            raise ValueError(f"Run {self.path} has {len(units)} units ({', '.join(names)}); pick one with "
                             "unit=... (--unit).")
        for u in units:
            if u.name == name:
                return u
        raise ValueError(f"Run {self.path} has no unit {name!r}; it has {names}.")

    def unit_for_subject(self, subject: str) -> UnitFolder:
        """The unit tested on ``subject``: the unit named after it, else the one whose test subjects hold it."""
        units = self.units()
        for u in units:
            if u.name == subject:
                return u
        tested = {u.name: u.test_subjects() for u in units}
        for u in units:
            if subject in tested[u.name]:
                return u
        raise ValueError(f"Run {self.path} has no unit tested on {subject!r}; its units test {tested}.")

    def test_embeddings(self) -> dict[str, Any]:
        """``{subject: (n_test, dim) tensor}`` over all units."""
        out: dict[str, Any] = {}
        for u in self.units():
            out.update(u.read_test_embeddings())
        return out


@dataclass(frozen=True)
class TuneFolder:
    """The folder of a recipe search (:func:`eegvision.training.tune.tune`): its record, study, trials and result.

    Attributes
    ----------
    path : Path
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())

    @property
    def record_path(self) -> Path:
        """``tune.json``: base config, search space and seed of the search."""
        return self.path / _TUNE

    @property
    def storage_url(self) -> str:
        """The Optuna storage URL of ``study.db`` (SQLite)."""
        return f"sqlite:///{(self.path / _STUDY).absolute()}"

    @property
    def best_config_path(self) -> Path:
        """``best_config.json``: the best trial's FitConfig (``eegvision fit --config``)."""
        return self.path / _BEST_CONFIG

    @property
    def trials_table_path(self) -> Path:
        """``trials.csv``: one row per trial."""
        return self.path / _TRIALS_TABLE

    def exists(self) -> bool:
        """Whether the folder holds a search (``tune.json``)."""
        return self.record_path.is_file()

    def read_record(self) -> dict:
        """``tune.json``."""
        return _read_json(self.record_path, self.path)

    def write_record(self, record: Mapping[str, Any]) -> None:
        """Write ``tune.json`` (creating the folder)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.record_path, json.dumps(dict(record), indent=2) + "\n")

    def trial_run(self, number: int) -> RunFolder:
        """The run folder of trial ``number`` (``trials/NNNN/``)."""
        return RunFolder(self.path / _TRIALS / _TRIAL.format(number=int(number)))

    def write_trials_table(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite ``trials.csv`` (atomically), columns in first-seen order."""
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with atomic_path(self.trials_table_path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
