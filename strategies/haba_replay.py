"""HaBa replay for Avalanche 0.6: a ``SupervisedPlugin`` and a ``SupervisedTemplate`` in the style of ``Replay``.

After each training experience the plugin distils that experience's (un-augmented) training data into a
factorized memory part — bases for each of its classes plus a hallucinator set — with any ``haba_core``
objective, using its own networks and optimisers. The memory is rebalanced so that all parts together
never exceed ``mem_size`` images' worth of float32 numbers (see :mod:`strategies.memory`). During later
experiences every training minibatch gets ``batch_size_mem`` composed samples (a random stored basis
through a random hallucinator of its experience), generated on the fly without gradients.

Input space: the memory lives in the model's input space, i.e. in whatever space the stream's *eval*
view (``experience.dataset.eval()``) yields — typically tensors normalised by the benchmark's
mean/std. Pass ``input_normalization=(mean, std)`` when the stream's tensors are normalised that way:
the memory then stores the matching ``Preprocessor`` (so ``inverse`` shows real pixels and a saved
memory can be used with ``haba-evaluate``); distillation runs on the stream's tensors as they are, so
composed samples are bit-identical either way. ZCA is not supported (it would change with every experience).

Compute: each memory update is capped by a :class:`~strategies.compute_budget.ComputeBudget`
(``compute_budget="auto"``: the paper's 1000 iterations on CUDA, a CPU-sized cap elsewhere) and shows a
tqdm bar (``progress=True`` or ``verbose=True``); its numbers go to the strategy's Avalanche loggers.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Union

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins.evaluation import EvaluationPlugin, default_evaluator
from avalanche.training.templates import SupervisedTemplate
from torch.nn import Module
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from haba_core import (ConfigError, DistillConfig, FactorizedDataset, ImageDataset, Preprocessor, active_loss_terms,
                       distill, merge_layers, recipe, resolve_device)

from .compute_budget import BudgetSpec, ComputeBudget, resolve_budget
from .memory import FactorizedMemory, MemoryPlan, preserved_rng
from .replay_batches import mix_into_minibatch
from .update_progress import UpdateProgress, bar_wanted, publish_update


# The recipe HabaReplayPlugin starts from when no distill_config is given. Measured (BENCHMARKS.md, continual
# section; Split CIFAR-10, 10 images per class, 60 DM steps per experience): "modest" lifts HabaReplay from
# 19.1 to the best of all memory strategies — with SGD the paper's hallucinators drifted off their start.
DEFAULT_CL_RECIPE = "modest"


def default_cl_config(recipe_name: str = DEFAULT_CL_RECIPE, **overrides: Any) -> DistillConfig:
    """The per-experience distillation: the paper's continual-learning setting under a ``haba_core`` recipe.

    The setting (DM objective, up to 5 hallucinators per experience, real-image initialisation,
    ConvNet-3 width 128 with instance norm and DSA, DM's learning rate 1.0 for the bases, ``batch_real``
    256 per class, 1000 iterations per experience), then the recipe's fields (``modest``: down-sampled
    bases, σ/μ at half resolution, no adversary, Adam at lr 1e-4 for the hallucinators; ``paper``: the
    paper's ``haba`` settings), then ``overrides`` (nested dicts such as ``hallucinator`` merge key by key).
    """
    fields: dict[str, Any] = dict(objective="dm", parameterization="haba", ipc=None, bpc=1, hallucinators=5,
                                  iterations=1000, network="ConvNet", net_width=128, net_depth=3,
                                  net_norm="instancenorm", basis_init="real", zca=False)
    return DistillConfig.from_dict(merge_layers(fields, recipe(recipe_name), overrides))


def paper_cl_config(**overrides: Any) -> DistillConfig:
    """:func:`default_cl_config` with the ``paper`` recipe: the paper's continual-learning setting as published
    (``haba`` parameterization, the core's loss weights and adversary, SGD for the hallucinators)."""
    return default_cl_config("paper", **overrides)


def _experience_tensors(dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (un-augmented) inputs, targets and task labels of an Avalanche dataset, on the CPU."""
    ds = dataset.eval() if hasattr(dataset, "eval") else dataset
    collate = getattr(ds, "collate_fn", None)
    xs, ys, ts = [], [], []
    for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate):
        xs.append(torch.as_tensor(batch[0]).detach().cpu().float())
        ys.append(torch.as_tensor(batch[1]).detach().cpu().long())
        if len(batch) >= 3:
            ts.append(torch.as_tensor(batch[-1]).detach().cpu().long())
        else:
            ts.append(torch.zeros_like(ys[-1]))
    if not xs:
        raise ConfigError("the experience has no training data to distil")
    return torch.cat(xs), torch.cat(ys), torch.cat(ts)


class HabaReplayPlugin(SupervisedPlugin):
    """Replay from a factorized (HaBa) memory of ``mem_size`` images' worth of bytes.

    Only ``mem_size`` is positional (as in Avalanche's ``ReplayPlugin``); everything else is keyword-only.

    :param mem_size: memory size in images, counted like Avalanche's ``Replay`` and converted to
        ``mem_size × c·h·w`` float32 numbers; bases and hallucinators together never exceed it.
    :param batch_size_mem: composed samples appended to every training minibatch (``None``: the
        strategy's ``train_mb_size``).
    :param distill_config: a :class:`~haba_core.DistillConfig`; default :func:`default_cl_config`. Its
        budget fields are set per experience (``bpc`` and ``hallucinators`` from the memory plan; its
        ``hallucinators`` is the most one experience gets); ``parameterization="plain"`` gives plain
        distilled images (the ``dm`` baseline).
    :param hallucinator_share: the largest fraction of the memory hallucinators may take.
    :param share_hallucinators: one hallucinator bank for the whole stream, learned on the first experience
        and frozen afterwards, its bytes paid once (later experiences distil bases only; see
        :mod:`strategies.memory`). ``False`` (the paper's setting): each experience learns its own.
    :param input_normalization: ``(mean, std)`` of the stream's tensors, stored with the memory (see the
        module docstring); ``None`` = the stream's tensors are the model input as they are.
    :param task_label: task label of composed samples; ``None`` = the label of their experience's data.
    :param seed: distillation of experience ``e`` uses seed ``seed + e``; sampling is seeded by ``seed``.
    :param distill_device: where to distil (default: the strategy's device).
    :param on_distilled: optional callback ``(experience_id, history_entry)`` after each update.
    :param compute_budget: per-experience cap on distillation iterations / seconds: a
        :class:`ComputeBudget`, ``"auto"`` (by device: the config's iterations on CUDA, ``CPU_BUDGET`` on a
        CPU) or ``None`` (the config as it is).
    :param progress: a tqdm bar during each memory update (``None``: when ``verbose``).
    :param verbose: print one line per memory update.
    """

    def __init__(self, mem_size: int = 200, *, batch_size_mem: Optional[int] = None,
                 distill_config: Optional[DistillConfig] = None, hallucinator_share: float = 0.2,
                 share_hallucinators: bool = False,
                 input_normalization: Optional[tuple[Sequence[float], Sequence[float]]] = None,
                 task_label: Optional[int] = None, seed: Optional[int] = None,
                 distill_device: Optional[Union[str, torch.device]] = None,
                 on_distilled: Optional[Callable[[int, dict], None]] = None, compute_budget: BudgetSpec = "auto",
                 progress: Optional[bool] = None, verbose: bool = False):
        super().__init__()
        if not (compute_budget is None or isinstance(compute_budget, ComputeBudget) or compute_budget == "auto"):
            raise ConfigError(f"compute_budget must be a ComputeBudget, 'auto' or None, got {compute_budget!r}")
        if int(mem_size) < 1:
            raise ConfigError(f"mem_size must be a positive number of images, got {mem_size}")
        if batch_size_mem is not None and int(batch_size_mem) < 0:
            raise ConfigError(f"batch_size_mem must be >= 0, got {batch_size_mem}")
        cfg = copy.deepcopy(distill_config) if distill_config is not None else default_cl_config()
        cfg.validate()
        if cfg.zca:
            raise ConfigError("ZCA whitening is not supported in continual learning (it would change with every "
                              "experience); set zca=False")
        if cfg.per_class_hallucinators:
            raise ConfigError("per-class hallucinators are not supported by the replay memory (each experience has "
                              "one shared hallucinator set); set per_class_hallucinators=False")
        if cfg.factorized and cfg.hallucinators < 1:
            raise ConfigError(f"{cfg.parameterization} needs at least one hallucinator per experience")
        if not 0.0 <= float(hallucinator_share) <= 1.0:
            raise ConfigError(f"hallucinator_share must be in [0, 1], got {hallucinator_share}")
        self.mem_size = int(mem_size)
        self.batch_size_mem = batch_size_mem
        self.distill_config = cfg
        self.hallucinator_share = float(hallucinator_share)
        if not isinstance(share_hallucinators, bool):
            raise ConfigError(f"share_hallucinators must be True or False, got {share_hallucinators!r}")
        self.share_hallucinators = share_hallucinators
        if input_normalization is not None:
            mean, std = input_normalization
            input_normalization = (tuple(float(m) for m in mean), tuple(float(s) for s in std))
        self.input_normalization = input_normalization
        self.task_label = task_label
        self.seed = int(cfg.seed if seed is None else seed)
        self.distill_device = distill_device
        self.on_distilled = on_distilled
        self.compute_budget = compute_budget
        self.progress = progress
        self.verbose = verbose
        self._strategy: Any = None  # the strategy whose loggers see the memory updates
        self.memory: Optional[FactorizedMemory] = None
        self.generator = torch.Generator().manual_seed(self.seed)
        self.history: list[dict[str, Any]] = []
        self._experiences_seen = 0

    # ------------------------------------------------------------------ memory construction
    def make_memory(self, image_shape: Sequence[int]) -> FactorizedMemory:
        """An empty memory for images of ``image_shape`` with this plugin's budget and configuration."""
        cfg = self.distill_config
        return FactorizedMemory(self.mem_size, image_shape, parameterization=cfg.parameterization,
                                hallucinators=cfg.hallucinators, hallucinator_config=cfg.hallucinator,
                                basis_channels=cfg.basis_channels, downsample=cfg.downsample,
                                hallucinator_share=self.hallucinator_share,
                                share_hallucinators=self.share_hallucinators)

    def check_budget(self, image_shape: Sequence[int], experiences: Sequence[Sequence[int] | dict]) -> list[MemoryPlan]:
        """Dry-run the memory plan for a whole stream; raises ``BudgetError`` if some experience cannot fit."""
        memory = self.memory if self.memory is not None else self.make_memory(image_shape)
        return memory.check_stream(experiences)

    def _preprocessor(self, channels: int) -> Preprocessor:
        if self.input_normalization is None:
            return Preprocessor((0.0,) * channels, (1.0,) * channels)
        mean, std = self.input_normalization
        if len(mean) != channels or len(std) != channels:
            raise ConfigError(f"input_normalization has {len(mean)} channels, the images have {channels}")
        return Preprocessor(mean, std)

    def add_experience(self, images: torch.Tensor, labels: torch.Tensor, *, experience: int, task_label: int = 0,
                       device: Union[str, torch.device, None] = None) -> dict[str, Any]:
        """Distil one experience's un-augmented inputs (model input space) and labels into the memory."""
        if images.ndim != 4:
            raise ConfigError(f"experience inputs must be N×C×H×W images, got shape {tuple(images.shape)}")
        device = resolve_device(self.distill_device or device or "cpu")
        images, labels = images.detach().cpu().float(), labels.detach().cpu().long()
        if self.memory is None:
            self.memory = self.make_memory(tuple(images.shape[1:]))
        classes = sorted(int(c) for c in torch.unique(labels).tolist())
        counts = {c: int((labels == c).sum()) for c in classes}
        plan = self.memory.plan(counts)
        bpc = max(plan.new_bases.values())  # never distil more bases than the largest class can keep
        local = torch.full((int(labels.max()) + 1,), -1, dtype=torch.long)
        local[torch.tensor(classes)] = torch.arange(len(classes))
        pre = self._preprocessor(images.shape[1])
        channels = images.shape[1]
        # distil the stream's tensors exactly as they are (identity preprocessing), store the real one after
        data = ImageDataset(name=f"experience-{experience}", images=images, labels=local[labels],
                            classes=[str(c) for c in classes], mean=(0.0,) * channels, std=(1.0,) * channels,
                            split="train")
        cfg = copy.deepcopy(self.distill_config)
        cfg.ipc, cfg.bpc = None, bpc
        if cfg.factorized:
            cfg.hallucinators = plan.new_hallucinators
        shared_bank = self.memory.shared_hallucinators()
        if shared_bank is not None:  # later experiences: bases only, through the stream's frozen bank
            cfg.lr_hallucinators, cfg.lr_affine = 0.0, 0.0
            cfg.lambda_cos = cfg.lambda_con = cfg.lambda_task = 0.0  # the diversity terms train hallucinators only
        cfg.seed = self.seed + int(experience)
        cfg.device = str(device)
        cfg.checkpoint_dir = None
        budget = resolve_budget(self.compute_budget, device)
        cfg.iterations, cfg.time_limit_s = budget.apply(cfg.iterations, cfg.time_limit_s)
        progress = UpdateProgress(cfg.iterations, int(experience), active_loss_terms(cfg),
                                  bar_wanted(self.verbose, self.progress))
        t0 = time.perf_counter()
        try:
            with preserved_rng():
                result: FactorizedDataset = distill(data, cfg, preprocessor=self._preprocessor_identity(channels),
                                                    on_step=progress, hallucinator_init=shared_bank)
        finally:
            progress.close()
        seconds = time.perf_counter() - t0
        result = FactorizedDataset(result.synthetic, pre, result.classes, result.meta, result.learned_lr)
        with preserved_rng():
            self.memory.add(result, classes, experience=experience, task_label=task_label, plan=plan)
        self.memory.to(device)
        notes = list(plan.notes)
        if cfg.iterations < self.distill_config.iterations:
            notes.append(f"compute budget: {cfg.iterations} of the config's {self.distill_config.iterations} "
                         f"iterations ({budget.describe()})")
        if cfg.time_limit_s is not None and progress.iterations < cfg.iterations:
            notes.append(f"time budget of {cfg.time_limit_s:g} s reached after {progress.iterations} iterations")
        entry = {"experience": int(experience), "classes": classes, "distill_seconds": seconds,
                 "distill_iterations": progress.iterations, "final_losses": progress.last,
                 "bpc": bpc, "planned_bpc": plan.bpc, "new_hallucinators": plan.new_hallucinators, "notes": notes,
                 **self.memory.summary()}
        self.history.append(entry)
        if self.verbose:
            print(f"[haba-replay] experience {experience}: {len(classes)} classes distilled in {seconds:.1f}s "
                  f"({progress.iterations} iterations); memory {entry['stored_bytes']}/{entry['budget_bytes']} "
                  f"bytes, {bpc} bases/class, hallucinators {entry['hallucinators']}", flush=True)
        if self._strategy is not None:
            publish_update(self._strategy, self, entry)
        if self.on_distilled is not None:
            self.on_distilled(int(experience), entry)
        return entry

    def __getstate__(self) -> dict[str, Any]:  # checkpoints: the strategy is pickled on its own
        state = dict(self.__dict__)
        state["_strategy"] = None
        return state

    @staticmethod
    def _preprocessor_identity(channels: int) -> Preprocessor:
        return Preprocessor((0.0,) * channels, (1.0,) * channels)

    def check_experience(self, experience: Any) -> MemoryPlan:
        """Plan adding ``experience`` (an Avalanche experience) to the memory without distilling.

        Raises :class:`~haba_core.BudgetError` when its classes cannot fit; called by the plugin before
        each experience trains, so a too-small memory fails before any training.
        """
        ds = experience.dataset
        targets = [int(t) for t in ds.targets]
        if not targets:
            raise ConfigError("the experience has no training data")
        if self.memory is None:
            view = ds.eval() if hasattr(ds, "eval") else ds
            self.memory = self.make_memory(tuple(torch.as_tensor(view[0][0]).shape))
        counts = dict(Counter(targets))
        return self.memory.plan(counts)

    # ------------------------------------------------------------------ Avalanche hooks
    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Check the memory plan for this experience (``BudgetError`` before it trains); memory to device."""
        self._strategy = strategy
        self.check_experience(strategy.experience)
        if self.memory is not None:
            self.memory.to(strategy.device)

    def before_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Append ``batch_size_mem`` composed samples to the current training minibatch."""
        if self.memory is None or not self.memory.parts:
            return
        n = strategy.train_mb_size if self.batch_size_mem is None else int(self.batch_size_mem)
        if n <= 0:
            return
        x, y, t = self.memory.sample(n, self.generator, device=strategy.device)
        if self.task_label is not None:
            t = torch.full_like(t, int(self.task_label))
        strategy.mbatch = mix_into_minibatch(list(strategy.mbatch), x, y, t)

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Distil the experience just trained on into the memory (own networks; the model is not touched)."""
        self._strategy = strategy
        self.update_from(strategy.experience, strategy.device)

    def update_from(self, experience: Any, device: Union[str, torch.device, None] = None) -> dict[str, Any]:
        """Distil an Avalanche experience's training data into the memory (what ``after_training_exp`` does)."""
        with preserved_rng():  # iterating a DataLoader draws a base seed from the global generator
            x, y, t = _experience_tensors(experience.dataset)
        task = Counter(t.tolist()).most_common(1)[0][0] if self.task_label is None else int(self.task_label)
        exp_id = getattr(experience, "current_experience", None)
        if exp_id is None:
            exp_id = self._experiences_seen
        self._experiences_seen += 1
        return self.add_experience(x, y, experience=int(exp_id), task_label=int(task), device=device)

    # ------------------------------------------------------------------ persistence
    def save_memory(self, directory: Union[str, Path]) -> Path:
        """Write the memory (``memory.json`` + one core-format ``part-NNN/`` per experience)."""
        if self.memory is None:
            raise ConfigError("nothing to save: the memory is empty (no experience trained yet)")
        extra = {"distill_config": self.distill_config.to_dict(), "seed": self.seed,
                 "input_normalization": self.input_normalization, "history": self.history}
        return self.memory.save(directory, extra=extra)

    def load_memory(self, directory: Union[str, Path], device: Union[str, torch.device] = "cpu") -> FactorizedMemory:
        """Replace the memory by a saved one (its budget must not exceed this plugin's ``mem_size``)."""
        memory = FactorizedMemory.load(directory, device=device)
        if memory.storage().parameters > self.mem_size * memory.image_numel:
            raise ConfigError(f"the saved memory ({memory.mem_size} images) does not fit this plugin's mem_size "
                              f"{self.mem_size}")
        memory.mem_size = self.mem_size
        memory.hallucinator_share = self.hallucinator_share
        if memory.share_hallucinators != (self.share_hallucinators and memory.factorized):
            raise ConfigError(f"the saved memory has share_hallucinators={memory.share_hallucinators}, this plugin "
                              f"{self.share_hallucinators}")
        self.memory = memory
        self._experiences_seen = max((p.experience for p in memory.parts), default=-1) + 1
        return memory


class HabaReplay(SupervisedTemplate):
    """Experience replay from a factorized HaBa memory (see :class:`HabaReplayPlugin`).

    Keyword-only like Avalanche's ``Replay``; the plugin's options (``compute_budget``, ``progress``,
    ``verbose``, ...) are accepted too; ``**base_kwargs`` go to ``SupervisedTemplate``. The plugin
    is available as ``strategy.haba_plugin`` (memory: ``strategy.haba_plugin.memory``).
    """

    def __init__(self, *, model: Module, optimizer: Optimizer, criterion: Any, mem_size: int = 200,
                 batch_size_mem: Optional[int] = None, distill_config: Optional[DistillConfig] = None,
                 hallucinator_share: float = 0.2, share_hallucinators: bool = False,
                 input_normalization: Optional[tuple[Sequence[float], Sequence[float]]] = None,
                 replay_task_label: Optional[int] = None, seed: Optional[int] = None,
                 distill_device: Optional[Union[str, torch.device]] = None, compute_budget: BudgetSpec = "auto",
                 progress: Optional[bool] = None, verbose: bool = False,
                 on_distilled: Optional[Callable[[int, dict], None]] = None,
                 train_mb_size: int = 1, train_epochs: int = 1, eval_mb_size: Optional[int] = None,
                 device: Union[str, torch.device] = "cpu", plugins: Optional[List[SupervisedPlugin]] = None,
                 evaluator: Union[EvaluationPlugin, Callable[[], EvaluationPlugin]] = default_evaluator,
                 eval_every: int = -1, **base_kwargs: Any):
        plugin = HabaReplayPlugin(mem_size, batch_size_mem=batch_size_mem, distill_config=distill_config,
                                  hallucinator_share=hallucinator_share, share_hallucinators=share_hallucinators,
                                  input_normalization=input_normalization, task_label=replay_task_label, seed=seed, distill_device=distill_device,
                                  on_distilled=on_distilled, compute_budget=compute_budget, progress=progress,
                                  verbose=verbose)
        plugins = [*(plugins or []), plugin]
        super().__init__(model=model, optimizer=optimizer, criterion=criterion, train_mb_size=train_mb_size,
                         train_epochs=train_epochs, eval_mb_size=eval_mb_size, device=device, plugins=plugins,
                         evaluator=evaluator, eval_every=eval_every, **base_kwargs)
        self.haba_plugin = plugin
