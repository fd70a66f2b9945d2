"""tqdm progress bars for distillation iterations, expert training and evaluation (stderr; silent with --quiet)."""

from __future__ import annotations

import sys

from tqdm import tqdm

from haba_core.loss_terms import shown_losses


class DistillProgress:
    """``on_step`` callback for :func:`haba_core.distill`: one bar over iterations with the loss terms.

    A resumed run starts the bar at the checkpoint's iteration, so the ETA counts only what is left.
    """

    def __init__(self, total: int, label: str, quiet: bool = False, terms: tuple[str, ...] | None = None):
        self.bar = None if quiet else tqdm(total=total, desc=label, unit="it", file=sys.stderr,
                                           dynamic_ncols=True, leave=True)
        self.terms = terms  # loss terms to show (``haba_core.loss_terms.active_loss_terms``); None = all
        self._started = False

    def __call__(self, iteration: int, losses: dict[str, float]) -> None:
        if self.bar is None:
            return
        if not self._started:
            self._started = True
            if iteration > 0:  # resumed: restart the clock and count from the checkpoint
                self.bar.reset(total=self.bar.total)
                self.bar.n = self.bar.initial = self.bar.last_print_n = iteration
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown_losses(losses, self.terms).items()}, refresh=False)
        self.bar.update(1)

    def complete(self) -> None:
        """The run returned: a resumed run whose checkpoint was already complete made no step — say so."""
        if self.bar is not None and not self._started:
            self.bar.n = self.bar.total
            self.bar.set_postfix_str("complete in the checkpoint", refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "DistillProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _EpochBar:
    """One bar over ``total`` epochs; subclasses say which keys the postfix shows. A context manager."""

    def __init__(self, total: int, desc: str, quiet: bool, initial: int = 0, leave: bool = True):
        self.bar = None if quiet or total == 0 else tqdm(total=total, initial=initial, desc=desc, unit="epoch",
                                                         file=sys.stderr, dynamic_ncols=True, leave=leave)

    def _tick(self, postfix: dict) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ExpertProgress(_EpochBar):
    """``on_epoch`` callback for :func:`haba_core.train_experts`: one bar over experts × epochs."""

    def __init__(self, experts: int, epochs: int, done: int = 0, quiet: bool = False):
        self.epochs = epochs
        super().__init__(experts * epochs, "experts", quiet, initial=done * epochs)

    def __call__(self, expert: int, epoch: int, loss: float) -> None:
        self._tick({"expert": expert, "epoch": epoch + 1, "loss": f"{loss:.4f}"})


class EvalProgress(_EpochBar):
    """``on_epoch`` callback for :func:`haba_core.evaluate`: one bar over runs × epochs of one architecture."""

    def __init__(self, runs: int, epochs: int, label: str, quiet: bool = False):
        self.epochs = epochs
        super().__init__(runs * epochs, label, quiet, leave=False)

    def __call__(self, run: int, epoch: int, loss: float) -> None:
        self._tick({"run": run + 1, "loss": f"{loss:.4f}"})
