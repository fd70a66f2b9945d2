"""``python -m benchmarks.speed``: run the parts, write the JSON and the BENCHMARKS.md section."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from .. import harness as H
from . import __doc__ as STUDY_DOC
from .compose import part_compose
from .downstream import part_downstream
from .objectives import part_objectives, part_threads
from .profile import part_profile
from .render import headline, profile_summary, render_markdown
from .scaling import part_scaling
from .settings import FULL, NAME, PARTS, QUICK, SECTION, TARGETS

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=STUDY_DOC.split("\n\n")[0])
    H.add_common_args(parser)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of: {','.join(PARTS)}")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="do not measure: re-render the BENCHMARKS.md section from an earlier speed.json")
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
    parts = set(args.parts.split(","))
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
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
