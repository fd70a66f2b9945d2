"""The strategies ``haba-cl`` compares; the memory strategies all at the same bytes (``mem_size`` images).

``haba``    HaBa replay: :class:`strategies.HabaReplayPlugin` (factorized DM-distilled memory).
``dm``      the same plugin with ``parameterization="plain"``: plain DM-distilled images, no factorization.
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

import copy
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from avalanche.training import EWC, GDumb, LwF, Naive, Replay
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer, HerdingSelectionStrategy, ParametricBuffer
from torch.utils.data import DataLoader

from haba_core import (BudgetError, ConfigError, DistillConfig, FactorizedDataset, Preprocessor, SyntheticSet,
                       UnknownNameError)
from strategies import HabaReplay, HabaReplayPlugin

from .cl_names import DEPRECATED_STRATEGIES, DISTILLED, MEMORY_STRATEGIES, STRATEGIES, current_name

IMAGE_BUFFERS = ("replay", "herding", "er", "gdumb")  # real images: mem_size must cover one per class


def check_strategies(names: str | list[str]) -> list[str]:
    items = [current_name(s, DEPRECATED_STRATEGIES, "strategy")
             for s in (names.split(",") if isinstance(names, str) else names) if s.strip()]
    if not items:
        raise UnknownNameError(f"no strategy given; known: {','.join(STRATEGIES)}")
    for s in items:
        if s not in STRATEGIES:
            raise UnknownNameError(f"unknown strategy {s!r}; known: {', '.join(STRATEGIES)}")
    return list(dict.fromkeys(items))


@torch.no_grad()
def _features(model: torch.nn.Module, device: Any, dataset: Any, batch_size: int = 256) -> torch.Tensor:
    """Penultimate features of ``model`` on ``dataset`` (eval view), L2-normalised as in iCaRL.

    Networks that do not support ``return_features=True`` fall back to flattened inputs.
    """
    was_training = model.training
    model.eval()
    ds = dataset.eval()
    feats = []
    try:
        for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=getattr(ds, "collate_fn", None)):
            x = batch[0].to(device)
            try:
                _, f = model(x, return_features=True)
            except TypeError:
                f = x
            feats.append(F.normalize(f.flatten(1).float(), dim=1))
    finally:
        model.train(was_training)
    return torch.cat(feats)


class PenultimateHerding(HerdingSelectionStrategy):
    """Avalanche's ``HerdingSelectionStrategy`` (its herding order) on flat, L2-normalised penultimate features.

    Avalanche's own extractor hooks a named layer and keeps its raw output (for our networks a 4-D
    feature map); this one asks the model for the vector its classifier sees, as iCaRL does.
    """

    def __init__(self, model: torch.nn.Module, feature_batch_size: int = 256):  # no layer hook needed
        self.model = model
        self.feature_batch_size = feature_batch_size

    def make_sorted_indices(self, strategy: Any, data: Any) -> list[int]:
        feats = _features(self.model, strategy.device, data, self.feature_batch_size)
        return self.make_sorted_indices_from_features(feats)


def herding_buffer(max_size: int, model: torch.nn.Module) -> ParametricBuffer:
    """Avalanche's ``ParametricBuffer`` grouped by class with herding selection (iCaRL's exemplar memory)."""
    return ParametricBuffer(max_size, groupby="class", selection_strategy=PenultimateHerding(model))


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
                   verbose: bool = False, compute_budget: Any = "auto", progress: Optional[bool] = None,
                   lwf_alpha: float = 1.0,
                   lwf_temperature: float = 2.0, ewc_lambda: float = 0.4) -> BuiltStrategy:
    """One of :data:`STRATEGIES`, ready for ``train``/``eval``."""
    common = dict(model=model, optimizer=optimizer, criterion=criterion, train_mb_size=train_mb_size,
                  train_epochs=train_epochs, eval_mb_size=eval_mb_size, device=device, evaluator=evaluator)
    if name in DISTILLED:
        cfg = copy.deepcopy(distill_config)
        cfg.parameterization = DISTILLED[name] or cfg.parameterization
        strat = HabaReplay(mem_size=mem_size, batch_size_mem=batch_size_mem, distill_config=cfg,
                           hallucinator_share=hallucinator_share, input_normalization=input_normalization,
                           seed=seed, compute_budget=compute_budget, progress=progress, verbose=verbose, **common)
        return BuiltStrategy(name, strat, plugin=strat.haba_plugin)
    if name in ("replay", "herding"):
        storage = (ClassBalancedBuffer(mem_size, adaptive_size=True) if name == "replay"
                   else herding_buffer(mem_size, model))
        plugin = BalancedReplayPlugin(mem_size, batch_size_mem=batch_size_mem, storage_policy=storage)
        return BuiltStrategy(name, Naive(plugins=[plugin], **common), storage=storage)
    if name == "er":
        strat = Replay(mem_size=mem_size, **common)
        plugin = next(p for p in strat.plugins if isinstance(p, ReplayPlugin))
        return BuiltStrategy(name, strat, storage=plugin.storage_policy)
    if name == "gdumb":
        strat = GDumb(mem_size=mem_size, **common)
        plugin = next(p for p in strat.plugins if hasattr(p, "storage_policy"))
        return BuiltStrategy(name, strat, storage=plugin.storage_policy)
    if name == "lwf":
        return BuiltStrategy(name, LwF(alpha=lwf_alpha, temperature=lwf_temperature, **common))
    if name == "ewc":
        return BuiltStrategy(name, EWC(ewc_lambda=ewc_lambda, **common))
    if name == "naive":
        return BuiltStrategy(name, Naive(**common))
    raise UnknownNameError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def check_memory_budget(strategies: list[str], mem_size: int, image_shape: tuple[int, int, int],
                        experiences: list[list[int]], distill_config: DistillConfig,
                        hallucinator_share: float, class_counts: dict[int, int]) -> None:
    """Fail before training if a memory strategy cannot hold one basis/image per class for the whole stream."""
    n_classes = sum(len(e) for e in experiences)
    if any(s in IMAGE_BUFFERS for s in strategies) and mem_size < n_classes:
        raise BudgetError(f"mem_size {mem_size} is too small for one image per class ({n_classes} classes)")
    for name in DISTILLED:
        if name not in strategies:
            continue
        cfg = copy.deepcopy(distill_config)
        cfg.parameterization = DISTILLED[name] or cfg.parameterization
        plugin = HabaReplayPlugin(mem_size, distill_config=cfg, hallucinator_share=hallucinator_share,
                                  compute_budget=None)
        plugin.check_budget(image_shape, [{c: class_counts.get(c, 1) for c in e} for e in experiences])


__all__ = ["STRATEGIES", "MEMORY_STRATEGIES", "IMAGE_BUFFERS", "check_strategies", "PenultimateHerding",
           "herding_buffer", "build_strategy",
           "buffer_as_factorized", "BuiltStrategy", "check_memory_budget"]
