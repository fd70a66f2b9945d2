"""Cross-architecture evaluation of saved distilled sets (issue 14, deliverable 2).

``compute_matched --save-sets DIR`` leaves one saved set per variant and seed (``DIR/<variant>_seed<N>``).
This scores each of them on other networks — by default the paper's Tab. 2 trio ResNet18, VGG11 and
AlexNet — on the test split (the final tables; recipes were chosen on ConvNet's validation score), and,
with ``--coresets``, the random and herding coresets the same seeds draw at the same IPC:

    python -m benchmarks.cross_arch SETS_DIR --dataset cifar10 --ipc 2 --test-limit 2000 --out OUT \\
        --pairs modest:idc,modest:modest-frozen

Rows are written to ``OUT/cross_arch.json`` after every evaluation (atomically) and a rerun with the same
``--out`` skips what is already there, so a deadline (``--budget-s``: a GPU call's limit) loses nothing.
Order: seed by seed, every variant of a seed before the next seed, so a partial run stays paired.
Sets split across processes (one ``--out`` each) are brought together with ``--merge OUT1,OUT2``: their rows
join this ``--out`` and count as done.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from haba_core import EvalConfig, FactorizedDataset, evaluate, select_coreset
from haba_core.atomic import atomic_path
from haba_core.evaluate import LEARNED_LR_SCOPES

from .combine import paired, parse_pairs
from .datasets import load_pair, load_splits
from .gpu_protocol import CROSS_ARCHS
from .harness import (add_common_args, command_line, configure_threads, machine_info, machine_line, markdown_table,
                      mean_std, resolve_device)

RESULTS = "cross_arch.json"
_SET_NAME = re.compile(r"^(?P<variant>.+)_seed(?P<seed>\d+)$")


def find_sets(roots: list[str]) -> list[tuple[str, int, Path]]:
    """``(variant, seed, path)`` for every saved set under ``roots`` (a set, or a folder of ``<variant>_seed<N>``)."""
    found = []
    for root in map(Path, roots):
        candidates = [root] if (root / "meta.json").is_file() else sorted(p for p in root.iterdir() if p.is_dir())
        for path in candidates:
            m = _SET_NAME.match(path.name)
            if not (path / "meta.json").is_file() or m is None:
                raise SystemExit(f"{path}: not a saved set named <variant>_seed<N> (compute_matched --save-sets)")
            found.append((m["variant"], int(m["seed"]), path))
    keys = [(v, s) for v, s, _ in found]
    if len(set(keys)) != len(keys):
        raise SystemExit("two saved sets have the same variant and seed")
    return sorted(found, key=lambda t: (t[1], t[0]))


# What makes two results files' rows comparable: scored on the same images by the same training recipe.
SCORING_ARGS = ("dataset", "split", "test_limit", "epochs", "runs", "net_width", "lr", "learned_lr_on")


def scoring_settings(args: dict) -> dict:
    """``args``' values of SCORING_ARGS; where a learned lr applies does not matter under an explicit --lr, and
    results saved before ``--learned-lr-on`` existed used a learned lr on every network."""
    settings = {k: args.get(k) for k in SCORING_ARGS}
    settings["learned_lr_on"] = None if args.get("lr") is not None else args.get("learned_lr_on", "every-network")
    return settings


def read_results(out: Path, args: argparse.Namespace) -> list[dict]:
    """The rows saved under ``out`` (read once), refused when they were scored with other settings than ``args``;
    malformed rows are dropped, so they are scored again."""
    path = out / RESULTS
    try:
        doc = json.loads(path.read_text())
        rows = doc["rows"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"cannot read {path}: {err}") from None
    try:
        saved, wanted = scoring_settings(doc["meta"]["args"]), scoring_settings(vars(args))
        differ = [k for k in SCORING_ARGS if saved[k] != wanted[k]]
    except (KeyError, TypeError, AttributeError) as err:
        raise SystemExit(f"cannot read the scoring settings of {path}: {err!r}") from None
    if differ:
        raise SystemExit(f"{path} was scored with other settings ({', '.join(f'{k}={saved.get(k)!r}' for k in differ)});"
                         " use another --out")
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("variant"), str)
            and isinstance(r.get("seed"), int) and isinstance(r.get("arch"), str)
            and isinstance(r.get("acc"), (int, float))]


def merge_results(parts: list[list[dict]], sources: list[Path]) -> list[dict]:
    """The rows of every part (``sources[i]`` names where part i came from), each (variant, seed, network) once;
    the same one scored differently in two places is an error, not a silent pick."""
    merged: dict[tuple, dict] = {}
    for rows, source in zip(parts, sources):
        for r in rows:
            key = (r["variant"], r["seed"], r["arch"])
            if key in merged and merged[key]["acc"] != r["acc"]:
                raise SystemExit(f"--merge: {key[0]} seed {key[1]} on {key[2]} scored differently in {source}")
            merged.setdefault(key, r)
    return list(merged.values())


def save_results(out: Path, rows: list[dict], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / RESULTS) as tmp:
        tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))


def arch_mean(rows: list[dict], variant: str, seed: int, archs: list[str]) -> float | None:
    """Mean accuracy over ``archs`` of one set, or None unless every one of them was scored."""
    accs = [r["acc"] for r in rows if r["variant"] == variant and r["seed"] == seed and r["arch"] in archs]
    return sum(accs) / len(accs) if archs and len(accs) == len(archs) else None


def render(rows: list[dict], archs: list[str], pairs: list[tuple[str, str]]) -> str:
    """One row per variant: mean ± std over seeds per architecture, and of the per-seed mean over the
    non-ConvNet architectures; then per-seed paired differences of that mean."""
    others = [a for a in archs if a != "ConvNet"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    table = []
    for v in variants:
        row = {"variant": v}
        for a in archs:
            accs = [r["acc"] for r in rows if r["variant"] == v and r["arch"] == a]
            m, s = mean_std(accs)
            row[a] = f"{m:.2f} ± {s:.2f} ({len(accs)})" if accs else "–"
        seeds = sorted({r["seed"] for r in rows if r["variant"] == v})
        means = [x for seed in seeds if (x := arch_mean(rows, v, seed, others)) is not None]
        m, s = mean_std(means)
        row["mean of " + "/".join(others)] = f"{m:.2f} ± {s:.2f} ({len(means)})" if means else "–"
        row["stored_bytes"] = next(r["stored_bytes"] for r in rows if r["variant"] == v)
        table.append(row)
    text = [markdown_table(table, list(table[0])) if table else "(no rows)"]
    sets = dict.fromkeys((r["variant"], r["seed"]) for r in rows)
    per_set = [{"variant": v, "seed": seed, "mean": x} for v, seed in sets
               if (x := arch_mean(rows, v, seed, others)) is not None]  # complete sets only: what pairs by seed
    diffs = [d for a, b in pairs if (d := paired(per_set, a, b, "mean")) is not None]
    if diffs:
        text.append(markdown_table(diffs, ["comparison", "per seed", "mean ± std", "ahead"]))
    return "\n\n".join(text) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+", help="saved sets: a folder of <variant>_seed<N> sets, or one such set")
    p.add_argument("--dataset", default="cifar10", choices=["digits", "mnist", "cifar10"])
    p.add_argument("--split", default="test", choices=["test", "val"], help="where to score (default: test)")
    p.add_argument("--test-limit", type=int, default=None, help="seeded subset of the scoring split (as the cells)")
    p.add_argument("--archs", default=",".join(CROSS_ARCHS), help="networks to train on each set")
    p.add_argument("--runs", type=int, default=1, help="evaluation runs per set and network")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--net-width", type=int, default=32, help="ConvNet width, if ConvNet is among --archs")
    p.add_argument("--lr", type=float, default=None,
                   help="evaluation learning rate (default: haba_core.evaluation_lr — a set's learned one on the "
                        "network it was learned through, else 0.01)")
    p.add_argument("--learned-lr-on", choices=LEARNED_LR_SCOPES, default=EvalConfig.learned_lr_on,
                   help="'every-network': a set's learned lr on every network, as MTT's code evaluates")
    p.add_argument("--coresets", default="", help="also score these coresets (random,herding) at --ipc per seed")
    p.add_argument("--ipc", type=int, default=None, help="IPC of the --coresets rows")
    p.add_argument("--pairs", default="", help="A:B[,A:B]: per-seed differences of the cross-architecture mean")
    p.add_argument("--budget-s", type=float, default=None, help="start no evaluation after this many seconds")
    p.add_argument("--merge", default="", help="OUT[,OUT]: result folders of other processes whose rows join --out")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.coresets and args.ipc is None:
        p.error("--coresets needs --ipc")
    if args.runs < 1 or args.epochs < 1:
        p.error("--runs and --epochs must be ≥ 1")
    if args.lr is not None and not 0 < args.lr < 10:
        p.error("--lr must be in (0, 10)")
    return args


def run(args: argparse.Namespace, archs: list[str], rows: list[dict], meta: dict) -> bool:
    """Score every (set or coreset, network) not in ``rows`` yet, appending and saving as it goes;
    False when ``--budget-s`` ran out first."""
    t0 = time.perf_counter()
    sets = find_sets(args.sets)
    coresets = [c for c in args.coresets.split(",") if c]
    if coresets:  # drawn from the training images the distillations saw (train minus validation)
        train, val, test = load_splits(args.dataset, args.data_root, args.quick, args.test_limit)
        test = val if args.split == "val" else test
    else:
        test = load_pair(args.dataset, args.data_root, args.quick, args.test_limit, split=args.split)[1]
    jobs = sets + [(f"{c}-coreset", seed, None) for seed in sorted({s for _, s, _ in sets}) for c in coresets]
    jobs.sort(key=lambda j: j[1])  # stable: a seed's sets, then its coresets
    done = {(r["variant"], r["seed"], r["arch"]) for r in rows}
    for variant, seed, path in jobs:
        data = None
        for arch in archs:
            if (variant, seed, arch) in done:
                continue
            if args.budget_s is not None and time.perf_counter() - t0 > args.budget_s:
                return False
            if data is None:
                data = (FactorizedDataset.load(path) if path is not None
                        else select_coreset(train, args.ipc, variant.removesuffix("-coreset"), seed=seed))
            ev = EvalConfig(arch=arch, runs=args.runs, epochs=args.epochs, net_width=args.net_width, seed=seed,
                            device=args.device, lr=args.lr, learned_lr_on=args.learned_lr_on)
            r = evaluate(data, test, ev)
            rows.append({"variant": variant, "seed": seed, "arch": arch, "acc": r.mean, "acc_runs": r.accuracies,
                         "lr": r.extra["lr"], "eval_s": round(r.train_seconds, 1), "stored_bytes": data.storage().bytes,
                         "set": str(path) if path is not None else None})
            print(f"{variant} seed {seed} {arch}: {r.mean:.2f}% ({r.train_seconds:.0f} s)", flush=True)
            save_results(Path(args.out), rows, meta)
    return True


def main(argv=None) -> None:
    args = parse_args(argv)
    configure_threads(args)
    if args.quick:
        args.epochs, args.test_limit = min(args.epochs, 2), min(args.test_limit or 200, 200)
    archs = [a for a in args.archs.split(",") if a]
    out, others = Path(args.out), [Path(d) for d in args.merge.split(",") if d]
    missing = [str(d / RESULTS) for d in others if not (d / RESULTS).is_file()]
    if missing:
        raise SystemExit(f"--merge: {', '.join(missing)} does not exist")
    sources = ([out] if (out / RESULTS).is_file() else []) + others  # resume this --out, then join the others
    rows = merge_results([read_results(d, args) for d in sources], sources)
    rows.sort(key=lambda r: r["seed"])  # stable: seed by seed, as a single process writes them
    meta = {"machine": machine_info(resolve_device(args.device)), "command": command_line(), "args": vars(args)}
    finished = run(args, archs, rows, meta)
    save_results(out, rows, meta)
    if not finished:
        print(f"--budget-s {args.budget_s:g} spent: rerun with the same --out to go on", flush=True)
    print(render(rows, archs, parse_pairs(args.pairs)))
    print(machine_line(meta["machine"]))


if __name__ == "__main__":
    main()
