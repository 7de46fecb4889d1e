"""``FinetuneConfig``: what a fine-tuning run adapts and how (see :mod:`eegvision.training.finetune`).

``finetune`` turns a ``FinetuneConfig`` and its parent's ``FitConfig`` into the ``FitConfig`` of the
fine-tuned run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eegvision.checks import check_names

__all__ = ["SUBJECT_TOKENS", "FinetuneConfig"]


SUBJECT_TOKENS = ("shared", "new", "mean")


@dataclass
class FinetuneConfig:
    """What to fine-tune on and how (see :func:`eegvision.training.finetune.finetune`).

    Parameters
    ----------
    data : str
        Store or THINGS-EEG2 folder with the new subject / paradigm.
    subject : str
        The subject of ``data`` to fine-tune on and test.
    freeze : list of str
        ``[]`` (nothing), ``["all-but-head"]`` or groups of ``encoder``, ``attention``, ``subject``, ``head``
        (:mod:`eegvision.training.freeze`); the CLI's ``--freeze encoder,attention`` is split into a list.
    n_trials, n_conditions : int, optional
        Fine-tuning budget: the first ``n_trials`` trials, or all trials of the first ``n_conditions``
        conditions, of the seeded order (default: all). ``n_trials=0``: no training (zero-shot).
    epochs, min_steps, lr, batch_size, seed
        Optimisation: ``epochs`` passes but at least ``min_steps`` steps; batch size defaults to the
        parent's, capped at the number of trials.
    subject_token : {"shared", "new", "mean"}
        Token of a subject the parent has not seen.
    unit : str, optional
        The fold of a several-unit parent run.
    init, pretrained, encoder_options
        Without a parent run: encoder name (e.g. ``"braindecode:Labram"``), local weights file and extra
        constructor options.
    features_train, features_test, features_normalized
        Feature files of the new data (default ``DATA/features/``, else the parent's files, which
        must then have one row per condition of ``data``).
    val_fraction : float, optional
        Fraction of the new training concepts held out for model selection (default: the parent's).
    eval_ks, eval_methods : lists, optional
        Evaluation settings (default: the parent's).
    accelerator : str
        Lightning accelerator (``"auto"``: CUDA when present).

    Examples
    --------
    >>> FinetuneConfig(data="imagery/", subject="sub-01", n_trials=50, freeze=["encoder"]).n_trials
    50
    """

    data: str
    subject: str
    freeze: list[str] = field(default_factory=list)
    n_trials: int | None = None
    n_conditions: int | None = None
    epochs: int = 30
    min_steps: int = 100
    lr: float = 1e-4
    batch_size: int | None = None
    seed: int = 0
    subject_token: str = "shared"
    unit: str | None = None
    init: str | None = None
    pretrained: str | None = None
    encoder_options: dict[str, Any] = field(default_factory=dict)
    features_train: str | None = None
    features_test: str | None = None
    features_normalized: bool | None = None
    val_fraction: float | None = None
    eval_ks: list[int] | None = None
    eval_methods: list[str] | None = None
    accelerator: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` on inconsistent values (message says which and how to fix); paths become str."""
        from eegvision.training.freeze import parse_freeze

        for name in ("data", "pretrained", "features_train", "features_test"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                setattr(self, name, str(value))  # a Path
        if not self.data:
            raise ValueError("data is empty; pass the store or THINGS-EEG2 folder of the new subject (--data).")
        if not isinstance(self.subject, str) or not self.subject:
            raise ValueError(f"subject must be a subject name such as 'sub-01' (--subject); got {self.subject!r}.")
        if self.subject_token not in SUBJECT_TOKENS:
            raise ValueError(f"subject_token must be one of {', '.join(SUBJECT_TOKENS)}; got {self.subject_token!r}.")
        if self.n_trials is not None and self.n_conditions is not None:
            raise ValueError("Give n_trials or n_conditions, not both.")
        for name in ("n_trials", "n_conditions"):
            v = getattr(self, name)
            if v is not None and int(v) < 0:
                raise ValueError(f"{name} must be >= 0, got {v}.")
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}.")
        if int(self.min_steps) < 0:
            raise ValueError(f"min_steps must be >= 0, got {self.min_steps}.")
        if not float(self.lr) > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 or None (the parent's), got {self.batch_size}.")
        if self.val_fraction is not None and not 0 < float(self.val_fraction) < 1:
            raise ValueError(f"val_fraction must be in (0, 1) or None (the parent's), got {self.val_fraction}.")
        if self.init is None and (self.pretrained is not None or self.encoder_options):
            raise ValueError(f"pretrained={self.pretrained!r} and encoder_options={self.encoder_options!r} build a "
                             "fresh encoder and need init (--init ENCODER, e.g. braindecode:Labram); a parent run "
                             "brings its own encoder.")
        self.freeze = parse_freeze(self.freeze)

    # -- JSON round trip -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        """Build from a dict; unknown keys raise ``ValueError`` with close matches."""
        check_names("FinetuneConfig field", list(d), [f.name for f in dataclasses.fields(cls)], "FinetuneConfig")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> FinetuneConfig:
        """Parse JSON text, or read a JSON file."""
        p = Path(text_or_path) if not str(text_or_path).lstrip().startswith("{") else None
        return cls.from_dict(json.loads(p.read_text() if p is not None else str(text_or_path)))

    def replace(self, **changes: Any) -> FinetuneConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
