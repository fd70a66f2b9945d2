"""Federated HaBa vs FedAvg: test accuracy against total communicated bytes.

Setting (issue "Flower wrapper"): 10 clients, Dirichlet α = 0.5 and IID label partitions of
CIFAR-10 (``imagefolder:<data-root>/cifar10-jpeg.tar.gz``) and MNIST (``mnist``, root
``<data-root>/mnist``). HaBa clients distil their partition (DM, ``--ipc`` images-per-class budget,
5 hallucinators) and upload bases + hallucinators; the server trains the global model on all of them.
HaBa one-shot is round 1 of the 3-round HaBa run (identical by construction: same seeds, same
round-1 instructions); FedAvg runs 20 rounds (``flwr.serverapp.strategy.FedAvg``, 1 local epoch)
and is reported after each round. Bytes are raw array bytes (float32 / int64) summed over clients,
up + down (see ``federated/accounting.py``); client-side evaluation traffic is not counted.

    python -m benchmarks.federated --quick                 # ~2 min on a GPU: tiny settings, MNIST + CIFAR-10
    python -m benchmarks.federated --device cuda --seeds 1 # full study (hours; see docs/federated.md)

Writes ``<out>/federated.json`` (default ``benchmarks/results/``) and prints a Markdown table; full
runs also update the ``federated`` section of BENCHMARKS.md (``--md`` to choose another file).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.harness import (add_common_args, fmt_bytes, load_average, machine_info, machine_line, markdown_table,
                                parse_overrides, publish, resolve_device, seed_list, summarize, write_results)
from federated.simulation import run_federated

FULL = {"clients": 10, "partitions": ["dirichlet", "iid"], "alpha": 0.5, "haba_rounds": 3, "fedavg_rounds": 20,
        "run": {"iterations": 1000, "net-width": 128, "server-epochs": 300, "local-epochs": 1, "learning-rate": 0.01,
                "batch-size": 32, "hallucinators": 5, "fraction-evaluate": 0.0}}
QUICK = {"clients": 10, "partitions": ["dirichlet", "iid"], "alpha": 0.5, "haba_rounds": 2, "fedavg_rounds": 2,
         "run": {"iterations": 5, "net-width": 32, "server-epochs": 20, "local-epochs": 1, "learning-rate": 0.01,
                 "batch-size": 64, "hallucinators": 5, "batch-real": 64, "fraction-evaluate": 0.0,
                 "train-limit": 2000, "test-limit": 1000}}
FEDAVG_REPORT = (1, 2, 3, 5, 10, 15, 20)


def dataset_source(name: str, data_root: Path) -> tuple[str, str]:
    if name == "cifar10":
        return f"imagefolder:{data_root / 'cifar10-jpeg.tar.gz'}", ""
    if name == "mnist":
        return "mnist", str(data_root / "mnist")
    if name == "digits":
        return "digits", ""
    raise SystemExit(f"unknown dataset {name!r}: cifar10, mnist or digits")


def one_setting(dataset: str, partition: str, ipc: int, seed: int, args: argparse.Namespace, settings: dict,
                work: Path) -> dict[str, Any]:
    name, root = dataset_source(dataset, args.data_root)
    base = {**settings["run"], "dataset": name, "data-root": root, "partitioning": partition,
            "alpha": settings["alpha"], "seed": seed, "partition-seed": seed, "ipc": ipc,
            "device": str(args.device_name), "num-threads": int(args.threads_used), "min-available-clients": settings["clients"], "wait-for-clients-s": 5.0}
    out = {}
    # one HaBa-mode run per parameterization ("" = the recipe's): "idc" / "plain" clients upload IDC or plain
    # DM-distilled images instead (FedDM-style one-shot baselines at the same per-client byte budget)
    runs = [(haba_key(p), "haba", settings["haba_rounds"], p, {}) for p in args.parameterizations]
    if args.shared:  # one bank for all clients: a bank round, then a one-shot bases round (federated.shared_bank)
        runs.append(("haba-shared", "haba", max(2, settings["haba_rounds"]), "", {"shared-hallucinators": True}))
    if settings["fedavg_rounds"] > 0:
        runs.append(("fedavg", "fedavg", settings["fedavg_rounds"], "", {}))
    for key, mode, rounds, param, extra in runs:
        cfg = {**base, **extra, "mode": mode, "num-server-rounds": rounds, "parameterization": param,
               "results-path": str(work / f"{dataset}-{partition}-ipc{ipc}-s{seed}-{key}.json")}
        t0 = time.perf_counter()
        out[key] = run_federated(cfg, settings["clients"], backend=args.backend)
        out[key]["bench_seconds"] = time.perf_counter() - t0
        print(f"  {dataset} {partition} ipc={ipc} seed={seed} {key}: final accuracy "
              f"{out[key]['final_accuracy']}, {out[key]['totals']['bytes_total']:,} bytes, "
              f"{out[key]['bench_seconds']:.0f}s", file=sys.stderr)
    return out


def haba_key(parameterization: str) -> str:
    """``haba`` for the recipe's own parameterization, else ``haba-<parameterization>``."""
    return "haba" if not parameterization else f"haba-{parameterization}"


def method_name(key: str) -> str:
    return {"haba": "HaBa", "haba-idc": "IDC", "haba-plain": "plain DM", "haba-haba": "HaBa (full-size bases)",
            "haba-idc-haba": "HaBa (idc-haba)", "haba-shared": "HaBa, one shared bank"}.get(key, key)


def rows_for(dataset: str, partition: str, ipc: int, runs: list[dict], settings: dict) -> list[dict]:
    """Rows (mean over seeds): HaBa one-shot, HaBa R-round, FedAvg after each reported round."""
    label = partition if partition == "iid" else f"dirichlet α={settings['alpha']}"

    def row(method: str, mode: str, k: int) -> dict:
        accs = [100 * r[mode]["rounds"][k - 1]["accuracy"] for r in runs if r[mode]["rounds"][k - 1]["accuracy"] is not None]
        vals = [100 * r[mode]["rounds"][k - 1]["val_accuracy"] for r in runs
                if r[mode]["rounds"][k - 1].get("val_accuracy") is not None]
        ups = [sum(x["bytes_up"] for x in r[mode]["rounds"][:k]) for r in runs]
        downs = [sum(x["bytes_down"] for x in r[mode]["rounds"][:k]) for r in runs]
        return {"dataset": dataset, "partition": label, "ipc": ipc, "method": method, "rounds": k,
                **summarize(accs, digits=2, loads=[load_average()[0]]),
                "val_value": summarize(vals, digits=2)["value"] if vals else None,
                **({"val_values": vals} if vals and len(vals) == len(accs) else {}),
                "bytes_up": sum(ups) / len(ups), "bytes_down": sum(downs) / len(downs),
                "total_bytes": (sum(ups) + sum(downs)) / len(ups)}

    rows = []
    for key in [k for k in runs[0] if k.startswith("haba")]:
        if key == "haba-shared":  # round 1 is the bank round (no model); stored = bases + the bank's share
            k = len(runs[0][key]["rounds"])
            clients = [c for r in runs for c in r[key]["rounds"][1].get("clients", [])]
            share = [4 * r[key]["rounds"][1]["shared_bank"]["bank_numbers"] / r[key]["rounds"][1]["shared_bank"]["clients"]
                     for r in runs if "shared_bank" in r[key]["rounds"][1]]
            stored = (sum(c["bytes_up"] for c in clients) / len(clients) + sum(share) / len(share)) if clients and share else None
            rows.append({**row(method_name(key) + f" (bank round + {k - 1})", key, k), "stored_bytes": stored})
            continue
        clients = [c for r in runs for c in r[key]["rounds"][0].get("clients", [])]
        stored = sum(c["bytes_up"] for c in clients) / len(clients) if clients else None
        for k in sorted({1, settings["haba_rounds"]}):
            name = method_name(key) + (" one-shot" if k == 1 else f" {k}-round")
            rows.append({**row(name, key, k), "stored_bytes": stored})
    if "fedavg" not in runs[0]:
        return rows
    for k in [k for k in FEDAVG_REPORT if k <= settings["fedavg_rounds"]] or [settings["fedavg_rounds"]]:
        rows.append({**row("FedAvg", "fedavg", k), "stored_bytes": None})
    # FedAvg rounds needed to reach HaBa one-shot accuracy (seed-averaged curves); None = not within the run
    one_shot = rows[0]["mean"]
    curve = [summarize([100 * (r["fedavg"]["rounds"][k]["accuracy"] or 0.0) for r in runs])["mean"]
             for k in range(settings["fedavg_rounds"])]
    match = next((k + 1 for k, a in enumerate(curve) if a >= one_shot), None)
    for r in rows:
        r["fedavg_rounds_to_match_one_shot"] = match
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--datasets", default="mnist,cifar10", help="comma list of mnist, cifar10, digits")
    parser.add_argument("--ipc", default="10", help="comma list of per-client IPC budgets (default 10)")
    parser.add_argument("--partitions", default=None, help="comma list of dirichlet, iid (default both)")
    parser.add_argument("--backend", default="inprocess", choices=["inprocess", "ray"])
    parser.add_argument("--parameterizations", default="",
                        help="comma list of client parameterizations to run in HaBa mode besides the recipe's own "
                             "(e.g. ',idc,plain': the recipe, then IDC and plain DM uploads at the same bytes)")
    parser.add_argument("--fedavg-rounds", type=int, default=None, help="FedAvg rounds (default 20 full, 2 quick; 0 = none)")
    parser.add_argument("--haba-rounds", type=int, default=None, help="HaBa rounds (default 3 full, 2 quick)")
    parser.add_argument("--shared", action="store_true",
                        help="also run HaBa with one hallucinator bank for all clients (shared-hallucinators: a bank "
                             "round, then a one-shot bases round)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one run-config value (e.g. iterations=200, train-limit=10000, val-per-class=500: "
                             "a validation column for choices beside the test column); repeatable")
    args = parser.parse_args(argv)
    args.parameterizations = list(dict.fromkeys(p.strip() for p in args.parameterizations.split(",")))
    device = resolve_device(args.device)
    args.device_name = device
    threads = harness.configure_threads(args) if hasattr(harness, "configure_threads") else 1
    args.threads_used = max(1, threads)
    settings = dict(QUICK if args.quick else FULL)
    settings["run"] = {**settings["run"], **parse_overrides(args.set)}
    if args.fedavg_rounds is not None:  # 0 = no FedAvg run
        settings["fedavg_rounds"] = args.fedavg_rounds
    if args.haba_rounds:
        settings["haba_rounds"] = args.haba_rounds
    if args.partitions:
        settings["partitions"] = args.partitions.split(",")
    seeds = seed_list(args)[:1] if args.quick else seed_list(args)
    ipcs = [2] if args.quick and args.ipc == "10" else [int(v) for v in args.ipc.split(",")]
    info = machine_info(device)
    rows: list[dict] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="haba-fl-bench-") as tmp:
        for dataset in args.datasets.split(","):
            for partition in settings["partitions"]:
                for ipc in ipcs:
                    runs = [one_setting(dataset, partition, ipc, s, args, settings, Path(tmp)) for s in seeds]
                    rows += rows_for(dataset, partition, ipc, runs, settings)
    meta = {"machine": info, "settings": settings, "seeds": seeds, "ipc": ipcs, "quick": args.quick,
            "wall_seconds": time.perf_counter() - t0, "backend": args.backend}
    path = write_results("federated", rows, meta, args.out)
    for r in rows:
        for k in ("bytes_up", "bytes_down", "total_bytes", "stored_bytes"):
            r[k + "_h"] = fmt_bytes(r[k])
    cols = [("dataset", "dataset"), ("partition", "partition"), ("ipc", "IPC/client"), ("method", "method"),
            ("rounds", "rounds"), *([("val_value", "validation accuracy %")] if any(r["val_value"] for r in rows) else []),
            ("value", "accuracy %"), ("total_bytes_h", "total bytes"),
            ("bytes_up_h", "up"), ("bytes_down_h", "down"), ("stored_bytes_h", "payload/client"), ("n", "n"),
            ("load", "load")]
    md = (f"## Federated: HaBa one-shot / few-round vs FedAvg (accuracy vs bytes)\n\n"
          f"{machine_line(info)}; {len(seeds)} seed(s); {settings['clients']} clients; "
          f"{'quick settings' if args.quick else 'full settings'}; `{meta.get('command', ' '.join(sys.argv))}`\n\n"
          + markdown_table(rows, cols))
    publish("federated", md, path, meta["wall_seconds"], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
