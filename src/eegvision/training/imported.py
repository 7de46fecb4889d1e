"""Published checkpoints of the ATM reference code as eegvision runs (``eegvision import-checkpoint``).

:func:`import_checkpoint` reads a reference checkpoint with
:func:`eegvision.models.reference.load_reference_checkpoint` and writes it through
:class:`~eegvision.training.rundir.RunFolder`:

* an encoder (``atms``, ``nice``, ``eegproject``, ``projector``) becomes a new one-unit run: ``encoder/``, and a
  ``config.json`` whose ``imported`` entry records the source file, its sha256, the kind and the
  positional-encoding choice; it has no training history, checkpoints or metrics. ``eegvision embed RUN``
  works on it at once; embedding the averaged test split also stores the run's test embeddings and the data's
  test concept table (:func:`record_test_embeddings`), after which ``eegvision evaluate RUN --image-features F``
  and ``eegvision reconstruct RUN`` use them;
* a diffusion prior (``prior``) goes into ``RUN/prior/`` of an existing run, where ``reconstruct`` finds it; the
  run's ``config.json`` records it under ``imported_prior``.

>>> import_checkpoint("sub-08/40.pth", "atms", "runs/atms-ref-sub-08", positional_encoding="none",
...                   subjects=["sub-08"])                                       # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eegvision import __version__
from eegvision.training.config import FitConfig
from eegvision.training.rundir import RunFolder

__all__ = ["ImportedRun", "import_checkpoint", "record_test_embeddings"]

#: Unit name of an imported encoder's run.
IMPORTED_UNIT = "imported"


@dataclass(frozen=True)
class ImportedRun:
    """What :func:`import_checkpoint` returns.

    Attributes
    ----------
    run : RunFolder
        The run written (``kind="prior"``: the existing run that received the prior).
    kind : str
        The reference model kind.
    written : Path
        ``RUN/encoder/`` or ``RUN/prior/``.
    record : dict
        What the run's config records about the source (``source``, ``sha256``, ``kind``,
        ``positional_encoding``, ``module``, ``n_parameters``).
    subjects : list of str
        The subject of each encoder subject id (empty for a prior, and for encoders that ignore subjects
        when none were given).
    """

    run: RunFolder
    kind: str
    written: Path
    record: dict
    subjects: list[str]

    @property
    def path(self) -> Path:
        """The run folder's path."""
        return self.run.path


def _record(path: Path, kind: str, positional_encoding: str | None, model: Any) -> dict:
    from eegvision.utils import sha256_file

    return {"source": str(path.resolve()), "sha256": sha256_file(path), "kind": kind,
            "positional_encoding": positional_encoding, "module": type(model).__name__,
            "n_parameters": int(sum(p.numel() for p in model.parameters())), "eegvision_version": __version__}


def _prior_target(out: Path) -> RunFolder:
    """The existing run that receives an imported prior (checked before the file is read)."""
    from eegvision.models.prior import DiffusionPrior

    try:
        run = RunFolder.open(out)
    except FileNotFoundError:
        raise FileNotFoundError(f"--kind prior puts the prior into an existing run, but {out} holds no run: give "
                                "--out a run folder (one made by `eegvision fit`, or by `eegvision "
                                "import-checkpoint` of its encoder).") from None
    if DiffusionPrior.is_saved(run.prior_dir):
        raise FileExistsError(f"{run.prior_dir} already holds a prior; remove that folder to replace it, or import "
                              "into another run.")
    return run


def _import_prior(run: RunFolder, model: Any, record: dict) -> ImportedRun:
    model.save_pretrained(run.prior_dir)
    run.update_config({"imported_prior": record})
    return ImportedRun(run=run, kind="prior", written=run.prior_dir, record=record, subjects=[])


def import_checkpoint(path: str | os.PathLike, kind: str, out: str | os.PathLike, *,
                      positional_encoding: str | None = None, subjects: list[str] | None = None,
                      n_chans: int | None = None, n_times: int | None = None) -> ImportedRun:
    """Import a reference checkpoint into a run folder.

    Parameters
    ----------
    path : path-like
        The reference's ``state_dict`` file (``.pth``/``.pt``/``.safetensors``; read without running code).
    kind : {"atms", "nice", "eegproject", "projector", "prior"}
        Which reference model saved it (see :func:`eegvision.models.reference.load_reference_checkpoint`).
    out : path-like
        Encoders: the new run folder (must not exist, or be empty). ``prior``: an existing run, whose
        ``prior/`` receives the prior.
    positional_encoding : {"sinusoidal", "none"}, optional
        Required for the reference's ``ATMS`` (its forward pass changed on 24 Dec 2025 without changing keys).
    subjects : list of str, optional
        The subject of each encoder id, e.g. ``["sub-08"]`` for a model trained on sub-08; ATM-S picks its
        subject-table rows from these names as the reference does. Default for ATM-S: ``sub-01`` ... ``sub-10``.
    n_chans, n_times : int, optional
        Only where the file's shapes leave them open (NICE, EEGProject).

    Returns
    -------
    ImportedRun
    """
    from eegvision.checks import check_choice
    from eegvision.models.reference import REFERENCE_KINDS, load_reference_checkpoint

    check_choice("kind", kind, REFERENCE_KINDS)
    path, out = Path(path).expanduser(), Path(out).expanduser()
    run = RunFolder(out)
    if kind == "prior":
        run = _prior_target(out)
    elif out.exists() and (run.exists() or any(out.iterdir())):
        raise FileExistsError(f"{out} is not empty; an imported checkpoint becomes a new run: choose a new --out "
                              "path.")
    model = load_reference_checkpoint(path, kind, positional_encoding=positional_encoding, n_chans=n_chans,
                                      n_times=n_times, subject_names=list(subjects) if subjects else None)
    record = _record(path, kind, positional_encoding, model)
    if kind == "prior":
        return _import_prior(run, model, record)

    names = list(model.config.get("subject_names") or subjects or [])
    if not names and getattr(model, "reference_rows", lambda: None)() is not None:
        names = [f"sub-{i + 1:02d}" for i in range(model.n_subjects)]  # the reference's default rows
    config = FitConfig(encoder=type(model).name, encoder_options={"mode": model.config["mode"]}
                       if "mode" in model.config else {}, subjects=names)
    unit = {"name": IMPORTED_UNIT, "train_subjects": [], "test_subjects": names}
    run.write_config(config, [IMPORTED_UNIT], {})
    folder = run.unit()
    rows = getattr(model, "reference_rows", lambda: None)()
    folder.write_config({
        "unit": unit, "subject_ids": {s: i for i, s in enumerate(names)}, "test_subject_ids": {},
        "imported": record, **({"reference_subject_rows": rows} if rows is not None else {}),
        "data": {"n_chans": model.n_chans, "n_times": model.n_times, "n_train": 0},
    })
    folder.save_encoder(model)
    return ImportedRun(run=run, kind=kind, written=folder.encoder_dir, record=record, subjects=names)


def record_test_embeddings(run_dir: str | os.PathLike, embeddings: dict[str, Any], concepts: Any) -> bool:
    """Store averaged test-split embeddings in an imported run (``evaluate``/``reconstruct`` read them there).

    Only for runs made by :func:`import_checkpoint` (a trained run keeps the embeddings of its own test);
    the subjects are added to those already stored, and ``concepts`` (the data's test
    :class:`~eegvision.store.concepts.ConceptTable`) is recorded as the run's test table.

    Returns
    -------
    bool
        Whether the run is an imported one (and so was written).
    """

    run = RunFolder.open(run_dir)
    if "imported" not in run.read_config():
        return False
    unit = run.unit()
    stored = unit.read_test_embeddings() if unit.test_embeddings_path.is_file() else {}
    stored.update({s: e.contiguous() for s, e in embeddings.items()})
    unit.write_test_embeddings(stored, {"eegvision_version": __version__, "rows": "test condition order",
                                        "imported": "true"})
    subject_ids = unit.read_config().get("subject_ids", {})
    unit.write_config({"test_subject_ids": {s: int(subject_ids.get(s, -1)) for s in stored}})
    run.write_concepts({"test": concepts})
    return True
