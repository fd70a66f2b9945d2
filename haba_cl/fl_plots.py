"""PNG figure of a ``haba-fl`` run, written next to ``results.json`` (matplotlib, Agg backend).

``accuracy_vs_bytes.png``: central test accuracy after each round against the cumulative bytes
communicated (up + down), one line per method — the federated trade-off in one picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .plotting import pyplot, save_figure

FIGURE_FILE = "accuracy_vs_bytes.png"


def plot_accuracy_vs_bytes(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Plot ``haba-fl``'s table rows (``method``, ``accuracy`` as a fraction, ``total_bytes``); None if empty."""
    points: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.get("accuracy") is not None:
            points.setdefault(r["method"], []).append((r["total_bytes"] / 2**20, 100.0 * r["accuracy"]))
    if not points:
        return None
    fig, ax = pyplot().subplots(figsize=(5.5, 3.8))
    for method, xy in points.items():
        xs, ys = zip(*sorted(xy))
        ax.plot(xs, ys, marker="o", label=method)
    ax.set_xlabel("communicated MiB (up + down, cumulative)")
    ax.set_ylabel("central test accuracy (%)")
    ax.set_title("haba-fl: accuracy vs bytes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
