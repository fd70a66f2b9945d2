"""Compute-matched comparison (issue 8): plain vs HaBa at equal stored bytes AND equal wall-clock.

Every variant gets the same distillation time budget (iterations differ and are reported); snapshots
taken along the way give accuracy-vs-time learning curves (PNG). Evaluation time is not counted.

    python -m benchmarks.compute_matched --dataset mnist --ipc 2 --objective dm --time-budget 600 --seeds 3
    python -m benchmarks.compute_matched --quick
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

from haba_core import (DistillConfig, EvalConfig, FactorizedDataset, HabaError, evaluate, merge_layers, parse_set,
                       select_coreset)
from haba_core.objectives import check_buffer_split, objective_names, read_buffer_info

from .harness import (REPO_ROOT, add_common_args, command_line, configure_threads, machine_info, machine_line,
                      markdown_path, markdown_table,
                      mean_std, resolve_device, seed_list, update_benchmarks_md, write_results)
from .datasets import VAL_PER_CLASS, load_pair, load_splits
from .variants import variant_config


def run_config(name: str, args, seed: int) -> DistillConfig:
    """The variant's DistillConfig with the study's settings, then the study's ``--set`` overrides."""
    fixed = args.iterations is not None  # fixed iterations (robust to a shared machine's load) or fixed time
    cfg = variant_config(name, objective=args.objective, ipc=args.ipc, iterations=args.iterations if fixed else 10**9,
                         time_limit_s=None if fixed else args.time_budget, time_limit_clock=args.clock,
                         net_width=args.net_width, seed=seed, device=args.device)
    cfg.dm.batch_real = args.batch_real
    cfg.dc.batch_real = args.batch_real
    if args.objective == "mtt":
        if not args.buffer:
            raise SystemExit("--objective mtt needs --buffer DIR (made by haba-buffer with the same --net-width)")
        cfg.mtt.buffer = str(args.buffer)
        cfg.mtt.syn_steps, cfg.mtt.expert_epochs = args.mtt_syn_steps, args.mtt_expert_epochs
        cfg.mtt.max_start_epoch = args.mtt_max_start_epoch
    if args.set:  # study-wide overrides, applied last to every variant
        cfg = DistillConfig.from_dict(merge_layers(cfg.to_dict(), parse_set(args.set))).validate()
    return cfg


def run_variant(name: str, train, test, args, seed: int, also: dict | None = None) -> dict:
    """One distillation of ``name``, scored on ``test`` (and on every set in ``also`` by the same networks)."""
    fixed = args.iterations is not None
    cfg = run_config(name, args, seed)
    total = args.iterations if fixed else args.time_budget
    marks = [total * (k + 1) / args.snapshots for k in range(args.snapshots)]
    snaps: list[tuple[int, float, object]] = []

    def observe(done: int, spent: float, synth) -> None:
        if len(snaps) < len(marks) - 1 and (done if fixed else spent) >= marks[len(snaps)]:
            snaps.append((done, spent, copy.deepcopy(synth)))

    t0 = time.perf_counter()
    result = distill_with(train, cfg, observe)
    wall = time.perf_counter() - t0
    ev = EvalConfig(runs=args.eval_runs, epochs=args.eval_epochs, net_width=args.net_width, seed=seed,
                    device=args.device)
    curve = []
    for done, spent, synth in snaps:
        fd = FactorizedDataset(synth, result.preprocessor, result.classes)
        r = evaluate(fd, test, EvalConfig(**{**ev.__dict__, "runs": 1}))
        curve.append({"seconds": round(spent, 1), "iterations": done, "acc": r.mean})
    final = evaluate(result, test, ev, also=also)
    if args.save_sets is not None:  # for later evaluations, e.g. other architectures (haba-evaluate --arch)
        result.save(Path(args.save_sets) / f"{name}_seed{seed}")
    t = result.meta["timings"]
    per_it = t["iteration_cpu_s"] if args.clock == "cpu" else t["iteration_s"]  # the budget's clock, as observe
    curve.append({"seconds": round(t["iterations_run"] * (per_it or 0), 1),
                  "iterations": t["iterations_run"], "acc": final.mean})
    st = result.storage()
    return {"variant": name, "seed": seed, "acc": final.mean, "acc_runs": final.accuracies,
            "iterations": t["iterations_run"], "iteration_s": t["iteration_s"],
            "iteration_cpu_s": t["iteration_cpu_s"], "wall_s": wall,
            "stored_bytes": st.bytes, "ipc_equivalent": round(st.ipc_equivalent, 3),
            "bpc": result.meta["budget"]["bpc"], "hallucinators": result.num_hallucinators, "curve": curve,
            **_also_columns(final)}


def _also_columns(result) -> dict:
    """``acc_<name>`` (mean) and ``acc_<name>_runs`` for each extra evaluation set of an EvalResult."""
    out = {}
    for key, accs in result.extra.get("also", {}).items():
        out[f"acc_{key}"], out[f"acc_{key}_runs"] = sum(accs) / len(accs), list(accs)
    return out


def distill_with(train, cfg, observe):
    from haba_core import distill
    return distill(train, cfg, observe=observe)


def coreset_row(train, test, args, seed: int, method: str = "random", also: dict | None = None) -> dict:
    fd = select_coreset(train, args.ipc, method, seed=seed)
    r = evaluate(fd, test, EvalConfig(runs=args.eval_runs, epochs=args.eval_epochs, net_width=args.net_width,
                                      seed=seed, device=args.device), also=also)
    st = fd.storage()
    return {"variant": f"{method}-coreset", "seed": seed, "acc": r.mean, "acc_runs": r.accuracies, "iterations": 0,
            "iteration_s": 0.0, "wall_s": 0.0, "stored_bytes": st.bytes, "ipc_equivalent": st.ipc_equivalent,
            "bpc": args.ipc, "hallucinators": 0, "curve": [], **_also_columns(r)}


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name]
        it_m, _ = mean_std([r["iterations"] for r in rs])
        sec_m, _ = mean_std([r["iterations"] * (r["iteration_s"] or 0.0) for r in rs])
        row = {"variant": name, "accuracy": _accuracy(rs, "acc")}
        if "acc_test" in rs[0]:
            row["test accuracy"] = _accuracy(rs, "acc_test")
        if rs[0].get("iteration_cpu_s") is not None:
            row["distill_cpu_s"] = round(mean_std([r["iterations"] * r["iteration_cpu_s"] for r in rs])[0], 1)
        out.append({**row, "seeds": len(rs),
                    "iterations": int(round(it_m)), "distill_s": round(sec_m, 1), "stored_bytes": rs[0]["stored_bytes"],
                    "ipc_equivalent": rs[0]["ipc_equivalent"], "bpc": rs[0]["bpc"], "H": rs[0]["hallucinators"]})
    return out


def summary_columns(summary: list[dict]) -> list[str]:
    """The table's columns: the test and CPU-seconds columns only where some row has them."""
    has = {k for row in summary for k in row}
    return ["variant", "accuracy"] + [k for k in ("test accuracy",) if k in has] + [
        "seeds", "iterations", "distill_s"] + [k for k in ("distill_cpu_s",) if k in has] + [
        "stored_bytes", "ipc_equivalent", "bpc", "H"]


def _accuracy(rs: list[dict], key: str) -> str:
    """mean ± std: over the seeds' means, or over the evaluation runs when there is one seed."""
    m, s = mean_std([r[key] for r in rs] if len(rs) > 1 else list(rs[0][f"{key}_runs"]))
    return f"{m:.2f} ± {s:.2f}"


def plot(rows: list[dict], path: Path, title: str, ylabel: str = "test accuracy (%)",
         xlabel: str = "distillation time (s)") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["variant"] for r in rows if r["curve"]):
        rs = [r for r in rows if r["variant"] == name]
        n = min(len(r["curve"]) for r in rs)
        xs = [sum(r["curve"][k]["seconds"] for r in rs) / len(rs) for k in range(n)]
        ys = [sum(r["curve"][k]["acc"] for r in rs) / len(rs) for k in range(n)]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--dataset", default="mnist", choices=["digits", "mnist", "cifar10"])
    p.add_argument("--ipc", type=int, default=2)
    p.add_argument("--objective", default="dm", choices=list(objective_names()))
    p.add_argument("--buffer", type=Path, default=None, help="expert buffer for --objective mtt (haba-buffer)")
    p.add_argument("--mtt-syn-steps", type=int, default=20)
    p.add_argument("--mtt-expert-epochs", type=int, default=2)
    p.add_argument("--mtt-max-start-epoch", type=int, default=20)
    p.add_argument("--variants", default="plain,haba-paper,haba-pca")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="DistillConfig override applied to every variant after its own settings (repeatable), "
                        "e.g. --set net_depth=2 --set dsa=false")
    p.add_argument("--time-budget", type=float, default=600.0, help="distillation seconds per run")
    p.add_argument("--iterations", type=int, default=None,
                   help="fixed iterations per run instead of --time-budget (wall-clock is still reported)")
    p.add_argument("--snapshots", type=int, default=4)
    p.add_argument("--eval-epochs", type=int, default=300)
    p.add_argument("--eval-runs", type=int, default=3)
    p.add_argument("--net-width", type=int, default=64)
    p.add_argument("--batch-real", type=int, default=128)
    p.add_argument("--no-coreset", action="store_true")
    p.add_argument("--coresets", default="random,herding", help="coreset rows at the same IPC (random, herding)")
    p.add_argument("--tag", default="")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on a seeded subset of the evaluation split")
    p.add_argument("--split", default="val", choices=["val", "test", "both"],
                   help="evaluate on the validation split carved from train (model selection, default), on the "
                        "test split (final tables only), or 'both': distil on train minus validation and score the "
                        "same trained networks on both (choose on the validation column, report the test column)")
    p.add_argument("--save-sets", type=Path, default=None, metavar="DIR",
                   help="also save every distilled set as DIR/<variant>_seed<S> (haba-evaluate reads them)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="what --time-budget counts: wall seconds, or this process's CPU seconds (fair on a shared "
                        "machine; with one torch thread, one idle core's time)")
    args = p.parse_args(argv)
    configure_threads(args)
    if args.quick:
        args.dataset = "digits" if args.dataset == "mnist" else args.dataset
        args.time_budget, args.seeds, args.eval_epochs, args.eval_runs = 3.0, 1, 100, 1  # 20 epochs stayed at chance
        args.net_width, args.batch_real, args.snapshots = 16, 32, 2
    if args.objective == "mtt" and args.buffer and args.split != "test":  # experts must not have seen validation
        try:
            check_buffer_split(read_buffer_info(args.buffer), VAL_PER_CLASS[args.dataset],
                               where=f"--buffer {args.buffer}")
        except HabaError as exc:
            raise SystemExit(f"compute_matched: {exc}") from None
    if args.split == "both":  # the primary score (curves, "accuracy") is validation; test rides along
        train, test, held_out = load_splits(args.dataset, args.data_root, args.quick, args.test_limit)
        also = {"test": held_out}
    else:
        train, test = load_pair(args.dataset, args.data_root, args.quick, args.test_limit, split=args.split)
        also = None
    seeds = seed_list(args)
    name = (f"compute_matched_{args.dataset}_ipc{args.ipc}_{args.objective}{args.tag}"
            f"{'' if args.split == 'test' else '_' + args.split}{'_quick' if args.quick else ''}")
    meta = {"machine": machine_info(resolve_device(args.device)), "command": command_line(), "args": vars(args)}
    rows = []
    for seed in seeds:
        if not args.no_coreset:
            rows += [coreset_row(train, test, args, seed, m, also) for m in args.coresets.split(",")]
        for variant in [v for v in args.variants.split(",") if v]:  # "" = coreset rows only
            rows.append(run_variant(variant, train, test, args, seed, also))
            print(f"{variant} seed {seed}: {rows[-1]['acc']:.2f}% after {rows[-1]['iterations']} iterations",
                  flush=True)
            # every finished row is on disk at once: a long study stopped early keeps what it measured
            write_results(name, rows, {**meta, "partial": True}, args.out)
    write_results(name, rows, meta, args.out)
    # curves are documentation: full runs put them in docs/figures (committed), quick runs beside the JSON
    png = (Path(args.out) if args.quick else REPO_ROOT / "docs" / "figures") / f"{name}.png"
    plot(rows, png, f"{args.dataset} IPC-{args.ipc} {args.objective}, {args.time_budget:.0f}s budget",
         f"{'test' if args.split == 'test' else 'validation'} accuracy (%)",
         f"distillation {'CPU' if args.clock == 'cpu' else 'wall'} time (s)")
    summary = summarise(rows)
    table = markdown_table(summary, summary_columns(summary))
    print(table)
    print(f"curves: {png}")
    md = markdown_path(args)
    if md is not None:
        m = meta["machine"]
        update_benchmarks_md(name, f"#### {args.dataset}, IPC-{args.ipc} equivalent, {args.objective}, "
                                   f"{f'{args.iterations} iterations' if args.iterations else f'{args.time_budget:.0f} s'} per run, "
                                   f"scored on the {'validation (accuracy) and test' if also else args.split} split\n\n`{meta['command']}` — {m['date']}, {machine_line(m)}\n\n"
                                   f"{table}\n\n![accuracy vs time](docs/figures/{name}.png)\n", md)


if __name__ == "__main__":
    main()
