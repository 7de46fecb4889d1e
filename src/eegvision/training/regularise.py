"""Weight averaging and early stopping, as pure functions the training module calls.

* :func:`ema_update` -- one step of the exponential moving average of a model's weights,
  ``avg = decay * avg + (1 - decay) * live``, on every floating-point tensor of the state dict (parameters and
  buffers such as batch-norm statistics); integer buffers are copied.
* :func:`stop_early` -- the early-stopping rule on a training history: stop once the monitored validation
  metric has not improved (strictly) for ``patience`` validations. The best epoch is the first one reaching the
  best value, as the checkpoint that selects the model counts it, so the selected epoch stays the best
  validation one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["ema_update", "stop_early"]


@torch.no_grad()
def ema_update(average: nn.Module, live: nn.Module, decay: float) -> None:
    """Move ``average``'s weights towards ``live``'s: ``avg = decay * avg + (1 - decay) * live`` (in place)."""
    current = live.state_dict()
    for name, avg in average.state_dict().items():
        if avg.is_floating_point():
            avg.mul_(decay).add_(current[name].detach().to(avg.dtype), alpha=1.0 - decay)
        else:
            avg.copy_(current[name])


def stop_early(history: Sequence[Mapping[str, float | None]], monitor: str, patience: int | None) -> bool:
    """Whether ``monitor`` (``"val_top1"``: higher is better; ``"val_loss"``: lower) has not improved for
    ``patience`` validations in ``history`` (rows with that key; ``None`` patience: never).

    >>> curve = [{"val_top1": v} for v in (0.1, 0.3, 0.2, 0.25)]
    >>> stop_early(curve[:3], "val_top1", 2), stop_early(curve, "val_top1", 2)
    (False, True)
    """
    values = [float(r[monitor]) for r in history if r.get(monitor) is not None]
    if patience is None or not values:
        return False
    best = int(np.argmax(values)) if monitor == "val_top1" else int(np.argmin(values))  # the first best
    return len(values) - 1 - best >= int(patience)
