"""Which parameters of an encoder train: parameter groups, freezing, frozen modules kept in eval mode.

Each encoder names its parts (:meth:`eegvision.models.encoders.base.EEGEncoder.module_groups`):
``head`` (the layers that map features to the embedding), ``encoder`` (the temporal-spatial
convolution or backbone), ``attention`` (transformer blocks) and ``subject`` (subject tables).
:func:`parameter_groups` puts every parameter in the group of the longest such name it lies under
(``other`` if none, e.g. a learnable ``logit_scale``), so nothing here knows an encoder's module names.

A freeze spec is ``"none"``, ``"all-but-head"`` or group names joined by commas
(``"encoder,attention"``). Frozen parameters get ``requires_grad=False`` and the largest submodules
holding only frozen parameters run in eval mode while training (:func:`keep_frozen_in_eval`: no
dropout, fixed BatchNorm statistics), so they stay unchanged bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from eegvision.checks import check_list, check_names

__all__ = ["FREEZE_GROUPS", "apply_freeze", "frozen_parameter_names", "keep_frozen_in_eval", "parameter_groups",
           "parse_freeze"]

#: Groups a freeze spec may name.
FREEZE_GROUPS = ("encoder", "attention", "subject", "head")


def parse_freeze(freeze: Sequence[str]) -> list[str]:
    """The groups of a freeze spec: ``[]`` for none (``[]`` or ``["none"]``), ``["all-but-head"]``, or names of
    :data:`FREEZE_GROUPS`.

    Raises ``ValueError`` naming the unknown words and the allowed ones.
    """
    spec = check_names("Freeze group", check_list("freeze", freeze, "['encoder', 'attention']"),
                       (*FREEZE_GROUPS, "none", "all-but-head"), "the groups eegvision can freeze")
    spec = [str(s) for s in spec]
    if spec in ([], ["none"]):
        return []
    if spec == ["all-but-head"]:
        return spec
    if "none" in spec or "all-but-head" in spec:
        raise ValueError(f"freeze {', '.join(spec)}: none and all-but-head stand alone; give one of them, or "
                         f"groups of {', '.join(FREEZE_GROUPS)}.")
    return spec


def parameter_groups(encoder: nn.Module) -> dict[str, list[str]]:
    """Parameter names of ``encoder`` by group: ``encoder``, ``attention``, ``subject``, ``head``, ``other``.

    Each parameter goes to the group of the longest name of ``encoder.module_groups()`` it lies under
    (see the module docstring); the lists are in ``named_parameters`` order.
    """
    if not callable(getattr(encoder, "module_groups", None)):
        raise TypeError(f"Parameter groups need an eegvision encoder (an EEGEncoder, which names its parts in "
                        f"module_groups()); got {type(encoder).__name__}. Build it with create_encoder().")
    owners = sorted(((name, group) for group, names in encoder.module_groups().items() for name in names),
                    key=lambda item: -len(item[0]))
    groups: dict[str, list[str]] = {g: [] for g in (*FREEZE_GROUPS, "other")}
    for n, _ in encoder.named_parameters():
        group = next((g for name, g in owners if n == name or n.startswith(name + ".")), "other")
        groups[group].append(n)
    return groups


def _encoder_name(encoder: nn.Module) -> str:
    return getattr(encoder, "name", "") or type(encoder).__name__


def frozen_parameter_names(encoder: nn.Module, freeze: Sequence[str]) -> list[str]:
    """Names of the parameters that ``freeze`` (``[]``, ``["all-but-head"]`` or a list of groups) fixes."""
    spec = parse_freeze(freeze)
    if not spec:
        return []
    groups = parameter_groups(encoder)
    if spec == ["all-but-head"]:
        if not groups["head"]:
            raise ValueError(f"Encoder {_encoder_name(encoder)!r} has no projector head to keep trainable; use "
                             "--freeze encoder or none.")
        return [n for g, ns in groups.items() if g != "head" for n in ns]
    out = []
    for s in spec:
        if not groups[s]:
            present = [g for g in FREEZE_GROUPS if groups[g]]
            raise ValueError(f"Encoder {_encoder_name(encoder)!r} has no {s!r} parameters to freeze; it has "
                             f"{present}.")
        out += groups[s]
    return sorted(set(out), key=[n for n, _ in encoder.named_parameters()].index)


def apply_freeze(encoder: nn.Module, frozen: list[str]) -> list[nn.Module]:
    """Set ``requires_grad=False`` on ``frozen`` (``True`` on the rest); return the largest submodules
    whose parameters are all frozen."""
    frozen_set = set(frozen)
    for n, p in encoder.named_parameters():
        p.requires_grad_(n not in frozen_set)
    modules, taken = [], []
    for name, m in encoder.named_modules():
        if not name or any(name.startswith(t + ".") for t in taken):
            continue
        params = [f"{name}.{n}" for n, _ in m.named_parameters()]
        if params and all(p in frozen_set for p in params):
            modules.append(m)
            taken.append(name)
    return modules


def keep_frozen_in_eval(modules: list[nn.Module]) -> Any:
    """A Lightning callback that puts ``modules`` in eval mode at the start of every training epoch and batch."""
    from lightning.pytorch.callbacks import Callback

    class KeepFrozenInEval(Callback):
        """Frozen submodules run in eval mode (no dropout, fixed BatchNorm statistics) while training."""

        def _set(self) -> None:
            for m in modules:
                m.eval()

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._set()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._set()

    return KeepFrozenInEval()
