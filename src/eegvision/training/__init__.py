"""eegvision.training: contrastive training of EEG encoders (Lightning), run directories, presets.

>>> from eegvision.training import FitConfig, fit, load_run, evaluate_run
>>> run = fit(FitConfig(data="store/", subjects=["sub-01"], encoder="atms"), "runs/atms-sub-01")  # doctest: +SKIP
"""

from eegvision.data.sources import open_data
from eegvision.training.config import FitConfig
from eegvision.training.fit import fit
from eegvision.training.losses import LogitScale, Objective, info_nce, reference_clip_loss
from eegvision.training.presets import PRESETS, get_preset, list_presets, preset_config
from eegvision.training.run import TrainedRun, embed_run, evaluate_run, list_units, load_run

__all__ = [
    "FitConfig", "LogitScale", "Objective", "PRESETS", "TrainedRun", "embed_run", "evaluate_run", "fit",
    "get_preset", "info_nce", "list_presets", "list_units", "load_run", "open_data", "preset_config",
    "reference_clip_loss",
]
