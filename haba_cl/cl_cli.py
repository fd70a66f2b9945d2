"""``haba-cl``: class-incremental benchmarks, HaBa replay vs. Avalanche's strategies at equal memory bytes.

Example::

    haba-cl --benchmark split-mnist --data-root ../shared/data/mnist --n-experiences 5 \\
        --strategies haba,replay,herding,distilled-plain,naive --mem-size 100 --seeds 3 --epochs 1 --out runs/smnist

Prints a markdown table of final average accuracy and forgetting (mean ± std over seeds) and writes
``<out>/results.json`` with ``accuracy_matrix.png`` and ``accuracy_curves.png`` beside it. Bad input (unknown benchmark or strategy, missing data, a memory too small for one
basis per class, ...) exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from haba_core import RECIPES
from haba_core.config_layers import SET_SYNTAX

from strategies.registry import STRATEGIES as STRATEGY_NAMES
from strategies.split_benchmarks import BENCHMARKS

from .cl_names import DEPRECATED_PROTOCOLS, DEPRECATED_STRATEGIES, PROTOCOLS
from .cli_errors import EXIT_INTERRUPTED, UsageError, handle_errors
from .cli_parser import DeprecatedAlias, OneLineParser
from .report import continual_table


PROG = "haba-cl"


def parse_seeds(text: str) -> list[int]:
    """``"3"`` → seeds 0, 1, 2; ``"0,5,7"`` → those seeds; ``"2-4"`` → 2, 3, 4."""
    text = str(text).strip()
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        if "-" in text[1:]:
            a, b = text.split("-", 1)
            return list(range(int(a), int(b) + 1))
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid --seeds {text!r}: give a count (3), a list (0,1,2) or a "
                                         "range (0-2)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds count must be >= 1, got {n}")
    return list(range(n))


def check_names(benchmark: str, strategies: str) -> None:
    """Unknown benchmark or strategy → ``UnknownNameError`` (before the slow imports)."""
    from haba_core import UnknownNameError

    from strategies.split_benchmarks import check_benchmark

    check_benchmark(benchmark)
    names = [s.strip().lower() for s in strategies.split(",") if s.strip()]
    names = [DEPRECATED_STRATEGIES.get(s, s) for s in names]  # the runner warns about old names
    if not names:
        raise UnknownNameError(f"no strategy given; known: {','.join(STRATEGY_NAMES)}")
    for s in names:
        if s not in STRATEGY_NAMES:
            raise UnknownNameError(f"unknown strategy {s!r}; known: {', '.join(STRATEGY_NAMES)}")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmark", default="split-mnist", help=f"one of {', '.join(BENCHMARKS)} (default: split-mnist)")
    p.add_argument("--n-experiences", type=int, default=None,
                   help="experiences (equal class split); default 10 for split-cifar100, else 5")
    p.add_argument("--data-root", default=None,
                   help="dataset root in torchvision's layout (or IDX files); imagefolder:<dir|tar.gz> also works "
                        "(default: $HABA_DATA_ROOT or ./data)")
    p.add_argument("--source", default=None,
                   help="read the benchmark's images from another source, e.g. imagefolder:cifar10-jpeg.tar.gz")
    p.add_argument("--strategies", default="haba,replay,herding,distilled-plain,naive",
                   help=f"comma-separated subset of {','.join(STRATEGY_NAMES)} "
                        "(default: haba,replay,herding,distilled-plain,naive); distilled-plain is the HaBa memory's "
                        "distillation without hallucinators, old name dm (deprecated)")
    p.add_argument("--mem-size", type=int, default=200,
                   help="memory in images (as Avalanche's Replay), i.e. mem_size×c×h×w float32 numbers for all (default: 200)")
    p.add_argument("--seeds", type=parse_seeds, default=[0], help="a count (3 = seeds 0,1,2), a list or a range (default: 1)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs per experience (default: 1)")
    p.add_argument("--out", default=None, help="directory for results.json, the PNG plots and saved memories (default: none)")
    p.add_argument("--protocol", choices=(*PROTOCOLS, *DEPRECATED_PROTOCOLS), default="avalanche",
                   help="avalanche: the CL model's stream accuracy; fresh-network (the DM paper's protocol; old name: "
                        "dm, deprecated): a fresh network trained on memory only at each stage, tested on the classes "
                        "seen so far (default: avalanche)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate of the continual model (default: 0.01)")
    p.add_argument("--batch-size", type=int, default=64, help="training minibatch of stream data (default: 64)")
    p.add_argument("--batch-size-mem", type=int, default=None,
                   help="memory samples added to every minibatch (default: --batch-size)")
    p.add_argument("--model", default="ConvNet", help="network trained continually (haba_core name; default: ConvNet)")
    p.add_argument("--net-width", type=int, default=128, help="its width (default: 128)")
    p.add_argument("--net-depth", type=int, default=3, help="its depth (default: 3)")
    p.add_argument("--objective", default=None, help="distillation objective (dm, dc, dsa, mtt); default dm")
    p.add_argument("--distill-iterations", type=int, default=None,
                   help="distillation iterations per experience (default: by device — the recipe's 1000 on CUDA, "
                        "at most 60 iterations or 120 s on a CPU)")
    p.add_argument("--distill-seconds", type=float, default=None,
                   help="wall-clock cap on each experience's memory update (default: by device, see above)")
    p.add_argument("--distill-net-width", "--distill-width", dest="distill_net_width", type=int, default=None,
                   action=DeprecatedAlias, deprecated=("--distill-width",),
                   help="width of the distillation ConvNet (default: 128); --net-width sets the continual model's. "
                        "--distill-width is a deprecated alias")
    p.add_argument("--hallucinators", type=int, default=None, help="most hallucinators per experience (default 5)")
    p.add_argument("--hallucinator-share", type=float, default=0.2,
                   help="largest fraction of the memory hallucinators may take (default: 0.2)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help="distillation starting point (haba_core recipes): modest (default; measured best at "
                        "CPU-minutes budgets), paper (exactly the paper) or paper-pca (the paper with pca-initialised "
                        "hallucinators; the default on split-digits, whose 8x8 images are too small to down-sample); "
                        "--distill-config, --set and the flags override it")
    p.add_argument("--distill-config", default=None,
                   help="JSON file with DistillConfig fields (nested dicts allowed) for the per-experience "
                        "distillation; --set and explicit flags override it")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a DistillConfig key of the per-experience distillation, e.g. --set dm.batch_real=64; "
                        f"{SET_SYNTAX}")
    p.add_argument("--train-per-class", type=int, default=None, help="use at most this many training images per class")
    p.add_argument("--test-per-class", type=int, default=None, help="use at most this many test images per class")
    p.add_argument("--val-per-class", type=int, default=None,
                   help="carve this many training images per class as a fixed validation split (kept out of the "
                        "stream) and report accuracy on it beside the test accuracy: choose on validation, report "
                        "test (default: none)")
    p.add_argument("--cache-dir", default=None, help="cache for decompressed/decoded data (default: $HABA_CACHE)")
    p.add_argument("--protocol-epochs", type=int, default=300, help="epochs of the fresh network (--protocol fresh-network; default: 300)")
    p.add_argument("--save-memory", action="store_true", help="save each distilled memory (haba, haba-shared, distilled-plain, idc) under <out>/memories/")
    p.add_argument("--verbose", action="store_true", help="Avalanche's interactive logger, memory-update lines and progress bars")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    p.add_argument("--lwf-alpha", type=float, default=1.0, help="LwF distillation weight (default: 1.0)")
    p.add_argument("--lwf-temperature", type=float, default=2.0, help="LwF softmax temperature (default: 2.0)")
    p.add_argument("--ewc-lambda", type=float, default=0.4, help="EWC penalty weight (default: 0.4)")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG plots next to results.json")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice; 1 on a shared machine)")
    return p


def config_from_args(args: argparse.Namespace):
    from haba_core import ConfigError, DistillConfig
    from haba_core.config_layers import check_table, merge_layers, parse_set

    from haba_core.distillation.recipes import default_recipe_for

    from .cl_runner import RunConfig

    from_file: dict[str, Any] = {}
    if args.distill_config:
        path = Path(args.distill_config)
        try:
            loaded = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"--distill-config {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--distill-config {path} is not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--distill-config {path} must hold a JSON object")
        from_file = loaded  # nested sections (e.g. "hallucinator") merge with the recipe's later
    flags = {key: getattr(args, flag) for flag, key in (("objective", "objective"), ("distill_iterations", "iterations"),
                                                        ("distill_net_width", "net_width"),
                                                        ("hallucinators", "hallucinators"))
             if getattr(args, flag) is not None}
    # layers: recipe (RunConfig.recipe) < --distill-config < --set < flags
    distill = merge_layers(from_file, check_table(parse_set(args.set, snake_case=True), DistillConfig, "--set"), flags)
    return RunConfig(benchmark=args.benchmark, n_experiences=args.n_experiences, data_root=args.data_root,
                     source=args.source, strategies=args.strategies, mem_size=args.mem_size, seeds=args.seeds,
                     epochs=args.epochs, out=args.out, protocol=args.protocol, device=args.device, lr=args.lr,
                     batch_size=args.batch_size, batch_size_mem=args.batch_size_mem, model=args.model,
                     net_width=args.net_width, net_depth=args.net_depth, recipe=args.recipe or default_recipe_for(args.benchmark),
                     distill=distill,
                     hallucinator_share=args.hallucinator_share, train_per_class=args.train_per_class,
                     test_per_class=args.test_per_class, val_per_class=args.val_per_class, cache_dir=args.cache_dir,
                     protocol_epochs=args.protocol_epochs, save_memory=args.save_memory, verbose=args.verbose,
                     distill_seconds=args.distill_seconds, lwf_alpha=args.lwf_alpha,
                     lwf_temperature=args.lwf_temperature, ewc_lambda=args.ewc_lambda, plots=not args.no_plots)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``haba-cl``; returns the exit status (bad input: one line on stderr and 2, as every command)."""
    try:
        return _main(argv)
    except SystemExit as exc:  # --help, a usage error or handle_errors' one-line exit
        return int(exc.code or 0)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    with handle_errors(PROG):
        # Cheap checks first, before importing Avalanche (which takes seconds).
        check_names(args.benchmark, args.strategies)
        if args.threads is not None:
            if args.threads < 1:
                raise UsageError("--threads must be at least 1")
            import torch

            torch.set_num_threads(args.threads)
        config = config_from_args(args)
        config.progress = not args.quiet
        from .cl_runner import run

        log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
        try:
            result = run(config, log=log)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
    title = (f"{config.benchmark}, {config.n_experiences} experiences, memory {config.mem_size} images, "
             f"{len(config.seeds)} seed(s), protocol {config.protocol}")
    print(continual_table(result["summary"], f"**{title}**\n"))
    if config.out:
        print(f"results: {Path(config.out) / 'results.json'}")
        for name in result.get("plots", []):
            print(f"plot: {Path(config.out) / name}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
