"""Part 6: torch.profiler run of the slowest path, with the loop's phases marked through its phase hook."""

from __future__ import annotations

import torch

from haba_core import objective_spec

from .common import base_config, fake_trajectories, random_dataset, time_distillation
from .settings import Settings

PHASES = {  # label of each top-level phase of a distillation iteration
    "compose": "① compose pairs (bases → hallucinators)",
    "objective": "② L_DD forward (objective loss, incl. its inner autograd and MTT's per-step composition)",
    "cosine": "③ L_cos forward (adversary features + cosine)",
    "backward": "④ backward of L_S",
    "optimizer": "⑤ optimizer steps of S and H",
    "adversary": "⑥ adversary update (L_con + L_task)",
    "after_update": "⑦ objective.after_update (DC/DSA inner loop)",
}


def phase_ranges(name: str):
    """The loop's phase hook for the profiler: each phase of an iteration becomes one ``record_function`` range."""
    from torch.profiler import record_function

    return record_function(PHASES[name])


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
    traj = fake_trajectories(cfg, train, device, 0) if objective_spec(cfg.objective).needs_trajectories else None
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    # step 0 = set-up + warm-up iteration (not recorded), step 1 = the profiled iteration
    prof = profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=1, repeat=1),
                   record_shapes=False, profile_memory=False)
    with prof:
        # on_ready (end of the warm-up iteration) advances the profiler into its active step
        r = time_distillation(train, cfg, device, 1, trajectories=traj, monitor=False, on_ready=prof.step,
                              phase_hook=phase_ranges)
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
