"""Checks before any work starts: does the requested budget make sense for this training set and fit in memory?"""

from __future__ import annotations

import math
from pathlib import Path

from haba_core import BudgetError, DistillConfig, ImageDataset, Plan

# A distillation step holds the bases with their gradients and optimiser state, and the composed images of
# the step with their activations and gradients; this factor covers both, generously.
MEMORY_FACTOR = 8


# Share of the bases an IPC budget holds that the hallucinators may displace before haba-distill suggests IDC.
# Measured (BENCHMARKS.md, issue 14, CIFAR-10): displacing 2 of 8 down-sampled bases per class (IPC-2) IDC led
# every factorized row on validation under DM and DC; 2 of 44 (IPC-11), a fixed factorization led IDC. The
# threshold sits between the two; it only prints a note.
BANK_SHARE_NOTE = 0.15


def bank_share_note(plan: Plan) -> str | None:
    """A note when the hallucinators displace a large share of the bases the budget would hold (``None``
    otherwise): spent on bases instead (``--param idc``), those bytes scored higher at such shares."""
    if not plan.num_hallucinators or not plan.budget_parameters:
        return None
    fit = plan.budget_parameters // (plan.storage.num_classes * math.prod(plan.basis_shape))
    if fit < 1 or (fit - plan.bpc) / fit < BANK_SHARE_NOTE:
        return None
    return (f"the hallucinators take the bytes of {fit - plan.bpc} of the {fit} bases per class this budget holds "
            f"({(fit - plan.bpc) / fit:.0%}); at such shares --param idc (those bytes spent on bases) scored "
            f"higher on validation in every cell measured (BENCHMARKS.md, issue 14): check with --val-per-class")


def unused_budget_note(plan: Plan, fill: Plan) -> str | None:
    """A note when ``fill`` (the same request under ``budget_rule="fill"``) stores more of the budget than ``plan``
    (``None`` otherwise) — which the fill rule does only where ``plan`` leaves ``FILL_MIN_UNUSED`` of it unused."""
    budget = plan.budget_parameters
    if not budget or not plan.num_hallucinators:
        return None
    used, filled = plan.storage.data_parameters, fill.storage.data_parameters
    if filled <= used:
        return None
    return (f"{plan.num_hallucinators} hallucinators and {plan.bpc} bases per class store {used / budget:.1%} of the "
            f"budget; --budget-rule fill stores {filled / budget:.1%} with {fill.num_hallucinators} and "
            f"{fill.bpc} bases per class")


def available_memory() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes (``None`` where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_budget(cfg: DistillConfig, bpc: int, basis_shape: tuple[int, int, int], train: ImageDataset,
                 available: int | None = None) -> None:
    """:class:`BudgetError` if ``ipc`` exceeds the largest class of ``train`` or the synthetic set of ``bpc``
    bases per class (composed through ``hallucinators_per_step`` hallucinators) cannot fit in memory."""
    largest = max(train.samples_per_class())
    if cfg.ipc is not None and cfg.ipc > largest:
        raise BudgetError(f"ipc {cfg.ipc} asks for more synthetic images per class than the largest class of the "
                          f"training set holds ({largest}); use at most {largest}")
    n = bpc * train.num_classes
    per_step = max(1, cfg.hallucinators_per_step) if cfg.factorized else 1
    need = MEMORY_FACTOR * 4 * (n * math.prod(basis_shape) + n * per_step * math.prod(train.image_shape))
    have = available_memory() if available is None else available
    if have is not None and need > have:
        raise BudgetError(f"{bpc} bases per class x {train.num_classes} classes need about {need / 2**30:.1f} GiB, "
                          f"{have / 2**30:.1f} GiB of memory is available; lower ipc/bpc")
