"""The strategies ``haba-cl`` compares, all at the same memory bytes (``mem_size`` images of float32 numbers).

``haba``    HaBa replay: :class:`strategies.HabaReplayPlugin` (factorized DM-distilled memory).
``dm``      the same plugin with ``parameterization="plain"``: plain DM-distilled images, no factorization.
``replay``  Avalanche's ``ReplayPlugin`` with a class-balanced random buffer (``ClassBalancedBuffer``)
            — Avalanche's ``Replay`` strategy itself has no storage-policy argument, so this is ``Naive``
            plus that plugin, which is what ``Replay`` does with its default experience-balanced buffer.
``herding`` the same ``ReplayPlugin`` with :class:`HerdingClassBalancedBuffer`: per class, exemplars chosen
            by herding (``haba_core.coreset.herding_select``) on the model's L2-normalised features.
``naive``   fine-tuning without memory (lower bound).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from avalanche.training import Naive
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer, ExemplarsBuffer
from torch.utils.data import DataLoader

from haba_core import (BudgetError, ConfigError, DistillConfig, FactorizedDataset, Preprocessor, SyntheticSet,
                       UnknownNameError)
from haba_core.coreset import herding_select
from strategies import HabaReplay, HabaReplayPlugin

STRATEGIES = ("haba", "replay", "herding", "dm", "naive")
MEMORY_STRATEGIES = ("haba", "replay", "herding", "dm")


def check_strategies(names: str | list[str]) -> list[str]:
    items = [s.strip().lower() for s in (names.split(",") if isinstance(names, str) else names) if s.strip()]
    if not items:
        raise UnknownNameError(f"no strategy given; known: {','.join(STRATEGIES)}")
    for s in items:
        if s not in STRATEGIES:
            raise UnknownNameError(f"unknown strategy {s!r}; known: {', '.join(STRATEGIES)}")
    return list(dict.fromkeys(items))


def _balanced_lengths(total: int, classes: list[int]) -> dict[int, int]:
    """``total`` slots split equally over ``classes`` (the remainder to the first ones), like Avalanche."""
    base, rem = divmod(total, max(1, len(classes)))
    return {c: base + (1 if i < rem else 0) for i, c in enumerate(classes)}


@torch.no_grad()
def _features(strategy: Any, dataset: Any, batch_size: int = 256) -> torch.Tensor:
    """Penultimate features of the strategy's model on ``dataset`` (eval view), L2-normalised as in iCaRL.

    Networks that do not support ``return_features=True`` fall back to flattened inputs.
    """
    model = strategy.model
    was_training = model.training
    model.eval()
    ds = dataset.eval()
    feats = []
    try:
        for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=getattr(ds, "collate_fn", None)):
            x = batch[0].to(strategy.device)
            try:
                _, f = model(x, return_features=True)
            except TypeError:
                f = x
            feats.append(F.normalize(f.flatten(1).float(), dim=1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(feats)


class HerdingClassBalancedBuffer(ExemplarsBuffer):
    """Class-balanced exemplars selected by herding on the current model's features (iCaRL-style).

    A new class's exemplars are selected right after its experience, ranked by herding; when the memory is
    rebalanced for new classes, each old class keeps its first (best-ranked) exemplars.
    """

    def __init__(self, max_size: int, feature_batch_size: int = 256):
        super().__init__(max_size)
        self.feature_batch_size = feature_batch_size
        self.class_data: dict[int, Any] = {}

    def post_adapt(self, agent: Any, exp: Any) -> None:
        self._select(agent, exp.dataset)

    def update(self, strategy: Any, **kwargs: Any) -> None:
        self._select(strategy, strategy.experience.dataset)

    def _select(self, strategy: Any, data: Any) -> None:
        targets = torch.as_tensor([int(t) for t in data.targets])
        new = sorted(set(targets.tolist()))
        seen = sorted(set(self.class_data) | set(new))
        quota = _balanced_lengths(self.max_size, seen)
        for c in new:
            idx = torch.nonzero(targets == c).flatten().tolist()
            candidates = data.subset(idx)
            if c in self.class_data:  # a recurring class competes with its old exemplars
                candidates = self.class_data[c].concat(candidates)
            k = min(quota[c], len(candidates))
            if k == 0:
                self.class_data.pop(c, None)
                continue
            order = herding_select(_features(strategy, candidates, self.feature_batch_size), k)
            self.class_data[c] = candidates.subset(order.tolist())
        for c in list(self.class_data):
            if len(self.class_data[c]) > quota.get(c, 0):
                self.class_data[c] = self.class_data[c].subset(list(range(quota.get(c, 0))))
        parts = [self.class_data[c] for c in sorted(self.class_data) if len(self.class_data[c])]
        buffer = parts[0]
        for p in parts[1:]:
            buffer = buffer.concat(p)
        self.buffer = buffer

    def resize(self, strategy: Any, new_size: int) -> None:
        self.max_size = new_size


def buffer_as_factorized(buffer: Any, num_classes: int, image_shape: tuple[int, int, int]) -> FactorizedDataset:
    """An Avalanche replay buffer (real images) as a plain :class:`FactorizedDataset` (model input space)."""
    ds = buffer.eval()
    xs, ys = [], []
    for batch in DataLoader(ds, batch_size=512, shuffle=False, collate_fn=getattr(ds, "collate_fn", None)):
        xs.append(batch[0].detach().cpu().float())
        ys.append(batch[1].detach().cpu().long())
    if not xs:
        raise ConfigError("the replay buffer is empty")
    synth = SyntheticSet(torch.cat(xs), torch.cat(ys), image_shape, num_classes)
    c = image_shape[0]
    return FactorizedDataset(synth, Preprocessor((0.0,) * c, (1.0,) * c), [str(i) for i in range(num_classes)],
                             {"objective": "buffer", "parameterization": "plain"})


class BalancedReplayPlugin(ReplayPlugin):
    """Avalanche's ``ReplayPlugin``, updating its storage policy through ``post_adapt`` (the non-deprecated API)."""

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.storage_policy.post_adapt(strategy, strategy.experience)


class BuiltStrategy:
    """An Avalanche strategy plus how to reach its memory (for the DM protocol and saving)."""

    def __init__(self, name: str, strategy: Any, plugin: Any = None, storage: Any = None):
        self.name, self.strategy, self.plugin, self.storage = name, strategy, plugin, storage

    def memory_data(self, num_classes: int, image_shape: tuple[int, int, int]):
        """The memory as a FactorizedDataset/Collection, or None (naive, or empty)."""
        if self.plugin is not None:
            mem = self.plugin.memory
            return None if mem is None or not mem.parts else mem.collection()
        if self.storage is not None and len(self.storage.buffer):
            return buffer_as_factorized(self.storage.buffer, num_classes, image_shape)
        return None

    def memory_bytes(self) -> Optional[int]:
        if self.plugin is not None:
            return None if self.plugin.memory is None else self.plugin.memory.storage().bytes
        if self.storage is not None:
            buf = self.storage.buffer
            if not len(buf):
                return 0
            x = buf.eval()[0][0]
            return int(len(buf) * x.numel() * 4)
        return None


def build_strategy(name: str, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, criterion: Callable,
                   mem_size: int, batch_size_mem: Optional[int], train_mb_size: int, train_epochs: int,
                   eval_mb_size: int, device: Any, evaluator: Any, distill_config: DistillConfig,
                   hallucinator_share: float = 0.2, input_normalization=None, seed: int = 0,
                   verbose: bool = False) -> BuiltStrategy:
    """One of :data:`STRATEGIES`, ready for ``train``/``eval``."""
    common = dict(model=model, optimizer=optimizer, criterion=criterion, train_mb_size=train_mb_size,
                  train_epochs=train_epochs, eval_mb_size=eval_mb_size, device=device, evaluator=evaluator)
    if name in ("haba", "dm"):
        cfg = copy.deepcopy(distill_config)
        if name == "dm":
            cfg.parameterization = "plain"
        strat = HabaReplay(mem_size=mem_size, batch_size_mem=batch_size_mem, distill_config=cfg,
                           hallucinator_share=hallucinator_share, input_normalization=input_normalization,
                           seed=seed, **common)
        strat.haba_plugin.verbose = verbose
        return BuiltStrategy(name, strat, plugin=strat.haba_plugin)
    if name in ("replay", "herding"):
        storage = (ClassBalancedBuffer(mem_size, adaptive_size=True) if name == "replay"
                   else HerdingClassBalancedBuffer(mem_size))
        plugin = BalancedReplayPlugin(mem_size, batch_size_mem=batch_size_mem, storage_policy=storage)
        return BuiltStrategy(name, Naive(plugins=[plugin], **common), storage=storage)
    if name == "naive":
        return BuiltStrategy(name, Naive(**common))
    raise UnknownNameError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def check_memory_budget(strategies: list[str], mem_size: int, image_shape: tuple[int, int, int],
                        experiences: list[list[int]], distill_config: DistillConfig,
                        hallucinator_share: float, class_counts: dict[int, int]) -> None:
    """Fail before training if a memory strategy cannot hold one basis/image per class for the whole stream."""
    n_classes = sum(len(e) for e in experiences)
    if any(s in ("replay", "herding") for s in strategies) and mem_size < n_classes:
        raise BudgetError(f"mem_size {mem_size} is too small for one image per class ({n_classes} classes)")
    for name in ("haba", "dm"):
        if name not in strategies:
            continue
        cfg = copy.deepcopy(distill_config)
        if name == "dm":
            cfg.parameterization = "plain"
        plugin = HabaReplayPlugin(mem_size, distill_config=cfg, hallucinator_share=hallucinator_share)
        plugin.check_budget(image_shape, [{c: class_counts.get(c, 1) for c in e} for e in experiences])


__all__ = ["STRATEGIES", "MEMORY_STRATEGIES", "check_strategies", "HerdingClassBalancedBuffer", "build_strategy",
           "buffer_as_factorized", "BuiltStrategy", "check_memory_budget"]
