"""Reduced-precision forward passes for the distillation loop (``DistillConfig.precision``).

``"fp32"`` runs everything in float32 (the paper). ``"bf16"`` runs the forward passes of the distillation
network (inside the objective) and of the adversary under :func:`torch.autocast` with bfloat16: convolutions
and matrix products take bfloat16 inputs and their backward passes follow, while the learnable tensors
(bases, hallucinators, network weights, MTT's lr) stay float32 and losses are computed from float32 outputs
(objectives call ``.float()`` on network outputs; a no-op in float32). Composition (the hallucinators) and
the optimizer steps stay in float32.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

PRECISIONS = ("fp32", "bf16")


def forward_precision(precision: str, device: torch.device) -> ContextManager:
    """The context the network forward passes of one phase run in: nothing for ``"fp32"``, bfloat16
    autocast on ``device``'s type for ``"bf16"``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be {'|'.join(PRECISIONS)}, got {precision!r}")
