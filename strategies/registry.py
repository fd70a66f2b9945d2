"""The strategies ``haba-cl`` compares, by name: one :class:`StrategySpec` line each (no Avalanche import here).

Adding a strategy = a builder function (``build(name, spec, common, options) -> BuiltStrategy``, see
:mod:`strategies.baselines`) + one line in :data:`REGISTRY`. The memory strategies all get the same bytes
(``mem_size`` images).

``haba``    HaBa replay: :class:`strategies.HabaReplayPlugin` (factorized DM-distilled memory).
``haba-shared`` HaBa replay with one hallucinator bank for the whole stream (learned on the first
            experience, frozen afterwards, its bytes paid once; ``share_hallucinators=True``).
``distilled-plain`` the same plugin with ``parameterization="plain"``: plain DM-distilled images, no
            factorization (``haba-cl`` still accepts its old name ``dm``).
``idc``     the same plugin with ``parameterization="idc"``: 2× down-sampled DM-distilled images, no
            hallucinators (the strongest simple baseline at equal bytes in BENCHMARKS.md).
``replay``  Avalanche's ``ReplayPlugin`` with its class-balanced random buffer (``ClassBalancedBuffer``) on
            ``Naive`` — the class-balanced twin of Avalanche's ``Replay``, honouring ``batch_size_mem``.
``er``      Avalanche's own ``Replay`` strategy as shipped (experience-balanced buffer).
``herding`` Avalanche's ``ReplayPlugin`` with its ``ParametricBuffer(groupby="class")`` and
            ``HerdingSelectionStrategy`` (iCaRL herding) on the model's L2-normalised penultimate features.
``gdumb``   Avalanche's ``GDumb`` (class-balanced greedy memory, model retrained from scratch on it).
``lwf``     Avalanche's ``LwF`` (distillation from the previous model; no memory).
``ewc``     Avalanche's ``EWC`` (weight importance; no image memory).
``naive``   fine-tuning without memory (lower bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Callable, Optional

from haba_core import UnknownNameError


@dataclass(frozen=True)
class StrategySpec:
    """How to build one strategy, and what its memory is."""

    builder: str
    """``"module:function"``, imported when the strategy is built; a leading dot is relative to ``strategies``."""
    memory: bool = False
    """Keeps a memory of the stream (reported at equal bytes)."""
    image_buffer: bool = False
    """Stores real images: ``mem_size`` must cover one per class."""
    distilled: bool = False
    """A distilled memory: the HaBa plugin with :attr:`parameterization`."""
    parameterization: Optional[str] = None
    """The distilled memory's parameterization (None = the distillation config's)."""
    share_hallucinators: bool = False
    """A distilled memory with one hallucinator bank for the whole stream."""

    def load_builder(self) -> Callable:
        module, function = self.builder.split(":")
        return getattr(import_module(module, __package__), function)


REGISTRY: dict[str, StrategySpec] = {
    "haba": StrategySpec(".baselines:build_distilled", memory=True, distilled=True),
    "replay": StrategySpec(".baselines:build_buffer_replay", memory=True, image_buffer=True),
    "herding": StrategySpec(".baselines:build_buffer_replay", memory=True, image_buffer=True),
    "distilled-plain": StrategySpec(".baselines:build_distilled", memory=True, distilled=True,
                                    parameterization="plain"),
    "idc": StrategySpec(".baselines:build_distilled", memory=True, distilled=True, parameterization="idc"),
    "haba-shared": StrategySpec(".baselines:build_distilled", memory=True, distilled=True, share_hallucinators=True),
    "naive": StrategySpec(".baselines:build_naive"),
    "er": StrategySpec(".baselines:build_er", memory=True, image_buffer=True),
    "gdumb": StrategySpec(".baselines:build_gdumb", memory=True, image_buffer=True),
    "lwf": StrategySpec(".baselines:build_lwf"),
    "ewc": StrategySpec(".baselines:build_ewc"),
}

STRATEGIES = tuple(REGISTRY)
MEMORY_STRATEGIES = tuple(n for n, s in REGISTRY.items() if s.memory)
IMAGE_BUFFERS = tuple(n for n, s in REGISTRY.items() if s.image_buffer)
#: the distilled-memory strategies: the HaBa plugin with another parameterization (None = the config's)
DISTILLED = {n: s.parameterization for n, s in REGISTRY.items() if s.distilled}


def check_strategies(names: str | list[str]) -> list[str]:
    """Lower-cased, de-duplicated names (comma-separated or a list); :class:`UnknownNameError` for any other."""
    items = [s.strip().lower() for s in (names.split(",") if isinstance(names, str) else names) if s.strip()]
    if not items:
        raise UnknownNameError(f"no strategy given; known: {','.join(STRATEGIES)}")
    for s in items:
        if s not in STRATEGIES:
            raise UnknownNameError(f"unknown strategy {s!r}; known: {', '.join(STRATEGIES)}")
    return list(dict.fromkeys(items))


__all__ = ["StrategySpec", "REGISTRY", "STRATEGIES", "MEMORY_STRATEGIES", "IMAGE_BUFFERS", "DISTILLED",
           "check_strategies"]
