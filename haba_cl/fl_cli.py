"""``haba-fl``: federated HaBa vs FedAvg in a local simulation, with accuracy vs communicated bytes.

    haba-fl --dataset digits --clients 5 --alpha 0.5 --mode both --rounds 3 --out runs/fl-digits

runs the apps of ``flwr run .`` (``federated.client_app:app`` / ``federated.server_app:app``) in this
process (``--backend inprocess``, default) or through Flower's Ray simulation (``--backend ray``),
writes ``<out>/results.json`` (per mode: accuracy, bytes up/down per round, totals) and prints a
table: HaBa one-shot (round 1), HaBa few-round (round R) and FedAvg after each of its rounds.
Bad input (unknown dataset or mode, missing data, alpha <= 0, clients < 1, ...) prints one line on
stderr and exits with status 2; a run that produced no model exits with 1.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from haba_core import RECIPES
from haba_core.config_layers import SET_SYNTAX, parse_set

from .cli_errors import EXIT_INTERRUPTED, UsageError, handle_errors
from .cli_parser import OneLineParser
from .report import federated_table

PROG = "haba-fl"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description="Federated HaBa (clients upload factorized distilled data) vs FedAvg, "
                                             "in a local Flower simulation.")
    p.add_argument("--dataset", default="digits", help="digits (embedded), mnist, fashion-mnist, cifar10, cifar100, "
                                                       "svhn or imagefolder:<dir|.tar.gz> (default digits)")
    p.add_argument("--data-root", default="", help="where the dataset's files are (not needed for digits)")
    p.add_argument("--clients", type=int, default=5, help="number of clients / partitions (default 5)")
    p.add_argument("--partition", choices=("dirichlet", "iid"), default="dirichlet",
                   help="label partitioning across clients (default dirichlet)")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration, > 0 (default 0.5)")
    p.add_argument("--mode", choices=("haba", "fedavg", "both"), default="both",
                   help="which federated method(s) to run (default both)")
    p.add_argument("--rounds", type=int, default=3, help="server rounds (HaBa; also FedAvg unless --fedavg-rounds)")
    p.add_argument("--fedavg-rounds", type=int, default=None, help="FedAvg rounds (default --rounds)")
    p.add_argument("--out", default="runs/haba-fl", help="output directory (default runs/haba-fl)")
    p.add_argument("--backend", choices=("inprocess", "ray"), default="inprocess",
                   help="inprocess (default, no Ray) or ray (flwr.simulation.run_simulation)")
    g = p.add_argument_group("HaBa clients")
    g.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help="client distillation starting point (haba_core recipes): modest (default; measured best at "
                        "CPU-minutes budgets), paper (exactly the paper) or paper-pca (the paper with pca-initialised "
                        "hallucinators; the default on the 8x8 digits)")
    g.add_argument("--objective", default="dm", help="distillation objective (default dm)")
    g.add_argument("--ipc", type=int, default=2, help="budget in images per class per client (default 2)")
    g.add_argument("--hallucinators", type=int, default=5, help="hallucinators per client (default 5)")
    g.add_argument("--iterations", type=int, default=200, help="distillation iterations per round (default 200)")
    g.add_argument("--server-epochs", type=int, default=300, help="server training epochs per round (default 300)")
    g.add_argument("--server-lr", type=float, default=0.01, help="server training learning rate (default 0.01)")
    g = p.add_argument_group("FedAvg clients")
    g.add_argument("--local-epochs", type=int, default=1, help="local epochs per round (default 1)")
    g.add_argument("--local-lr", type=float, default=0.01, help="local SGD learning rate (default 0.01)")
    g.add_argument("--local-batch-size", type=int, default=32, help="local batch size (default 32)")
    g = p.add_argument_group("common")
    g.add_argument("--net-width", type=int, default=128, help="ConvNet width (default 128)")
    g.add_argument("--net-depth", type=int, default=3, help="ConvNet depth (default 3)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    g.add_argument("--min-clients", type=int, default=1, help="minimum valid clients for a round (default 1)")
    g.add_argument("--fraction-evaluate", type=float, default=1.0,
                   help="fraction of clients reporting local accuracy each round (default 1.0; 0 disables)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other Flower run-config key (docs/federated.md), e.g. --set train-limit=1000; "
                        f"{SET_SYNTAX}")
    return p


def run_config_overrides(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    rounds = args.rounds if mode == "haba" else (args.fedavg_rounds or args.rounds)
    # "recipe": "" lets the app pick the dataset's default (haba_core default_recipe_for)
    ov: dict[str, Any] = {
        "mode": mode, "dataset": args.dataset, "data-root": args.data_root, "partitioning": args.partition,
        "alpha": args.alpha, "num-server-rounds": rounds, "min-clients": args.min_clients,
        "min-available-clients": args.clients, "fraction-evaluate": args.fraction_evaluate,
        "recipe": args.recipe or "", "objective": args.objective, "ipc": args.ipc, "hallucinators": args.hallucinators,
        "iterations": args.iterations, "server-epochs": args.server_epochs, "server-learning-rate": args.server_lr,
        "local-epochs": args.local_epochs, "learning-rate": args.local_lr, "batch-size": args.local_batch_size,
        "net-width": args.net_width, "net-depth": args.net_depth, "seed": args.seed, "device": args.device,
        "results-path": str(Path(args.out) / f"{mode}.json"), "wait-for-clients-s": 10.0,
    }
    ov.update(parse_set(args.set))  # Flower run-config keys as written (train-limit=10000)
    return ov


def validate(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Check everything a user can get wrong before any training; raise :class:`UsageError`."""
    from haba_core import HabaError
    from federated.data_cache import load_run_split
    from federated.partitioning import partition_indices
    from federated.run_config import resolve_run_config

    if args.clients < 1:
        raise UsageError(f"--clients must be >= 1, got {args.clients}")
    if not (args.alpha > 0 and math.isfinite(args.alpha)):
        raise UsageError(f"--alpha must be > 0, got {args.alpha}")
    if args.rounds < 1 or (args.fedavg_rounds is not None and args.fedavg_rounds < 1):
        raise UsageError("--rounds and --fedavg-rounds must be >= 1")
    if args.min_clients > args.clients:
        raise UsageError(f"--min-clients {args.min_clients} exceeds --clients {args.clients}")
    if args.device not in ("cpu", "auto") and not args.device.startswith("cuda"):
        raise UsageError(f"--device must be cpu, cuda or auto, got {args.device!r}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {args.device} requested but CUDA is not available; use cpu or auto")
    modes = ["haba", "fedavg"] if args.mode == "both" else [args.mode]
    try:
        configs = [resolve_run_config(run_config_overrides(args, m)) for m in modes]
        train = load_run_split(configs[0], "train")
        if args.ipc < 1 or args.ipc > max(train.samples_per_class()):
            raise UsageError(f"--ipc must be in 1..{max(train.samples_per_class())} (the largest class of the "
                             f"training set), got {args.ipc}")
        load_run_split(configs[0], "test")
        if int(configs[0]["val-per-class"]) > 0:
            load_run_split(configs[0], "val")
        partition_indices(train.labels, args.clients, args.partition, args.alpha, 0, train.num_classes)
        from federated.distill_settings import distill_config
        from federated.expectation import check_shared_bank, expected_payload

        for cfg in configs:
            distill_config(cfg)
            if cfg["mode"] == "haba":
                check_shared_bank(cfg, expected_payload(cfg, train.image_shape, train.num_classes))
    except (HabaError, ValueError, OSError) as exc:
        raise UsageError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return configs


def table_rows(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    haba = runs.get("haba")
    if haba:
        r = haba["rounds"]
        if r and (r[0].get("shared_bank") or {}).get("phase") == "bank":
            # shared-hallucinators: round 1 only makes the bank (no model); round 2 is the one-shot upload
            picks = [("HaBa bank round", r[0]), ("HaBa shared bank, one-shot", r[1])] if len(r) > 1 else []
            picks += [(f"HaBa shared bank, {len(r)}-round", r[-1])] if len(r) > 2 else []
        else:
            picks = [("HaBa one-shot", r[0])] + ([(f"HaBa {len(r)}-round", r[-1])] if len(r) > 1 else [])
        for name, rr in picks:
            rows.append({"method": name, "rounds": rr["round"], "accuracy": rr["accuracy"],
                         "val_accuracy": rr.get("val_accuracy"),
                         "bytes_up": sum(x["bytes_up"] for x in r[:rr["round"]]),
                         "bytes_down": sum(x["bytes_down"] for x in r[:rr["round"]]),
                         "total_bytes": rr["cumulative_bytes"]})
    fed = runs.get("fedavg")
    if fed:
        for rr in fed["rounds"]:
            k = rr["round"]
            rows.append({"method": "FedAvg", "rounds": k, "accuracy": rr["accuracy"],
                         "val_accuracy": rr.get("val_accuracy"),
                         "bytes_up": sum(x["bytes_up"] for x in fed["rounds"][:k]),
                         "bytes_down": sum(x["bytes_down"] for x in fed["rounds"][:k]),
                         "total_bytes": rr["cumulative_bytes"]})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with handle_errors(PROG):
        configs = validate(args)
    from federated.simulation import run_federated

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for cfg in configs:
        mode = cfg["mode"]
        print(f"[{PROG}] {mode}: {cfg['num-server-rounds']} round(s), {args.clients} clients, {args.dataset}, "
              f"{args.partition}{'' if args.partition == 'iid' else f' alpha={args.alpha}'} ({args.backend})",
              file=sys.stderr)
        try:
            runs[mode] = run_federated(run_config_overrides(args, mode), args.clients, backend=args.backend)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
    rows = table_rows(runs)
    doc = {"format": "haba-fl-runner/2",  # /2: accuracies are fractions (the table prints percent)
           "args": vars(args), "wall_seconds": time.perf_counter() - t0, "runs": runs, "table": rows}
    from haba_core.atomic import write_json

    write_json(out / "results.json", doc)  # temp file, then rename
    from .fl_plots import plot_accuracy_vs_bytes

    figure = plot_accuracy_vs_bytes(rows, out / "accuracy_vs_bytes.png")
    print(federated_table(rows))
    if figure is not None:
        print(f"figure: {figure}")
    print(f"\nresults: {out / 'results.json'}")
    failed = [m for m, r in runs.items() if r.get("status") != "ok"]
    if failed:
        print(f"{PROG}: error: {', '.join(failed)} produced no global model (see {out / 'results.json'})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
