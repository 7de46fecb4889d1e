"""``tune``: a seeded, resumable Optuna search for a training recipe, scored on held-out training concepts.

Each trial is a :func:`~eegvision.training.fitting.fit` of the base config with some fields drawn from a
:class:`TuneSpace` (encoder, its dropout options, weight decay, learning rate, epochs, averaging / mixing /
single trials, the augmentations, weight averaging) into its own run folder ``TUNE/trials/NNNN/``. The
objective is the validation top-1 of the selected epoch (``selection.json`` ``val_top1``, mean over the run's
units): the held-out *training* concepts of the base config's validation split. Test metrics are still written
in each trial's run folder (a run always evaluates its selected model) but the search never reads them.

* **Seeded.** Trial ``i`` draws its parameters with a ``TPESampler`` seeded from ``(seed, i)`` and built afresh
  for that trial, so the parameters are a function of the seed and the trials before it only.
* **Pruned.** Every epoch's validation top-1 of the trial's first model is reported to Optuna; a
  ``MedianPruner`` (5 startup trials, 2 warm-up epochs) stops a trial below the median of earlier trials at the
  same epoch (state ``PRUNED``; it counts as a finished trial). ``prune=False`` turns it off.
* **Stored and resumable.** The study lives in ``TUNE/study.db`` (SQLite). Running ``tune`` again on the same
  folder continues until ``n_trials`` trials have ended (complete, pruned or failed); 2 trials then a resume to
  3 give the same trials as 3 at once. A trial interrupted mid-way is marked failed and run again with the same
  parameters. The folder records the base config, space and seed (``tune.json``) and refuses another.
* **Time budget.** With ``timeout_s`` no new trial starts once that many seconds have passed (a running trial
  finishes).
* **Result.** ``TUNE/best_config.json`` is the best trial's FitConfig (highest value; the lowest trial number
  among ties): ``eegvision fit --config TUNE/best_config.json --out NEW`` trains that trial again, with the same
  metrics on CPU. ``TUNE/trials.csv`` lists every trial.

>>> base = FitConfig(data="store/", subjects=["sub-01"], epochs=20)             # doctest: +SKIP
>>> result = tune(base, "tune/sub-01", n_trials=30, timeout_s=3600)              # doctest: +SKIP
>>> result.best_value, result.best_config_path                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.callbacks import Callback

from eegvision import __version__
from eegvision.checks import check_choice, check_int, check_list, check_range
from eegvision.training.config import FitConfig
from eegvision.training.rundir import TuneFolder

__all__ = ["TRAINING_DATA", "TuneResult", "TuneSpace", "tune"]

#: How a trial trains: averaged repetitions, random mixtures of them (RepetitionMix), or single trials.
TRAINING_DATA = {"average": {"average_train": True, "mix_repetitions": False},
                 "mix": {"average_train": False, "mix_repetitions": True},
                 "single": {"average_train": False, "mix_repetitions": False}}
_STUDY_NAME = "eegvision-tune"
_IGNORED = frozenset({"progress", "num_workers"})  # base-config fields a resumed search may change


@dataclass
class TuneSpace:
    """What :func:`tune` searches over; a field set to ``None`` is not searched (the base config's value stays).

    Parameters
    ----------
    encoders : list of str
        Encoder names (each starts from no encoder options, except the base config's encoder, which keeps them).
    training_data : list of str
        Among ``"average"`` (``average_train``), ``"mix"`` (``mix_repetitions``) and ``"single"`` (single trials).
    epochs : list of int
        Choices of ``epochs``.
    lr, weight_decay : [low, high]
        Log-uniform ranges.
    dropout : [low, high]
        Uniform range, given to every constructor option of the chosen encoder whose name holds ``dropout``
        (searched only for encoders that have one).
    time_shift : [low, high]
        Integer range of the largest time shift in samples (keep ``high`` below the epoch length).
    amplitude_scale, channel_dropout, noise : [low, high]
        Uniform ranges of the augmentations (:mod:`eegvision.data.augment`).
    ema_decay : list
        Choices of ``ema_decay`` (``None``: no weight averaging).
    """

    encoders: list[str] | None = field(default_factory=lambda: ["stconv", "nice", "eegproject"])
    training_data: list[str] | None = field(default_factory=lambda: ["average", "mix", "single"])
    epochs: list[int] | None = field(default_factory=lambda: [10, 20, 40])
    lr: list[float] | None = field(default_factory=lambda: [1e-4, 3e-3])
    weight_decay: list[float] | None = field(default_factory=lambda: [1e-4, 0.3])
    dropout: list[float] | None = field(default_factory=lambda: [0.0, 0.6])
    time_shift: list[int] | None = field(default_factory=lambda: [0, 10])
    amplitude_scale: list[float] | None = field(default_factory=lambda: [0.0, 0.2])
    channel_dropout: list[float] | None = field(default_factory=lambda: [0.0, 0.3])
    noise: list[float] | None = field(default_factory=lambda: [0.0, 0.5])
    ema_decay: list[float | None] | None = field(default_factory=lambda: [None, 0.99, 0.999])

    def __post_init__(self) -> None:
        from eegvision.models.registry import resolve_name

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                value = check_list(f.name, value, "[0.0, 0.5]" if f.name not in ("encoders", "training_data")
                                   else "['stconv', 'nice']")
                if not value:
                    raise ValueError(f"The search space's {f.name} is empty; give None (null) to keep the base "
                                     "config's value, or at least one value.")
                setattr(self, f.name, value)
        for name in self.encoders or []:
            resolve_name(name)
        for name in self.training_data or []:
            check_choice("training_data", name, list(TRAINING_DATA))
        for e in self.epochs or []:
            check_int("epochs", e, minimum=1)
        for d in self.ema_decay or []:
            if d is not None:
                check_range("ema_decay", d, 0.0, 1.0, include_low=False)
        ints = ("time_shift",)
        bounds = {"lr": (0, None), "weight_decay": (0, None), "dropout": (0.0, 1.0), "time_shift": (0, None),
                  "amplitude_scale": (0.0, None), "channel_dropout": (0.0, 1.0), "noise": (0.0, None)}
        for name, (low, high) in bounds.items():
            pair = getattr(self, name)
            if pair is None:
                continue
            if len(pair) != 2 or pair[0] > pair[1]:
                raise ValueError(f"The search space's {name} is a range [low, high] with low <= high; got {pair}.")
            for v in pair:
                if name in ints:
                    check_int(name, v, minimum=0)
                elif name in ("lr", "weight_decay"):
                    check_range(name, v, 0.0, float("inf"), include_low=False, hint="It is searched on a log scale.")
                else:
                    check_range(name, v, low, float("inf") if high is None else high)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TuneSpace:
        """Build from a dict; unknown keys raise ``ValueError`` with close matches."""
        from eegvision.checks import check_names

        check_names("TuneSpace field", list(d), [f.name for f in dataclasses.fields(cls)], "TuneSpace")
        return cls(**d)


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` returns.

    Attributes
    ----------
    folder : TuneFolder
        The tuning folder.
    trials : list of dict
        Every trial: ``number``, ``state`` (COMPLETE, PRUNED, FAIL), ``value`` (validation top-1 or None),
        ``params``, ``path`` (its run folder), ``error``.
    best_number, best_value, best_params
        The best complete trial.
    best_config : FitConfig
        Its config (also ``best_config.json``).
    """

    folder: TuneFolder
    trials: list[dict]
    best_number: int
    best_value: float
    best_params: dict[str, Any]
    best_config: FitConfig

    @property
    def path(self) -> Path:
        """The tuning folder's path."""
        return self.folder.path

    @property
    def best_config_path(self) -> Path:
        """``best_config.json``."""
        return self.folder.best_config_path

    @property
    def best_run(self) -> Path:
        """The run folder of the best trial."""
        return self.folder.trial_run(self.best_number).path


class PruningReporter(Callback):
    """Report each validation top-1 of the first model a trial trains to the Optuna trial; raise
    ``optuna.TrialPruned`` when the pruner says so (later models of the trial, e.g. further units, only train)."""

    def __init__(self, trial: Any) -> None:
        self.trial, self.fits = trial, 0

    def on_fit_start(self, trainer: Any, module: Any) -> None:
        self.fits += 1

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        import optuna

        if self.fits != 1 or trainer.sanity_checking or not module.history:
            return
        row = module.history[-1]
        self.trial.report(float(row["val_top1"]), step=int(row["epoch"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"validation top-1 {row['val_top1']:.4f} at epoch {row['epoch']} is below "
                                     "the median of earlier trials")


def suggest(trial: Any, base: FitConfig, space: TuneSpace) -> FitConfig:
    """The trial's config: ``base`` with the fields ``space`` searches drawn by ``trial``."""
    from eegvision.models.registry import resolve_name

    changes: dict[str, Any] = {}
    encoder = base.encoder
    if space.encoders:
        encoder = trial.suggest_categorical("encoder", space.encoders)
        changes["encoder"] = encoder
        changes["encoder_options"] = dict(base.encoder_options) if encoder == base.encoder else {}
    if space.dropout:
        cls, _ = resolve_name(encoder)
        names = [p for p in inspect.signature(cls.__init__).parameters if "dropout" in p]
        if names:
            value = _suggest_float(trial, "dropout", space.dropout)
            changes["encoder_options"] = {**changes.get("encoder_options", base.encoder_options),
                                          **{n: value for n in names}}
    if space.training_data:
        changes.update(TRAINING_DATA[trial.suggest_categorical("training_data", space.training_data)])
    if space.epochs:
        changes["epochs"] = int(trial.suggest_categorical("epochs", space.epochs))
    for name in ("lr", "weight_decay"):
        if getattr(space, name):
            changes[name] = _suggest_float(trial, name, getattr(space, name), log=True)
    if space.time_shift:
        low, high = space.time_shift
        changes["time_shift"] = int(trial.suggest_int("time_shift", low, high)) if low < high else int(low)
    for name in ("amplitude_scale", "channel_dropout", "noise"):
        if getattr(space, name):
            changes[name] = _suggest_float(trial, name, getattr(space, name))
    if space.ema_decay:
        changes["ema_decay"] = trial.suggest_categorical("ema_decay", space.ema_decay)
    return base.replace(**changes)


def _suggest_float(trial: Any, name: str, pair: list[float], log: bool = False) -> float:
    low, high = float(pair[0]), float(pair[1])
    return float(trial.suggest_float(name, low, high, log=log)) if low < high else low


def _sampler_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


@contextlib.contextmanager
def _optuna_logging(verbose: bool) -> Iterator[None]:
    import warnings

    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def _check_folder(folder: TuneFolder, record: dict) -> None:
    """Refuse a folder that holds another search (or something else)."""
    if not folder.exists():
        if folder.path.exists() and any(folder.path.iterdir()):
            raise FileExistsError(f"{folder.path} exists and holds no eegvision search ({folder.record_path.name}). "
                                  "Choose a new --out folder or an empty one.")
        return
    old = folder.read_record()
    old_base = FitConfig.from_dict(old["base"])
    diff = old_base.differences(FitConfig.from_dict(record["base"]), ignore=_IGNORED)
    what = [f"base config {k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items())]
    what += [f"{k}: {old.get(k)!r} -> {record[k]!r}" for k in ("space", "seed") if old.get(k) != record[k]]
    if what:
        raise FileExistsError(f"{folder.path} holds a search with another setup ({'; '.join(what)}). Resume it with "
                              "the same base config, space and seed, or choose a new --out folder.")


def tune(base: FitConfig, out: str | os.PathLike, n_trials: int, timeout_s: float | None = None,
         space: TuneSpace | None = None, seed: int = 0, *, prune: bool = True) -> TuneResult:
    """Search training recipes for ``base`` on its validation split; write the best as ``best_config.json``.

    Parameters
    ----------
    base : FitConfig
        Data, subjects, features, protocol, batch size, validation split and every field the space leaves alone.
    out : path
        The tuning folder (new, empty, or one this function wrote with the same base, space and seed).
    n_trials : int
        The number of trials the study should hold when this call returns (a resumed study runs the rest).
    timeout_s : float, optional
        Start no new trial after this many seconds.
    space : TuneSpace, optional
        What to search (default :class:`TuneSpace()`).
    seed : int
        Seed of the sampler (the trials train with ``base.seed``).
    prune : bool
        Stop unpromising trials early (median rule on per-epoch validation top-1).

    Returns
    -------
    TuneResult
    """
    import optuna
    from optuna.trial import TrialState

    base.validate()
    space = space if space is not None else TuneSpace()
    n_trials = check_int("n_trials", n_trials, minimum=1)
    if timeout_s is not None:
        check_range("timeout_s", timeout_s, 0.0, float("inf"), include_low=False)
    if base.devices not in (1, "1") or base.strategy not in ("auto",):
        raise ValueError(f"tune trains its trials one after another on one device; got devices={base.devices!r}, "
                         f"strategy={base.strategy!r}. Leave --devices and --strategy at their defaults.")
    folder = TuneFolder(Path(out))
    record = {"base": base.to_dict(), "space": space.to_dict(), "seed": int(seed)}
    _check_folder(folder, record)
    folder.write_record({**record, "eegvision_version": __version__, "study": _STUDY_NAME})
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2) if prune else optuna.pruners.NopPruner()

    def objective(trial: Any) -> float:
        from eegvision.training.fitting import fit

        try:
            cfg = suggest(trial, base, space)
            run = folder.trial_run(trial.number)
            trial.set_user_attr("config", cfg.to_dict())
            trial.set_user_attr("path", str(run.path))
            if run.path.exists():  # left by a study.db that was deleted: this folder belongs to the search
                shutil.rmtree(run.path)
            fit(cfg, run.path, callbacks=[PruningReporter(trial)])
            values = [u.read_selection().get("val_top1") for u in run.units()]
            return float(np.mean([v for v in values if v is not None]))
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            raise

    start = time.monotonic()
    with _optuna_logging(base.progress):
        while True:
            ended, running = _trials_by_state(folder, pruner)
            if running:  # interrupted trials: mark them failed and run their parameters again
                study = _open_study(folder, pruner, seed, len(ended))
                for t in running:
                    study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                    study.enqueue_trial(t.params, user_attrs={"rerun_of": t.number})
            if len(ended) >= n_trials or (timeout_s is not None and time.monotonic() - start >= timeout_s):
                break
            study = _open_study(folder, pruner, seed, len(ended))
            study.optimize(objective, n_trials=1, catch=(Exception,))
        return _result(folder, pruner)


def _open_study(folder: TuneFolder, pruner: Any, seed: int, index: int) -> Any:
    import optuna

    sampler = optuna.samplers.TPESampler(seed=_sampler_seed(seed, index))
    return optuna.create_study(storage=folder.storage_url, study_name=_STUDY_NAME, direction="maximize",
                               sampler=sampler, pruner=pruner, load_if_exists=True)


def _trials_by_state(folder: TuneFolder, pruner: Any) -> tuple[list, list]:
    from optuna.trial import TrialState

    trials = _open_study(folder, pruner, 0, 0).get_trials(deepcopy=False)
    ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
             or (t.state == TrialState.FAIL and "error" in t.user_attrs)]
    running = [t for t in trials if t.state == TrialState.RUNNING]
    return ended, running


def _result(folder: TuneFolder, pruner: Any) -> TuneResult:
    from optuna.trial import TrialState

    trials = _open_study(folder, pruner, 0, 0).get_trials(deepcopy=False)
    rows = [{"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
             "path": t.user_attrs.get("path"), "error": t.user_attrs.get("error")} for t in trials]
    folder.write_trials_table([{k: v for k, v in r.items() if k != "params"} | {f"param_{k}": v for k, v in
                                                                               r["params"].items()} for r in rows])
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        errors = [r["error"] for r in rows if r["error"]]
        raise RuntimeError(f"No trial of the search in {folder.path} completed ({len(rows)} trial(s): "
                           f"{', '.join(sorted({r['state'] for r in rows})) or 'none'})."
                           + (f" The first error: {errors[0]}" if errors else " Run more trials (--n-trials)."))
    best = max(complete, key=lambda t: (t.value, -t.number))
    config = FitConfig.from_dict(best.user_attrs["config"])
    config.to_file(folder.best_config_path)
    return TuneResult(folder=folder, trials=rows, best_number=best.number, best_value=float(best.value),
                      best_params=dict(best.params), best_config=config)
