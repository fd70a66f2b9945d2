"""Part 1: distillation iteration per objective (haba vs plain at the same IPC budget), and part 0 (threads)."""

from __future__ import annotations

from dataclasses import replace

import torch

from haba_core import objective_spec

from .. import harness as H
from .common import base_config, composed_per_step, describe_fd, fake_trajectories, random_dataset, time_distillation
from .settings import Settings

NO_ADVERSARY = {"lambda_cos": 0.0, "lambda_con": 0.0, "lambda_task": 0.0}


def objective_variants(objective: str, s: Settings) -> list[tuple[str, str, dict]]:
    """(variant label, parameterization, DistillConfig overrides) measured per objective.

    Besides the defaults, DM (the cheapest objective) also runs haba without the adversarial
    contrastive constraint and with one hallucinator per step, to separate the factorization's own
    cost from those two design choices.
    """
    out = [("plain", "plain", {}), ("haba", "haba", {})]
    if objective == "mtt":  # the default (per_step) is the reference's work per step; pairs is the old default
        out.append(("haba, pairs (2 h/step, old default)", "haba", {"mtt_composition": "pairs"}))
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
            traj = fake_trajectories(cfg, train, device, seed) if objective_spec(objective).needs_trajectories else None
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
            "it_per_s": round(1.0 / H.mean_std(x["times"])[0], 3),
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
