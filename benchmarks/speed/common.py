"""Shared by the speed study's parts: random CIFAR/MNIST-shaped data, configs, timing one distillation run."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable

import torch

from haba_core import DistillConfig, FactorizedDataset, ImageDataset, distill
from haba_core.distillation import network_factory

from .. import harness as H
from .settings import Settings

def random_dataset(shape: tuple[int, int, int], per_class: int, seed: int, num_classes: int = 10,
                   name: str = "random") -> ImageDataset:
    """Uniform random images in [0,1] with balanced labels (only the shapes matter for timing)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    n = per_class * num_classes
    images = torch.rand((n, *shape), generator=g)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    c = shape[0]
    return ImageDataset(name, images, labels, [str(i) for i in range(num_classes)], (0.5,) * c,
                        (1 / math.sqrt(12),) * c, "train")


def base_config(s: Settings, device: torch.device, mtt_composition: str | None = None, **kw) -> DistillConfig:
    """The study's DistillConfig; ``mtt_composition`` sets ``mtt.composition`` (per_step | pairs)."""
    composition = mtt_composition
    cfg = DistillConfig(net_width=s.net_width, net_depth=s.net_depth, device=str(device),
                        checkpoint_every=10**9, precision=s.precision, **kw)
    cfg.dm.batch_real = s.batch_real
    cfg.dc.batch_real = s.batch_real
    cfg.dc.outer_loop = s.dc_outer
    cfg.dc.inner_loop = s.dc_inner
    cfg.mtt.syn_steps = s.mtt_syn_steps
    cfg.mtt.expert_epochs = s.mtt_expert_epochs
    if composition:
        cfg.mtt.composition = composition
    return cfg


def fake_trajectories(cfg: DistillConfig, train: ImageDataset, device: torch.device, seed: int) -> list[torch.Tensor]:
    """One expert trajectory with the distillation network's parameter count (a small random walk).

    The MTT cost does not depend on the trajectory values, so we skip training experts.
    """
    g = torch.Generator().manual_seed(20_000 + seed)
    net = network_factory(cfg, tuple(train.image_shape), train.num_classes, torch.device("cpu"))(g)
    start = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    steps = [start]
    for _ in range(cfg.mtt.expert_epochs + 2):
        steps.append(steps[-1] + 1e-3 * torch.randn(start.shape, generator=g))
    return [torch.stack(steps)]


def composed_per_step(fd: FactorizedDataset, cfg: DistillConfig) -> int:
    s = fd.synthetic
    if not s.is_factorized:
        return s.num_bases
    if cfg.objective == "mtt" and cfg.mtt.composition == "per_step":
        return min(cfg.mtt.batch_syn or s.num_bases, s.num_bases)  # per unrolled step
    return s.num_bases * min(cfg.hallucinators_per_step, s.num_hallucinators)


def describe_fd(fd: FactorizedDataset) -> dict:
    s = fd.synthetic
    return {"bpc": s.num_bases // s.num_classes, "hallucinators": s.num_hallucinators, **H.storage_columns(fd)}


# ---------------------------------------------------------------------------------------------- part 1
def time_distillation(train: ImageDataset, cfg: DistillConfig, device: torch.device, timed: int,
                      trajectories=None, monitor: bool = True, on_ready: Callable | None = None,
                      phase_hook: Callable | None = None) -> dict:
    """Run ``1 + timed`` iterations; time each iteration after the first (warm-up, discarded).

    Peak memory is measured from the end of the warm-up iteration to the end of the run. Times are CPU
    seconds of this process (``time.process_time``: robust on a shared machine) on CPU, wall seconds on CUDA.
    """
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    cfg = replace(cfg, iterations=1 + timed)
    mon = H.MemoryMonitor(device)
    stamps: list[float] = []
    loads: list[float] = []

    def on_step(it: int, _losses: dict) -> None:
        H.synchronize(device)
        if it == 0:
            if monitor:
                mon.rebase()
            if on_ready is not None:
                on_ready()
        stamps.append(clock())
        loads.append(H.load_average()[0])

    fd = distill(train, cfg, on_step=on_step, trajectories=trajectories, phase_hook=phase_hook)
    peak = mon.stop() if monitor else None
    times = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"fd": fd, "times": times, "peak": peak, "loads": loads[1:], "method": mon.method}
