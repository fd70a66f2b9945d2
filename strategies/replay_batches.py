"""How composed memory samples join a training minibatch.

Avalanche's supervised templates keep the current minibatch in ``strategy.mbatch`` as a list
``[x, y, ..., t]`` (inputs, targets, task labels last). :func:`mix_into_minibatch` appends the composed
samples to the inputs, targets and task labels (any other fields are extended by repeating their last
row, which keeps their length consistent). Everything downstream — the forward pass, the criterion,
Avalanche's minibatch metrics and other plugins — then sees one larger minibatch, exactly like the
``ReplayDataLoader`` of Avalanche's ``Replay`` produces it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def mix_into_minibatch(mbatch: list[Any], x: Tensor, y: Tensor, t: Tensor) -> list[Any]:
    """Return ``mbatch`` with ``(x, y, t)`` appended (data first, composed samples last).

    Inputs are cast to the minibatch's dtype/device, targets and task labels to theirs.
    """
    if len(mbatch) < 2:
        raise ValueError("a supervised minibatch needs at least inputs and targets")
    out = list(mbatch)
    mb_x, mb_y = out[0], out[1]
    if tuple(mb_x.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"memory samples have shape {tuple(x.shape[1:])}, the stream's inputs "
                         f"{tuple(mb_x.shape[1:])}; the memory must live in the model's input space")
    out[0] = torch.cat([mb_x, x.to(device=mb_x.device, dtype=mb_x.dtype)])
    out[1] = torch.cat([mb_y, y.to(device=mb_y.device, dtype=mb_y.dtype)])
    if len(out) >= 3:
        mb_t = out[-1]
        out[-1] = torch.cat([mb_t, t.to(device=mb_t.device, dtype=mb_t.dtype)])
        for i in range(2, len(out) - 1):  # unknown extra fields: pad with their last row
            extra = out[i]
            if isinstance(extra, Tensor) and extra.ndim >= 1 and extra.shape[0] == mb_x.shape[0]:
                out[i] = torch.cat([extra, extra[-1:].expand(x.shape[0], *extra.shape[1:])])
    return out
