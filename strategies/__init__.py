"""Avalanche 0.6 adapters: HaBa (factorized) replay memory for continual learning.

Imports only ``haba_core`` (plus avalanche and torch). See ``docs/continual.md``.
"""

from .compute_budget import CPU_BUDGET, GPU_BUDGET, ComputeBudget, resolve_budget
from .haba_replay import DEFAULT_CL_RECIPE, HabaReplay, HabaReplayPlugin, default_cl_config, paper_cl_config
from .memory import FactorizedMemory, MemoryPart, MemoryPlan, preserved_rng
from .replay_batches import mix_into_minibatch
from .storage_policy import ComposedMemoryView, HabaBuffer

__all__ = ["HabaReplay", "HabaReplayPlugin", "HabaBuffer", "ComposedMemoryView", "ComputeBudget", "CPU_BUDGET",
           "GPU_BUDGET", "resolve_budget", "DEFAULT_CL_RECIPE", "default_cl_config", "paper_cl_config",
           "FactorizedMemory", "MemoryPart", "MemoryPlan", "preserved_rng", "mix_into_minibatch"]
