"""The paper's ablations (issue 15) at CPU scale: every ``ablation-*-cpu`` preset, one table.

Runs each CPU-sized ablation preset shipped in ``haba_cl/presets`` (Tab. 3, 4, 5, 9, 10 and Fig. 8; the
``-full`` twins are the paper-scale versions, for ``haba-distill --config``), with the paper's recipe, on
the fixed validation split of ``benchmarks/datasets.py`` (never the test split), for every seed; for each
learned HaBa variant on the cheap 8×8 digits also its frozen null (the same preset with the hallucinators
frozen at their initialisation: same bytes, same compute per step), so each row says whether learning the
hallucinators helped. Prints one Markdown table and writes ``<out>/ablations.json``.

    python -m benchmarks.ablations --seeds 2            # all CPU presets (≈ 15 CPU-minutes)
    python -m benchmarks.ablations --quick              # a few digits presets, tiny settings (seconds)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from haba_cl.distill_settings import resolve
from haba_cl.presets import describe_preset, list_presets
from haba_core import distill, evaluate

from .datasets import load_pair
from .harness import (add_common_args, configure_threads, machine_info, machine_line, markdown_path,
                      markdown_table, mean_std, seed_list, update_benchmarks_md, write_results)

FROZEN = {"lr_hallucinators": 0.0, "lr_affine": 0.0}
NULL_DATASETS = ("digits",)  # where the frozen null is cheap enough to run next to every learned variant
QUICK_PRESETS = ("ablation-base-cpu", "ablation-tab4-no-cos-cpu", "ablation-tab9-depth2-cpu", "ablation-tab3-plain-cpu")
QUICK_SCALE = {"iterations": 3, "eval_epochs": 3, "eval_runs": 1}


def cpu_presets(only: list[str] | None = None) -> list[str]:
    """The CPU-sized ablation presets, in table order (or the given subset, validated)."""
    names = [n for n in list_presets() if n.startswith("ablation-") and n.endswith("-cpu")]
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"unknown ablation preset(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in only]
    return names


def table_of(description: str) -> str:
    """``"ablation Tab. 4: …"`` → ``"Tab. 4"``."""
    return description.split(":", 1)[0].replace("ablation ", "")


def run_one(cfg, train, val, eval_cfg, seed: int) -> dict:
    cfg = replace(cfg, seed=seed, checkpoint_dir=None)
    t0 = time.perf_counter()
    result = distill(train, cfg)
    distill_s = time.perf_counter() - t0
    ev = evaluate(result, val, replace(eval_cfg, seed=seed))
    st = result.storage()
    return {"acc": ev.mean, "stored_bytes": st.bytes, "ipc_equivalent": round(st.ipc_equivalent, 2),
            "bpc": result.meta["budget"]["bpc"], "hallucinators": result.num_hallucinators, "distill_s": distill_s}


def run(args: argparse.Namespace) -> list[dict]:
    seeds = seed_list(args)
    names = QUICK_PRESETS if args.quick else cpu_presets(args.only)
    data: dict[str, tuple] = {}
    rows = []
    for name in names:
        scale = {**QUICK_SCALE} if args.quick else {}
        run_cfg = resolve(name, None, scale)
        cfg, settings = run_cfg.distill, run_cfg.settings
        cfg = replace(cfg, device=args.device)
        if settings.dataset not in data:
            data[settings.dataset] = load_pair(settings.dataset, args.data_root, quick=args.quick, split="val")
        train, val = data[settings.dataset]
        eval_cfg = replace(run_cfg.eval_config(), device=args.device)
        learned = [run_one(cfg, train, val, eval_cfg, s) for s in seeds]
        frozen = None
        if cfg.factorized and not args.no_nulls and settings.dataset in NULL_DATASETS:
            frozen = [run_one(replace(cfg, **FROZEN), train, val, eval_cfg, s) for s in seeds]
        m, sd = mean_std(r["acc"] for r in learned)
        row = {"table": table_of(describe_preset(name)), "preset": name.removeprefix("ablation-").removesuffix("-cpu"),
               "dataset": settings.dataset, "bpc": learned[0]["bpc"], "hallucinators": learned[0]["hallucinators"],
               "stored_bytes": learned[0]["stored_bytes"], "ipc_equivalent": learned[0]["ipc_equivalent"],
               "acc": f"{m:.1f} ± {sd:.1f}", "acc_mean": m, "acc_seeds": [r["acc"] for r in learned],
               "distill_s": round(sum(r["distill_s"] for r in learned) / len(learned), 1), "n": len(seeds)}
        if frozen is not None:
            fm, fsd = mean_std(r["acc"] for r in frozen)
            row.update(frozen=f"{fm:.1f} ± {fsd:.1f}", frozen_mean=fm, frozen_seeds=[r["acc"] for r in frozen],
                       gain_over_frozen=round(m - fm, 1))
        rows.append(row)
        print(f"{name}: {row['acc']} (frozen {row.get('frozen', '–')})", flush=True)
    return rows


COLUMNS = [("table", "paper"), ("preset", "preset (-cpu)"), ("dataset", "data"), ("bpc", "BPC"),
           ("hallucinators", "|H|"), ("stored_bytes", "bytes"), ("ipc_equivalent", "IPC-eq"),
           ("acc", "val acc %"), ("frozen", "frozen null %"), ("gain_over_frozen", "learned − frozen"),
           ("distill_s", "distill s")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--only", nargs="+", metavar="PRESET", help="run only these ablation-*-cpu presets")
    parser.add_argument("--no-nulls", action="store_true", help="skip the frozen-hallucinator nulls")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cpu"  # the CPU versions; the -full presets are for a GPU via haba-distill
    threads = configure_threads(args)
    t0 = time.perf_counter()
    rows = run(args)
    info = machine_info(args.device)
    table = markdown_table(rows, COLUMNS)
    print(table)
    meta = {"machine": info, "seeds": seed_list(args), "mode": "quick" if args.quick else "cpu",
            "threads": threads, "wall_s": round(time.perf_counter() - t0, 1), "split": "val"}
    write_results("ablations", rows, meta, args.out)
    md = markdown_path(args)
    if md is not None:
        update_benchmarks_md("ablations", f"{machine_line(info)}\n\n{table}", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
