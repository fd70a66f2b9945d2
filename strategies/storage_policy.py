"""The HaBa memory as an Avalanche storage policy: ``ReplayPlugin(mem_size, storage_policy=HabaBuffer(mem_size))``.

:class:`HabaBuffer` is an ``ExemplarsBuffer``: after each experience (``post_adapt``) it distils the
experience into its factorized memory exactly as :class:`~strategies.HabaReplayPlugin` does, and its
``buffer`` is an Avalanche classification dataset that enumerates every composable image — each stored
basis through each hallucinator of its experience — composed on demand (no gradients) when Avalanche's
``ReplayDataLoader`` draws it. Anything that takes a storage policy (``ReplayPlugin``, ``Replay``-style
templates) thereby replays from a HaBa memory of ``max_size`` images' worth of bytes.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training.storage_policy import ExemplarsBuffer
from torch.utils.data import Dataset

from .haba_replay import HabaReplayPlugin
from .memory import FactorizedMemory


class ComposedMemoryView(Dataset):
    """Every (basis, hallucinator of its part) pair of a memory as ``(image, label)``, composed on demand
    (Avalanche's dataset wrapper adds the task label)."""

    def __init__(self, memory: FactorizedMemory):
        self.memory = memory
        self.index: list[tuple[int, int, int]] = []  # (part, basis, hallucinator)
        targets, tasks = [], []
        for p, part in enumerate(memory.parts):
            syn = part.data.synthetic
            labels = syn.labels.detach().cpu().tolist()
            n_h = syn.num_hallucinators if syn.is_factorized else 1
            for b, y in enumerate(labels):
                for h in range(n_h):
                    self.index.append((p, b, h))
                    targets.append(int(y))
                    tasks.append(int(part.task_label))
        self.targets, self.task_labels = targets, tasks

    def __len__(self) -> int:
        return len(self.index)

    @torch.no_grad()
    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        p, b, h = self.index[int(i)]
        syn = self.memory.parts[p].data.synthetic
        dev = syn.bases.device
        idx = torch.tensor([b], device=dev)
        x = syn.compose(idx, torch.tensor([h], device=dev)) if syn.is_factorized else syn.compose(idx)
        return x[0].detach().cpu(), self.targets[i]


class HabaBuffer(ExemplarsBuffer):
    """An Avalanche storage policy holding a HaBa (factorized) memory of ``max_size`` images' worth of bytes.

    ``**plugin_kwargs`` are :class:`HabaReplayPlugin`'s options (``distill_config``, ``compute_budget``,
    ``input_normalization``, ``seed``, ``progress``, ...); ``.plugin.memory`` is the memory.
    """

    def __init__(self, max_size: int, **plugin_kwargs: Any):
        super().__init__(max_size)
        self.plugin = HabaReplayPlugin(max_size, **plugin_kwargs)

    @property
    def memory(self) -> FactorizedMemory | None:
        return self.plugin.memory

    def pre_adapt(self, agent: Any, exp: Any) -> None:
        """Check the memory plan before the experience trains (``BudgetError`` early)."""
        self.plugin.check_experience(exp)

    def post_adapt(self, agent: Any, exp: Any) -> None:
        """Distil ``exp`` into the memory and expose the composed memory as ``self.buffer``."""
        self.plugin._strategy = agent
        try:
            self.plugin.update_from(exp, getattr(agent, "device", None))
        finally:
            self.plugin._strategy = None
        self.plugin.memory.to("cpu")  # composed on demand inside data loaders (possibly worker processes)
        self.buffer = self._as_dataset()

    def _as_dataset(self):
        from avalanche.benchmarks.utils import _make_taskaware_classification_dataset

        view = ComposedMemoryView(self.plugin.memory)
        return _make_taskaware_classification_dataset(view, targets=view.targets, task_labels=view.task_labels)

    def resize(self, strategy: Any, new_size: int) -> None:
        """A new budget in images; applied at the next memory update's rebalancing."""
        self.max_size = int(new_size)
        self.plugin.mem_size = int(new_size)
        if self.plugin.memory is not None:
            self.plugin.memory.mem_size = int(new_size)
