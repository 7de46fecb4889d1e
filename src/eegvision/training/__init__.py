"""eegvision.training: contrastive training of EEG encoders (Lightning), run folders, presets.

>>> from eegvision.training import FitConfig, fit, load_run, evaluate_run
>>> result = fit(FitConfig(data="store/", subjects=["sub-01"], encoder="atms"), "runs/atms-sub-01")  # doctest: +SKIP
>>> result.run.unit().read_history()                                                       # doctest: +SKIP

The training loop lives in :mod:`eegvision.training.fitting` (the package exports its :func:`fit`), the
run folder's files in :mod:`eegvision.training.rundir`.
"""

from eegvision.data.sources import open_data
from eegvision.training.config import FitConfig
from eegvision.training.fitting import FitResult, fit
from eegvision.training.losses import LogitScale, Objective, info_nce, reference_clip_loss
from eegvision.training.presets import PRESETS, get_preset, list_presets, preset_config
from eegvision.training.run import RunEmbeddings, TrainedRun, embed_run, evaluate_run, load_run
from eegvision.training.rundir import RunFolder, UnitFolder

__all__ = [
    "FitConfig", "FitResult", "LogitScale", "Objective", "PRESETS", "RunEmbeddings", "RunFolder", "TrainedRun",
    "UnitFolder", "embed_run", "evaluate_run", "fit", "get_preset", "info_nce", "list_presets", "load_run",
    "open_data", "preset_config", "reference_clip_loss",
]
