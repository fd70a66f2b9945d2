"""Plain-text result tables (fixed-width columns)."""

from __future__ import annotations

from typing import Any, Sequence, TextIO


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned text columns separated by two spaces, with a dashed rule under the header."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def accuracy(mean: float | None, std: float | None, runs: int | None = None) -> str:
    """``mean ± std``; just the mean for one run, ``-`` when nothing was evaluated."""
    if mean is None or runs == 0:
        return "-"
    return f"{mean:.2f}" if runs == 1 or std is None else f"{mean:.2f} ± {std:.2f}"


def distill_table(rows: Sequence[dict[str, Any]]) -> str:
    """The ``haba-distill`` summary: one row per result (metrics dicts as written to metrics.json)."""
    body = [[r["method"], r.get("setup", ""), accuracy(r["accuracy_mean"], r["accuracy_std"], r["runs"]), f"{r['runs']}",
             f"{r['stored_bytes']:,}", f"{r['ipc_equivalent']:.2f}", r["output_dir"]] for r in rows]
    return format_table(["method", "synthetic set", "accuracy (%)", "runs", "stored bytes", "IPC-equiv.", "output"],
                        body)


def evaluate_table(results: dict[str, dict[str, Any]]) -> str:
    """The ``haba-evaluate`` summary: one row per architecture."""
    body = [[arch, accuracy(r["mean"], r["std"]), r["runs"], r["epochs"], f"{r['train_seconds']:.1f}"]
            for arch, r in results.items()]
    return format_table(["architecture", "accuracy (%)", "runs", "epochs", "train s"], body)


def emit(text: str, stream: TextIO) -> None:
    print(text, file=stream, flush=True)
