"""Speed study: what does the factorization cost in time and memory?

``python -m benchmarks.speed [--quick] [--device auto|cpu|cuda] [--seeds N] [--out DIR] [--md FILE]``

Parts (all on synthetic random tensors shaped like CIFAR-10 / MNIST — timing needs no real data):

1. distillation iteration time per objective (dm, dc, dsa, mtt), haba vs plain at the same IPC budget;
2. one downstream training epoch with online composition vs plain tensors of the same count per epoch,
   and vs hallucinations materialized once;
3. peak memory of the distillation iteration and of the training epoch (columns of 1 and 2, and a table);
4. scaling of the haba DM iteration with BPC, |H| and image size;
5. composition micro-benchmark: batched no-grad ``sample_epoch`` vs one sample at a time with gradients;
6. a torch.profiler run of the slowest path (top ops by self CPU time, and the time per phase).

Every measurement is mean ± std over seeds (each seed: fresh data, fresh synthetic set, fresh networks;
haba and plain measured back-to-back so that their ratio is paired); every row states stored bytes and
IPC-equivalent. See ``FULL`` for the settings and how they differ from the papers'.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from haba_core import DistillConfig, EvalConfig, FactorizedDataset, ImageDataset, distill
from haba_core.distillation import network_factory
from haba_core.evaluate import build_eval_network, train_on_synthetic
from haba_core.objectives import seeded_network

from . import harness as H

NAME = "speed"
SECTION = "speed"
TARGETS = {"online_overhead_max": 1.3, "haba_iteration_ratio_max": 1.5, "batched_compose_speedup_min": 5.0}
PARTS = ("threads", "objectives", "downstream", "scaling", "compose", "profile")
SHAPES = {"cifar10-like": (3, 32, 32), "mnist-like": (1, 28, 28)}


@dataclass
class Settings:
    """Everything that sets the size of the study."""

    shapes: dict = field(default_factory=lambda: dict(SHAPES))   # data name -> (c, h, w)
    per_class: int = 500                 # random real images per class (10 classes)
    net_width: int = 128                 # ConvNet width / depth: the standard distillation network
    net_depth: int = 3
    ipcs: tuple[int, ...] = (2, 11)      # budgets of part 1 (IPC-2 and IPC-11 equivalents)
    objectives: dict = field(default_factory=lambda: {"cifar10-like": ("dm", "dc", "dsa", "mtt"),
                                                       "mnist-like": ("dm",)})
    timed_iterations: int = 2            # part 1: per seed, after one discarded warm-up iteration
    scaling_timed_iterations: int = 1    # part 4: likewise
    batch_real: int = 64                 # DM / DC real images per class per iteration (papers: 256)
    dc_outer: int = 10                   # DC/DSA outer loop (paper: 10 for IPC 10)
    dc_inner: int = 5                    # DC/DSA network steps after each update (paper: 50)
    mtt_syn_steps: int = 3               # MTT unrolled student steps (MTT CIFAR-10: 30–80)
    mtt_expert_epochs: int = 2
    eval_ipcs: dict = field(default_factory=lambda: {"cifar10-like": (2, 11, 51), "mnist-like": (11,)})
    eval_epochs: int = 3                 # timed epochs per seed (after one warm-up epoch)
    scaling_base: tuple[int, int, int] = (10, 5, 32)   # (BPC, |H|, image size) held fixed in the sweeps
    scaling_bpc: tuple[int, ...] = (1, 10, 50)
    scaling_h: tuple[int, ...] = (1, 5, 10)
    scaling_size: tuple[int, ...] = (16, 32, 64)
    scaling_all_h: bool = False         # also run the |H| sweep composing every hallucinator each step
    compose_ipcs: tuple[int, ...] = (11, 51)
    compose_batched_reps: int = 20
    compose_loop_reps: int = 2
    profile: bool = True
    ablations: bool = True               # DM: haba without adversary / with 1 hallucinator per step
    batch_real_checks: tuple = (("cifar10-like", "dm", 11, 256),)   # (data, objective, IPC, batch_real) re-run
    threads_check: bool = True           # part 0: DM haba iteration with 1 thread vs all cores
    threads_counts: tuple = ()           # thread counts of part 0 (empty: 1 and the core count)


FULL = Settings()
QUICK = Settings(shapes={"cifar10-like": (3, 16, 16), "mnist-like": (1, 14, 14)}, per_class=12, net_width=32, net_depth=2, ipcs=(3,),
                 objectives={"cifar10-like": ("dm", "dc", "dsa", "mtt")},
                 timed_iterations=1, scaling_timed_iterations=1, batch_real=8, dc_outer=2, dc_inner=1,
                 mtt_syn_steps=2, batch_real_checks=(("cifar10-like", "dm", 3, 16),), threads_check=True,
                 threads_counts=(1,),  # 2 threads can take 100x longer on a loaded machine
                 eval_ipcs={"cifar10-like": (3,)}, eval_epochs=1,
                 scaling_base=(1, 2, 16), scaling_bpc=(1, 2), scaling_h=(1, 2), scaling_size=(16,),
                 scaling_all_h=False, compose_ipcs=(3,), compose_batched_reps=3, compose_loop_reps=1,
                 profile=True)


# ---------------------------------------------------------------------------------------------- data
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


def base_config(s: Settings, device: torch.device, **kw) -> DistillConfig:
    cfg = DistillConfig(net_width=s.net_width, net_depth=s.net_depth, device=str(device),
                        checkpoint_every=10**9, **kw)
    cfg.dm.batch_real = s.batch_real
    cfg.dc.batch_real = s.batch_real
    cfg.dc.outer_loop = s.dc_outer
    cfg.dc.inner_loop = s.dc_inner
    cfg.mtt.syn_steps = s.mtt_syn_steps
    cfg.mtt.expert_epochs = s.mtt_expert_epochs
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
    return s.num_bases * min(cfg.hallucinators_per_step, s.num_hallucinators)


def describe_fd(fd: FactorizedDataset) -> dict:
    s = fd.synthetic
    return {"bpc": s.num_bases // s.num_classes, "hallucinators": s.num_hallucinators, **H.storage_columns(fd)}


# ---------------------------------------------------------------------------------------------- part 1
def time_distillation(train: ImageDataset, cfg: DistillConfig, device: torch.device, timed: int,
                      trajectories=None, monitor: bool = True, on_ready: Callable | None = None) -> dict:
    """Run ``1 + timed`` iterations; time each iteration after the first (warm-up, discarded).

    Peak memory is measured from the end of the warm-up iteration to the end of the run.
    """
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
        stamps.append(time.perf_counter())
        loads.append(H.load_average()[0])

    fd = distill(train, cfg, on_step=on_step, trajectories=trajectories)
    peak = mon.stop() if monitor else None
    times = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"fd": fd, "times": times, "peak": peak, "loads": loads[1:], "method": mon.method}


NO_ADVERSARY = {"lambda_cos": 0.0, "lambda_con": 0.0, "lambda_task": 0.0}


def objective_variants(objective: str, s: Settings) -> list[tuple[str, str, dict]]:
    """(variant label, parameterization, DistillConfig overrides) measured per objective.

    Besides the defaults, DM (the cheapest objective) also runs haba without the adversarial
    contrastive constraint and with one hallucinator per step, to separate the factorization's own
    cost from those two design choices.
    """
    out = [("plain", "plain", {}), ("haba", "haba", {})]
    if objective == "dm" and s.ablations:
        out += [("haba, no adversary", "haba", dict(NO_ADVERSARY)),
                ("haba, no adversary, 1 h/step", "haba", dict(NO_ADVERSARY, hallucinators_per_step=1))]
    return out


def measure_variants(s: Settings, device: torch.device, seeds: list[int], log, shape_name: str, objective: str,
                     ipc: int, variants: list[tuple[str, str, dict]], batch_real: int) -> list[dict]:
    """Time each variant per seed (variants of one seed back to back); ratios are paired per seed."""
    shape = s.shapes[shape_name]
    s = replace(s, batch_real=batch_real)
    rec = {v: {"times": [], "peaks": [], "loads": [], "ratios": []} for v, _, _ in variants}
    for seed in seeds:
        train = random_dataset(shape, max(s.per_class, batch_real), seed, name=shape_name)
        seed_time = {}
        for label, param, overrides in variants:
            cfg = base_config(s, device, objective=objective, parameterization=param, ipc=ipc, seed=seed, **overrides)
            traj = fake_trajectories(cfg, train, device, seed) if objective == "mtt" else None
            r = time_distillation(train, cfg, device, s.timed_iterations, trajectories=traj)
            x = rec[label]
            x["times"].append(sum(r["times"]) / len(r["times"]))
            x["peaks"].append(r["peak"])
            x["loads"].extend(r["loads"])
            x.update(describe_fd(r["fd"]), per_step=composed_per_step(r["fd"], cfg), method=r["method"],
                     parameterization=param, overrides=overrides)
            seed_time[label] = x["times"][-1]
            log(f"[1] {shape_name} {objective} ipc{ipc} batch_real{batch_real} {label} seed{seed}: "
                f"{1000 * seed_time[label]:.0f} ms/it, peak {H.fmt_bytes(r['peak'])}, load {H.load_average()[0]}")
        for label, _, _ in variants:
            rec[label]["ratios"].append(seed_time[label] / seed_time["plain"])
    rows = []
    for label, _, _ in variants:
        x = rec[label]
        ratio = H.summarize(x["ratios"], digits=2)
        peak_m, peak_s = H.mean_std(x["peaks"])
        rows.append({
            "part": "distill_iteration", "shape": shape_name, "objective": objective,
            "parameterization": x["parameterization"], "variant": label, "overrides": x["overrides"],
            "batch_real": batch_real, "ipc": ipc, "bpc": x["bpc"], "hallucinators": x["hallucinators"],
            "images_per_step": x["per_step"], "stored_bytes": x["stored_bytes"],
            "ipc_equivalent": x["ipc_equivalent"], "unit": "ms/iteration",
            **H.summarize(x["times"], scale=1000.0, loads=x["loads"]),
            "peak_bytes": peak_m, "peak_bytes_std": peak_s, "peak_method": x["method"],
            "ratio_vs_plain": ratio["mean"], "ratio_vs_plain_std": ratio["std"],
            "ratio_value": ratio["value"] if label != "plain" else "1",
        })
    return rows


def part_objectives(s: Settings, device: torch.device, seeds: list[int], log) -> list[dict]:
    rows = []
    for shape_name, objectives in s.objectives.items():
        for objective in objectives:
            for ipc in s.ipcs:
                rows += measure_variants(s, device, seeds, log, shape_name, objective, ipc,
                                         objective_variants(objective, s), s.batch_real)
    for shape_name, objective, ipc, batch_real in s.batch_real_checks:
        rows += measure_variants(s, device, seeds, log, shape_name, objective, ipc,
                                 objective_variants(objective, s)[:2], batch_real)
    return rows


def part_threads(s: Settings, device: torch.device, seeds: list[int], log) -> list[dict]:
    """DM haba iteration (largest IPC of part 1) with 1 intra-op thread vs one per core."""
    if device.type != "cpu":
        return []
    import os

    shape_name = next(iter(s.shapes))
    ipc = max(s.ipcs)
    counts = sorted(set(s.threads_counts) | {1}) if s.threads_counts else sorted({1, os.cpu_count() or 1})
    before = torch.get_num_threads()
    times = {n: [] for n in counts}
    loads = {n: [] for n in counts}
    fd = None
    try:
        for seed in seeds:
            train = random_dataset(s.shapes[shape_name], s.per_class, seed, name=shape_name)
            for n in counts:
                torch.set_num_threads(n)
                cfg = base_config(s, device, objective="dm", parameterization="haba", ipc=ipc, seed=seed)
                r = time_distillation(train, cfg, device, s.scaling_timed_iterations, monitor=False)
                times[n].append(sum(r["times"]) / len(r["times"]))
                loads[n].extend(r["loads"])
                fd = r["fd"]
                log(f"[0] threads {n} seed{seed}: {1000 * times[n][-1]:.0f} ms/it, load {H.load_average()[0]}")
    finally:
        torch.set_num_threads(before)
    rows = []
    for n in counts:
        ratio = H.summarize([a / b for a, b in zip(times[n], times[1])], digits=2)
        rows.append({"part": "threads", "shape": shape_name, "objective": "dm", "variant": "haba", "ipc": ipc,
                     "threads": n, **describe_fd(fd), "unit": "ms/iteration",
                     **H.summarize(times[n], scale=1000.0, loads=loads[n]),
                     "ratio_vs_1_thread": ratio["mean"], "ratio_value": ratio["value"]})
    return rows


# ---------------------------------------------------------------------------------------------- part 2
class Materialized:
    """All |H|×|B| hallucinations composed once; each epoch picks one per basis by indexing."""

    def __init__(self, fd: FactorizedDataset):
        self.images, self.labels = fd.materialize()
        self.num_bases = fd.synthetic.num_bases
        self.count = max(1, fd.num_hallucinators)
        self.num_hallucinators = 0  # train_on_synthetic's contrastive branch is not used

    def sample_epoch(self, generator: torch.Generator | None = None, per_basis: int = 1):
        if per_basis != 1:
            raise ValueError("the materialized variant draws one hallucination per basis")
        dev = self.images.device
        h = torch.randint(self.count, (self.num_bases,), generator=generator).to(dev)
        idx = h * self.num_bases + torch.arange(self.num_bases, device=dev)
        return self.images[idx], self.labels[idx]


def synthetic_pair(train: ImageDataset, s: Settings, device: torch.device, ipc: int, seed: int):
    """A haba set at ``ipc`` and a plain set with as many images as the haba set has bases (no training)."""
    haba = distill(train, base_config(s, device, objective="dm", parameterization="haba", ipc=ipc, seed=seed,
                                      iterations=0))
    bpc = haba.synthetic.num_bases // haba.num_classes
    plain = distill(train, base_config(s, device, objective="dm", parameterization="plain", bpc=bpc, ipc=None,
                                       seed=seed, iterations=0))
    return haba, plain


def time_epochs(data: Any, shape, num_classes: int, s: Settings, device: torch.device, seed: int) -> dict:
    cfg = EvalConfig(epochs=1, net_width=s.net_width, net_depth=s.net_depth, device=str(device), seed=seed)
    gen = torch.Generator().manual_seed(30_000 + seed)
    net = seeded_network(lambda: build_eval_network(cfg, shape, num_classes), gen, device)
    train_on_synthetic(net, data, cfg, gen, 0.01)          # warm-up epoch
    timed = replace(cfg, epochs=s.eval_epochs)
    mon = H.MemoryMonitor(device).start()
    with H.Timer(device) as t:
        train_on_synthetic(net, data, timed, gen, 0.01)
    return {"epoch_s": t.seconds / s.eval_epochs, "peak": mon.stop(), "load": t.load}


def time_sample_epoch(data: Any, device: torch.device, reps: int, seed: int) -> float:
    gen = torch.Generator().manual_seed(40_000 + seed)
    data.sample_epoch(gen)
    with H.Timer(device) as t:
        for _ in range(reps):
            data.sample_epoch(gen)
    return t.seconds / reps


def part_downstream(s: Settings, device: torch.device, seeds: list[int], log) -> list[dict]:
    rows = []
    variants = ("plain", "haba-online", "haba-materialized")
    for shape_name, ipcs in s.eval_ipcs.items():
        shape = s.shapes[shape_name]
        for ipc in ipcs:
            acc = {v: {"epoch": [], "peak": [], "compose": [], "loads": []} for v in variants}
            ratios = {v: [] for v in variants}
            materialize_s = []
            info = {}
            for seed in seeds:
                train = random_dataset(shape, min(s.per_class, 64), seed, name=shape_name)
                haba, plain = synthetic_pair(train, s, device, ipc, seed)
                with H.Timer(device) as tm:
                    mat = Materialized(haba)
                materialize_s.append(tm.seconds)
                data = {"plain": plain, "haba-online": haba, "haba-materialized": mat}
                info = {"plain": describe_fd(plain), "haba-online": describe_fd(haba),
                        "haba-materialized": describe_fd(haba)}
                info["plain"]["images"] = plain.synthetic.num_bases
                info["haba-online"]["images"] = haba.synthetic.num_bases
                info["haba-materialized"]["images"] = haba.synthetic.num_bases
                per_seed = {}
                for v in variants:
                    r = time_epochs(data[v], shape, 10, s, device, seed)
                    acc[v]["epoch"].append(r["epoch_s"])
                    acc[v]["peak"].append(r["peak"])
                    acc[v]["loads"].append(r["load"])
                    acc[v]["compose"].append(time_sample_epoch(data[v], device, 5, seed))
                    per_seed[v] = r["epoch_s"]
                    log(f"[2] {shape_name} ipc{ipc} {v} seed{seed}: {1000 * r['epoch_s']:.0f} ms/epoch, "
                        f"peak {H.fmt_bytes(r['peak'])}, load {H.load_average()[0]}")
                for v in variants:
                    ratios[v].append(per_seed[v] / per_seed["plain"])
            for v in variants:
                ratio = H.summarize(ratios[v], digits=3)
                peak_m, peak_s = H.mean_std(acc[v]["peak"])
                comp_m, comp_s = H.mean_std([1000 * x for x in acc[v]["compose"]])
                row = {"part": "train_epoch", "shape": shape_name, "ipc": ipc, "variant": v,
                       "images_per_epoch": info[v]["images"], "bpc": info[v]["bpc"],
                       "hallucinators": info[v]["hallucinators"], "stored_bytes": info[v]["stored_bytes"],
                       "ipc_equivalent": info[v]["ipc_equivalent"], "unit": "ms/epoch",
                       **H.summarize(acc[v]["epoch"], scale=1000.0, loads=acc[v]["loads"]),
                       "sample_epoch_ms": comp_m, "sample_epoch_ms_std": comp_s,
                       "peak_bytes": peak_m, "peak_bytes_std": peak_s,
                       "ratio_vs_plain": ratio["mean"], "ratio_vs_plain_std": ratio["std"],
                       "ratio_value": ratio["value"]}
                if v == "haba-materialized":
                    m, sd = H.mean_std([1000 * x for x in materialize_s])
                    row["materialize_once_ms"] = m
                    row["materialize_once_ms_std"] = sd
                    row["note"] = f"+ {m:.1f} ms once to compose all |H|·|B| images"
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- part 4
def part_scaling(s: Settings, device: torch.device, seeds: list[int], log) -> list[dict]:
    b0, h0, z0 = s.scaling_base
    points: list[tuple[str, int, int, int, int]] = []   # (varied, bpc, |H|, size, hallucinators_per_step)
    for b in s.scaling_bpc:
        points.append(("BPC", b, h0, z0, 2))
    for h in s.scaling_h:
        points.append(("|H|", b0, h, z0, 2))
    if s.scaling_all_h:
        for h in s.scaling_h:
            if h > 2:
                points.append(("|H| (all per step)", b0, h, z0, h))
    for z in s.scaling_size:
        points.append(("image size", b0, h0, z, 2))
    rows = []
    cache: dict[tuple, dict] = {}
    for varied, bpc, nh, size, hps in points:
        key = (bpc, nh, size, hps)
        if key not in cache:
            times, peaks, loads = [], [], []
            fd = cfg = None
            for seed in seeds:
                train = random_dataset((3, size, size), max(s.batch_real, max(s.scaling_bpc), 16), seed,
                                       name=f"random-3x{size}x{size}")
                cfg = base_config(s, device, objective="dm", parameterization="haba", bpc=bpc, ipc=None,
                                  hallucinators=nh, hallucinators_per_step=hps, seed=seed)
                r = time_distillation(train, cfg, device, s.scaling_timed_iterations)
                times.append(sum(r["times"]) / len(r["times"]))
                peaks.append(r["peak"])
                loads.extend(r["loads"])
                fd = r["fd"]
                log(f"[4] bpc{bpc} H{nh} size{size} hps{hps} seed{seed}: {1000 * times[-1]:.0f} ms/it, "
                    f"load {H.load_average()[0]}")
            peak_m, _ = H.mean_std(peaks)
            cache[key] = {"shape": f"3×{size}×{size}", "bpc": bpc, "hallucinators": nh, "image_size": size,
                          "hallucinators_per_step": min(hps, nh), "images_per_step": composed_per_step(fd, cfg),
                          **H.storage_columns(fd), "unit": "ms/iteration",
                          **H.summarize(times, scale=1000.0, loads=loads), "peak_bytes": peak_m}
        rows.append({"part": "scaling", "varied": varied, **cache[key]})
    # relative cost within each sweep (to its first point)
    for varied in dict.fromkeys(r["varied"] for r in rows):
        group = [r for r in rows if r["varied"] == varied]
        ref = next((r for r in rows if (r["bpc"], r["hallucinators"], r["image_size"]) == (b0, h0, z0)
                    and r["hallucinators_per_step"] == min(2, h0)), group[0])
        for r in group:
            r["relative"] = r["mean"] / ref["mean"]
    return rows


# ---------------------------------------------------------------------------------------------- part 5
def part_compose(s: Settings, device: torch.device, seeds: list[int], log) -> list[dict]:
    rows = []
    for shape_name in s.shapes:
        shape = s.shapes[shape_name]
        for ipc in s.compose_ipcs:
            res = {"batched": [], "loop_grad": [], "getitem": []}
            loads, info = [], {}
            for seed in seeds:
                train = random_dataset(shape, 20, seed, name=shape_name)
                fd = distill(train, base_config(s, device, objective="dm", parameterization="haba", ipc=ipc,
                                                seed=seed, iterations=0))
                info = {**describe_fd(fd), "images": fd.synthetic.num_bases}
                syn = fd.synthetic
                gen = torch.Generator().manual_seed(seed)
                nb = syn.num_bases
                syn.sample_epoch(gen)
                with H.Timer(device) as t:
                    for _ in range(s.compose_batched_reps):
                        syn.sample_epoch(gen)
                res["batched"].append(t.seconds / s.compose_batched_reps)
                # per sample with gradients on (as a naive training loop would compose)
                for p in syn.parameters():
                    p.requires_grad_(True)
                idx = torch.arange(nb, device=syn.bases.device)
                with H.Timer(device) as t:
                    for _ in range(s.compose_loop_reps):
                        h = torch.randint(syn.num_hallucinators, (nb,), generator=gen).to(idx.device)
                        out = torch.cat([syn.compose(idx[i:i + 1], h[i:i + 1]) for i in range(nb)])
                        del out
                res["loop_grad"].append(t.seconds / s.compose_loop_reps)
                for p in syn.parameters():
                    p.requires_grad_(False)
                # per sample through the torch Dataset protocol (no grad), what a DataLoader would do
                with H.Timer(device) as t:
                    for _ in range(s.compose_loop_reps):
                        torch.stack([fd[i][0] for i in range(nb)])
                res["getitem"].append(t.seconds / s.compose_loop_reps)
                loads.append(t.load)
                log(f"[5] {shape_name} ipc{ipc} seed{seed}: batched {1000 * res['batched'][-1]:.2f} ms, "
                    f"loop+grad {1000 * res['loop_grad'][-1]:.1f} ms, getitem {1000 * res['getitem'][-1]:.1f} ms")
            speed = [lg / b for lg, b in zip(res["loop_grad"], res["batched"])]
            speed_gi = [g / b for g, b in zip(res["getitem"], res["batched"])]
            for method, label in (("batched", "batched, no grad (sample_epoch)"),
                                  ("loop_grad", "per sample, grad on (compose)"),
                                  ("getitem", "per sample, no grad (Dataset[i])")):
                row = {"part": "compose", "shape": shape_name, "ipc": ipc, "method": label,
                       "images": info["images"], "bpc": info["bpc"], "hallucinators": info["hallucinators"],
                       "stored_bytes": info["stored_bytes"], "ipc_equivalent": info["ipc_equivalent"],
                       "unit": "ms per epoch of compositions",
                       **H.summarize(res[method], scale=1000.0, digits=2, loads=loads)}
                if method == "loop_grad":
                    sp = H.summarize(speed, digits=1)
                    row.update(speedup_of_batched=sp["mean"], speedup_of_batched_std=sp["std"], speedup_value=sp["value"])
                elif method == "getitem":
                    sp = H.summarize(speed_gi, digits=1)
                    row.update(speedup_of_batched=sp["mean"], speedup_of_batched_std=sp["std"], speedup_value=sp["value"])
                else:
                    row.update(speedup_of_batched=1.0, speedup_value="1")
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- part 6
PHASES = {  # label of each top-level phase of a distillation iteration
    "compose": "① compose pairs (bases → hallucinators)",
    "objective": "② L_DD forward (objective.loss, incl. its inner autograd)",
    "cosine": "③ L_cos forward (adversary features + cosine)",
    "backward": "④ backward of L_S",
    "optimizer": "⑤ optimizer steps of S and H",
    "adversary": "⑥ adversary update (L_con + L_task)",
    "after_update": "⑦ objective.after_update (DC/DSA inner loop)",
}


@contextlib.contextmanager
def phase_markers(objective_name: str):
    """Temporarily wrap the distillation loop's building blocks in ``record_function`` ranges.

    Only top-level calls are recorded (a ``backward`` inside the adversary update counts for the
    adversary), so the phases do not overlap. Python attributes of this process are patched only while
    profiling; haba_core's files are not modified.
    """
    from torch.profiler import record_function

    import importlib

    adv_mod = importlib.import_module("haba_core.adversary")
    loop_mod = importlib.import_module("haba_core.distillation.loop")
    from haba_core import objectives as obj_mod
    from haba_core.factorization import SyntheticSet

    cls = {"dm": obj_mod.DMObjective, "dc": obj_mod.DCObjective, "dsa": obj_mod.DSAObjective,
           "mtt": obj_mod.MTTObjective}[objective_name]
    patches: list[tuple[Any, str, Any]] = []
    depth = [0]

    def wrap(owner, attr, label):
        orig = getattr(owner, attr)
        own = attr in vars(owner)

        def wrapped(*a, **k):
            if depth[0]:
                return orig(*a, **k)
            depth[0] += 1
            try:
                with record_function(label):
                    return orig(*a, **k)
            finally:
                depth[0] -= 1
        patches.append((owner, attr, orig if own else None))
        setattr(owner, attr, wrapped)

    wrap(SyntheticSet, "compose_pairs", PHASES["compose"])
    wrap(cls, "loss", PHASES["objective"])
    wrap(adv_mod.Adversary, "features", PHASES["cosine"])
    wrap(loop_mod, "pairwise_cosine_loss", PHASES["cosine"])
    wrap(torch.Tensor, "backward", PHASES["backward"])
    wrap(torch.optim.SGD, "step", PHASES["optimizer"])
    wrap(torch.optim.Adam, "step", PHASES["optimizer"])
    wrap(adv_mod.Adversary, "step", PHASES["adversary"])
    wrap(cls, "after_update", PHASES["after_update"])
    try:
        yield
    finally:
        for owner, attr, orig in reversed(patches):
            if orig is None:
                delattr(owner, attr)  # it was inherited
            else:
                setattr(owner, attr, orig)


def part_profile(s: Settings, device: torch.device, objective_rows: list[dict], log) -> list[dict]:
    """Profile the slowest (objective, param, IPC) of part 1 and the haba row with the largest ratio."""
    default = [r for r in objective_rows if r["variant"] in ("plain", "haba") and r["batch_real"] == s.batch_real]
    slowest = max(default, key=lambda r: r["mean"])
    worst = max((r for r in default if r["variant"] == "haba"), key=lambda r: r["ratio_vs_plain"])
    out = [profile_one(s, device, slowest, "slowest path", log)]
    if worst is not slowest:
        out.append(profile_one(s, device, worst, "largest haba / plain ratio", log))
        plain = next(r for r in default if r["variant"] == "plain" and all(
            r[k] == worst[k] for k in ("shape", "objective", "ipc")))
        out.append(profile_one(s, device, plain, "its plain counterpart", log))
    return out


def profile_one(s: Settings, device: torch.device, slowest: dict, why: str, log) -> dict:
    """Profile one timed iteration (after a warm-up iteration) of the configuration of a part-1 row."""
    from torch.profiler import ProfilerActivity, profile, schedule

    shape = s.shapes[slowest["shape"]]
    train = random_dataset(shape, s.per_class, 0, name=slowest["shape"])
    cfg = base_config(s, device, objective=slowest["objective"], parameterization=slowest["parameterization"],
                      ipc=slowest["ipc"], seed=0)
    traj = fake_trajectories(cfg, train, device, 0) if cfg.objective == "mtt" else None
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    # step 0 = set-up + warm-up iteration (not recorded), step 1 = the profiled iteration
    prof = profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=1, repeat=1),
                   record_shapes=False, profile_memory=False)
    with phase_markers(cfg.objective), prof:
        # on_ready (end of the warm-up iteration) advances the profiler into its active step
        r = time_distillation(train, cfg, device, 1, trajectories=traj, monitor=False, on_ready=prof.step)
    iter_ms = 1000 * r["times"][0]
    events = prof.key_averages()
    total_self = sum(e.self_cpu_time_total for e in events) or 1.0
    ranges = tuple(PHASES.values()) + ("ProfilerStep", "Optimizer.", "[memory]")
    top = sorted((e for e in events if not e.key.startswith(ranges)),
                 key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    top_rows = [{"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1000, "self_cpu_pct": 100 * e.self_cpu_time_total / total_self,
                 "calls": e.count} for e in top]
    phase_rows = []
    for label in dict.fromkeys(PHASES.values()):
        ev = next((e for e in events if e.key == label), None)
        if ev is not None:
            phase_rows.append({"phase": label, "cpu_ms": ev.cpu_time_total / 1000, "calls": ev.count,
                               "share_pct": 100 * ev.cpu_time_total / 1000 / iter_ms})
    rest = iter_ms - sum(p["cpu_ms"] for p in phase_rows)
    phase_rows.append({"phase": "⑧ everything else (sampling, loss bookkeeping, Python)", "cpu_ms": rest,
                       "calls": None, "share_pct": 100 * rest / iter_ms})
    table = events.table(sort_by="self_cpu_time_total", row_limit=15)
    log("[6] profiled " + f"{slowest['shape']} {cfg.objective} {cfg.parameterization} ipc{cfg.ipc}: {iter_ms:.0f} ms")
    log(table)
    return {"target": {k: slowest[k] for k in ("shape", "objective", "parameterization", "ipc")}, "why": why,
            "iteration_ms": iter_ms, "top_ops": top_rows, "phases": phase_rows, "table": table}


# ---------------------------------------------------------------------------------------------- report
def headline(rows: list[dict]) -> dict:
    it = [r for r in rows if r["part"] == "distill_iteration" and r["variant"] == "haba"]
    ep = [r for r in rows if r["part"] == "train_epoch" and r["variant"] == "haba-online"]
    co = [r for r in rows if r["part"] == "compose" and r["method"].startswith("per sample, grad")]
    worst_it = max(it, key=lambda r: r["ratio_vs_plain"]) if it else None
    worst_ep = max(ep, key=lambda r: r["ratio_vs_plain"]) if ep else None
    worst_co = min(co, key=lambda r: r["speedup_of_batched"]) if co else None
    out = {}
    if worst_it:
        out["haba_iteration_ratio"] = {
            "worst": worst_it["ratio_vs_plain"],
            "where": f"{worst_it['shape']} {worst_it['objective']} IPC {worst_it['ipc']} batch_real {worst_it['batch_real']}",
            "per_row": {f"{r['shape']} {r['objective']} IPC {r['ipc']} batch_real {r['batch_real']}":
                        round(r["ratio_vs_plain"], 3) for r in it},
            "target_max": TARGETS["haba_iteration_ratio_max"],
            "met_everywhere": all(r["ratio_vs_plain"] <= TARGETS["haba_iteration_ratio_max"] for r in it)}
    if worst_ep:
        out["online_overhead"] = {
            "worst": worst_ep["ratio_vs_plain"], "where": f"{worst_ep['shape']} IPC {worst_ep['ipc']}",
            "target_max": TARGETS["online_overhead_max"],
            "met_everywhere": all(r["ratio_vs_plain"] <= TARGETS["online_overhead_max"] for r in ep)}
    if worst_co:
        out["batched_compose_speedup"] = {
            "worst": worst_co["speedup_of_batched"], "where": f"{worst_co['shape']} IPC {worst_co['ipc']}",
            "target_min": TARGETS["batched_compose_speedup_min"],
            "met_everywhere": all(r["speedup_of_batched"] >= TARGETS["batched_compose_speedup_min"] for r in co)}
    return out


ANALYSIS = """\
**Where the time goes (profiler).** {profile_summary}

{notes}
"""

def _find(rows: list[dict], **match) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _span(values: list[float], fmt: str = "{:.2f}") -> str:
    values = sorted(values)
    if not values:
        return "–"
    return fmt.format(values[0]) if len(values) == 1 or fmt.format(values[0]) == fmt.format(values[-1]) else \
        f"{fmt.format(values[0])}–{fmt.format(values[-1])}"


def notes(rows: list[dict], meta: dict, prof: list[dict]) -> str:
    """The interpretation under the tables; numbers are taken from this run's rows."""
    s = meta["settings"]
    br = s["batch_real"]
    it = [r for r in rows if r["part"] == "distill_iteration"]
    big = max(s["ipcs"]) if s["ipcs"] else None
    out = ["*Reading the numbers.*", ""]
    comp = [p["share_pct"] for pr in prof for p in pr["phases"] if p["phase"].startswith("①")
            and pr["target"]["parameterization"] == "haba"]
    lean = [r["ratio_vs_plain"] for r in it if r["variant"] == "haba, no adversary, 1 h/step"]
    out.append(f"* **The factorization itself is cheap.** Composing the images (① in the profiles) takes "
               f"{_span(comp)}% of a haba iteration, and a haba DM iteration without the adversary and with one "
               f"hallucinator per step (as many composed images as bases) runs at {_span(lean)}× plain.")
    dm = {v: _find(it, shape=next(iter(s["shapes"])), objective="dm", ipc=big, batch_real=br, variant=v)
          for v in ("haba", "haba, no adversary", "haba, no adversary, 1 h/step")}
    if all(dm.values()):
        out.append(
            f"* **What makes a haba iteration slower is two design choices of the method, not the composition.** "
            f"(a) Every basis goes through `hallucinators_per_step` = 2 hallucinators per iteration, so at IPC {big} "
            f"L_DD sees {dm['haba']['images_per_step']} composed images where plain sees "
            f"{_find(it, objective='dm', ipc=big, batch_real=br, variant='plain')['images_per_step']} (MTT unrolls "
            f"its student over all of them, so its cost follows the image count). (b) The adversarial contrastive "
            f"constraint runs the adversary (the same ConvNet) forward and backward over those images twice per "
            f"iteration: for L_cos (gradients to the images) and for its own update (L_con + L_task). On DM "
            f"({next(iter(s['shapes']))}, IPC {big}, `batch_real` {br}) the ratio to plain goes "
            f"{dm['haba, no adversary, 1 h/step']['ratio_vs_plain']:.2f}× → "
            f"{dm['haba, no adversary']['ratio_vs_plain']:.2f}× with 2 hallucinators per step → "
            f"{dm['haba']['ratio_vs_plain']:.2f}× with the adversary, and the peak memory "
            f"{fmt_b(dm['haba, no adversary']['peak_bytes'])} → {fmt_b(dm['haba']['peak_bytes'])}. Knobs for users: "
            f"`hallucinators_per_step=1`, `lambda_cos=lambda_con=lambda_task=0` (the paper's Tab. 4 ablation). "
            f"At IPC 2 (one basis per class) none of this matters: every objective is within "
            f"{max([r['ratio_vs_plain'] for r in it if r['variant'] == 'haba' and r['ipc'] == min(s['ipcs'])] or [1]):.2f}× of plain.")
    for shape, objective, ipc, b in s.get("batch_real_checks", ()):
        hi = _find(it, shape=shape, objective=objective, ipc=ipc, batch_real=b, variant="haba")
        lo = _find(it, shape=shape, objective=objective, ipc=ipc, batch_real=br, variant="haba")
        if hi and lo:
            out.append(f"* **The real batch dilutes the overhead**: with the papers' `batch_real` {b} the {objective} "
                       f"ratio at IPC {ipc} is {hi['ratio_vs_plain']:.2f}× instead of {lo['ratio_vs_plain']:.2f}× with our "
                       f"{br}; the `batch_real` {br} rows are upper bounds for the papers' settings.")
    ep = [r for r in rows if r["part"] == "train_epoch" and r["variant"] == "haba-online"]
    if ep:
        share = [100 * r["sample_epoch_ms"] / r["mean"] for r in ep]
        out.append(f"* **Downstream training** with online composition runs at {_span([r['ratio_vs_plain'] for r in ep])}× "
                   f"plain tensors of the same count; the only extra work, composing the epoch (`sample_epoch`), is "
                   f"{_span(share, '{:.1f}')}% of an epoch, so deviations beyond that are load noise (see the ± and "
                   f"`load` columns). Materializing the |H|·|B| images once buys nothing measurable and costs "
                   f"|H|× the memory for the images: online composition is the right default.")
    co = [r for r in rows if r["part"] == "compose" and r["method"].startswith("per sample, grad")]
    if co:
        per = "; ".join(f"{r['shape']} IPC {r['ipc']}: {r['speedup_of_batched']:.1f}×" for r in co)
        out.append(
            "* **Composition micro-benchmark** (" + per + "). On CPU a hallucinator's 3×3 convolutions over "
            "3 channels cost about the same per image batched or not (~9 µs per 32×32 image either way: oneDNN "
            "has nothing to vectorise over with so few channels), so batching removes only per-call overhead; "
            "with 1-channel MNIST-like bases that overhead dominates and the target is met, with 3-channel "
            "CIFAR-like ones it is not. A GPU should do much better (not measured: no GPU here — run "
            "`--device cuda`). Two CPU alternatives we tried outside the core did not help: one grouped "
            "convolution with per-sample weights gathered from the bank (3× faster for MNIST-like bases, slower "
            "for CIFAR-like ones: 2.4 vs 2.2 ms at IPC 11, 13.8 vs 11.2 ms at IPC 51) and turning oneDNN off "
            "(the ratio did not improve).")
    th = [r for r in rows if r["part"] == "threads"]
    if len(th) > 1:
        one = next(r for r in th if r["threads"] == 1)
        many = next(r for r in th if r["threads"] != 1)
        per_seed = ", ".join(f"{m / o:.2f}×" for o, m in zip(one["values"], many["values"]))
        out.append(f"* **What we changed**: the harness runs torch with one intra-op thread by default (`--threads 1`). "
                   f"In part 0, {many['threads']} threads vs 1 took {per_seed} the time, seed by seed: faster while "
                   f"the machine is idle, several times slower as soon as another job competes for the cores "
                   f"(OpenMP threads spin-wait for each other). With other agents' jobs running (load 7–9), "
                   f"2 threads made the width-128 DM iteration 2–3× slower and the tiny `--quick` settings "
                   f"2× to over 100× slower.")
    return "\n".join(out)


def fmt_b(n: float | None) -> str:
    return H.fmt_bytes(n)


def render_markdown(rows: list[dict], meta: dict, prof: list[dict] | dict | None) -> str:
    if isinstance(prof, dict):
        prof = [prof]
    s = meta["settings"]
    info = meta["machine"]
    for r in rows:
        if r.get("peak_bytes") is not None:
            r["peak_h"] = H.fmt_bytes(r["peak_bytes"])
        if r.get("shape") in s["shapes"]:
            r["data"] = f"{r['shape']} " + "×".join(str(v) for v in s["shapes"][r["shape"]])
    lines = ["## Speed", "",
             f"*{meta['date']}* · machine: {H.machine_line(info)} · device `{info['device']}`",
             "", f"Command: `{meta['command']}` (from the repo root with PYTHONPATH=.; "
             f"{'niceness ' + str(info['niceness']) if info.get('niceness') else 'not niced'})", "",
             f"Load average (1/5/15 min) at start {tuple(meta['load_start'])}, at end {tuple(meta['load_end'])}; "
             f"the machine's {info['cpu_cores_usable']} cores were shared with other jobs, so absolute times are "
             f"inflated and noisy — the `load` column is the mean 1-min load while each row was measured; compare "
             f"the paired ratios (haba and plain measured back-to-back per seed). Wall time of the study: "
             f"{meta['wall_minutes']:.1f} min.", "",
             f"Settings: synthetic random data (10 classes, {s['per_class']} images per class; "
             + ", ".join(f"{k} {'×'.join(map(str, v))}" for k, v in s["shapes"].items())
             + f"), ConvNet width {s['net_width']} depth {s['net_depth']} with instance norm "
             f"{'(the standard distillation network)' if (s['net_width'], s['net_depth']) == (128, 3) else '(quick mode)'}"
             f", {len(meta['seeds'])} seeds; each seed builds fresh data, synthetic set and networks and runs "
             f"1 warm-up (discarded) + {s['timed_iterations']} timed iteration(s) ({s.get('scaling_timed_iterations', 1)} in "
             f"parts 0 and 4). Smaller than the papers to fit "
             f"≤ 60 min on 2 CPU cores: `batch_real` {s['batch_real']} real images per class (papers 256), "
             f"DC/DSA inner loop {s['dc_inner']} (paper 50; outer loop {s['dc_outer']}), MTT "
             f"{s['mtt_syn_steps']} unrolled steps over all composed images (MTT code: 30–80) on a random "
             f"1-expert trajectory (MTT's cost does not depend on the trajectory values). Budgets: the toolkit's "
             f"default `exact` rule ({budget_text(rows)}), other knobs at their defaults "
             f"(`hallucinators_per_step` 2, adversary on). Stored bytes count bases + hallucinators "
             f"(+ MTT's learned lr) as float32; IPC-eq = stored numbers / (10·c·h·w).", ""]

    hl = meta["headline"]
    lines += ["### Targets", "",
              "| target | measured (worst case) | where | met |", "|---|---|---|---|"]
    if "haba_iteration_ratio" in hl:
        h = hl["haba_iteration_ratio"]
        lines.append(f"| haba iteration ≤ {h['target_max']}× plain (same objective, same IPC) | {h['worst']:.2f}× | "
                     f"{h['where']} | {'yes' if h['met_everywhere'] else 'no'} |")
    if "online_overhead" in hl:
        h = hl["online_overhead"]
        lines.append(f"| online composition epoch ≤ {h['target_max']}× plain tensors of the same count | "
                     f"{h['worst']:.3f}× | {h['where']} | {'yes' if h['met_everywhere'] else 'no'} |")
    if "batched_compose_speedup" in hl:
        h = hl["batched_compose_speedup"]
        lines.append(f"| batched no-grad composition ≥ {h['target_min']}× faster than per-sample with grad | "
                     f"{h['worst']:.1f}× | {h['where']} | {'yes' if h['met_everywhere'] else 'no'} |")

    if "haba_iteration_ratio" in hl:
        lines += ["", "haba / plain iteration time per row: " + "; ".join(
            f"{k.replace(' batch_real ' + str(s['batch_real']), '')}: {v:.2f}×"
            for k, v in hl["haba_iteration_ratio"]["per_row"].items()) + "."]
    th_rows = [r for r in rows if r["part"] == "threads"]
    if th_rows:
        lines += ["", "### 0. CPU threads (why the study runs with `--threads 1`)", "",
                  "The same DM haba iteration with 1 torch thread and with one thread per core, back to back per "
                  "seed. On a CPU shared with other jobs, OpenMP threads spin-wait for each other and lose; this "
                  "row decides the harness default (`--threads 1`).", "",
                  H.markdown_table(th_rows, [("data", "data"), ("objective", "objective"), ("variant", "param"),
                                             ("ipc", "IPC budget"), ("threads", "threads"),
                                             ("stored_bytes", "stored bytes"), ("ipc_equivalent", "IPC-eq"),
                                             ("value", "ms / iteration"), ("ratio_value", "vs 1 thread"),
                                             ("load", "load")])]
    it_rows = [r for r in rows if r["part"] == "distill_iteration"]
    lines += ["", "### 1. Distillation iteration time per objective (and 3. peak memory)", "",
              "`images/step` = composed images through L_DD per iteration. Peak memory = growth of the "
              f"resident set during the timed iterations ({it_rows[0]['peak_method'] if it_rows else ''}).", "",
              H.markdown_table(it_rows, [("data", "data"), ("objective", "objective"), ("variant", "param"),
                                         ("ipc", "IPC budget"), ("batch_real", "batch_real"), ("bpc", "BPC"),
                                         ("hallucinators", "|H|"), ("images_per_step", "images/step"),
                                         ("stored_bytes", "stored bytes"), ("ipc_equivalent", "IPC-eq"),
                                         ("value", "ms / iteration"), ("ratio_value", "haba / plain"),
                                         ("peak_h", "peak memory"),
                                         ("load", "load")])]
    ep_rows = [r for r in rows if r["part"] == "train_epoch"]
    lines += ["", "### 2. Downstream training epoch: online composition vs plain tensors (and 3. peak memory)", "",
              f"One epoch of `train_on_synthetic` (SGD, batch 256, DSA on), ConvNet width {s['net_width']}, "
              f"{s['eval_epochs']} timed epochs per seed after a warm-up epoch. `plain` holds as many images as "
              "the haba set has bases (equal count per epoch; it stores fewer bytes, shown). `haba-online` "
              "composes every basis through a random hallucinator each epoch (no grad, batched); "
              "`haba-materialized` composes all |H|·|B| images once and indexes them each epoch. "
              "`sample_epoch` = the composition step alone.", "",
              H.markdown_table(ep_rows, [("data", "data"), ("ipc", "IPC budget"), ("variant", "variant"),
                                         ("images_per_epoch", "images/epoch"), ("stored_bytes", "stored bytes"),
                                         ("ipc_equivalent", "IPC-eq"), ("value", "ms / epoch"),
                                         ("ratio_value", "vs plain"), ("sample_epoch_ms", "sample_epoch ms"),
                                         ("peak_h", "peak memory"), ("note", "note"), ("load", "load")])]
    mem_rows = []
    for r in it_rows:
        if r["variant"] != "plain":
            p = next(x for x in it_rows if x["variant"] == "plain" and all(
                x[k] == r[k] for k in ("shape", "objective", "ipc", "batch_real")))
            mem_rows.append({"what": f"distill iteration, {r['objective']}, {r['variant']}"
                             + (f", batch_real {r['batch_real']}" if r["batch_real"] != s["batch_real"] else ""),
                             "data": r["data"], "ipc": r["ipc"],
                             "plain": H.fmt_bytes(p["peak_bytes"]), "haba": H.fmt_bytes(r["peak_bytes"]),
                             "ratio": (r["peak_bytes"] / p["peak_bytes"]) if p["peak_bytes"] else None,
                             "plain_bytes": p["stored_bytes"], "haba_bytes": r["stored_bytes"]})
    for r in ep_rows:
        if r["variant"] != "plain":
            p = next(x for x in ep_rows if x["variant"] == "plain" and x["shape"] == r["shape"] and x["ipc"] == r["ipc"])
            mem_rows.append({"what": f"train epoch, {r['variant']}", "data": r["data"], "ipc": r["ipc"],
                             "plain": H.fmt_bytes(p["peak_bytes"]), "haba": H.fmt_bytes(r["peak_bytes"]),
                             "ratio": (r["peak_bytes"] / p["peak_bytes"]) if p["peak_bytes"] else None,
                             "plain_bytes": p["stored_bytes"], "haba_bytes": r["stored_bytes"]})
    lines += ["", "### 3. Peak memory, haba vs plain", "",
              "Mean over seeds of the peak extra memory (CPU: resident-set growth, see `benchmarks/harness.py`; "
              "CUDA: `max_memory_allocated`). Small numbers are dominated by allocator effects.", "",
              H.markdown_table(mem_rows, [("what", "measurement"), ("data", "data"), ("ipc", "IPC budget"),
                                          ("plain_bytes", "plain stored bytes"), ("haba_bytes", "haba stored bytes"),
                                          ("plain", "plain peak"), ("haba", "haba peak"), ("ratio", "haba / plain")])]
    sc_rows = [r for r in rows if r["part"] == "scaling"]
    if sc_rows:
        b0, h0, z0 = s["scaling_base"]
        lines += ["", "### 4. Scaling of the haba DM iteration", "",
                  f"One factor at a time around BPC {b0}, |H| {h0}, image 3×{z0}×{z0} (random CIFAR-like data, "
                  f"explicit BPC rather than an IPC budget, DM with `batch_real` {s['batch_real']}, adversary on). "
                  f"`relative` = time / time at the base point. Each iteration composes every basis through "
                  f"`hallucinators_per_step` = min(2, |H|) hallucinators, so beyond 2 the number of hallucinators "
                  f"only adds stored bytes, not time; what drives the cost is images/step = BPC × 10 × that, "
                  f"and the image size." + (" The `(all per step)` rows compose every hallucinator each iteration."
                                           if s["scaling_all_h"] else ""), "",
                  H.markdown_table(sc_rows, [("varied", "varied"), ("shape", "image"), ("bpc", "BPC"),
                                             ("hallucinators", "|H|"), ("hallucinators_per_step", "|H| per step"),
                                             ("images_per_step", "images/step"), ("stored_bytes", "stored bytes"),
                                             ("ipc_equivalent", "IPC-eq"), ("value", "ms / iteration"),
                                             ("relative", "relative"), ("peak_h", "peak memory"), ("load", "load")])]
    co_rows = [r for r in rows if r["part"] == "compose"]
    lines += ["", "### 5. Composition: batched no-grad vs per sample", "",
              "Composing every basis once through a random hallucinator (one epoch's worth of images).", "",
              H.markdown_table(co_rows, [("data", "data"), ("ipc", "IPC budget"), ("images", "images"),
                                         ("stored_bytes", "stored bytes"), ("ipc_equivalent", "IPC-eq"),
                                         ("method", "method"), ("value", "ms"),
                                         ("speedup_value", "batched is faster by ×"), ("load", "load")])]
    for i, pr in enumerate(prof or []):
        t = pr["target"]
        if i == 0:
            lines += ["", "### 6. Profiles", "",
                      "torch.profiler (CPU activities) over one iteration after a warm-up iteration. Phases are "
                      "`record_function` ranges that the benchmark wraps around the loop's building blocks at run "
                      "time (haba_core's files untouched; only top-level calls counted, so a backward inside the "
                      "adversary update counts for the adversary); shares are of the iteration's wall time."]
        lines += ["", f"**{pr.get('why', 'profiled')}: {t['shape']} {t['objective']} {t['parameterization']} "
                      f"IPC {t['ipc']}** ({pr['iteration_ms']:.0f} ms under the profiler)", "",
                  H.markdown_table(pr["phases"], [("phase", "phase"), ("cpu_ms", "CPU ms"),
                                                  ("share_pct", "% of iteration"), ("calls", "calls")]),
                  "", "Top ops by self CPU time:", "",
                  H.markdown_table(pr["top_ops"][:8], [("op", "op"), ("self_cpu_ms", "self CPU ms"),
                                                       ("self_cpu_pct", "% of self CPU"), ("calls", "calls")])]
    if prof:
        lines += ["", ANALYSIS.format(profile_summary=profile_summary(prof), notes=notes(rows, meta, prof))]
    for r in rows:
        r.pop("peak_h", None)
    return "\n".join(lines)


def budget_text(rows: list[dict]) -> str:
    seen = {}
    for r in rows:
        if r["part"] == "distill_iteration" and r.get("variant") == "haba":
            seen.setdefault((r["shape"], r["ipc"]), (r["bpc"], r["hallucinators"]))
    return "; ".join(f"{shape} IPC {ipc} → {b} bases/class + {h} hallucinators"
                     for (shape, ipc), (b, h) in seen.items()) or "see the rows"


def profile_summary(prof: list[dict] | dict | None) -> str:
    if isinstance(prof, dict):
        prof = [prof]
    out = []
    for pr in prof or []:
        t = pr["target"]
        ph = sorted((p for p in pr["phases"] if p["share_pct"] >= 1), key=lambda p: p["share_pct"], reverse=True)
        parts = ", ".join(f"{p['phase'][2:]} {p['share_pct']:.0f}%" for p in ph[:4])
        ops = ", ".join(f"`{o['op']}` {o['self_cpu_pct']:.0f}%" for o in pr["top_ops"][:4])
        comp = next((p["share_pct"] for p in pr["phases"] if p["phase"].startswith("①")), None)
        out.append(f"{t['objective']} {t['parameterization']} IPC {t['ipc']} ({t['shape']}): {parts}; top ops {ops}"
                   + (f"; composing the images takes {comp:.2f}%." if comp is not None else "."))
    return " ".join(out) if out else "(no profile)"


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    H.add_common_args(parser)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of: {','.join(PARTS)}")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="do not measure: re-render the BENCHMARKS.md section from an earlier speed.json")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        data = json.loads(args.from_json.read_text())
        md_path = args.md or H.DEFAULT_MD
        H.update_benchmarks_md(SECTION, render_markdown(data["rows"], data["meta"], data["meta"].get("profile")), md_path)
        print(f"re-rendered section '{SECTION}' of {md_path} from {args.from_json}")
        return 0
    device = H.resolve_device(args.device)
    H.configure_threads(args)
    seeds = H.seed_list(args)
    s = QUICK if args.quick else FULL
    parts = set(args.parts.split(","))
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    t0 = time.perf_counter()
    load_start = H.load_average()
    machine = H.machine_info(device)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    log(f"speed study ({'quick' if args.quick else 'full'}) on {device}, seeds {seeds}, load {load_start}")
    rows: list[dict] = []
    obj_rows: list[dict] = []
    if "threads" in parts and s.threads_check:
        rows += part_threads(s, device, seeds, log)
    if "objectives" in parts:
        obj_rows = part_objectives(s, device, seeds, log)
        rows += obj_rows
    if "downstream" in parts:
        rows += part_downstream(s, device, seeds, log)
    if "scaling" in parts:
        rows += part_scaling(s, device, seeds, log)
    if "compose" in parts:
        rows += part_compose(s, device, seeds, log)
    prof: list[dict] = []
    if "profile" in parts and s.profile and obj_rows:
        prof = part_profile(s, device, obj_rows, log)
    meta = {"machine": machine, "command": H.command_line(), "date": machine["date"],
            "args": vars(args), "mode": "quick" if args.quick else "full", "settings": asdict(s), "seeds": seeds,
            "targets": TARGETS, "headline": headline(rows), "load_start": load_start,
            "load_end": H.load_average(), "wall_minutes": (time.perf_counter() - t0) / 60,
            "profile": prof, "profile_summary": profile_summary(prof)}
    md = render_markdown(rows, meta, prof)
    path = H.write_results(NAME, rows, meta, args.out)
    log(f"wrote {path}")
    md_path = H.markdown_path(args)
    if md_path is not None:
        H.update_benchmarks_md(SECTION, md, md_path)
        log(f"updated section '{SECTION}' of {md_path}")
    log("headline: " + str(meta["headline"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
