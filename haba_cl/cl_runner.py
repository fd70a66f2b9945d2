"""Run continual-learning strategies side by side (``haba-cl``): same data, class order, model and epochs.

Protocols
---------
``avalanche`` (default): each strategy trains one model through the stream with Avalanche; after every
experience it is evaluated on the whole test stream. Final average accuracy = Avalanche's stream accuracy
(``Top1_Acc_Stream``) after the last experience; forgetting = Avalanche's ``StreamForgetting`` (mean over
past experiences of best-ever minus final accuracy).

``fresh-network`` (the DM paper's protocol; old name ``dm``): the strategies run as above (so herding has features), but after each
experience a *fresh* network is trained from scratch on the memory only (``train_on_synthetic``, online
composition, DSA) and tested on the classes seen so far. Final accuracy = that network's accuracy after
the last experience; forgetting is computed the same way from its per-experience accuracies. ``naive``
has no memory and reports nothing under this protocol.

Validation (``val_per_class``): a fixed, class-balanced split carved from the training images and kept out of
the stream; the final network of either protocol is also scored on it (``val_accuracy``). Choose strategies,
recipes and settings on that column and report the test column (issue 14's protocol).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from haba_core import ConfigError, DistillConfig, EvalConfig, get_network, recipe
from haba_core.atomic import atomic_path
from haba_core.evaluate import test_accuracy, train_on_synthetic
from haba_core.runtime import resolve_device
from strategies.baselines import build_strategy, check_memory_budget
from strategies.registry import MEMORY_STRATEGIES, check_strategies
from strategies.split_benchmarks import (BENCHMARKS, SplitData, check_benchmark, class_order_for, experiences_of,
                                         load_split_data, make_stream)
from strategies.stream_evaluation import ACC_KEY, FORGET_KEY, experience_accuracy_key, stream_evaluator

from .cl_names import DEPRECATED_PROTOCOLS, PROTOCOLS, current_name, current_strategies


@dataclass
class RunConfig:
    """Everything one ``haba-cl`` invocation needs (the CLI fills it)."""

    benchmark: str = "split-mnist"
    n_experiences: Optional[int] = None
    data_root: Optional[str] = None
    source: Optional[str] = None
    strategies: list[str] = field(default_factory=lambda: ["haba", "replay", "herding", "distilled-plain", "naive"])
    mem_size: int = 200
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int = 1
    out: Optional[str] = None
    protocol: str = "avalanche"
    device: str = "auto"
    lr: float = 0.01
    momentum: float = 0.9
    batch_size: int = 64
    batch_size_mem: Optional[int] = None
    eval_batch_size: int = 512
    model: str = "ConvNet"
    net_width: int = 128
    net_depth: int = 3
    net_norm: str = "instancenorm"
    recipe: str = "modest"  # haba_core recipe under the per-experience distillation (strategies.default_cl_config)
    distill: dict[str, Any] = field(default_factory=dict)
    hallucinator_share: float = 0.2
    train_per_class: Optional[int] = None
    test_per_class: Optional[int] = None
    val_per_class: Optional[int] = None  # carve a validation split of this many training images per class
    cache_dir: Optional[str] = None
    protocol_epochs: int = 300
    protocol_batch_size: int = 256
    protocol_lr: float = 0.01
    save_memory: bool = False
    verbose: bool = False
    distill_seconds: Optional[float] = None  # wall-clock cap per memory update (None: the compute budget's)
    lwf_alpha: float = 1.0
    lwf_temperature: float = 2.0
    ewc_lambda: float = 0.4
    plots: bool = True
    progress: bool = False  # a tqdm bar during each HaBa/DM memory update (haba-cl: on unless --quiet)

    def validate(self) -> "RunConfig":
        self.benchmark = check_benchmark(self.benchmark)
        self.strategies = check_strategies(current_strategies(self.strategies))
        self.protocol = current_name(self.protocol, DEPRECATED_PROTOCOLS, "protocol")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r}; known: {', '.join(PROTOCOLS)}")
        if self.mem_size < 1:
            raise ConfigError(f"--mem-size must be a positive number of images, got {self.mem_size}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("--epochs and --batch-size must be >= 1")
        if not self.seeds:
            raise ConfigError("give at least one seed")
        if self.val_per_class is not None and (isinstance(self.val_per_class, bool)
                                               or not isinstance(self.val_per_class, int) or self.val_per_class < 1):
            raise ConfigError(f"--val-per-class must be a positive number of images, got {self.val_per_class!r}")
        if self.n_experiences is None:
            self.n_experiences = BENCHMARKS[self.benchmark][1]
        recipe(self.recipe)  # UnknownNameError for a name that is not a recipe
        return self

    def compute_budget(self):
        """Explicit ``--distill-iterations``/``--distill-seconds`` are taken as they are; else ``"auto"`` (by device)."""
        from strategies import ComputeBudget

        its = self.distill.get("iterations")
        if its is None and self.distill_seconds is None:
            return "auto"
        return ComputeBudget(iterations=None if its is None else int(its), seconds=self.distill_seconds)

    def distill_config(self, device: torch.device) -> DistillConfig:
        from strategies import default_cl_config

        cfg = default_cl_config(self.recipe, **self.distill)  # copies what it layers
        cfg.device = str(device)
        return cfg


def _model(config: RunConfig, data: SplitData, seed: int) -> torch.nn.Module:
    kwargs: dict[str, Any] = {}
    if config.model.lower() in ("convnet", "convnetbn"):
        kwargs = {"width": config.net_width, "depth": config.net_depth}
        if config.model.lower() == "convnet":
            kwargs["norm"] = config.net_norm
    c, h, _ = data.image_shape
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return get_network(config.model, c, data.num_classes, h, **kwargs)
    finally:
        torch.random.set_rng_state(state)


def _forgetting(matrix: list[list[float]]) -> Optional[float]:
    """Mean over all but the last experience of (best accuracy before the end − final accuracy)."""
    if len(matrix) < 2:
        return None
    final = matrix[-1]
    drops = []
    for j in range(len(matrix) - 1):
        best = max(matrix[i][j] for i in range(j, len(matrix) - 1))
        drops.append(best - final[j])
    return statistics.fmean(drops)


def _protocol_stage(config: RunConfig, built, data: SplitData, experiences: list[list[int]], stage: int,
                    seed: int, device: torch.device) -> Optional[dict[str, Any]]:
    """DM protocol: a fresh network trained on the memory only, tested per seen experience and overall."""
    mem = built.memory_data(data.num_classes, data.image_shape)
    if mem is None:
        return None
    mem.to(device)
    net = _model(config, data, 10_000 + 100 * seed + stage).to(device)
    ecfg = EvalConfig(arch=config.model, epochs=config.protocol_epochs, batch_size=config.protocol_batch_size,
                      lr=config.protocol_lr, dsa=True, device=str(device))
    gen = torch.Generator().manual_seed(1_000 * seed + stage)
    train_on_synthetic(net, mem, ecfg, gen, config.protocol_lr)
    per_exp = []
    seen_mask = torch.zeros_like(data.test_y, dtype=torch.bool)
    for classes in experiences[: stage + 1]:
        mask = torch.isin(data.test_y, torch.tensor(classes))
        seen_mask |= mask
        per_exp.append(test_accuracy(net, data.test_x[mask].to(device), data.test_y[mask].to(device)) / 100.0)
    overall = test_accuracy(net, data.test_x[seen_mask].to(device), data.test_y[seen_mask].to(device)) / 100.0
    stage_result = {"accuracy": overall, "per_experience": per_exp}
    if data.val_y is not None and stage == len(experiences) - 1:  # only the final network's is reported
        stage_result["val_accuracy"] = _accuracy(net, data.val_x, data.val_y, device)
    return stage_result


def _accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Top-1 accuracy of ``net`` on ``x``/``y``, as a fraction."""
    return test_accuracy(net, x.to(device), y.to(device)) / 100.0


def run_one(config: RunConfig, data: SplitData, name: str, seed: int, device: torch.device,
            log: Callable[[str], None] = print, distill_config: DistillConfig | None = None) -> dict[str, Any]:
    """Train strategy ``name`` through the stream of ``seed``; returns its record. ``distill_config``: the
    resolved per-experience distillation (default ``config.distill_config(device)``; strategies copy it)."""
    from avalanche.training.determinism.rng_manager import RNGManager

    order = class_order_for(data, seed)
    experiences = experiences_of(data, config.n_experiences, order)
    bench = make_stream(data, config.n_experiences, order)
    RNGManager.set_random_seeds(seed)
    model = _model(config, data, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    built = build_strategy(name, model=model, optimizer=optimizer, criterion=torch.nn.CrossEntropyLoss(),
                           mem_size=config.mem_size, batch_size_mem=config.batch_size_mem,
                           train_mb_size=config.batch_size, train_epochs=config.epochs,
                           eval_mb_size=config.eval_batch_size, device=device, evaluator=stream_evaluator(config.verbose),
                           distill_config=distill_config or config.distill_config(device),
                           hallucinator_share=config.hallucinator_share,
                           input_normalization=(data.mean, data.std), seed=seed, verbose=config.verbose,
                           compute_budget=config.compute_budget(), progress=config.progress or None,
                           lwf_alpha=config.lwf_alpha,
                           lwf_temperature=config.lwf_temperature, ewc_lambda=config.ewc_lambda)
    strategy = built.strategy
    t0 = time.perf_counter()
    stages, protocol_stages, memory_bytes = [], [], []
    exp_matrix: list[list[float]] = []
    metrics: dict[str, Any] = {}
    for i, exp in enumerate(bench.train_stream):
        strategy.train(exp, num_workers=0)
        metrics = strategy.eval(bench.test_stream, num_workers=0)
        stages.append(float(metrics.get(ACC_KEY, float("nan"))))
        exp_matrix.append([float(metrics.get(experience_accuracy_key(j), float("nan")))
                           for j in range(len(experiences))])
        memory_bytes.append(built.memory_bytes())
        if config.protocol == "fresh-network":
            st = _protocol_stage(config, built, data, experiences, i, seed, device)
            protocol_stages.append(st)
        log(f"  {name:8s} seed {seed} experience {i + 1}/{len(experiences)}: stream accuracy {100 * stages[-1]:.2f}%"
            + (f", fresh-network accuracy {100 * protocol_stages[-1]['accuracy']:.2f}%"
               if config.protocol == "fresh-network" and protocol_stages[-1] else ""))
    seconds = time.perf_counter() - t0
    record: dict[str, Any] = {
        "strategy": name, "seed": seed, "class_order": order, "experiences": experiences, "seconds": seconds,
        "stream_accuracy": stages, "experience_accuracy": exp_matrix,
        "avalanche_final_accuracy": stages[-1],
        "avalanche_forgetting": float(metrics[FORGET_KEY]) if FORGET_KEY in metrics else None,
        "memory_bytes": memory_bytes, "memory_budget_bytes": config.mem_size * _numel(data) * 4,
    }
    if built.plugin is not None:
        record["distill_seconds"] = sum(h["distill_seconds"] for h in built.plugin.history)
        record["distill_iterations"] = [h["distill_iterations"] for h in built.plugin.history]
        record["memory_history"] = built.plugin.history
    if config.protocol == "fresh-network":
        if protocol_stages and protocol_stages[-1] is not None:
            matrix = [s["per_experience"] + [float("nan")] * (len(experiences) - len(s["per_experience"]))
                      for s in protocol_stages]
            record.update(final_accuracy=protocol_stages[-1]["accuracy"], forgetting=_forgetting(matrix),
                          protocol_accuracy=[s["accuracy"] for s in protocol_stages], protocol_matrix=matrix,
                          val_accuracy=protocol_stages[-1].get("val_accuracy"))
        else:
            record.update(final_accuracy=None, forgetting=None, val_accuracy=None)
    else:
        record.update(final_accuracy=record["avalanche_final_accuracy"], forgetting=record["avalanche_forgetting"])
        if data.val_y is not None:  # the continual model after the last experience, on every class's validation images
            record["val_accuracy"] = _accuracy(strategy.model, data.val_x, data.val_y, device)
    if config.save_memory and config.out and built.plugin is not None and built.plugin.memory is not None:
        built.plugin.save_memory(Path(config.out) / "memories" / f"{name}-seed{seed}")
    return record


def _numel(data: SplitData) -> int:
    c, h, w = data.image_shape
    return c * h * w


def _mean_std(values: list[Optional[float]]) -> tuple[Optional[float], Optional[float]]:
    vals = [v for v in values if v is not None and v == v]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.pstdev(vals) if len(vals) > 1 else 0.0)


def summarize(records: list[dict[str, Any]], strategies: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for s in strategies:
        rs = [r for r in records if r["strategy"] == s]
        acc_m, acc_s = _mean_std([None if r["final_accuracy"] is None else 100 * r["final_accuracy"] for r in rs])
        val_m, val_s = _mean_std([None if r.get("val_accuracy") is None else 100 * r["val_accuracy"] for r in rs])
        f_m, f_s = _mean_std([None if r["forgetting"] is None else 100 * r["forgetting"] for r in rs])
        t_m, _ = _mean_std([r["seconds"] for r in rs])
        out[s] = {"final_accuracy_mean": acc_m, "final_accuracy_std": acc_s, "val_accuracy_mean": val_m,
                  "val_accuracy_std": val_s, "forgetting_mean": f_m,
                  "forgetting_std": f_s, "seconds_mean": t_m, "runs": len(rs),
                  "memory_bytes": max((b for r in rs for b in r["memory_bytes"] if b is not None), default=None)}
    return out


def run(config: RunConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every strategy for every seed; write ``<out>/results.json``; return the results."""
    config.validate()
    device = resolve_device(config.device)
    data = load_split_data(config.benchmark, data_root=config.data_root, source=config.source,
                           cache_dir=config.cache_dir, train_per_class=config.train_per_class,
                           test_per_class=config.test_per_class, val_per_class=config.val_per_class)
    # validate the split, the distillation config and the memory budget before any training
    experiences = experiences_of(data, config.n_experiences, class_order_for(data, config.seeds[0]))
    counts = {c: int((data.train_y == c).sum()) for c in data.present}
    distill_config = config.distill_config(device)  # resolved once; every user copies before changing it
    check_memory_budget(config.strategies, config.mem_size, data.image_shape, experiences,
                        distill_config, config.hallucinator_share, counts)
    log(f"haba-cl: {config.benchmark} ({data.dataset}), {len(data.present)} classes in {config.n_experiences} "
        f"experiences, memory {config.mem_size} images = {config.mem_size * _numel(data) * 4:,} bytes, "
        f"device {device}, protocol {config.protocol}")
    records = []
    t0 = time.perf_counter()
    for seed in config.seeds:
        for name in config.strategies:
            records.append(run_one(config, data, name, seed, device, log, distill_config))
    summary = summarize(records, config.strategies)
    cfg = asdict(config)
    cfg["distill_config"] = distill_config.to_dict()  # the resolved per-experience distillation
    result = {"config": cfg, "data": data.describe(), "device": str(device), "summary": summary, "runs": records,
              "total_seconds": time.perf_counter() - t0,
              "metric": ("fresh network trained on memory only, tested on seen classes (DM protocol)"
                         if config.protocol == "fresh-network" else "Avalanche Top1_Acc_Stream and StreamForgetting after the "
                                                         "last experience")}
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        if config.plots:
            from .cl_plots import save_plots

            title = f"{config.benchmark}, {config.n_experiences} experiences, memory {config.mem_size} images"
            result["plots"] = [p.name for p in save_plots(records, out, title)]
        with atomic_path(out / "results.json") as tmp:
            tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


__all__ = ["RunConfig", "run", "run_one", "summarize", "PROTOCOLS", "MEMORY_STRATEGIES"]
