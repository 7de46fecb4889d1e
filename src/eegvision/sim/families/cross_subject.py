"""The ``cross-subject`` family: the linear component-ERP code of ``linear-erp`` in a population whose subjects
differ much more — scalp patterns moved (blob centres perturbed by N(0, 0.30^2) per coordinate instead of 0.08),
component gains e^{N(0, 0.5^2)} instead of e^{N(0, 0.2^2)}, latency offsets N(0, 30 ms^2) instead of 8 ms — so
that a decoder trained on some subjects meets a differently mixed, scaled and delayed brain in an unseen one.
Four subjects by default, for leave-one-subject-out. ``docs/families.md`` specifies it (written and committed
before any subject-aware recipe was run on it)."""

from __future__ import annotations

from eegvision.sim.families.erp import ErpFamily, ErpParams, erp_presets
from eegvision.sim.presets import Preset

__all__ = ["FAMILY"]

PARAMS = ErpParams(code="linear", signal=0.13, latency_sd=0.015, gain_sd=0.25,
                   noise_length=0.30, noise_white=0.50, noise_ar1=0.50,
                   subject_pattern_sd=0.30, subject_gain_sd=0.50, subject_latency_sd=0.030)
DEFAULT = Preset("default", n_subjects=4, n_train_concepts=1000, n_train_images=1, train_reps=4,
                 n_test_concepts=100, test_reps=10, n_sessions=1, feature_dim=768, write_raw=False)

FAMILY = ErpFamily("cross-subject", "linear ERP code; subjects differ in scalp patterns, gains and latency "
                   "(4 subjects, for leave-one-subject-out)", PARAMS,
                   erp_presets(DEFAULT, n_subjects=4, n_train_concepts=40, n_test_concepts=30),
                   target=(0.6, 0.95))
