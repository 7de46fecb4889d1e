"""The simulator families by name: :func:`get_family`, :func:`list_families`.

Each family is one module exposing ``FAMILY`` (a :class:`~eegvision.sim.families.base.Family`); adding one is a
new module, its import here and its entry in ``_FAMILIES``.
"""

from __future__ import annotations

from eegvision.checks import check_name
from eegvision.sim.families.ar1_noise import FAMILY as AR1_NOISE
from eegvision.sim.families.base import Family
from eegvision.sim.families.cross_subject import FAMILY as CROSS_SUBJECT
from eegvision.sim.families.current import FAMILY as CURRENT
from eegvision.sim.families.few_images import FAMILY as FEW_IMAGES
from eegvision.sim.families.linear_erp import FAMILY as LINEAR_ERP
from eegvision.sim.families.meg import FAMILY as MEG
from eegvision.sim.families.nonlinear import FAMILY as NONLINEAR
from eegvision.sim.families.pixel_erp import FAMILY as PIXEL_ERP

__all__ = ["EEGVISION", "get_family", "list_families"]

#: The default family: the simulator's own model.
EEGVISION = "eegvision"

_FAMILIES: dict[str, Family] = {f.name: f for f in (CURRENT, LINEAR_ERP, AR1_NOISE, FEW_IMAGES, MEG, CROSS_SUBJECT,
                                                   PIXEL_ERP, NONLINEAR)}


def list_families(include_held_out: bool = True) -> list[Family]:
    """Every registered family, in registry order (the held-out ones last when included)."""
    fams = list(_FAMILIES.values())
    return [f for f in fams if not f.held_out] + ([f for f in fams if f.held_out] if include_held_out else [])


def get_family(name: str | Family) -> Family:
    """The family called ``name`` (a :class:`Family` is returned as is)."""
    if isinstance(name, Family):
        return name
    check_name("Simulator family", name, list(_FAMILIES), "the simulator families (docs/families.md)")
    return _FAMILIES[name]
