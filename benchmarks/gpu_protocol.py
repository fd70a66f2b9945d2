"""GPU protocol (issues 14/15): CIFAR-10 at the paper's network width, every parameterization at equal bytes.

One command, sized for ≤ 9 minutes on one H100/H200 including expert trajectories:

    python -m benchmarks.gpu_protocol --data DIR/cifar10-jpeg.tar.gz --out OUT [--budget-s 420]
    python -m benchmarks.gpu_protocol --smoke --data tiny.tar.gz --out /tmp/p   # wiring check on CPU

Needs only torch, torchvision, numpy, safetensors and kornia (the GPU image lacks kornia: carry its wheel)
and downloads nothing. Work is done in priority order under one wall-clock deadline and the JSON and
Markdown table are rewritten after every row, so a run cut short still reports what it finished:

1. DM at IPC-2 and IPC-11 (seed 0): random/herding coresets, plain, IDC, HaBa with the paper's settings,
   the same with hallucinators frozen at their init (learning rate 0: the null that tells whether learning
   them helps), the ``modest`` recipe and ``modest`` frozen. Equal distillation wall-clock per run
   (``--distill-s``), the iterations each got are reported. ConvNet evaluation (``--runs`` runs).
2. Cross-architecture evaluation (ResNet18, VGG11, AlexNet, one run each) of the IPC-11 sets.
3. MTT (expert trajectories trained here, ZCA as in MTT's CIFAR-10 setting) at IPC-2, then IPC-11.
4. Cross-architecture for the remaining sets, then DM seeds 1 and 2.

Recipes are fixed before the run (nothing is selected on this test split). Also checks that two CUDA runs
with the same seed give the same tensors (determinism).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch

from haba_core import (DistillConfig, EvalConfig, ExpertConfig, Preprocessor, distill,
                       evaluate, load_dataset, recipe_config, select_coreset, train_experts)
from haba_core.atomic import atomic_path
from haba_core.distillation import network_factory

from .variants import FROZEN

CROSS_ARCHS = ("ResNet18", "VGG11", "AlexNet")  # the paper's Tab. 2


def method_config(method: str, objective: str, ipc: int, args, seed: int) -> DistillConfig:
    """The ``DistillConfig`` of a distilled row; every row has the same IPC budget (equal stored bytes)."""
    common = dict(objective=objective, ipc=ipc, iterations=10**9, time_limit_s=args.distill_s,
                  net_width=args.width, seed=seed, device=args.device, zca=objective == "mtt",
                  precision=args.precision)
    paper_haba = dict(parameterization="haba", hallucinator={"init": "random"},
                      # the paper: η_H = η_B (Sec. 4, implementation details)
                      lr_hallucinators=DistillConfig(objective=objective).resolved_lr_bases)
    table = {
        "plain": dict(parameterization="plain"),
        "idc": dict(parameterization="idc"),
        "haba-paper": paper_haba,
        "haba-paper-frozen": {**paper_haba, **FROZEN},
        "modest": {},
        "modest-frozen": dict(FROZEN),
        # hallucinators pretrained on real same-class neighbour pairs first (issue 14's lead; the 300 steps run
        # before the distillation clock starts, so they come on top of --distill-s)
        "modest-pre": dict(hallucinator_pretrain_steps=300),
        "modest-pre-frozen": dict(hallucinator_pretrain_steps=300, **FROZEN),
        # the recipe fixed-bank (PCA bank at lr 0, one hallucination per basis per step) and its learned twin
        "fixed-bank": {},
        "modest-fast": dict(hallucinators_per_step=1, hallucinator_pairing="per_basis"),
    }
    base = method if method == "fixed-bank" else "modest" if method.startswith("modest") else "paper"
    cfg = recipe_config(base, **common, **table[method])
    cfg.dm.batch_real = args.batch_real
    if objective == "mtt":
        cfg.mtt.syn_steps, cfg.mtt.expert_epochs = args.syn_steps, 2
        cfg.mtt.max_start_epoch = max(1, args.expert_epochs - 2)
    return cfg


def data_source(path: str) -> str:
    """The ``load_dataset`` name of a CIFAR-10 ImageFolder archive or directory."""
    return path if path.startswith("imagefolder:") else f"imagefolder:{path}"


def distill_extra(data, seconds: float) -> dict:
    """The distillation columns of a distilled set's rows: iterations, wall-clock, rate, plan."""
    tm = data.meta["timings"]
    return {"iterations": tm["iterations_run"], "distill_s": round(seconds, 1),
            "it_per_s": round(1.0 / tm["iteration_s"], 2) if tm["iteration_s"] else None,
            "bpc": data.meta["budget"]["bpc"], "H": data.num_hallucinators, "learned_lr": data.learned_lr}


def row_head(key: tuple, arch: str) -> dict:
    """The identifying columns of a row (key = objective, ipc, method, seed; arch "-" before any network)."""
    return dict(zip(("objective", "ipc", "method", "seed"), key), arch=arch)


def failed_row(key: tuple, arch: str, exc: Exception, extra: dict | None = None) -> dict:
    """A failure reported as a row, so the protocol goes on and the table shows it."""
    return {**row_head(key, arch), "error": f"{type(exc).__name__}: {exc}"[:300], **(extra or {})}


def scored_row(key: tuple, data, test, ev: EvalConfig, extra: dict) -> dict:
    """One row: ``data`` (key = objective, ipc, method, seed) trained on ``ev.arch`` and scored; a failure is a row."""
    try:
        r = evaluate(data, test, ev)
        st = data.storage()
        return {**row_head(key, ev.arch), "acc": r.mean, "acc_runs": r.accuracies,
                "eval_s": round(r.train_seconds, 1), "stored_bytes": st.bytes,
                "ipc_equivalent": round(st.ipc_equivalent, 3), **extra}
    except Exception as exc:  # a failed row is reported, the protocol goes on
        return failed_row(key, ev.arch, exc, extra)


class Protocol:
    def __init__(self, args):
        self.args = args
        self.t0 = time.perf_counter()
        self.rows: list[dict] = []
        self.sets: dict[tuple, object] = {}
        self.meta = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "torch": torch.__version__, "device": args.device, "python": platform.python_version(),
                     "args": vars(args)}
        if args.device == "cuda":
            self.meta["gpu"] = torch.cuda.get_device_name(0)

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", flush=True)

    def save(self) -> None:
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        self.meta["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        for name, text in (("gpu_protocol.json", json.dumps({"meta": self.meta, "rows": self.rows}, indent=1)),
                           ("gpu_protocol.md", render(self.rows, self.meta))):
            with atomic_path(out / name) as tmp:
                tmp.write_text(text)

    def evaluate_row(self, key: tuple, data, test, arch: str, runs: int, extra: dict) -> None:
        objective, ipc, method, seed = key
        ev = EvalConfig(arch=arch, runs=runs, epochs=self.args.eval_epochs, net_width=self.args.width, seed=seed,
                        device=self.args.device)
        row = scored_row(key, data, test, ev, extra)
        self.rows.append(row)
        self.log(f"{objective} ipc{ipc} {method:18s} s{seed} {arch:8s} "
                 + (f"{row['acc']:.2f}%" if "acc" in row else row["error"]))
        self.save()

    def distilled(self, key: tuple, train, test, trajectories=None, pre=None) -> None:
        objective, ipc, method, seed = key
        args = self.args
        extra: dict = {}
        try:
            if method in ("random", "herding"):
                data = select_coreset(train, ipc, method, seed=seed)
                extra = {"iterations": 0, "distill_s": 0.0}
            else:
                cfg = method_config(method, objective, ipc, args, seed)
                t = time.perf_counter()
                data = distill(train, cfg, trajectories=trajectories, preprocessor=pre)
                extra = distill_extra(data, time.perf_counter() - t)
        except Exception as exc:
            self.rows.append(failed_row(key, "-", exc))
            self.log(f"{key} failed: {self.rows[-1]['error']}")
            self.save()
            return
        self.sets[key] = (data, extra)
        self.evaluate_row(key, data, test, "ConvNet", args.runs, extra)

    def cross(self, keys, test) -> None:
        for key in keys:
            if key not in self.sets:
                continue
            data, extra = self.sets[key]
            for arch in self.args.cross_archs.split(","):
                if self.left() < self.args.reserve_s:
                    return
                self.evaluate_row(key, data, test, arch, 1, extra)


def check_determinism(train, args) -> dict:
    """Two runs with the same seed on this device: identical bases and hallucinators?"""
    cfg = recipe_config("modest", objective="dm", ipc=2, iterations=5, net_width=min(args.width, 32),
                        seed=0, device=args.device)
    a, b = distill(train, cfg), distill(train, copy.deepcopy(cfg))
    sa, sb = a.tensors(), b.tensors()
    diff = max(float((sa[k] - sb[k]).abs().max()) for k in sa)
    return {"check": "determinism", "max_abs_diff": diff, "identical": diff == 0.0}


def render(rows: list[dict], meta: dict) -> str:
    """Markdown: one accuracy table per (objective, IPC) with one column per architecture."""
    lines = [f"`{meta['command']}` — {meta['date']}, {meta.get('gpu', meta['device'])}, torch {meta['torch']}, "
             f"{meta.get('elapsed_s', 0)} s", ""]
    for check in meta.get("checks", []):
        lines.append(f"- check {check}")
    cells = list(dict.fromkeys((r["objective"], r["ipc"]) for r in rows))
    for objective, ipc in cells:
        rs = [r for r in rows if (r["objective"], r["ipc"]) == (objective, ipc)]
        archs = [a for a in ("ConvNet", *CROSS_ARCHS) if any(r["arch"] == a for r in rs)]
        lines += ["", f"#### CIFAR-10, {objective.upper()}, IPC-{ipc} equivalent", "",
                  "| method | " + " | ".join(archs) + " | seeds | iterations | it/s | stored bytes | IPC-eq. |",
                  "|---|" + "---|" * (len(archs) + 5)]
        for method in dict.fromkeys(r["method"] for r in rs):
            mr = [r for r in rs if r["method"] == method]
            cells_txt = []
            for a in archs:
                accs = [r["acc"] for r in mr if r["arch"] == a and "acc" in r]
                if not accs:
                    errs = [r["error"] for r in mr if r["arch"] == a and "error" in r]
                    cells_txt.append("error" if errs else "")
                elif len(accs) == 1:  # one seed: the spread of its evaluation runs, if several
                    runs = next(r["acc_runs"] for r in mr if r["arch"] == a and "acc" in r)
                    sd = torch.tensor(runs).std(unbiased=False).item() if len(runs) > 1 else None
                    cells_txt.append(f"{accs[0]:.2f}" + (f" ± {sd:.2f} ({len(runs)} runs)" if sd is not None
                                                         else " (1 run)"))
                else:  # several seeds: mean ± std over the seeds' means
                    t = torch.tensor(accs)
                    cells_txt.append(f"**{t.mean():.2f} ± {t.std(unbiased=False):.2f}**")
            conv = [r for r in mr if r["arch"] == "ConvNet" and "acc" in r] or mr
            seeds = len({r["seed"] for r in conv})
            it = [r.get("iterations") for r in conv if r.get("iterations") is not None]
            ips = [r.get("it_per_s") for r in conv if r.get("it_per_s")]
            first = conv[0]
            lines.append(f"| {method} | " + " | ".join(cells_txt) + f" | {seeds} | "
                         f"{round(sum(it) / len(it)) if it else ''} | {round(sum(ips) / len(ips), 1) if ips else ''} | "
                         f"{first.get('stored_bytes', '')} | {first.get('ipc_equivalent', '')} |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="CIFAR-10 ImageFolder (.tar.gz or directory)")
    p.add_argument("--out", help="folder for gpu_protocol.json and gpu_protocol.md")
    p.add_argument("--render", nargs="+", metavar="JSON",
                   help="print the combined table of earlier runs' gpu_protocol.json files (runs nothing)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--budget-s", type=float, default=420.0, help="wall-clock deadline for the whole protocol")
    p.add_argument("--reserve-s", type=float, default=15.0, help="stop starting new work this close to the deadline")
    p.add_argument("--distill-s", type=float, default=8.0, help="distillation wall-clock per run (equal for all)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="distillation forward passes in float32 (the paper) or under bfloat16 autocast, every row alike")
    p.add_argument("--width", type=int, default=128, help="ConvNet width (distillation and evaluation)")
    p.add_argument("--batch-real", type=int, default=256, help="DM real images per class per iteration")
    p.add_argument("--eval-epochs", type=int, default=300)
    p.add_argument("--runs", type=int, default=2, help="ConvNet evaluation runs per distilled set")
    p.add_argument("--experts", type=int, default=2)
    p.add_argument("--expert-epochs", type=int, default=6)
    p.add_argument("--syn-steps", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3, help="DM seeds (seed 0 first; later seeds only if time is left)")
    p.add_argument("--methods", default="random,herding,plain,idc,haba-paper,haba-paper-frozen,modest,modest-frozen")
    p.add_argument("--ipcs", default="2,11", help="the two IPC budgets (small, large)")
    p.add_argument("--cross-archs", default=",".join(CROSS_ARCHS))
    p.add_argument("--first-seed", type=int, default=0, help="run DM seeds first..seeds-1 only (no MTT, no cross-arch)")
    p.add_argument("--dm-only", action="store_true", help="DM seeds first..seeds-1 only, also from seed 0")
    p.add_argument("--smoke", action="store_true", help="tiny sizes for a CPU wiring check")
    args = p.parse_args(argv)
    if not args.render and not (args.data and args.out):
        p.error("--data and --out are required (or --render JSON...)")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        args.budget_s, args.distill_s, args.width, args.batch_real = 300.0, 0.5, 8, 8
        args.eval_epochs, args.runs, args.experts, args.expert_epochs, args.syn_steps = 2, 1, 1, 3, 2
        args.seeds, args.reserve_s = 2, 0.0
    return args


def combine(paths: list[str]) -> tuple[list[dict], dict]:
    """Rows of several runs (e.g. seed 0 in one call, seeds 1-2 in another) and the first run's header."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    meta = dict(runs[0]["meta"])
    meta["command"] = " + ".join(r["meta"]["command"] for r in runs)
    meta["elapsed_s"] = round(sum(r["meta"].get("elapsed_s", 0) for r in runs), 1)
    meta["checks"] = [c for r in runs for c in r["meta"].get("checks", [])]
    return [row for r in runs for row in r["rows"]], meta


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        print(render(*combine(args.render)))
        return 0
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    P = Protocol(args)
    src = data_source(args.data)
    train, test = load_dataset(src, split="train"), load_dataset(src, split="test")
    P.log(f"data: {len(train)} train / {len(test)} test images, device {args.device} {P.meta.get('gpu', '')}")
    P.meta["checks"] = []
    try:
        P.meta["checks"].append(json.dumps(check_determinism(train, args)))
    except Exception as exc:
        P.meta["checks"].append(f"determinism check failed: {type(exc).__name__}: {exc}"[:300])
    P.log(P.meta["checks"][-1])
    methods = [m for m in args.methods.split(",") if m]

    def cell(objective, ipc, seed, trajectories=None, pre=None):
        for m in methods:
            if P.left() < args.reserve_s + args.distill_s:
                P.log("deadline: skipping the rest")
                return False
            P.distilled((objective, ipc, m, seed), train, test, trajectories, pre)
        return True

    small, large = (int(v) for v in args.ipcs.split(","))
    if args.first_seed or args.dm_only:
        for seed in range(args.first_seed, args.seeds):
            if not (cell("dm", small, seed) and cell("dm", large, seed)):
                break
        P.save()
        print(render(P.rows, P.meta))
        return 0
    cell("dm", small, 0) and cell("dm", large, 0)
    P.cross([k for k in P.sets if k[0] == "dm" and k[1] == large], test)
    trajectories = pre = None
    if P.left() > args.reserve_s + 60 or args.smoke:
        try:
            t = time.perf_counter()
            cfg = method_config("plain", "mtt", 2, args, 0)
            pre = Preprocessor.fit(train.images, train.mean, train.std, True, cfg.zca_regularization)
            pre.to(torch.device(args.device))
            images, labels = pre(train.images.to(args.device)), train.labels.to(args.device)
            make = network_factory(cfg, train.image_shape, train.num_classes, torch.device(args.device))
            buf = Path(args.out) / "_experts"
            paths = train_experts(images, labels, make, buf, ExpertConfig(num_experts=args.experts,
                                  epochs=args.expert_epochs), {"dataset": train.name})
            from haba_core.objectives.experts import load_buffer
            _, trajectories = load_buffer(buf)
            for path in paths:
                path.unlink()
            P.meta["experts_s"] = round(time.perf_counter() - t, 1)
            P.log(f"{args.experts} experts × {args.expert_epochs} epochs in {P.meta['experts_s']} s")
            del images
        except Exception as exc:
            P.meta["checks"].append(f"experts failed: {type(exc).__name__}: {exc}"[:300])
            P.log(P.meta["checks"][-1])
    if trajectories is not None:
        cell("mtt", small, 0, trajectories, pre)
    P.cross([k for k in P.sets if k[1] == small and k[0] == "dm"], test)
    if trajectories is not None:
        cell("mtt", large, 0, trajectories, pre)
    P.cross([k for k in P.sets if k[0] == "mtt"], test)
    for seed in range(1, args.seeds):
        if not (cell("dm", small, seed) and cell("dm", large, seed)):
            break
    P.save()
    P.log(f"done: {len(P.rows)} rows → {Path(args.out) / 'gpu_protocol.md'}")
    print(render(P.rows, P.meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
