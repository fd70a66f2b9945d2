"""Where a node computes: its torch device and CPU threads, from the run config."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from haba_core import resolve_device  # the node's device: ``auto`` / ``cpu`` / ``cuda[:n]``

__all__ = ["resolve_device", "set_threads"]


def set_threads(cfg: Mapping[str, Any]) -> None:
    """Use the run config's ``num-threads`` intra-op threads (0 = leave torch's setting)."""
    n = int(cfg.get("num-threads", 1) or 0)
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)
