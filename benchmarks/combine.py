"""One table from compute-matched runs split over several processes, with per-seed paired differences.

A study's seeds and variants are often run side by side as separate processes (one core each); this merges
their JSON results (``benchmarks/results/*.json`` or ``--out``), summarises each variant over its seeds and
pairs variants seed by seed — the comparison that cancels what a seed shares (initial bases, real batches):

    python -m benchmarks.combine A.json B.json C.json --pairs modest:modest-frozen,modest:idc

It reads ``benchmarks.federated`` results too (``OUT/federated.json``): each method becomes a variant named by
its slug (``HaBa one-shot`` → ``haba-one-shot``), one row per seed, validation and test accuracy paired alike.
``FILE@TAG`` appends ``@TAG`` to every variant of that file, so two runs of the same variants (a frozen twin,
a replication) can be told apart and paired: ``A.json B.json@frozen --pairs haba-one-shot:haba-one-shot@frozen``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import Counter
from pathlib import Path

from .compute_matched import summarise, summary_columns
from .harness import markdown_table, mean_std


def load_rows(paths: list[Path | str]) -> list[dict]:
    """Every row of every file (``FILE@TAG`` tags its variants); one row per (variant, seed), or SystemExit."""
    rows, seen = [], {}
    for arg in paths:
        path, tag = split_tag(str(arg))
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"cannot read {path}: {err}") from None
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise SystemExit(f"{path}: not a study result (no 'rows' list)")
        try:
            file_rows = federated_rows(data, path) if data.get("name") == "federated" else data["rows"]
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            raise SystemExit(f"{path}: a malformed federated result ({err!r})") from None
        if rows and any("method" in r for r in file_rows) != ("method" in rows[0]):
            raise SystemExit(f"{path}: federated and compute-matched results cannot share one table")
        for row in file_rows:
            if tag:
                row = {**row, "variant": f"{row.get('variant')}@{tag}"}
            key = (row.get("variant"), row.get("seed"))
            if key in seen:
                raise SystemExit(f"{key[0]} seed {key[1]} is in both {seen[key]} and {path}")
            seen[key] = path
            rows.append(row)
    return rows


def split_tag(arg: str) -> tuple[str, str]:
    """``FILE@TAG`` → ``(FILE, TAG)``; a path that exists as written (an ``@`` in its name) has no tag."""
    if "@" not in arg or Path(arg).exists():
        return arg, ""
    path, _, tag = arg.rpartition("@")
    return path, tag


def slug(method: str) -> str:
    """A federated method's name as a variant: lower case, runs of other characters as one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")


def federated_rows(data: dict, path) -> list[dict]:
    """A ``benchmarks.federated`` result as one row per (method, seed): ``acc`` validation, ``acc_test`` test.

    Rows of several datasets / partitions / IPCs in one file get them as a ``dataset/partition/ipcN/`` prefix, a
    method reported after several round counts (FedAvg) a ``-K-rounds`` suffix.
    Validation is per seed where the file lists it (``val_values``), else only for a one-seed file."""
    seeds = data.get("meta", {}).get("seeds")
    if not isinstance(seeds, list) or not seeds:
        raise SystemExit(f"{path}: a federated result without its seeds")
    settings = {(r.get("dataset"), r.get("partition"), r.get("ipc")) for r in data["rows"]}
    repeated = Counter((r.get("dataset"), r.get("partition"), r.get("ipc"), r.get("method")) for r in data["rows"])
    out = []
    for row in data["rows"]:
        tests = row.get("values")
        if not isinstance(tests, list) or len(tests) != len(seeds):
            raise SystemExit(f"{path}: {row.get('method')}: {len(tests or [])} test values for {len(seeds)} seeds")
        vals = row.get("val_values")
        if vals is None and row.get("val_value") and len(seeds) == 1:
            vals = [float(row["val_value"].split()[0])]
        prefix = f"{row['dataset']}/{slug(row['partition'])}/ipc{row['ipc']}/" if len(settings) > 1 else ""
        name = slug(row["method"])
        if repeated[(row["dataset"], row["partition"], row["ipc"], row["method"])] > 1:  # FedAvg after k rounds
            name += f"-{row.get('rounds')}-rounds"
        for i, seed in enumerate(seeds):
            out.append({"variant": prefix + name, "method": row["method"], "seed": seed,
                        "acc_test": tests[i], **({"acc": vals[i]} if vals else {}),
                        "stored_bytes": row.get("stored_bytes"), "total_bytes": row.get("total_bytes")})
    return out


def summarise_federated(rows: list[dict]) -> list[dict]:
    """Per variant over its seeds: validation and test accuracy (mean ± std), stored and transferred bytes."""
    def acc(rs, key):
        xs = [r[key] for r in rs if key in r]
        return "–" if not xs else "{:.2f} ± {:.2f}".format(*mean_std(xs))

    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name]
        stored = [r["stored_bytes"] for r in rs if r["stored_bytes"] is not None]
        out.append({"variant": name, "method": rs[0]["method"], "validation accuracy": acc(rs, "acc"),
                    "test accuracy": acc(rs, "acc_test"), "seeds": len(rs),
                    "stored bytes / client": f"{sum(stored) / len(stored):,.0f}" if stored else "–",
                    "up + down": f"{sum(r['total_bytes'] for r in rs) / len(rs):,.0f}"})
    return out


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
    if any("method" in r for r in rows):  # federated rows
        summary = summarise_federated(rows)
        out = [markdown_table(summary, list(summary[0]))]
    else:
        summary = summarise(rows)
        out = [markdown_table(summary, summary_columns(summary))]
    keys = [k for k in ("acc", "acc_test") if any(k in r for r in rows)]
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
    p.add_argument("results", nargs="+", metavar="JSON[@TAG]")
    p.add_argument("--pairs", default="", help="variant pairs A:B to difference seed by seed (A − B)")
    args = p.parse_args(argv)
    print(render(load_rows(args.results), parse_pairs(args.pairs)))


if __name__ == "__main__":
    main()
