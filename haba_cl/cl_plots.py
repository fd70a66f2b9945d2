"""PNG figures of a ``haba-cl`` run, written next to ``results.json`` (matplotlib, Agg backend).

``accuracy_matrix.png``: per strategy, the accuracy on each experience's test classes (columns) after
training on each experience (rows), mean over seeds. ``accuracy_curves.png``: per strategy, the stream
accuracy after each experience (mean over seeds; a band of ± one std when there are several seeds).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .plotting import pyplot, save_figure

MATRIX_FILE = "accuracy_matrix.png"
CURVES_FILE = "accuracy_curves.png"


def _by_strategy(records: list[dict[str, Any]], key: str) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    for r in records:
        out.setdefault(r["strategy"], []).append(np.asarray(r[key], dtype=float) * 100.0)
    return {s: np.stack(v) for s, v in out.items()}


def save_accuracy_matrix(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Heat-maps of the accuracy matrix (rows: after experience i; columns: test classes of experience j)."""
    plt = pyplot()
    mats = _by_strategy(records, "experience_accuracy")
    n = len(mats)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    image = None
    for ax, (name, stack) in zip(axes.flat, mats.items()):
        m = np.nanmean(stack, axis=0)
        image = ax.imshow(m, vmin=0, vmax=100, cmap="viridis")
        k = m.shape[0]
        ax.set_title(f"{name} ({stack.shape[0]} seed{'s' if stack.shape[0] > 1 else ''})")
        ax.set_xlabel("test classes of experience")
        ax.set_ylabel("after training experience")
        ticks = list(range(k))
        ax.set_xticks(ticks, [str(t + 1) for t in ticks])
        ax.set_yticks(ticks, [str(t + 1) for t in ticks])
        if k <= 10:
            for i in range(k):
                for j in range(m.shape[1]):
                    if not np.isnan(m[i, j]):
                        ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=7,
                                color="white" if m[i, j] < 60 else "black")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="accuracy (%)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def save_accuracy_curves(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Stream accuracy after each experience, one line per strategy (± std band over seeds)."""
    plt = pyplot()
    curves = _by_strategy(records, "stream_accuracy")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, stack in curves.items():
        x = np.arange(1, stack.shape[1] + 1)
        mean = np.nanmean(stack, axis=0)
        ax.plot(x, mean, marker="o", label=name)
        if stack.shape[0] > 1:
            std = np.nanstd(stack, axis=0)
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("experiences trained")
    ax.set_ylabel("accuracy on the whole test stream (%)")
    ax.set_ylim(0, 100)
    ax.set_xticks(np.arange(1, max(s.shape[1] for s in curves.values()) + 1) if curves else [])
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def save_plots(records: list[dict[str, Any]], out: str | Path, title: str = "") -> list[Path]:
    """Both figures into ``out``; returns their paths."""
    out = Path(out)
    return [save_accuracy_matrix(records, out / MATRIX_FILE, title), save_accuracy_curves(records, out / CURVES_FILE, title)]
