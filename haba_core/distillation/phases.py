"""A timing/profiling hook for the distillation iteration: named phases, entered one after another.

``distill(..., phase_hook=hook)`` calls ``hook(name)`` at the start of each phase of every iteration and uses
the returned context manager for that phase (e.g. ``torch.profiler.record_function``, or
:class:`PhaseClock` below), so tools time the loop without patching its functions.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, ContextManager

# the phases of one iteration (Alg. 1), in order; each is entered at most once per iteration
PHASES = ("compose", "objective", "cosine", "backward", "optimizer", "adversary", "after_update")

PhaseHook = Callable[[str], ContextManager]


class PhaseSequence:
    """Enters the hook's context for one phase at a time (entering a phase closes the previous one)."""

    def __init__(self, hook: PhaseHook | None):
        self.hook = hook
        self._open: ContextManager | None = None

    def enter(self, name: str) -> None:
        self.close()
        if self.hook is not None:
            self._open = self.hook(name)
            self._open.__enter__()

    def close(self) -> None:
        if self._open is not None:
            cm, self._open = self._open, None
            cm.__exit__(None, None, None)


class PhaseClock:
    """A hook that sums CPU seconds (``time.process_time``) and wall seconds per phase over all iterations.

    On CUDA pass ``synchronize=torch.cuda.synchronize`` so that queued kernels count for their phase."""

    def __init__(self, synchronize: Callable[[], None] | None = None):
        self.cpu_s: dict[str, float] = {}
        self.wall_s: dict[str, float] = {}
        self.synchronize = synchronize

    @contextlib.contextmanager
    def __call__(self, name: str):
        if self.synchronize:
            self.synchronize()
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize:
                self.synchronize()
            self.cpu_s[name] = self.cpu_s.get(name, 0.0) + time.process_time() - c0
            self.wall_s[name] = self.wall_s.get(name, 0.0) + time.perf_counter() - w0
