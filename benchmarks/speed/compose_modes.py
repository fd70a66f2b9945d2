"""Hallucinator composition, one call per hallucinator (the CPU path) vs one grouped convolution per layer.

``python -m benchmarks.speed.compose_modes [--sizes 20,200,1000] [--reps 10] [--device cuda]`` prints ms of
forward (no grad) and forward+backward for N CIFAR-shaped bases through 5 random hallucinators (paper layout,
depth 1), both modes alternated, 3 rounds; mean ± std. On CPU: CPU ms (``process_time``, 1 thread); on CUDA:
wall ms with the device synchronised around each timed block.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from haba_core.factorization.hallucinator import HallucinatorBank, HallucinatorConfig


def _ms(fn, reps: int, device: torch.device) -> float:
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    if cuda:
        torch.cuda.synchronize(device)
    t = clock()
    for _ in range(reps):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    return 1000 * (clock() - t) / reps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed.compose_modes", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="20,200,1000")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    for n in (int(v) for v in args.sizes.split(",")):
        bank = HallucinatorBank(5, 3, 3, (32, 32), HallucinatorConfig(init="random"), generator=g).to(device)
        x = torch.randn(n, 3, 32, 32, generator=g).to(device).requires_grad_(True)
        index = torch.randint(5, (n,), generator=g).to(device)
        res: dict[tuple[str, str], list[float]] = {}
        for _ in range(3):
            for mode in ("loop", "grouped"):
                bank.grouped_mode = mode
                with torch.no_grad():
                    res.setdefault((mode, "forward"), []).append(_ms(lambda: bank(x, index), args.reps, device))
                res.setdefault((mode, "forward+backward"), []).append(
                    _ms(lambda: bank(x, index).square().sum().backward(), args.reps, device))
        for (mode, what), v in res.items():
            print(f"N={n:5d} {mode:8s} {what:17s} {statistics.fmean(v):8.2f} ± {statistics.stdev(v):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
