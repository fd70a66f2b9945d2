"""``haba-evaluate OUT_DIR``: train fresh networks of one or more architectures on a saved result and
report their test accuracy (cross-architecture generalisation, paper Tab. 2). Writes OUT_DIR/eval.json."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from haba_core import (KNOWN_NETWORKS, ConfigError, EvalConfig, FactorizedDataset, UnknownNameError, __version__,
                       evaluate, load_dataset, validation_split)
from haba_core.atomic import write_json
from haba_core.data import MAX_VAL_PER_CLASS, is_val_per_class
from haba_core.evaluate import LEARNED_LR_SCOPES

from . import report
from .cli_parser import OneLineParser
from .cli_errors import EXIT_INTERRUPTED, handle_errors
from .progress import EvalProgress

PROG = "haba-evaluate"
EVAL_FILE = "eval.json"
_E = EvalConfig()


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG, allow_abbrev=False,
        description="Evaluate a distilled result (a haba-distill output directory): train --runs fresh networks "
                    "of each --arch on it and test them on the test split of the dataset it was distilled from "
                    "(and on its validation split, when haba-distill --val-per-class carved one). "
                    f"Prints a table and writes OUT_DIR/{EVAL_FILE}.",
        epilog="Exit status: 0 ok, 2 error (unreadable result, missing data, unknown architecture), 130 interrupted.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="directory with factorized.safetensors + meta.json")
    p.add_argument("--arch", default="ConvNet",
                   help=f"comma-separated architectures from {', '.join(KNOWN_NETWORKS)}, or 'all' for every one "
                        "(cross-architecture table; default: ConvNet)")
    p.add_argument("--runs", type=int, default=_E.runs,
                   help=f"runs (fresh networks) per architecture (default: {_E.runs})")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs per run (default: the eval_epochs recorded in OUT_DIR/metrics.json, "
                        f"else {_E.epochs})")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: the learned MTT lr on the network it was learned through, else 0.01)")
    p.add_argument("--learned-lr-on", choices=LEARNED_LR_SCOPES, default=_E.learned_lr_on,
                   help="where a learned MTT lr applies without --lr: 'same-network' (default; other networks train "
                        "at 0.01, as a learned lr can break them) or 'every-network' (MTT's and HaBa's public code)")
    p.add_argument("--batch-size", type=int, default=_E.batch_size, help=f"minibatch size (default: {_E.batch_size})")
    p.add_argument("--dsa", action=argparse.BooleanOptionalAction, default=None,
                   help="DSA augmentation while training (default: as recorded in OUT_DIR/metrics.json, else true)")
    p.add_argument("--net-width", type=int, default=None,
                   help="ConvNet width (default: the width the result was distilled with, else 128)")
    p.add_argument("--dataset", default=None,
                   help="test on this dataset instead of the one recorded in meta.json (default: as recorded)")
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help="directory holding the dataset files (default: the root recorded with the result in "
                        "OUT_DIR/metrics.json, else $HABA_DATA_ROOT or ./data)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to compute (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the evaluation runs (default: 0)")
    p.add_argument("--json", action="store_true", help=f"print {EVAL_FILE} to stdout and nothing else (default: off)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress messages (default: off)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: PyTorch's choice)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def parse_archs(text: str) -> list[str]:
    """``"convnet, ResNet18"`` → canonical names, ``"all"`` → every known network; unknown names raise
    :class:`UnknownNameError`."""
    if text.strip().lower() == "all":
        return list(KNOWN_NETWORKS)
    canon = {n.lower(): n for n in KNOWN_NETWORKS}
    out = []
    for name in (t.strip() for t in text.split(",")):
        if not name:
            continue
        if name.lower() not in canon:
            raise UnknownNameError(f"unknown architecture {name!r}; known: {', '.join(KNOWN_NETWORKS)}")
        out.append(canon[name.lower()])
    if not out:
        raise UnknownNameError(f"--arch lists no architecture; known: {', '.join(KNOWN_NETWORKS)}")
    return out


def _recorded(out_dir: Path, section: str = "eval") -> dict[str, Any]:
    """A section (``eval`` settings, ``run`` settings) recorded by haba-distill in metrics.json (empty if absent
    or unreadable)."""
    try:
        metrics = json.loads((out_dir / "metrics.json").read_text())
        return dict(metrics.get("config", {}).get(section, {}) or {})
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def data_root_for(out_dir: Path, given: str | None, dataset: str, recorded_dataset: str | None) -> str | None:
    """``--data-root`` if given, else the root recorded with the result (for the dataset it was distilled from)."""
    if given is not None:
        return given
    if recorded_dataset is not None and dataset != recorded_dataset:
        return None
    root = _recorded(out_dir, "run").get("data_root")
    return str(root) if root else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    archs = parse_archs(args.arch)
    if args.batch_size < 1 or (args.net_width is not None and args.net_width < 1) or \
            (args.lr is not None and not 0 < args.lr < float("inf")):
        raise ConfigError("--batch-size and --net-width must be >= 1 and --lr a finite number > 0")
    if not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed must be in 0..{2**63 - 1}, got {args.seed}")
    out_dir = Path(args.out_dir)
    data = FactorizedDataset.load(out_dir)
    dataset = args.dataset or data.meta.get("dataset")
    if not dataset:
        raise ConfigError(f"{out_dir}/meta.json records no dataset; pass --dataset NAME")
    root = data_root_for(out_dir, args.data_root, dataset, data.meta.get("dataset"))
    if root is not None and args.data_root is None and not args.quiet:
        print(f"{PROG}: data root {root} (recorded with the result; --data-root overrides)", file=sys.stderr,
              flush=True)
    test = load_dataset(dataset, root=root, split="test")
    if tuple(test.image_shape) != tuple(data.image_shape) or test.num_classes != data.num_classes:
        raise ConfigError(f"dataset {dataset!r} has {test.num_classes} classes of shape {test.image_shape}, the "
                          f"result has {data.num_classes} of {tuple(data.image_shape)}; pick the matching --dataset")
    val = None
    per_class = _recorded(out_dir, "run").get("val_per_class") or 0
    if not is_val_per_class(per_class):
        raise ConfigError(f"{out_dir}/metrics.json: val_per_class must be an integer in 0..{MAX_VAL_PER_CLASS}, "
                          f"got {per_class!r}")
    if per_class > 0 and dataset == data.meta.get("dataset"):  # the split the result was distilled without
        val = validation_split(load_dataset(dataset, root=root, split="train"), per_class)[1]
    recorded = _recorded(out_dir)
    distilled = data.meta.get("config", {}) or {}
    base = EvalConfig(
        runs=args.runs,
        epochs=args.epochs if args.epochs is not None else int(recorded.get("epochs", _E.epochs)),
        lr=args.lr,
        learned_lr_on=args.learned_lr_on,
        batch_size=args.batch_size,
        dsa=args.dsa if args.dsa is not None else bool(recorded.get("dsa", _E.dsa)),
        net_width=args.net_width or int(distilled.get("net_width", _E.net_width)),
        net_depth=int(distilled.get("net_depth", _E.net_depth)),
        net_norm=str(distilled.get("net_norm", _E.net_norm)),
        seed=args.seed, device=args.device)
    if base.runs < 1 or base.epochs < 0:
        raise ConfigError("--runs must be >= 1 and --epochs >= 0")
    results: dict[str, dict[str, Any]] = {}
    for arch in archs:
        cfg = EvalConfig(**{**asdict(base), "arch": arch})
        if not args.quiet:
            print(f"{PROG}: {arch}: {cfg.runs} run(s) × {cfg.epochs} epochs...", file=sys.stderr, flush=True)
        with EvalProgress(cfg.runs, cfg.epochs, arch, quiet=args.quiet) as bar:
            ev = evaluate(data, test, cfg, on_epoch=bar, also=None if val is None else {"val": val})
        r = results[arch] = ev.as_dict()
        if val is not None:
            r.update(val_mean=ev.also("val").mean, val_std=ev.also("val").std)
        if not args.quiet:
            print(f"  {arch}: {r['mean']:.2f} ± {r['std']:.2f} % (lr {ev.extra['lr']:.4g})", file=sys.stderr,
                  flush=True)
    summary = {
        "result_dir": str(out_dir),
        "dataset": test.name,
        "data_root": root,
        "val_per_class": per_class if val is not None else 0,
        "results": results,
        "architectures": [{"arch": a, "mean": r["mean"], "std": r["std"], "runs": r["runs"], "lr": r["extra"]["lr"]}
                          for a, r in results.items()],
        "config": asdict(base),
        "storage": data.storage().as_dict(),
        "toolkit_version": __version__,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(out_dir / EVAL_FILE, summary)
    table = report.evaluate_table(results)
    if args.json:
        if not args.quiet:
            print(table, file=sys.stderr, flush=True)
        print(json.dumps(summary, indent=2, sort_keys=True), flush=True)
    else:
        print(table, flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with handle_errors(PROG):
        try:
            run(args)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted; nothing was written", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_INTERRUPTED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
