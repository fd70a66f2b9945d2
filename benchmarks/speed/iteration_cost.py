"""CPU seconds per distillation iteration, per phase, and peak RSS of ONE configuration (run one per process).

``python -m benchmarks.speed.iteration_cost --objective mtt --param haba --bpc 10 --iterations 2
[--per-class 5000] [--set mtt.composition=pairs ...]`` prints one JSON line. Random CIFAR-10-shaped data
(``--per-class`` images per class; 5000 = CIFAR-10's 50k), 5 hallucinators, the paper's recipe defaults, MTT
with 10 unrolled steps, 2 expert epochs, max start epoch 2 on a random 1-expert trajectory (the issue-19
configuration), ``torch.set_num_threads(1)``. Times are ``time.process_time`` per iteration after one
warm-up iteration; phases come from the loop's phase hook; peak memory is ``ru_maxrss`` of the process.
Alternate configurations in separate processes (see BENCHMARKS.md, issue 19 section).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import time

import torch

from haba_core import DistillConfig, distill, merge_layers, objective_spec, parse_set
from haba_core.distillation import PhaseClock

from .common import fake_trajectories, random_dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed.iteration_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--objective", default="mtt")
    p.add_argument("--param", default="haba")
    p.add_argument("--bpc", type=int, default=1)
    p.add_argument("--iterations", type=int, default=3, help="timed iterations (after one warm-up)")
    p.add_argument("--per-class", type=int, default=5000)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = DistillConfig(objective=args.objective, parameterization=args.param, ipc=None, bpc=args.bpc,
                        hallucinators=5 if args.param in ("haba", "idc-haba") else 0, iterations=1 + args.iterations,
                        checkpoint_every=10**9, device="cpu")
    cfg.mtt.syn_steps, cfg.mtt.expert_epochs, cfg.mtt.max_start_epoch = 10, 2, 2
    cfg = DistillConfig.from_dict(merge_layers(cfg.to_dict(), parse_set(args.set)))
    train = random_dataset((3, 32, 32), args.per_class, 0)
    traj = fake_trajectories(cfg, train, torch.device("cpu"), 0) if objective_spec(cfg.objective).needs_trajectories else None
    clock, stamps = PhaseClock(), []

    def hook(name: str):
        return clock(name) if stamps else contextlib.nullcontext()  # the warm-up iteration is not counted

    fd = distill(train, cfg, trajectories=traj, on_step=lambda it, _: stamps.append(time.process_time()),
                 phase_hook=hook)
    per = [b - a for a, b in zip(stamps, stamps[1:])]
    print(json.dumps({"objective": args.objective, "param": args.param, "bpc": args.bpc, "set": args.set,
                      "bases": fd.synthetic.num_bases, "cpu_s_per_iteration": per,
                      "phases_cpu_s": {k: round(v / len(per), 3) for k, v in clock.cpu_s.items()},
                      "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
