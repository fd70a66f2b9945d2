"""The documented ``federated.task`` import path (docs/federated.md), kept for compatibility.

Each concept has its own module now; import from there in new code:
:mod:`~federated.run_config` (keys, defaults, validation), :mod:`~federated.distill_settings` (the
``DistillConfig`` of a run config), :mod:`~federated.data_cache` (splits loaded once per process),
:mod:`~federated.partitioning` (IID / Dirichlet-α partitions), :mod:`~federated.node_runtime` (device,
threads), :mod:`~federated.model` (global model, evaluation), :mod:`~federated.expectation` (what a valid
payload looks like), :mod:`~federated.conversion` (FactorizedDataset ↔ uploaded tensors).
"""

from .conversion import drop_classes, to_factorized
from .data_cache import load_run_split, load_split
from .distill_settings import distill_config
from .expectation import PayloadExpectation, expected_payload, normalised_span
from .model import build_model, evaluate_model, preprocessor_for, state_dict_cpu
from .node_runtime import resolve_device, set_threads
from .partitioning import dirichlet_proportions, load_partition, node_partition, partition_indices
from .run_config import (CLIENT_KEYS, DEFAULT_RUN_CONFIG, DEFENCES, DEPRECATED_KEYS, MODES, PARTITIONINGS,
                         check_run_config, client_config, known_keys, resolve_run_config)

__all__ = ["drop_classes", "to_factorized", "load_run_split", "load_split", "distill_config", "PayloadExpectation",
           "expected_payload", "normalised_span", "build_model", "evaluate_model", "preprocessor_for",
           "state_dict_cpu", "resolve_device", "set_threads", "dirichlet_proportions", "load_partition",
           "node_partition", "partition_indices", "CLIENT_KEYS", "DEFAULT_RUN_CONFIG", "DEFENCES", "DEPRECATED_KEYS",
           "MODES", "PARTITIONINGS", "check_run_config", "client_config", "known_keys", "resolve_run_config"]
