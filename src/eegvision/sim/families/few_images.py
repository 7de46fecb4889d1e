"""The ``few-images`` family: the linear component-ERP code at a low single-trial SNR with 1000 training images
(250 concepts × 4 images × 4 repetitions). ``docs/families.md`` specifies it."""

from __future__ import annotations

from eegvision.sim.families.erp import ErpFamily, ErpParams, erp_presets
from eegvision.sim.presets import Preset

__all__ = ["FAMILY"]

PARAMS = ErpParams(code="linear", signal=0.14, latency_sd=0.015, gain_sd=0.25,
                   noise_length=0.40, noise_white=0.30, noise_ar1=0.80)
DEFAULT = Preset("default", n_subjects=1, n_train_concepts=250, n_train_images=4, train_reps=4,
                 n_test_concepts=200, test_reps=20, n_sessions=1, feature_dim=768, write_raw=False)

FAMILY = ErpFamily("few-images", "linear ERP code, low single-trial SNR, 1000 training images",
                   PARAMS, erp_presets(DEFAULT), target=(0.3, 0.8))
