"""Validation of the metrics a client reports (train and evaluate replies): types, finiteness, ranges.

A client's ``MetricRecord`` is untrusted input: every value must be a finite scalar number, and the keys
the server reads must lie in their range, before any of it reaches the server's state or results.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Mapping

from flwr.app import Message, MetricRecord, RecordDict

logger = logging.getLogger("flwr.haba")

# key -> (integer required, lowest, highest)
TRAIN_METRICS: dict[str, tuple[bool, float, float]] = {
    "num-examples": (True, 0, 10**9), "partition-id": (True, 0, 10**6), "num-bases": (True, 0, 10**7),
    "server-round": (True, 0, 10**6), "upload-bytes": (True, 0, 10**12), "distill-seconds": (False, 0.0, 1e7),
    "train-loss": (False, 0.0, 1e6), "train-seconds": (False, 0.0, 1e7),
}
EVALUATE_METRICS: dict[str, tuple[bool, float, float]] = {
    "num-examples": (True, 0, 10**9), "accuracy": (False, 0.0, 1.0), "loss": (False, 0.0, 1e6),
}
MAX_METRICS = 64


class MetricsRejected(ValueError):
    """A reply's metrics are malformed; ``str(exc)`` says which value and why."""


def check_metrics(metrics: Mapping[str, Any], schema: Mapping[str, tuple[bool, float, float]],
                  required: tuple[str, ...] = ()) -> dict[str, int | float]:
    """The metrics as plain ``int``/``float``, or :class:`MetricsRejected` for any malformed value.

    Every value must be a finite scalar number (no list, bool, string); the keys in ``schema`` must also be
    within their range (and integral where marked); ``required`` keys must be present.
    """
    if len(metrics) > MAX_METRICS:
        raise MetricsRejected(f"{len(metrics)} metrics, at most {MAX_METRICS} are accepted")
    out: dict[str, int | float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MetricsRejected(f"metric {key!r} is {type(value).__name__}, expected a number")
        if not math.isfinite(value):
            raise MetricsRejected(f"metric {key!r} is {value}, expected a finite number")
        if key in schema:
            integral, lo, hi = schema[key]
            if integral and float(value) != int(value):
                raise MetricsRejected(f"metric {key!r} is {value}, expected an integer")
            if not lo <= value <= hi:
                raise MetricsRejected(f"metric {key!r} is {value}, expected {lo}..{hi}")
            value = int(value) if integral else float(value)
        out[key] = value
    for key in required:
        if key not in out:
            raise MetricsRejected(f"metric {key!r} is missing")
    return out


def valid_evaluate_replies(replies: Iterable[Message], rejected: list[dict[str, Any]]) -> list[RecordDict]:
    """Evaluate replies whose one MetricRecord passes :data:`EVALUATE_METRICS`; the others go to ``rejected``."""
    ok = []
    for msg in replies:
        node = int(msg.metadata.src_node_id)
        if msg.has_error():
            rejected.append({"node": node, "kind": "client-error", "reason": str(msg.error.reason)})
            continue
        records = list(msg.content.metric_records.values())
        try:
            if len(records) != 1:
                raise MetricsRejected(f"expected one MetricRecord, got {len(records)}")
            metrics = check_metrics(dict(records[0]), EVALUATE_METRICS, required=("num-examples", "accuracy"))
        except MetricsRejected as exc:
            rejected.append({"node": node, "kind": "metrics", "reason": str(exc)})
            logger.warning("evaluate reply of node %s dropped: %s", node, exc)
            continue
        ok.append(RecordDict({"metrics": MetricRecord(metrics)}))
    return ok
