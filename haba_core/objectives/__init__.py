"""Distillation objectives (L_DD): one interface, one file each."""

from __future__ import annotations

from ..errors import UnknownNameError
from .base import NetworkFactory, Objective, ObjectiveContext, RealPool, seeded_network
from .dc import DCConfig, DCObjective
from .dm import DMConfig, DMObjective
from .dsa import DSAObjective
from .experts import ExpertConfig, load_buffer, train_experts
from .mtt import MTTConfig, MTTObjective

OBJECTIVES = ("dc", "dsa", "dm", "mtt")


def check_objective(name: str) -> str:
    key = name.lower()
    if key not in OBJECTIVES:
        raise UnknownNameError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    return key


__all__ = ["OBJECTIVES", "check_objective", "Objective", "ObjectiveContext", "RealPool", "NetworkFactory",
           "seeded_network", "DCConfig", "DCObjective", "DSAObjective", "DMConfig", "DMObjective", "MTTConfig",
           "MTTObjective", "ExpertConfig", "train_experts", "load_buffer"]
