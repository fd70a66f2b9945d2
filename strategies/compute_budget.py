"""How much compute one memory update (the distillation of one experience) may spend.

A :class:`ComputeBudget` caps the distillation iterations and/or the wall-clock seconds of every
experience's memory update; whichever is reached first ends it (the distilled set so far is kept).
``"auto"`` picks by device: on CUDA the paper's scale (the ``DistillConfig``'s own iterations, 1000 by
default, no time cap); on a CPU :data:`CPU_BUDGET`, sized from measurements (``docs/continual.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch

from haba_core import ConfigError


@dataclass(frozen=True)
class ComputeBudget:
    """Per-experience caps: ``iterations`` (``None``: the config's) and ``seconds`` (``None``: no time cap)."""

    iterations: Optional[int] = None
    seconds: Optional[float] = None

    def __post_init__(self) -> None:
        if self.iterations is not None and int(self.iterations) < 1:
            raise ConfigError(f"the iteration budget must be >= 1, got {self.iterations}")
        if self.seconds is not None and not float(self.seconds) > 0:
            raise ConfigError(f"the time budget must be > 0 seconds, got {self.seconds}")

    def apply(self, iterations: int, time_limit_s: Optional[float]) -> tuple[int, Optional[float]]:
        """The tighter of this budget and a config's ``(iterations, time_limit_s)``."""
        its = iterations if self.iterations is None else min(int(iterations), int(self.iterations))
        limits = [t for t in (time_limit_s, self.seconds) if t is not None]
        return its, (min(float(t) for t in limits) if limits else None)

    def describe(self) -> str:
        parts = [f"{self.iterations} iterations" if self.iterations else "the config's iterations"]
        if self.seconds:
            parts.append(f"{self.seconds:g} s")
        return " or ".join(parts) + " per experience"


#: On CUDA: the paper's scale (the config's 1000 DM iterations per experience, no time cap).
GPU_BUDGET = ComputeBudget()
#: On a CPU: 60 DM iterations (the Split CIFAR-10 setting measured in BENCHMARKS.md) and at most 2 minutes
#: per experience, whichever comes first (width 128 measured 4-5 s per iteration on a busy 2-core CPU; docs/continual.md).
CPU_BUDGET = ComputeBudget(iterations=60, seconds=120.0)

BudgetSpec = Union[ComputeBudget, str, None]


def resolve_budget(spec: BudgetSpec, device: Union[str, torch.device]) -> ComputeBudget:
    """``"auto"`` → :data:`GPU_BUDGET` on CUDA, :data:`CPU_BUDGET` elsewhere; ``None`` → no cap."""
    if spec is None:
        return ComputeBudget()
    if isinstance(spec, ComputeBudget):
        return spec
    if isinstance(spec, str) and spec.lower() == "auto":
        return GPU_BUDGET if torch.device(device).type == "cuda" else CPU_BUDGET
    raise ConfigError(f"compute_budget must be a ComputeBudget, 'auto' or None, got {spec!r}")
