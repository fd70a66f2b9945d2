"""Avalanche 0.6 adapters: HaBa (factorized) replay memory for continual learning, and the engines of
``haba-cl`` (the strategies it compares, their registry, the class-incremental split benchmarks).

Imports only ``haba_core`` (plus avalanche and torch). See ``docs/continual.md``. The names below load their
module on first use, so that ``strategies.registry`` and ``strategies.split_benchmarks`` stay light (no
Avalanche import) for a command line's parser.
"""

from importlib import import_module
from typing import Any

_HOME = {
    "CPU_BUDGET": "compute_budget", "GPU_BUDGET": "compute_budget", "ComputeBudget": "compute_budget",
    "resolve_budget": "compute_budget", "DEFAULT_CL_RECIPE": "haba_replay", "HabaReplay": "haba_replay",
    "HabaReplayPlugin": "haba_replay", "default_cl_config": "haba_replay", "paper_cl_config": "haba_replay",
    "FactorizedMemory": "memory", "MemoryPart": "memory", "MemoryPlan": "memory", "preserved_rng": "memory",
    "mix_into_minibatch": "replay_batches", "ComposedMemoryView": "storage_policy", "HabaBuffer": "storage_policy",
}

__all__ = ["HabaReplay", "HabaReplayPlugin", "HabaBuffer", "ComposedMemoryView", "ComputeBudget", "CPU_BUDGET",
           "GPU_BUDGET", "resolve_budget", "DEFAULT_CL_RECIPE", "default_cl_config", "paper_cl_config",
           "FactorizedMemory", "MemoryPart", "MemoryPlan", "preserved_rng", "mix_into_minibatch"]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
