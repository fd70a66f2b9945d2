"""The objective registry: what the distillation loop, its configuration and the CLIs need to know about
each objective, in one place.

Adding an objective is one file that defines it and calls :func:`register`, plus one import line in
``haba_core/objectives/__init__.py``. Its settings travel in an existing ``DistillConfig`` table or in the
objective's own defaults; the shared tests (``tests/test_objective_contract.py``) pick it up from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor

from ..errors import UnknownNameError
from .base import Objective, ObjectiveContext

# build(distill_config, context, expert_trajectories) -> Objective
ObjectiveBuilder = Callable[[Any, ObjectiveContext, "list[Tensor] | None"], Objective]


@dataclass(frozen=True)
class ObjectiveSpec:
    """One registered objective.

    ``lr_bases``: learning rate of the synthetic data when ``DistillConfig.lr_bases`` is unset.
    ``dsa``: ``"always"`` (the objective is defined with DSA), ``"default-on"`` / ``"default-off"`` (what
    ``DistillConfig.dsa = None`` means). ``dm_scaled_lr``: under ``hallucinator_lr_rule="dm-scaled"`` the
    hallucinators learn at η_B/100. ``stored_numbers``: numbers stored beside the synthetic set (MTT's learned
    lr), charged to the budget. ``needs_trajectories``: it matches expert trajectories (an expert buffer).
    """

    name: str
    build: ObjectiveBuilder
    lr_bases: float
    dsa: str = "default-off"
    dm_scaled_lr: bool = False
    stored_numbers: int = 0
    needs_trajectories: bool = False
    summary: str = ""

    def uses_dsa(self, requested: bool | None) -> bool:
        """Whether a run with ``DistillConfig.dsa = requested`` augments with DSA."""
        if self.dsa == "always":
            return True
        if requested is None:
            return self.dsa == "default-on"
        return bool(requested)


_REGISTRY: dict[str, ObjectiveSpec] = {}


def register(spec: ObjectiveSpec) -> ObjectiveSpec:
    """Add ``spec`` to the registry (a name can be registered once)."""
    key = spec.name.lower()
    if key in _REGISTRY:
        raise ValueError(f"objective {key!r} is already registered")
    if spec.dsa not in ("always", "default-on", "default-off"):
        raise ValueError(f"objective {key!r}: dsa must be always|default-on|default-off, got {spec.dsa!r}")
    _REGISTRY[key] = spec
    return spec


def objective_names() -> tuple[str, ...]:
    """Registered objective names, in registration order."""
    return tuple(_REGISTRY)


def check_objective(name: str) -> str:
    """The registered name for ``name`` (case-insensitive); unknown names raise :class:`UnknownNameError`."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise UnknownNameError(f"unknown objective {name!r}; known: {', '.join(_REGISTRY)}")
    return key


def objective_spec(name: str) -> ObjectiveSpec:
    """The :class:`ObjectiveSpec` registered as ``name``."""
    return _REGISTRY[check_objective(name)]
