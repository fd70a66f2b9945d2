"""The storage plan a :class:`DistillConfig` run follows: one call for every entry point (the loop, the CLI's
preflight, the federated server's payload check), so they cannot disagree."""

from __future__ import annotations

from ..budget import Plan, plan_budget
from ..objectives import objective_spec
from .config import DistillConfig


def config_plan(config: DistillConfig, image_shape: tuple[int, int, int], num_classes: int,
                rule: str | None = None) -> Plan:
    """:func:`plan_budget` for ``config`` on images of ``image_shape`` and ``num_classes`` classes; ``rule``
    replaces ``config.budget_rule`` (e.g. to compare a plan with the one ``"fill"`` would make)."""
    return plan_budget(image_shape=tuple(image_shape), num_classes=num_classes,
                       parameterization=config.parameterization, ipc=config.ipc if config.bpc is None else None,
                       bpc=config.bpc, hallucinators=config.hallucinators, hallucinator=config.hallucinator,
                       basis_channels=config.basis_channels, downsample=config.downsample,
                       per_class_hallucinators=config.per_class_hallucinators, rule=rule or config.budget_rule,
                       extra=objective_spec(config.objective).stored_numbers)
