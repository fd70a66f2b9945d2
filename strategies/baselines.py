"""The builders of ``haba-cl``'s strategies (Avalanche strategies and plugins), dispatched by :mod:`strategies.registry`.

Also the pieces they need: iCaRL herding on penultimate features, a replay buffer as a ``FactorizedDataset``,
:class:`BuiltStrategy` (a strategy plus how to reach its memory) and the memory-budget check.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from avalanche.training import EWC, GDumb, LwF, Naive, Replay
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer, HerdingSelectionStrategy, ParametricBuffer
from torch.utils.data import DataLoader

from haba_core import (BudgetError, ConfigError, DistillConfig, FactorizedDataset, Preprocessor, SyntheticSet,
                       UnknownNameError)

from .haba_replay import HabaReplay, HabaReplayPlugin
from .registry import DISTILLED, IMAGE_BUFFERS, MEMORY_STRATEGIES, REGISTRY, STRATEGIES, StrategySpec, check_strategies


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


@dataclass
class StrategyOptions:
    """What a builder may need besides Avalanche's common arguments (model, optimizer, ..., evaluator)."""

    mem_size: int
    batch_size_mem: Optional[int]
    distill_config: DistillConfig
    hallucinator_share: float = 0.2
    input_normalization: Any = None
    seed: int = 0
    verbose: bool = False
    compute_budget: Any = "auto"
    progress: Optional[bool] = None
    lwf_alpha: float = 1.0
    lwf_temperature: float = 2.0
    ewc_lambda: float = 0.4


def build_distilled(name: str, spec: StrategySpec, common: dict[str, Any], opt: StrategyOptions) -> BuiltStrategy:
    """:class:`strategies.HabaReplay` with the spec's parameterization and hallucinator sharing (``haba``,
    ``haba-shared``, ``distilled-plain``, ``idc``)."""
    cfg = copy.deepcopy(opt.distill_config)
    cfg.parameterization = spec.parameterization or cfg.parameterization
    strat = HabaReplay(mem_size=opt.mem_size, batch_size_mem=opt.batch_size_mem, distill_config=cfg,
                       hallucinator_share=opt.hallucinator_share, share_hallucinators=spec.share_hallucinators,
                       input_normalization=opt.input_normalization,
                       seed=opt.seed, compute_budget=opt.compute_budget, progress=opt.progress, verbose=opt.verbose,
                       **common)
    return BuiltStrategy(name, strat, plugin=strat.haba_plugin)


def build_buffer_replay(name: str, spec: StrategySpec, common: dict[str, Any], opt: StrategyOptions) -> BuiltStrategy:
    """``Naive`` + :class:`BalancedReplayPlugin`: a class-balanced random buffer (``replay``) or herding (``herding``)."""
    storage = (ClassBalancedBuffer(opt.mem_size, adaptive_size=True) if name == "replay"
               else herding_buffer(opt.mem_size, common["model"]))
    plugin = BalancedReplayPlugin(opt.mem_size, batch_size_mem=opt.batch_size_mem, storage_policy=storage)
    return BuiltStrategy(name, Naive(plugins=[plugin], **common), storage=storage)


def build_er(name: str, spec: StrategySpec, common: dict[str, Any], opt: StrategyOptions) -> BuiltStrategy:
    """Avalanche's ``Replay`` as shipped."""
    strat = Replay(mem_size=opt.mem_size, **common)
    plugin = next(p for p in strat.plugins if isinstance(p, ReplayPlugin))
    return BuiltStrategy(name, strat, storage=plugin.storage_policy)


def build_gdumb(name: str, spec: StrategySpec, common: dict[str, Any], opt: StrategyOptions) -> BuiltStrategy:
    """Avalanche's ``GDumb``."""
    strat = GDumb(mem_size=opt.mem_size, **common)
    plugin = next(p for p in strat.plugins if hasattr(p, "storage_policy"))
    return BuiltStrategy(name, strat, storage=plugin.storage_policy)


def build_lwf(name: str, spec: StrategySpec, common: dict[str, Any], opt: StrategyOptions) -> BuiltStrategy:
    """Avalanche's ``LwF``."""
    return BuiltStrategy(name, LwF(alpha=opt.lwf_alpha, temperature=opt.lwf_temperature, **common))


def build_ewc(name: str, spec: StrategySpec, common: dict[str, Any], opt: StrategyOptions) -> BuiltStrategy:
    """Avalanche's ``EWC``."""
    return BuiltStrategy(name, EWC(ewc_lambda=opt.ewc_lambda, **common))


def build_naive(name: str, spec: StrategySpec, common: dict[str, Any], opt: StrategyOptions) -> BuiltStrategy:
    """Fine-tuning without memory."""
    return BuiltStrategy(name, Naive(**common))


def build_strategy(name: str, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, criterion: Callable,
                   mem_size: int, batch_size_mem: Optional[int], train_mb_size: int, train_epochs: int,
                   eval_mb_size: int, device: Any, evaluator: Any, distill_config: DistillConfig,
                   hallucinator_share: float = 0.2, input_normalization=None, seed: int = 0,
                   verbose: bool = False, compute_budget: Any = "auto", progress: Optional[bool] = None,
                   lwf_alpha: float = 1.0,
                   lwf_temperature: float = 2.0, ewc_lambda: float = 0.4) -> BuiltStrategy:
    """One of :data:`~strategies.registry.STRATEGIES`, ready for ``train``/``eval``."""
    if name not in REGISTRY:
        raise UnknownNameError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    common = dict(model=model, optimizer=optimizer, criterion=criterion, train_mb_size=train_mb_size,
                  train_epochs=train_epochs, eval_mb_size=eval_mb_size, device=device, evaluator=evaluator)
    options = StrategyOptions(mem_size=mem_size, batch_size_mem=batch_size_mem, distill_config=distill_config,
                              hallucinator_share=hallucinator_share, input_normalization=input_normalization,
                              seed=seed, verbose=verbose, compute_budget=compute_budget, progress=progress,
                              lwf_alpha=lwf_alpha, lwf_temperature=lwf_temperature, ewc_lambda=ewc_lambda)
    spec = REGISTRY[name]
    return spec.load_builder()(name, spec, common, options)


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
                                  share_hallucinators=REGISTRY[name].share_hallucinators, compute_budget=None)
        plugin.check_budget(image_shape, [{c: class_counts.get(c, 1) for c in e} for e in experiences])


__all__ = ["STRATEGIES", "MEMORY_STRATEGIES", "IMAGE_BUFFERS", "check_strategies", "PenultimateHerding",
           "herding_buffer", "StrategyOptions", "build_strategy", "buffer_as_factorized", "BuiltStrategy",
           "check_memory_budget"]
