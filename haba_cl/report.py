"""Result tables of every command: one formatter (:func:`format_table`) and the summaries built on it."""

from __future__ import annotations

from typing import Any, Sequence, TextIO


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = (),
                 markdown: bool = False) -> str:
    """Text columns separated by two spaces with a dashed rule under the header (columns listed in ``right``
    right-aligned), or with ``markdown`` a GitHub markdown table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in cells]
        lines.insert(1, "|" + "---|" * len(headers))
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def accuracy(mean: float | None, std: float | None, runs: int | None = None) -> str:
    """``mean ± std``; just the mean for one run, ``-`` when nothing was evaluated."""
    if mean is None or runs == 0:
        return "-"
    return f"{mean:.2f}" if runs == 1 or std is None else f"{mean:.2f} ± {std:.2f}"


def distill_table(rows: Sequence[dict[str, Any]]) -> str:
    """The ``haba-distill`` summary: one row per result (metrics dicts as written to metrics.json); runs with a
    validation split (``--val-per-class``) get its accuracy as a column before the test accuracy."""
    with_val = any(r.get("val_accuracy_mean") is not None for r in rows)

    def val(r) -> list[str]:
        if not with_val:
            return []
        return [accuracy(r["val_accuracy_mean"], r["val_accuracy_std"], r["runs"])
                if r.get("val_accuracy_mean") is not None else "-"]

    body = [[r["method"], r.get("setup", ""), *val(r), accuracy(r["accuracy_mean"], r["accuracy_std"], r["runs"]),
             f"{r['runs']}", f"{r['stored_bytes']:,}", f"{r['ipc_equivalent']:.2f}", r["output_dir"]] for r in rows]
    head = ["method", "synthetic set", *(["validation accuracy (%)"] if with_val else []), "accuracy (%)", "runs",
            "stored bytes", "IPC-equiv.", "output"]
    return format_table(head, body)


def evaluate_table(results: dict[str, dict[str, Any]]) -> str:
    """The ``haba-evaluate`` summary: one row per architecture (a validation column when the result has one)."""
    with_val = any("val_mean" in r for r in results.values())
    body = [[arch, *([accuracy(r.get("val_mean"), r.get("val_std"), r["runs"])] if with_val else []),
             accuracy(r["mean"], r["std"]), r["runs"], r["epochs"], f"{r['train_seconds']:.1f}"]
            for arch, r in results.items()]
    head = ["architecture", *(["validation accuracy (%)"] if with_val else []), "accuracy (%)", "runs", "epochs",
            "train s"]
    return format_table(head, body)


def continual_table(summary: dict[str, dict[str, Any]], title: str = "") -> str:
    """The ``haba-cl`` summary (markdown): final average accuracy and forgetting (percent, mean ± std over seeds —
    just the value for one seed), memory bytes and time per run, under an optional ``title`` line. Runs with a
    validation split (``--val-per-class``) get its accuracy as a column before the test column."""

    def pm(m, s, runs):
        if m is None:
            return "n/a"
        return f"{m:.2f}" if runs < 2 else f"{m:.2f} ± {s:.2f}"

    with_val = any(v.get("val_accuracy_mean") is not None for v in summary.values())
    body = [[name, *([pm(v["val_accuracy_mean"], v["val_accuracy_std"], v["runs"])] if with_val else []),
             pm(v["final_accuracy_mean"], v["final_accuracy_std"], v["runs"]),
             pm(v["forgetting_mean"], v["forgetting_std"], v["runs"]),
             "-" if v["memory_bytes"] is None else f"{v['memory_bytes']:,}", f"{v['seconds_mean']:.1f}"]
            for name, v in summary.items()]
    head = ["strategy", *(["validation accuracy (%)"] if with_val else []), "final avg. accuracy (%)",
            "forgetting (%)", "memory bytes", "time / run (s)"]
    table = format_table(head, body, markdown=True)
    return f"{title}\n{table}" if title else table


def federated_table(rows: Sequence[dict[str, Any]]) -> str:
    """The ``haba-fl`` summary: accuracy (percent; results hold fractions) and bytes per method and round; runs
    with a validation split (``val-per-class``) get its accuracy as a column before the test accuracy."""
    with_val = any(r.get("val_accuracy") is not None for r in rows)

    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    body = [[r["method"], r["rounds"], *([pct(r.get("val_accuracy"))] if with_val else []), pct(r["accuracy"]),
             f"{r['bytes_up']:,}", f"{r['bytes_down']:,}", f"{r['total_bytes']:,}"] for r in rows]
    head = ["method", "rounds", *(["validation accuracy %"] if with_val else []), "accuracy %", "bytes up",
            "bytes down", "total bytes"]
    return format_table(head, body, right=range(1, len(head)))


def emit(text: str, stream: TextIO) -> None:
    print(text, file=stream, flush=True)
