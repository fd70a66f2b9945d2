"""Factorization: bases, hallucinators and their batched composition."""

from .hallucinator import HallucinatorBank, HallucinatorConfig, hallucinator_parameter_count
from .synthetic_set import PARAMETERIZATIONS, SyntheticSet, check_parameterization

__all__ = ["HallucinatorBank", "HallucinatorConfig", "hallucinator_parameter_count", "PARAMETERIZATIONS",
           "SyntheticSet", "check_parameterization"]
