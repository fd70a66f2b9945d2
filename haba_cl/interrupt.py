"""Graceful Ctrl-C: the first SIGINT asks the running distillation to stop after its current iteration
(it checkpoints and raises ``DistillationInterrupted``); a second one — or the first outside a
distillation — aborts at once with ``KeyboardInterrupt``."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator


class StopFlag:
    """``should_stop`` for :func:`haba_core.distill`, set by the SIGINT handler."""

    def __init__(self) -> None:
        self.requested = False
        self.graceful = False  # True while a distillation that can checkpoint is running
        self.phase = "the run"  # what is running, for messages

    def __call__(self) -> bool:
        return self.requested

    @contextmanager
    def distilling(self) -> Iterator[None]:
        self.graceful = True
        try:
            yield
        finally:
            self.graceful = False

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.graceful and not self.requested:
            self.requested = True
            print("\nstopping after the current iteration (press Ctrl-C again to abort now)...",
                  file=sys.stderr, flush=True)
            return
        raise KeyboardInterrupt


@contextmanager
def sigint_handler(flag: StopFlag) -> Iterator[StopFlag]:
    """Install ``flag``'s SIGINT handler for the duration of the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, flag._handle)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
