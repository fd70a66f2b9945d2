"""How the server combines client metrics: Flower's weighted mean for rates, sums for totals."""

from __future__ import annotations

from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

SUMMED_METRICS = ("upload-bytes",)
"""Client metrics that are totals over clients, not per-example rates: summed, never averaged."""


def aggregate_client_metrics(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """Flower's ``aggregate_metricrecords`` (mean weighted by ``weight_key``) for rates such as accuracy and
    loss; :data:`SUMMED_METRICS` and ``weight_key`` itself are summed. Replies with zero weight carry no
    examples and are left out of the mean; if every reply has zero weight only the sums are returned."""
    sums = {key: sum(float(m[key]) for r in records for m in r.metric_records.values() if key in m)
            for key in (weight_key, *SUMMED_METRICS)}
    weighted = [RecordDict({name: MetricRecord({k: v for k, v in m.items() if k not in SUMMED_METRICS})
                            for name, m in r.metric_records.items()})
                for r in records if float(next(iter(r.metric_records.values())).get(weight_key, 0)) > 0]
    out = aggregate_metricrecords(weighted, weight_key) if weighted else MetricRecord()
    for key, total in sums.items():
        if any(key in m for r in records for m in r.metric_records.values()):
            out[key] = int(total) if float(total).is_integer() else total
    return out
