"""Distillation: configuration, loop and checkpoints."""

from .config import DEFAULT_LR_BASES, DistillConfig
from .loop import distill, network_factory

__all__ = ["DistillConfig", "DEFAULT_LR_BASES", "distill", "network_factory"]
