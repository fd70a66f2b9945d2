"""Hallucinator composition, one call per hallucinator (the CPU path) vs one grouped convolution per layer.

``python -m benchmarks.speed.compose_modes [--sizes 20,200,1000] [--reps 10]`` prints CPU ms (``process_time``,
1 thread) of forward (no grad) and forward+backward for N CIFAR-shaped bases through 5 random hallucinators
(paper layout, depth 1), both modes alternated, 3 rounds; mean ± std.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from haba_core.factorization.hallucinator import HallucinatorBank, HallucinatorConfig


def _cpu_ms(fn, reps: int) -> float:
    t = time.process_time()
    for _ in range(reps):
        fn()
    return 1000 * (time.process_time() - t) / reps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed.compose_modes", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="20,200,1000")
    p.add_argument("--reps", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    for n in (int(v) for v in args.sizes.split(",")):
        bank = HallucinatorBank(5, 3, 3, (32, 32), HallucinatorConfig(init="random"), generator=g)
        x = torch.randn(n, 3, 32, 32, generator=g, requires_grad=True)
        index = torch.randint(5, (n,), generator=g)
        res: dict[tuple[str, str], list[float]] = {}
        for _ in range(3):
            for mode in ("loop", "grouped"):
                bank.grouped_mode = mode
                with torch.no_grad():
                    res.setdefault((mode, "forward"), []).append(_cpu_ms(lambda: bank(x, index), args.reps))
                res.setdefault((mode, "forward+backward"), []).append(
                    _cpu_ms(lambda: bank(x, index).square().sum().backward(), args.reps))
        for (mode, what), v in res.items():
            print(f"N={n:5d} {mode:8s} {what:17s} {statistics.fmean(v):8.2f} ± {statistics.stdev(v):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
