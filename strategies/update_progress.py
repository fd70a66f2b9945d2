"""Progress of a memory update: a tqdm bar on stderr and the strategy's own Avalanche loggers.

During the distillation of an experience the bar shows iterations, elapsed time and the loss terms the
recipe actually computes; when the update ends, ``MemoryUpdate/...`` metric values (iterations run,
seconds, final loss terms, stored bytes) go through the strategy's ``EvaluationPlugin`` to its loggers
(``InteractiveLogger``, ``TextLogger``, ``TensorboardLogger``, ``WandBLogger``, ...).
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from haba_core import shown_losses


class UpdateProgress:
    """``on_step`` callback for ``haba_core.distill`` during one experience's memory update."""

    def __init__(self, total: int, experience: int, terms: tuple[str, ...], show_bar: bool):
        self.terms = terms
        self.iterations = 0
        self.last: dict[str, float] = {}
        self.bar = None
        if show_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"memory update, experience {experience}", unit="it",
                            file=sys.stderr, dynamic_ncols=True, leave=False)

    def __call__(self, iteration: int, losses: dict[str, float]) -> None:
        self.iterations += 1
        self.last = shown_losses(losses, self.terms)
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in self.last.items()}, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def publish_update(strategy: Any, plugin: Any, entry: dict[str, Any]) -> None:
    """Send one memory update's numbers to the strategy's loggers as Avalanche ``MetricValue``s."""
    evaluator = getattr(strategy, "evaluator", None)
    loggers = list(getattr(evaluator, "loggers", None) or [])
    if evaluator is None:
        return
    from avalanche.evaluation.metric_results import MetricValue

    x = int(getattr(strategy.clock, "train_iterations", entry["experience"])) if hasattr(strategy, "clock") \
        else int(entry["experience"])
    values = {"iterations": entry["distill_iterations"], "seconds": entry["distill_seconds"],
              "stored_bytes": entry["stored_bytes"], "bases_per_class": entry["bpc"],
              **{f"loss_{k}": v for k, v in entry.get("final_losses", {}).items()}}
    mvals = [MetricValue(plugin, f"MemoryUpdate/{k}/Exp{int(entry['experience']):03d}", float(v), x)
             for k, v in values.items() if v is not None]
    for mv in mvals:
        if hasattr(evaluator, "publish_metric_value"):
            evaluator.publish_metric_value(mv)
    for logger in loggers:
        logger.log_metrics(mvals)


def bar_wanted(verbose: bool, progress: Optional[bool]) -> bool:
    """A bar when asked (``progress=True``), or with ``verbose`` unless ``progress=False``."""
    return bool(verbose) if progress is None else bool(progress)
