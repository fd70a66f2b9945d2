"""Data augmentation: differentiable siamese augmentation (DSA)."""

from .dsa import DSA, DSAConfig, DSAParams, parse_strategy

__all__ = ["DSA", "DSAConfig", "DSAParams", "parse_strategy"]
