"""The simulator families by name: :func:`get_family`, :func:`list_families`.

Each family is one module exposing ``FAMILY`` (a :class:`~eegvision.sim.families.base.Family`); adding one is a
new module and a line in ``_MODULES``.
"""

from __future__ import annotations

from eegvision.sim.families import ar1_noise, current, few_images, linear_erp, meg, nonlinear
from eegvision.sim.families.base import Family
from eegvision.utils import close_matches

__all__ = ["EEGVISION", "get_family", "list_families"]

#: The default family: the simulator's own model.
EEGVISION = "eegvision"

_MODULES = (current, linear_erp, ar1_noise, few_images, meg, nonlinear)
_FAMILIES: dict[str, Family] = {m.FAMILY.name: m.FAMILY for m in _MODULES}


def list_families(include_held_out: bool = True) -> list[Family]:
    """Every registered family, in registry order (the held-out ones last when included)."""
    fams = list(_FAMILIES.values())
    return [f for f in fams if not f.held_out] + ([f for f in fams if f.held_out] if include_held_out else [])


def get_family(name: str | Family) -> Family:
    """The family called ``name`` (a :class:`Family` is returned as is)."""
    if isinstance(name, Family):
        return name
    if name not in _FAMILIES:
        hint = close_matches(name, list(_FAMILIES))
        raise ValueError(f"Unknown simulator family {name!r}; choose one of {', '.join(_FAMILIES)}"
                         + (f" (did you mean {hint[0]!r}?)" if hint else "") + ". See docs/families.md.")
    return _FAMILIES[name]
