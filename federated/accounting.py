"""Communication accounting: bytes of arrays sent down (server → client) and up (client → server).

A message's cost is the raw size of the arrays it carries, ``numel × element size`` summed over its
arrays (``torch``: ``t.numel() * t.element_size()``; a received Flower ``Array``: ``prod(shape) ×
dtype.itemsize``, computed from its declared shape and dtype without decoding it). Configuration
records, metric records and the serialisation framing (``.npy`` headers, protobuf) are not counted:
they are the same few hundred bytes for every method and would blur the comparison.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, RecordDict

DOWN, UP = "down", "up"
TRAIN, EVALUATE = "train", "evaluate"


def tensor_bytes(tensors: Mapping[str, torch.Tensor] | Iterable[torch.Tensor]) -> int:
    """Σ numel × element_size over tensors (a dict's values or any iterable of tensors)."""
    values = tensors.values() if isinstance(tensors, Mapping) else tensors
    return int(sum(t.numel() * t.element_size() for t in values))


def array_bytes(array: Array) -> int:
    """Raw bytes of one Flower ``Array`` from its declared dtype and shape; raises ``TypeError`` for unknown dtypes."""
    itemsize = np.dtype(array.dtype).itemsize
    return int(math.prod(int(s) for s in array.shape) * itemsize)


def array_record_bytes(record: ArrayRecord) -> int:
    return int(sum(array_bytes(a) for a in record.values()))


def content_array_bytes(content: RecordDict) -> int:
    """Raw array bytes of every ArrayRecord in a message's content."""
    return int(sum(array_record_bytes(r) for r in content.array_records.values()))


@dataclass
class CommLedger:
    """Per-round, per-client byte counts in both directions, for training and evaluation messages."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, server_round: int, client: str | int, direction: str, nbytes: int, purpose: str = TRAIN) -> None:
        if direction not in (DOWN, UP) or purpose not in (TRAIN, EVALUATE):
            raise ValueError(f"bad ledger entry {direction!r}/{purpose!r}")
        self.entries.append({"round": int(server_round), "client": str(client), "direction": direction,
                             "purpose": purpose, "bytes": int(nbytes)})

    def _sum(self, server_round: int | None = None, direction: str | None = None, purpose: str = TRAIN) -> int:
        return sum(e["bytes"] for e in self.entries
                   if (server_round is None or e["round"] == server_round)
                   and (direction is None or e["direction"] == direction) and e["purpose"] == purpose)

    def round_summary(self, server_round: int) -> dict[str, Any]:
        per_client: dict[str, dict[str, int]] = defaultdict(lambda: {"bytes_up": 0, "bytes_down": 0})
        for e in self.entries:
            if e["round"] == server_round and e["purpose"] == TRAIN:
                per_client[e["client"]]["bytes_" + e["direction"]] += e["bytes"]
        return {
            "bytes_up": self._sum(server_round, UP), "bytes_down": self._sum(server_round, DOWN),
            "eval_bytes_down": self._sum(server_round, DOWN, EVALUATE),
            "eval_bytes_up": self._sum(server_round, UP, EVALUATE),
            "per_client": {k: dict(v) for k, v in sorted(per_client.items())},
        }

    def totals(self) -> dict[str, int]:
        up, down = self._sum(direction=UP), self._sum(direction=DOWN)
        return {"bytes_up": up, "bytes_down": down, "bytes_total": up + down,
                "eval_bytes_down": self._sum(direction=DOWN, purpose=EVALUATE),
                "eval_bytes_up": self._sum(direction=UP, purpose=EVALUATE)}

    def cumulative_total(self, server_round: int) -> int:
        """Training bytes (up + down) of rounds 1..server_round."""
        return sum(e["bytes"] for e in self.entries if e["round"] <= server_round and e["purpose"] == TRAIN)
