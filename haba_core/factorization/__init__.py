"""Factorization: bases, hallucinators and their batched composition. The stored result built on it,
:class:`~haba_core.FactorizedDataset`, lives one level up in :mod:`haba_core.factorized_dataset` (it also
needs the budget and the file schema, which themselves need this package)."""

from .hallucinator import (HallucinatorBank, HallucinatorConfig, hallucinator_parameter_count, pca_shifts,
                           within_class_directions)
from .synthetic_set import PARAMETERIZATIONS, SyntheticSet, check_parameterization

__all__ = ["HallucinatorBank", "HallucinatorConfig", "hallucinator_parameter_count", "pca_shifts", "within_class_directions", "PARAMETERIZATIONS",
           "SyntheticSet", "check_parameterization"]
