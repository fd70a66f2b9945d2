"""Many GPU-protocol runs side by side on one GPU: longer distillation inside one short device lease.

A distillation iteration at these sizes is launch-bound (the GPU is busy ~5–10 % of it, BENCHMARKS.md), so
one run at a time leaves the card mostly idle. This launcher starts one process per (cell, method, seed), all
of a cell at the same moment, so every row of a cell distils for the same wall-clock under the same sharing
of the card (equal wall-clock; the iterations each got are reported), then evaluates its set on ConvNet and
the cross-architecture networks. Recipes come from :func:`benchmarks.gpu_protocol.method_config` and are
fixed before the run.

    python -m benchmarks.gpu_parallel --data DIR/cifar10-jpeg.tar.gz --out OUT --distill-s 120 --deadline-s 480 \
        --cell dm:11:idc,modest-pre,modest-pre-frozen,fixed-bank --cell dm:2:idc,modest-pre,modest-pre-frozen
    python -m benchmarks.gpu_parallel --smoke --device cpu --data tiny.tar.gz --out /tmp/p --cell dm:2:idc

Writes OUT/rows.jsonl (one line per evaluation, appended as they finish), OUT/jobs.log, and at the end
OUT/gpu_parallel.json and OUT/gpu_parallel.md (the gpu_protocol table plus paired per-seed differences).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from haba_core import EvalConfig, distill, load_dataset
from haba_core.atomic import atomic_path

from .combine import paired as paired_difference
from .combine import parse_pairs
from .cross_arch import arch_mean
from .gpu_protocol import CROSS_ARCHS, data_source, distill_extra, failed_row, method_config, render, scored_row


def parse_cell(text: str) -> tuple[str, int, list[str]]:
    """``objective:ipc:method,method,...`` → (objective, ipc, methods)."""
    try:
        objective, ipc, methods = text.split(":", 2)
        names = [m for m in methods.split(",") if m]
        if objective not in ("dm", "dc") or int(ipc) < 1 or not names:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cell wants objective:ipc:method,... (objective dm or dc), got {text!r}")
    return objective, int(ipc), names


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="CIFAR-10 ImageFolder (.tar.gz or directory)")
    p.add_argument("--out", required=True)
    p.add_argument("--cell", action="append", type=parse_cell, default=[], help="objective:ipc:method,... (repeat)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--distill-s", type=float, default=120.0, help="distillation wall-clock per run (equal for all)")
    p.add_argument("--deadline-s", type=float, default=480.0, help="wall-clock after which unfinished work is stopped")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch-real", type=int, default=256)
    p.add_argument("--eval-epochs", type=int, default=300)
    p.add_argument("--runs", type=int, default=2, help="ConvNet evaluation runs per set")
    p.add_argument("--cross-archs", default=",".join(CROSS_ARCHS))
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--pairs", default="", help="a:b,... paired per-seed differences for the Markdown (a − b)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes for a CPU wiring check")
    p.add_argument("--job", help=argparse.SUPPRESS)  # objective:ipc:method:seed — one child process
    p.add_argument("--stop-at", type=float, help=argparse.SUPPRESS)  # the launcher's deadline (epoch seconds)
    args = p.parse_args(argv)
    parse_pairs(args.pairs)  # a malformed --pairs stops here with one line, before any work
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        args.distill_s, args.width, args.batch_real, args.eval_epochs, args.runs = 0.5, 8, 8, 2, 1
    # method_config reads these gpu_protocol fields
    args.syn_steps, args.expert_epochs = 20, 6
    return args


def append_line(path: Path, record: dict) -> None:
    """One JSON line, appended in a single write (children share the file)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def run_job(args) -> int:
    """One child: distil one set for ``--distill-s`` seconds, then evaluate it while the deadline allows."""
    torch.set_num_threads(1)
    objective, ipc, method, seed = args.job.split(":")
    key = (objective, int(ipc), method, int(seed))
    out = Path(args.out)
    src = data_source(args.data)
    train, test = load_dataset(src, split="train"), load_dataset(src, split="test")
    try:
        cfg = method_config(method, objective, key[1], args, key[3])
        t = time.perf_counter()
        data = distill(train, cfg)
        extra = distill_extra(data, time.perf_counter() - t)
    except Exception as exc:
        append_line(out / "rows.jsonl", failed_row(key, "-", exc))
        return 1
    plan = [("ConvNet", args.runs)] + [(a, 1) for a in args.cross_archs.split(",") if a]
    for arch, runs in plan:
        if args.stop_at is not None and time.time() > args.stop_at:
            break
        ev = EvalConfig(arch=arch, runs=runs, epochs=args.eval_epochs, net_width=args.width, seed=key[3],
                        device=args.device)
        row = scored_row(key, data, test, ev, extra)
        append_line(out / "rows.jsonl", row)
        print(f"{args.job} {arch}: {row.get('acc', row.get('error'))} ({extra['iterations']} it)", flush=True)
    return 0


def as_variants(rows: list[dict]) -> list[dict]:
    """Scored rows with ``variant`` = ``method``: the shape benchmarks.combine / cross_arch pair by."""
    return [{**r, "variant": r["method"]} for r in rows if "acc" in r]


def with_cross_arch_mean(rows: list[dict], archs: list[str]) -> list[dict]:
    """``rows`` plus, per set that has a score on every one of ``archs``, a row holding their mean."""
    out = list(rows)
    scored = as_variants(rows)
    for cell in dict.fromkeys((r["objective"], r["ipc"]) for r in scored):
        sets = [r for r in scored if (r["objective"], r["ipc"]) == cell]
        for method, seed in dict.fromkeys((r["method"], r["seed"]) for r in sets):
            mean = arch_mean(sets, method, seed, archs)
            if mean is not None:
                out.append({"objective": cell[0], "ipc": cell[1], "method": method, "seed": seed,
                            "arch": "mean of " + " / ".join(archs), "acc": mean})
    return out


def paired(rows: list[dict], pairs: str) -> list[str]:
    """Markdown lines: per cell and network, a − b per seed, mean ± population std (as the GPU tables), seeds ahead."""
    lines = []
    cells = dict.fromkeys((r["objective"], r["ipc"], r["arch"]) for r in rows if "acc" in r)
    for a, b in parse_pairs(pairs):
        for cell in sorted(cells, key=lambda c: (c[0], c[1])):  # stable: networks keep their order
            sets = as_variants([r for r in rows if (r["objective"], r["ipc"], r["arch"]) == cell])
            d = paired_difference(sets, a, b, sample_std=False)
            if d is not None:
                lines.append(f"| {cell[0].upper()} IPC-{cell[1]} | {cell[2]} | {d['comparison']} | {d['per seed']} | "
                             f"{d['mean ± std']} | {d['ahead']} |")
    if lines:
        lines = ["", "| cell | network | difference | per seed | mean ± std | seeds ahead |", "|---|---|---|---|---|---|",
                 *lines]
    return lines


def launch(args, argv) -> int:
    """Warm the dataset cache once, start every cell's jobs at once, stop what is left at the deadline."""
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("rows.jsonl", "jobs.log"):  # this run's files: an earlier run's rows must not mix in
        (out / name).unlink(missing_ok=True)
    src = data_source(args.data)
    train = load_dataset(src, split="train")
    load_dataset(src, split="test")
    print(f"[{time.time() - t0:6.1f}s] data: {len(train)} train images; starting jobs", flush=True)
    stop_at = t0 + args.deadline_s
    base = [a for a in argv if a]
    procs = []
    root = str(Path(__file__).resolve().parents[1])  # the children import this tree's benchmarks, wherever they start
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    with open(out / "jobs.log", "a") as log:
        for objective, ipc, methods in args.cell:
            for seed in (int(s) for s in args.seeds.split(",") if s):
                for method in methods:
                    cmd = [sys.executable, "-m", "benchmarks.gpu_parallel", *base,
                           "--job", f"{objective}:{ipc}:{method}:{seed}", "--stop-at", str(stop_at)]
                    procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
        print(f"[{time.time() - t0:6.1f}s] {len(procs)} jobs running", flush=True)
        for p in procs:
            try:
                p.wait(timeout=max(1.0, stop_at + 30 - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "rows.jsonl").exists() else []
    meta = {"command": "python -m benchmarks.gpu_parallel " + " ".join(base),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
            "device": args.device, "python": platform.python_version(), "elapsed_s": round(time.time() - t0, 1),
            "jobs": len(procs), "concurrent": True}
    if args.device == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(0)
    archs = [a for a in args.cross_archs.split(",") if a]
    md = render(rows, meta) + "\n".join(paired(with_cross_arch_mean(rows, archs), args.pairs)) + "\n"
    for name, text in (("gpu_parallel.json", json.dumps({"meta": meta, "rows": rows}, indent=1)),
                       ("gpu_parallel.md", md)):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    print(md)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.job:
        return run_job(args)
    if not args.cell:
        raise SystemExit("give at least one --cell objective:ipc:method,...")
    return launch(args, argv)


if __name__ == "__main__":
    sys.exit(main())
