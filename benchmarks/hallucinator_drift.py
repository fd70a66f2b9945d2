"""How far do the hallucinators move, and what does that do to accuracy? (issue 8 diagnosis)

Distils a few iterations per variant and reports ‖H_j(b) − b‖ for every hallucinator j (mean over the
first 50 bases, next to the bases' own norm) and the test accuracy of one evaluation run. This is the
study that found SGD at η_H = η_B blowing the composed images up under DC (moved 10³–10⁴× the bases' norm within
6 steps) and Adam at lr 1e-4 keeping them near their data-driven start.

    python -m benchmarks.hallucinator_drift --dataset cifar10 --objective dc --ipc 11 --iterations 0,6,30 \
        --variants idc-haba-pca-nocos-s2,modest --set lr_hallucinators=0.001
    python -m benchmarks.hallucinator_drift --quick
"""

from __future__ import annotations

import argparse
import sys

import torch

from haba_core import ConfigError, DistillConfig, EvalConfig, distill, evaluate
from haba_core.config_layers import check_table, merge_layers

from .datasets import load_pair
from .harness import (add_common_args, command_line, configure_threads, machine_info, machine_line,
                      markdown_path, markdown_table, parse_overrides, resolve_device, update_benchmarks_md,
                      write_results)
from .variants import variant_config


def apply_overrides(cfg: DistillConfig, overrides: dict) -> DistillConfig:
    """``cfg`` with the ``--set`` items layered on top (dotted keys: ``hallucinator.depth=2``; the old ``h.depth=2``
    still works, with a warning)."""
    if not overrides:
        return cfg
    overrides = dict(overrides)
    if "h" in overrides:
        print("hallucinator_drift: warning: --set h.FIELD is deprecated; use hallucinator.FIELD", file=sys.stderr)
        overrides = merge_layers({"hallucinator": overrides.pop("h")}, overrides)
    try:
        layer = check_table(overrides, DistillConfig, "--set")
        return DistillConfig.from_dict(merge_layers(cfg.to_dict(), layer))
    except ConfigError as exc:
        raise SystemExit(f"hallucinator_drift: error: {exc}") from None


def shift_norms(result, count: int = 50) -> tuple[float, list[float]]:
    """(mean basis norm, [mean ‖H_j(b) − b‖ for each hallucinator j]) over the first ``count`` bases."""
    synth = result.synthetic
    x = synth.upsample(synth.bases.detach()[:count])
    if synth.hallucinators is None:
        return float(x.flatten(1).norm(dim=1).mean()), []
    with torch.no_grad():
        shifts = [float((synth.hallucinators(x, torch.full((x.shape[0],), j, dtype=torch.long, device=x.device))
                         - x).flatten(1).norm(dim=1).mean()) for j in range(synth.num_hallucinators)]
    return float(x.flatten(1).norm(dim=1).mean()), shifts


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--dataset", default="cifar10", choices=["digits", "mnist", "cifar10"])
    p.add_argument("--objective", default="dc", choices=["dm", "dc", "dsa"])
    p.add_argument("--ipc", type=int, default=11)
    p.add_argument("--iterations", default="0,6,30", help="comma-separated iteration counts")
    p.add_argument("--variants", default="idc-haba-pca-nocos-s2,modest")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a DistillConfig key for every variant, e.g. hallucinator.depth=2 (the --set syntax of every "
                        "entry point, docs/cli.md)")
    p.add_argument("--train-limit", type=int, default=10000, help="seeded subset of the training set")
    p.add_argument("--test-limit", type=int, default=2000)
    p.add_argument("--eval-epochs", type=int, default=150)
    p.add_argument("--net-width", type=int, default=32)
    p.add_argument("--batch-real", type=int, default=32)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    configure_threads(args)
    if args.quick:
        args.dataset, args.ipc, args.iterations, args.eval_epochs, args.net_width = "digits", 2, "0,2", 5, 8
    overrides = parse_overrides(args.set)
    train, test = load_pair(args.dataset, args.data_root, args.quick, args.test_limit)
    if args.train_limit and len(train) > args.train_limit:
        train = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:args.train_limit])
    seed = args.first_seed
    rows = []
    for name in args.variants.split(","):
        for its in (int(v) for v in args.iterations.split(",")):
            cfg = variant_config(name, objective=args.objective, ipc=args.ipc, iterations=its,
                                 net_width=args.net_width, seed=seed, device=args.device)
            cfg.dc.batch_real = cfg.dm.batch_real = args.batch_real
            cfg = apply_overrides(cfg, overrides)
            result = distill(train, cfg)
            basis_norm, shifts = shift_norms(result)
            acc = evaluate(result, test, EvalConfig(runs=1, epochs=args.eval_epochs, net_width=args.net_width,
                                                    seed=seed, device=args.device)).mean
            rows.append({"variant": name, "iterations": its, "accuracy": round(acc, 2),
                         "basis_norm": round(basis_norm, 1),
                         "shift_norms": " / ".join(f"{s:.3g}" for s in shifts) or "–",
                         "final_dd_loss": round(result.history[-1]["dd"], 1) if result.history else None})
            print(rows[-1], flush=True)
    name = f"hallucinator_drift_{args.dataset}_ipc{args.ipc}_{args.objective}{args.tag}{'_quick' if args.quick else ''}"
    meta = {"machine": machine_info(resolve_device(args.device)), "command": command_line(), "args": vars(args),
            "overrides": overrides}
    write_results(name, rows, meta, args.out)
    table = markdown_table(rows, ["variant", "iterations", "accuracy", "basis_norm", "shift_norms", "final_dd_loss"])
    print(table)
    md = markdown_path(args)
    if md is not None:
        m = meta["machine"]
        update_benchmarks_md(name, f"`{meta['command']}` — {m['date']}, {machine_line(m)}\n\n{table}\n", md)


if __name__ == "__main__":
    main()
