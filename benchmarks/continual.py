#!/usr/bin/env python
"""Continual-learning benchmark: HaBa replay vs. replay / herding / DM / naive at equal memory bytes.

Split CIFAR-10 (5 experiences, the JPEG set ``imagefolder:../shared/data/cifar10-jpeg.tar.gz``) and Split
MNIST (5 experiences, IDX files in ``../shared/data/mnist``) at memories of 10 and 20 images per class;
every strategy gets the same class order, model, epochs and memory bytes, ≥ 3 seeds. Writes
``benchmarks/results/continual-<mode>.json`` and prints one markdown table per setting.

    python -m benchmarks.continual --quick              # ≤ 2 min on a small CPU (subsampled, 1 seed)
    python -m benchmarks.continual --device cuda        # full: all data, 3 seeds, 10 and 20 images/class

Not run by CI. Data paths default to ``../shared/data`` next to the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from haba_cl.cl_runner import RunConfig, run
from haba_cl.report import continual_table

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"  # ../shared/data relative to the repository root
SETTINGS = {
    "split-mnist": {"data_root": str(SHARED / "mnist"), "source": None, "classes": 10},
    "split-cifar10": {"data_root": None, "source": f"imagefolder:{SHARED / 'cifar10-jpeg.tar.gz'}", "classes": 10},
    # the embedded set: lets the quick mode run (and be tested) without ../shared
    "split-digits": {"data_root": None, "source": None, "classes": 10},
}

QUICK = dict(seeds=[0], ipcs=[10], epochs=2, lr=0.02, train_per_class=50, test_per_class=30, distill_iterations=10,
             distill_width=16, net_width=32, batch_size=32, protocol_epochs=20)
FULL = dict(seeds=[0, 1, 2], ipcs=[10, 20], epochs=5, lr=0.01, train_per_class=None, test_per_class=None,
            distill_iterations=1000, distill_width=128, net_width=128, batch_size=64, protocol_epochs=300)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small subsets, 1 seed, 10 images/class (≤ 2 min on CPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--benchmarks", default="split-mnist,split-cifar10")
    p.add_argument("--strategies", default="haba,idc,replay,herding,distilled-plain,naive")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: 0 quick, 0,1,2 full)")
    p.add_argument("--ipc", default=None, help="memory in images per class, comma-separated (default 10,20)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--protocol", choices=("avalanche", "fresh-network", "dm"), default="avalanche")
    p.add_argument("--distill-iterations", type=int, default=None)
    p.add_argument("--mnist-root", default=SETTINGS["split-mnist"]["data_root"])
    p.add_argument("--cifar10", default=SETTINGS["split-cifar10"]["source"],
                   help="CIFAR-10 source (imagefolder:<tar.gz> or a torchvision root)")
    p.add_argument("--out", default=None, help="JSON file (default benchmarks/results/continual-<mode>.json)")
    args = p.parse_args(argv)

    mode = "quick" if args.quick else "full"
    s = dict(QUICK if args.quick else FULL)
    if args.seeds:
        s["seeds"] = [int(x) for x in args.seeds.split(",")]
    if args.ipc:
        s["ipcs"] = [int(x) for x in args.ipc.split(",")]
    if args.epochs:
        s["epochs"] = args.epochs
    if args.distill_iterations:
        s["distill_iterations"] = args.distill_iterations
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"continual-{mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    results = {"mode": mode, "settings": s, "protocol": args.protocol, "host": platform.node(),
               "python": sys.version.split()[0], "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": []}
    tables = []
    t_all = time.perf_counter()
    for bench in [b.strip() for b in args.benchmarks.split(",") if b.strip()]:
        if bench not in SETTINGS:
            p.error(f"unknown benchmark {bench!r}; known: {', '.join(SETTINGS)}")
        spec = dict(SETTINGS[bench])
        if bench == "split-mnist":
            spec["data_root"] = args.mnist_root
        elif bench == "split-cifar10":
            if args.cifar10.lower().startswith("imagefolder:"):
                spec["source"], spec["data_root"] = args.cifar10, None
            else:
                spec["source"], spec["data_root"] = None, args.cifar10
        for ipc in s["ipcs"]:
            cfg = RunConfig(benchmark=bench, n_experiences=5, data_root=spec["data_root"], source=spec["source"],
                            strategies=args.strategies.split(","), mem_size=ipc * spec["classes"],
                            seeds=s["seeds"], epochs=s["epochs"], out=None, protocol=args.protocol,
                            device=args.device, lr=s["lr"], batch_size=s["batch_size"], net_width=s["net_width"],
                            distill={"iterations": s["distill_iterations"], "net_width": s["distill_width"]},
                            train_per_class=s["train_per_class"], test_per_class=s["test_per_class"],
                            protocol_epochs=s["protocol_epochs"])
            t0 = time.perf_counter()
            res = run(cfg, log=lambda m: print(m, flush=True))
            title = (f"**{bench}**, 5 experiences, memory {ipc} images/class ({cfg.mem_size} images), "
                     f"{len(s['seeds'])} seed(s), {s['epochs']} epoch(s), protocol {args.protocol}, {res['device']}")
            table = continual_table(res["summary"], title + "\n")
            print("\n" + table + "\n", flush=True)
            tables.append(table)
            results["runs"].append({"benchmark": bench, "ipc": ipc, "mem_size": cfg.mem_size,
                                    "seconds": time.perf_counter() - t0, "summary": res["summary"],
                                    "device": res["device"], "data": res["data"], "runs": res["runs"]})
            out.write_text(json.dumps(results, indent=2, default=str) + "\n")  # partial results survive
    results["total_seconds"] = time.perf_counter() - t_all
    results["tables"] = tables
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {os.path.relpath(out)} in {results['total_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
