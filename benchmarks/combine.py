"""One table from compute-matched runs split over several processes, with per-seed paired differences.

A study's seeds and variants are often run side by side as separate processes (one core each); this merges
their JSON results (``benchmarks/results/*.json`` or ``--out``), summarises each variant over its seeds and
pairs variants seed by seed — the comparison that cancels what a seed shares (initial bases, real batches):

    python -m benchmarks.combine A.json B.json C.json --pairs modest:modest-frozen,modest:idc
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from .compute_matched import summarise, summary_columns
from .harness import markdown_table, mean_std


def load_rows(paths: list[Path]) -> list[dict]:
    """Every row of every file; one row per (variant, seed), or SystemExit naming the duplicate."""
    rows, seen = [], {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"cannot read {path}: {err}") from None
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise SystemExit(f"{path}: not a study result (no 'rows' list)")
        for row in data["rows"]:
            key = (row.get("variant"), row.get("seed"))
            if key in seen:
                raise SystemExit(f"{key[0]} seed {key[1]} is in both {seen[key]} and {path}")
            seen[key] = path
            rows.append(row)
    return rows


def paired(rows: list[dict], a: str, b: str, key: str = "acc", sample_std: bool = True) -> dict | None:
    """``a − b`` on ``key`` for every seed both variants ran: per-seed values, mean ± std, seeds where a leads.

    ``sample_std=False`` gives the population std (the GPU protocol's tables use it for their seeds too).
    """
    by_seed = {(r["variant"], r["seed"]): r[key] for r in rows if key in r}
    seeds = sorted(s for (v, s) in by_seed if v == a and (b, s) in by_seed)
    if not seeds:
        return None
    deltas = [by_seed[(a, s)] - by_seed[(b, s)] for s in seeds]
    m, s = mean_std(deltas)
    if not sample_std:
        s = statistics.pstdev(deltas)
    return {"comparison": f"{a} − {b}", "key": key, "per seed": ", ".join(signed(d) for d in deltas),
            "mean ± std": f"{signed(m)} ± {s:.2f}", "ahead": f"{sum(d > 0 for d in deltas)}/{len(deltas)}"}


def signed(value: float) -> str:
    """``+1.23`` / ``−1.23`` with the minus sign the tables' prose uses (not ASCII '-')."""
    return f"{value:+.2f}".replace("-", "−")


def render(rows: list[dict], pairs: list[tuple[str, str]]) -> str:
    summary = summarise(rows)
    out = [markdown_table(summary, summary_columns(summary))]
    keys = ["acc"] + (["acc_test"] if any("acc_test" in r for r in rows) else [])
    diffs = [d for a, b in pairs for k in keys if (d := paired(rows, a, b, k)) is not None]
    if diffs:
        for d in diffs:
            d["on"] = {"acc": "accuracy", "acc_test": "test accuracy"}[d.pop("key")]
        out.append(markdown_table(diffs, ["comparison", "on", "per seed", "mean ± std", "ahead"]))
    return "\n\n".join(out)


def parse_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in [t for t in text.split(",") if t]:
        a, sep, b = item.partition(":")
        if not sep or not a or not b:
            raise SystemExit(f"--pairs takes A:B[,A:B...], got {item!r}")
        pairs.append((a, b))
    return pairs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", type=Path, metavar="JSON")
    p.add_argument("--pairs", default="", help="variant pairs A:B to difference seed by seed (A − B)")
    args = p.parse_args(argv)
    print(render(load_rows(args.results), parse_pairs(args.pairs)))


if __name__ == "__main__":
    main()
