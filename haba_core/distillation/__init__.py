"""Distillation: configuration, loop and checkpoints."""

from .config import DEFAULT_LR_BASES, DistillConfig
from .loop import distill, network_factory
from .plan import config_plan
from .phases import PHASES, PhaseClock, PhaseHook
from .recipes import DEFAULT_RECIPE, RECIPES, default_recipe_for, recipe, recipe_config

__all__ = ["DistillConfig", "DEFAULT_LR_BASES", "distill", "network_factory", "RECIPES", "DEFAULT_RECIPE", "default_recipe_for", "recipe",
           "recipe_config",
           "PHASES", "PhaseClock", "PhaseHook", "config_plan"]
