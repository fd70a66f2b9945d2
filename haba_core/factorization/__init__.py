"""Factorization: bases, hallucinators and their batched composition."""

from .hallucinator import (HallucinatorBank, HallucinatorConfig, hallucinator_parameter_count, pca_shifts,
                           within_class_directions)
from .synthetic_set import PARAMETERIZATIONS, SyntheticSet, check_parameterization

__all__ = ["HallucinatorBank", "HallucinatorConfig", "hallucinator_parameter_count", "pca_shifts", "within_class_directions", "PARAMETERIZATIONS",
           "SyntheticSet", "check_parameterization"]
