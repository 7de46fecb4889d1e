"""Simulator families (issue #15; specified in ``docs/families.md``): several forward and noise models, each with
its own default size, a decoder that knows the model, and a target range for it.

* :mod:`.base` — the interface (:class:`Family`, :class:`Stimuli`, model and subject protocols);
* :mod:`.registry` — :func:`get_family`, :func:`list_families`;
* :mod:`.runner` — :func:`simulate_family`, the generic writer (THINGS-EEG2 layout, known-model and baseline
  scores in ``simulation.json``);
* :mod:`.erp`, :mod:`.noise` — the component-ERP mechanism, its exact Bayes decoder and matrix-normal AR(1) noise;
* one module per family: :mod:`.current` (``eegvision``, the simulator's own model), :mod:`.linear_erp`, :mod:`.ar1_noise`,
  :mod:`.few_images`, :mod:`.meg`, :mod:`.nonlinear` (held out).
"""

from eegvision.sim.families.base import Family, FamilyModel, FamilySubject, Stimuli
from eegvision.sim.families.registry import EEGVISION, get_family, list_families

__all__ = ["EEGVISION", "Family", "FamilyModel", "FamilySubject", "Stimuli", "get_family", "list_families"]
