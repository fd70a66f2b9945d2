"""``haba-buffer``: train expert networks on real data and store their trajectories for
trajectory matching (``haba-distill --method mtt --buffer DIR``). Resumable expert by expert."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from haba_core import (ConfigError, DistillConfig, ExpertConfig, Preprocessor, __version__, load_dataset,
                       train_experts, validation_split)
from haba_core.data import MAX_VAL_PER_CLASS, is_val_per_class
from haba_core.distillation import network_factory
from haba_core.runtime import resolve_device

from .cli_parser import OneLineParser
from .cli_errors import EXIT_INTERRUPTED, UsageError, handle_errors
from .progress import ExpertProgress

PROG = "haba-buffer"
_D = DistillConfig()
_X = ExpertConfig()


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG, allow_abbrev=False,
        description="Train --experts networks for --epochs epochs each on the real training split, preprocessed "
                    "exactly as haba-distill will (normalisation, optional ZCA), and store each expert's "
                    "parameters after every epoch in DIR/expert_XXXX.safetensors plus DIR/buffer.json. Running "
                    "it again with the same settings skips finished experts (resume; more --experts extends).",
        epilog="Use the buffer with: haba-distill --method mtt --buffer DIR (same --dataset, --zca/--no-zca, "
               "--net-width, --val-per-class). Exit status: 0 ok, 2 error, 130 interrupted (finished experts are kept).")
    p.add_argument("--dataset", required=True,
                   help="digits | mnist | fashion-mnist | cifar10 | cifar100 | svhn | imagefolder:<dir-or-.tar.gz>")
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help="directory holding the dataset files (default: $HABA_DATA_ROOT or ./data)")
    p.add_argument("--out", "-o", metavar="DIR", required=True, help="buffer directory (created if missing)")
    p.add_argument("--val-per-class", type=int, default=0, metavar="N",
                   help="hold out the same fixed validation split as haba-distill --val-per-class N, so the "
                        "experts never see the images a run is chosen on (default: 0, train on every image)")
    p.add_argument("--experts", type=int, default=_X.num_experts, help=f"number of experts (default: {_X.num_experts})")
    p.add_argument("--epochs", type=int, default=_X.epochs, help=f"training epochs per expert (default: {_X.epochs})")
    p.add_argument("--lr", type=float, default=_X.lr, help=f"expert SGD learning rate (default: {_X.lr})")
    p.add_argument("--batch-size", type=int, default=_X.batch_size, help=f"minibatch size (default: {_X.batch_size})")
    p.add_argument("--dsa", action=argparse.BooleanOptionalAction, default=_X.dsa,
                   help="DSA augmentation while training experts (default: true)")
    p.add_argument("--zca", action=argparse.BooleanOptionalAction, default=_D.zca,
                   help="ZCA-whiten the data; must match the distillation's --zca (default: false)")
    p.add_argument("--network", default=_D.network, help=f"expert network (default: {_D.network})")
    p.add_argument("--net-width", type=int, default=_D.net_width, help=f"ConvNet width (default: {_D.net_width})")
    p.add_argument("--net-depth", type=int, default=_D.net_depth, help=f"ConvNet depth (default: {_D.net_depth})")
    p.add_argument("--net-norm", default=_D.net_norm, help=f"ConvNet normalisation (default: {_D.net_norm})")
    p.add_argument("--seed", type=int, default=_X.seed, help=f"random seed (default: {_X.seed})")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to compute (default: auto)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar (default: off)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: PyTorch's choice)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def run(args: argparse.Namespace, holder: dict[str, Any]) -> list[Path]:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.experts < 1 or args.epochs < 1:
        raise ConfigError("--experts and --epochs must be at least 1")
    if not is_val_per_class(args.val_per_class):
        raise ConfigError(f"--val-per-class must be in 0..{MAX_VAL_PER_CLASS} (0: no validation split), "
                          f"got {args.val_per_class}")
    cfg = DistillConfig(network=args.network, net_width=args.net_width, net_depth=args.net_depth,
                        net_norm=args.net_norm, zca=args.zca, seed=args.seed, device=args.device)
    device = resolve_device(args.device)
    train = load_dataset(args.dataset, root=args.data_root, split="train")
    if args.val_per_class:
        train = validation_split(train, args.val_per_class)[0]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    holder["created"] = not out.exists()
    holder["out"] = out
    pre = Preprocessor.fit(train.images, train.mean, train.std, cfg.zca, cfg.zca_regularization)
    pre.to(device)
    images = pre(train.images.to(device))
    labels = train.labels.to(device)
    make_network = network_factory(cfg, train.image_shape, train.num_classes, device)
    make_network(torch.Generator().manual_seed(0))  # fail early (unknown network, bad width) before writing
    expert_cfg = ExpertConfig(num_experts=args.experts, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                              dsa=args.dsa, seed=args.seed)
    meta = {"dataset": train.name, "network": cfg.network, "net_width": cfg.net_width, "net_depth": cfg.net_depth,
            "net_norm": cfg.net_norm, "zca": cfg.zca, "zca_regularization": cfg.zca_regularization,
            "image_shape": list(train.image_shape), "num_classes": train.num_classes}
    if args.val_per_class:  # absent = 0, so buffers made before the option still resume
        meta["val_per_class"] = args.val_per_class
    done = sum(1 for e in range(args.experts) if (out / f"expert_{e:04d}.safetensors").exists())
    if not args.quiet:
        print(f"{PROG}: {train.name} ({len(train)} training images"
              + (f", {args.val_per_class} per class held out for validation" if args.val_per_class else "")
              + f"), {args.experts} experts × {args.epochs} epochs of {cfg.network} "
              f"(zca={'on' if cfg.zca else 'off'}) → {out}" + (f"; {done} already done" if done else ""),
              file=sys.stderr, flush=True)
    bar = ExpertProgress(args.experts, args.epochs, done=done, quiet=args.quiet)
    try:
        paths = train_experts(images, labels, make_network, out, expert_cfg, meta, on_epoch=bar)
    finally:
        bar.close()
    if not args.quiet:
        print(f"{PROG}: {len(paths)} expert trajectories in {out}", file=sys.stderr, flush=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    holder: dict[str, Any] = {}

    def cleanup() -> None:
        out = holder.get("out")
        if holder.get("created") and out is not None and out.is_dir() and not any(out.glob("expert_*.safetensors")):
            shutil.rmtree(out, ignore_errors=True)

    with handle_errors(PROG, cleanup):
        try:
            run(args, holder)
        except KeyboardInterrupt:
            cleanup()
            print(f"{PROG}: interrupted; finished experts are kept — run the same command again to continue",
                  file=sys.stderr, flush=True)
            raise SystemExit(EXIT_INTERRUPTED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
