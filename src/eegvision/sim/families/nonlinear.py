"""The ``nonlinear`` family — **held out**: never used to choose anything, reported separately.

A rectified random mixing of the projected features (:math:`u = \\mathrm{std}(W_2\\lvert W_1 v + b_1\\rvert)`, 48
hidden units) drives the 12 ERP components; jitter, gain noise and noise as in ``linear-erp`` but milder jitter.
``docs/families.md`` specifies it.
"""

from __future__ import annotations

from eegvision.sim.families.erp import ErpFamily, ErpParams, erp_presets
from eegvision.sim.presets import Preset

__all__ = ["FAMILY"]

PARAMS = ErpParams(code="rectified", hidden=48, signal=0.12, latency_sd=0.015, gain_sd=0.25,
                   noise_length=0.30, noise_white=0.50, noise_ar1=0.50)
DEFAULT = Preset("default", n_subjects=1, n_train_concepts=400, n_train_images=5, train_reps=4,
                 n_test_concepts=200, test_reps=20, n_sessions=1, feature_dim=768, write_raw=False)

FAMILY = ErpFamily("nonlinear", "rectified random mixing of the features -> 12 ERP components (HELD OUT)",
                   PARAMS, erp_presets(DEFAULT), target=(0.6, 0.95), held_out=True)
