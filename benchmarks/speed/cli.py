"""``python -m benchmarks.speed``: run the parts, write the JSON and the BENCHMARKS.md section."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from .. import harness as H
from . import __doc__ as STUDY_DOC
from .compose import part_compose
from .downstream import part_downstream
from .objectives import part_objectives, part_threads
from .profile import part_profile
from .render import headline, profile_summary, render_markdown
from .scaling import part_scaling
from .settings import FULL, NAME, PARTS, QUICK, SECTION, TARGETS, Settings

def restrict(s: Settings, shapes: list[str] | None, objectives: list[str] | None, parser) -> Settings:
    """``s`` reduced to the given data shapes and part-1 objectives (a reduced run; the section says so)."""
    keep = shapes or list(s.shapes)
    bad = [x for x in keep if x not in s.shapes]
    if bad:
        parser.error(f"unknown shapes: {', '.join(bad)}; known: {', '.join(s.shapes)}")
    objs = {k: tuple(o for o in v if objectives is None or o in objectives) for k, v in s.objectives.items()
            if k in keep}
    return replace(s, shapes={k: v for k, v in s.shapes.items() if k in keep},
                   objectives={k: v for k, v in objs.items() if v},
                   eval_ipcs={k: v for k, v in s.eval_ipcs.items() if k in keep},
                   batch_real_checks=tuple(c for c in s.batch_real_checks if c[0] in keep
                                           and (objectives is None or c[1] in objectives)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=STUDY_DOC.split("\n\n")[0])
    H.add_common_args(parser)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of: {','.join(PARTS)}")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="do not measure: re-render the BENCHMARKS.md section from an earlier speed.json")
    parser.add_argument("--shapes", default=None, help="comma-separated subset of the data shapes (e.g. cifar10-like)")
    parser.add_argument("--objectives", default=None, help="comma-separated subset of the objectives of part 1 "
                        "(e.g. dm,dc,mtt); also drops the batch_real re-runs of other objectives")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="DistillConfig.precision of every distillation run (bf16: autocast forward passes)")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        data = json.loads(args.from_json.read_text())
        md_path = args.md or H.DEFAULT_MD
        H.update_benchmarks_md(SECTION, render_markdown(data["rows"], data["meta"], data["meta"].get("profile")), md_path)
        print(f"re-rendered section '{SECTION}' of {md_path} from {args.from_json}")
        return 0
    device = H.resolve_device(args.device)
    H.configure_threads(args)
    seeds = H.seed_list(args)
    s = QUICK if args.quick else FULL
    s = replace(s, precision=args.precision)
    parts = set(args.parts.split(","))
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if args.shapes or args.objectives:
        s = restrict(s, args.shapes.split(",") if args.shapes else None,
                     args.objectives.split(",") if args.objectives else None, parser)
    t0 = time.perf_counter()
    load_start = H.load_average()
    machine = H.machine_info(device)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    log(f"speed study ({'quick' if args.quick else 'full'}) on {device}, seeds {seeds}, load {load_start}")
    rows: list[dict] = []
    obj_rows: list[dict] = []
    if "threads" in parts and s.threads_check:
        rows += part_threads(s, device, seeds, log)
    if "objectives" in parts:
        obj_rows = part_objectives(s, device, seeds, log)
        rows += obj_rows
    if "downstream" in parts:
        rows += part_downstream(s, device, seeds, log)
    if "scaling" in parts:
        rows += part_scaling(s, device, seeds, log)
    if "compose" in parts:
        rows += part_compose(s, device, seeds, log)
    prof: list[dict] = []
    if "profile" in parts and s.profile and obj_rows:
        prof = part_profile(s, device, obj_rows, log)
    meta = {"machine": machine, "command": H.command_line(), "date": machine["date"],
            "args": vars(args), "mode": "quick" if args.quick else "full", "settings": asdict(s), "seeds": seeds,
            "targets": TARGETS, "headline": headline(rows), "load_start": load_start,
            "load_end": H.load_average(), "wall_minutes": (time.perf_counter() - t0) / 60,
            "profile": prof, "profile_summary": profile_summary(prof)}
    md = render_markdown(rows, meta, prof)
    path = H.write_results(NAME, rows, meta, args.out)
    log(f"wrote {path}")
    md_path = H.markdown_path(args)
    if md_path is not None:
        H.update_benchmarks_md(SECTION, md, md_path)
        log(f"updated section '{SECTION}' of {md_path}")
    log("headline: " + str(meta["headline"]))
    return 0
