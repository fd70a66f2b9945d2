"""Distillation: configuration, loop and checkpoints."""

from .config import DEFAULT_LR_BASES, DistillConfig
from .loop import distill, network_factory
from .recipes import RECIPES, recipe, recipe_config

__all__ = ["DistillConfig", "DEFAULT_LR_BASES", "distill", "network_factory", "RECIPES", "recipe", "recipe_config"]
