"""Factorization: bases, hallucinators and their batched composition; the stored result, :class:`FactorizedDataset`,
lives in :mod:`.factorized_dataset` (imported from ``haba_core``)."""

from .hallucinator import (HallucinatorBank, HallucinatorConfig, hallucinator_parameter_count, pca_shifts,
                           within_class_directions)
from .synthetic_set import PARAMETERIZATIONS, SyntheticSet, check_parameterization

__all__ = ["HallucinatorBank", "HallucinatorConfig", "hallucinator_parameter_count", "pca_shifts", "within_class_directions", "PARAMETERIZATIONS",
           "SyntheticSet", "check_parameterization"]
