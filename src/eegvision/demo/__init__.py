"""eegvision.demo: the whole system end to end on the simulated world (what ``make demo`` runs).

* :mod:`.run` -- :func:`run_demo` (stages in order, seeded, timed, recorded in ``OUT/demo.json``);
* :mod:`.stages` -- one function per stage;
* :mod:`.records` -- :class:`StageRecord`, :class:`DemoResult`.
"""

from eegvision._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DEMO_SETTINGS": "run",
    "run_demo": "run",
    "headline_text": "run",
    "DemoResult": "records",
    "StageRecord": "records",
    "Skip": "records",
})
