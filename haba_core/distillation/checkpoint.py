"""Periodic, atomic checkpoints of a distillation run (pickle-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import atomic_dir
from ..errors import ConfigError
from ..state_io import load_state, save_state

# Config fields that may differ between the interrupted run and its resumption.
RESUMABLE_DIFFERENCES = {"iterations", "checkpoint_dir", "checkpoint_every", "device", "time_limit_s", "time_limit_clock"}
# nested fields that change only how a result is computed, not what (float rounding): (section, field)
RESUMABLE_NESTED = {("dm", "batched_classes")}


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> None:
    """Replace ``directory`` with a checkpoint of ``state`` in one atomic step."""
    with atomic_dir(directory) as tmp:
        save_state(tmp, "state", state)


def load_checkpoint(directory: str | Path) -> dict[str, Any]:
    return load_state(directory, "state")


def has_checkpoint(directory: str | Path | None) -> bool:
    return directory is not None and (Path(directory) / "state.json").exists()


# fields added to DistillConfig after checkpoints were written, with the value those checkpoints ran with
ADDED_SINCE = {"adversary_every": 1, "adversary_width": None, "hallucinator_pretrain_steps": 0,
               "hallucinator_pretrain_lr": 1e-3, "hallucinator_pretrain_neighbours": 5, "precision": "fp32",
               "adversary_renew": False}


def _without_nested(config: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for section, name in RESUMABLE_NESTED:
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k != name}
    return out


def check_compatible(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume with a configuration that changes the result."""
    saved = {**ADDED_SINCE, **saved}  # checkpoints older than a field ran with the value that reproduces them
    saved, current = _without_nested(saved), _without_nested(current)
    diffs = sorted(k for k in set(saved) | set(current)
                   if k not in RESUMABLE_DIFFERENCES and saved.get(k) != current.get(k))
    if diffs:
        raise ConfigError(f"cannot resume: the checkpoint was made with different settings for {', '.join(diffs)}")
