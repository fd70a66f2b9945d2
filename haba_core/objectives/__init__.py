"""Distillation objectives (L_DD): one interface, one file each, listed in :mod:`.registry`.

A new objective is one file that registers an :class:`ObjectiveSpec` and one import line below.
"""

from __future__ import annotations

from .base import NetworkFactory, Objective, ObjectiveContext, RealPool, seeded_network
from .registry import ObjectiveSpec, check_objective, objective_names, objective_spec, register
from .dc import DCConfig, DCObjective  # noqa: I001  (import order = registration order = listing order)
from .dsa import DSAObjective
from .dm import DMConfig, DMObjective
from .mtt import MTTConfig, MTTObjective
from .experts import (ExpertConfig, buffer_val_per_class, check_buffer_split, load_buffer, read_buffer_info,
                      train_experts)

OBJECTIVES = objective_names()  # the built-in objectives; objective_names() also lists ones registered later

__all__ = ["OBJECTIVES", "ObjectiveSpec", "check_objective", "objective_names", "objective_spec", "register",
           "Objective", "ObjectiveContext", "RealPool", "NetworkFactory",
           "seeded_network", "DCConfig", "DCObjective", "DSAObjective", "DMConfig", "DMObjective", "MTTConfig",
           "MTTObjective", "ExpertConfig", "train_experts", "load_buffer",
           "buffer_val_per_class", "check_buffer_split", "read_buffer_info"]
