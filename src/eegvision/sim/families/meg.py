"""The ``meg`` family: the linear component-ERP code on 271 MEG sensors (dipolar field patterns), 201 samples at
200 Hz; 250 concepts × 4 images × 2 repetitions for training, 200 × 12 for test (THINGS-MEG's test
repetitions). ``docs/families.md`` specifies it."""

from __future__ import annotations

from eegvision.sim.families.erp import ErpFamily, ErpParams, erp_presets
from eegvision.sim.presets import Preset

__all__ = ["FAMILY"]

PARAMS = ErpParams(code="linear", signal=0.20, latency_sd=0.015, gain_sd=0.25, sensors="meg",
                   noise_length=0.25, noise_white=0.30, noise_ar1=0.85)
DEFAULT = Preset("default", n_subjects=1, n_train_concepts=250, n_train_images=4, train_reps=2,
                 n_test_concepts=200, test_reps=12, n_sessions=1, feature_dim=768, write_raw=False)

FAMILY = ErpFamily("meg", "linear ERP code on 271 MEG sensors (dipolar fields), 201 samples at 200 Hz",
                   PARAMS, erp_presets(DEFAULT, n_train_concepts=20, n_test_concepts=30), target=(0.6, 0.95))
