"""Where a node computes: its torch device and CPU threads, from the run config."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from haba_core import ConfigError


def resolve_device(name: str) -> torch.device:
    """``cpu`` / ``cuda[:n]`` / ``auto`` (CUDA when available) as a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def set_threads(cfg: Mapping[str, Any]) -> None:
    n = int(cfg.get("num-threads", 1) or 0)
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)
