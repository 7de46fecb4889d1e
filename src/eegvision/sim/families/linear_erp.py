"""The ``linear-erp`` family: a linear projection of the image features drives 12 ERP components (fixed scalp
pattern, Gaussian time course each) with per-trial latency jitter (15 ms) and gain noise (0.25), in mild noise
(smooth length 0.3, half independent sensor noise, AR(1) 0.5). ``docs/families.md`` specifies it."""

from __future__ import annotations

from eegvision.sim.families.erp import ErpFamily, ErpParams, erp_presets
from eegvision.sim.presets import Preset

__all__ = ["FAMILY"]

PARAMS = ErpParams(code="linear", signal=0.13, latency_sd=0.015, gain_sd=0.25,
                   noise_length=0.30, noise_white=0.50, noise_ar1=0.50)
DEFAULT = Preset("default", n_subjects=1, n_train_concepts=400, n_train_images=5, train_reps=4,
                 n_test_concepts=200, test_reps=20, n_sessions=1, feature_dim=768, write_raw=False)

FAMILY = ErpFamily("linear-erp", "linear feature projection -> 12 ERP components; latency jitter and gain noise",
                   PARAMS, erp_presets(DEFAULT), target=(0.6, 0.95))
