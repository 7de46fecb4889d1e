"""The ``ar1-noise`` family: the ``linear-erp`` code and components in strong, unwhitened noise — spatially
smooth (length 1.5 on the unit sphere: nearly global fields; 5 % independent sensor noise) and strongly AR(1)
in time (0.95 per sample at 250 Hz, an 80 ms correlation time). ``docs/families.md`` specifies it."""

from __future__ import annotations

from eegvision.sim.families.erp import ErpFamily, ErpParams, erp_presets
from eegvision.sim.presets import Preset

__all__ = ["FAMILY"]

PARAMS = ErpParams(code="linear", signal=0.10, latency_sd=0.010, gain_sd=0.20,
                   noise_length=1.50, noise_white=0.05, noise_ar1=0.95)
DEFAULT = Preset("default", n_subjects=1, n_train_concepts=400, n_train_images=5, train_reps=4,
                 n_test_concepts=200, test_reps=20, n_sessions=1, feature_dim=768, write_raw=False)

FAMILY = ErpFamily("ar1-noise", "linear ERP code in strongly smooth, AR(1) (0.95) noise, not whitened",
                   PARAMS, erp_presets(DEFAULT), target=(0.6, 0.95))
