"""The FedAvg baseline's engine: local SGD on a node (:func:`fedavg_train`) and Flower's FedAvg with byte
accounting and reply checks (:class:`AccountedFedAvg`, run by :func:`run_fedavg`).

Same model, data and partitions as the HaBa mode. :class:`AccountedFedAvg` is a thin subclass of
``flwr.serverapp.strategy.FedAvg`` that records the array bytes of every message it sends and receives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from .accounting import DOWN, EVALUATE, TRAIN, UP, CommLedger, array_record_bytes, content_array_bytes, tensor_bytes
from .client_common import client_run_config, server_round_of
from .metric_aggregation import aggregate_client_metrics
from .metrics_check import TRAIN_METRICS, check_metrics, valid_evaluate_replies
from .model import build_model, preprocessor_for, state_dict_cpu
from .node_runtime import resolve_device, set_threads
from .partitioning import load_partition, node_partition
from .run_config import client_config

logger = logging.getLogger("flwr.haba")
MODEL_BOUND = 1e4
"""FedAvg replies: largest ``|w|`` accepted in an uploaded model (honest ConvNet weights stay far below 10)."""


def fedavg_train(msg: Message, context: Context) -> Message:
    """Local SGD on this node's partition, starting from the received global model."""
    cfg = client_run_config(msg, context)
    set_threads(cfg)
    pid, n = node_partition(context.node_config)
    train = load_partition(cfg, pid, n, split="train")
    device = resolve_device(cfg["device"])
    model = build_model(cfg, train.image_shape, train.num_classes)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    model.to(device)
    x = preprocessor_for(train)(train.images.to(device))
    y = train.labels.to(device)
    gen = torch.Generator().manual_seed(int(cfg["seed"]) * 1000 + pid + 7 * server_round_of(msg))
    opt = torch.optim.SGD(model.parameters(), lr=float(cfg["learning-rate"]), momentum=0.9)
    bs = max(1, int(cfg["batch-size"]))
    t0 = time.perf_counter()
    model.train()
    total, count = 0.0, 0
    for _ in range(int(cfg["local-epochs"])):
        perm = torch.randperm(len(train), generator=gen)
        for start in range(0, len(train), bs):
            idx = perm[start:start + bs].to(device)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
            count += idx.numel()
    state = state_dict_cpu(model)
    metrics = MetricRecord({"num-examples": len(train), "train-loss": total / max(1, count),
                            "upload-bytes": tensor_bytes(state), "train-seconds": time.perf_counter() - t0})
    return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": metrics}), reply_to=msg)


class AccountedFedAvg(FedAvg):
    """Flower's FedAvg, plus byte accounting per message and a minimum number of valid replies."""

    def __init__(self, ledger: CommLedger, min_clients: int = 1, **kwargs: Any):
        kwargs.setdefault("train_metrics_aggr_fn", aggregate_client_metrics)
        kwargs.setdefault("evaluate_metrics_aggr_fn", aggregate_client_metrics)
        super().__init__(**kwargs)
        self.ledger = ledger
        self.min_clients = min_clients
        self.round_info: dict[int, dict[str, Any]] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._expected = {k: (tuple(a.shape), a.dtype) for k, a in arrays.items()}
        for m in messages:
            self.ledger.add(server_round, m.metadata.dst_node_id, DOWN, array_record_bytes(arrays), TRAIN)
        self.round_info[server_round] = {"sent": len(messages), "valid": 0, "rejected": []}
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        # Flower samples nodes with the unseeded global ``random``: aggregate in node order so that the float
        # sums, hence the model, are the same for a seed whatever order the replies came in.
        replies = sorted(replies, key=lambda m: m.metadata.src_node_id)
        info = self.round_info.setdefault(server_round, {"sent": len(replies), "valid": 0, "rejected": []})
        valid = []
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                info["rejected"].append({"node": node, "kind": "client-error", "reason": str(msg.error.reason)})
                logger.warning("round %d: dropped node %s: client error: %s", server_round, node, msg.error.reason)
                continue
            try:
                self.ledger.add(server_round, node, UP, content_array_bytes(msg.content), TRAIN)
                self._check_reply(msg)
            except Exception as exc:  # noqa: BLE001 - a hostile reply must never stop the round
                info["rejected"].append({"node": node, "kind": "invalid-reply", "reason": str(exc)})
                logger.warning("round %d: dropped node %s: %s", server_round, node, exc)
                continue
            valid.append(msg)
        info["valid"] = len(valid)
        info["no_reply"] = max(0, info["sent"] - len(replies))
        if len(valid) < self.min_clients:
            logger.error("round %d: only %d valid replies (min-clients %d); the global model is kept",
                         server_round, len(valid), self.min_clients)
            info["skipped"] = True
            return None, None
        return super().aggregate_train(server_round, valid)

    def _check_reply(self, msg: Message) -> None:
        """ValueError unless the reply holds the global model's arrays (names, shapes, dtypes), finite and
        within ``MODEL_BOUND``, and one MetricRecord with a positive ``num-examples``."""
        if len(msg.content.array_records) != 1 or len(msg.content.metric_records) != 1:
            raise ValueError("expected one ArrayRecord and one MetricRecord")
        check_metrics(dict(next(iter(msg.content.metric_records.values()))), TRAIN_METRICS, required=("num-examples",))
        if next(iter(msg.content.metric_records.values()))["num-examples"] < 1:
            raise ValueError("num-examples must be >= 1")
        arrays = next(iter(msg.content.array_records.values()))
        given = {k: (tuple(a.shape), a.dtype) for k, a in arrays.items()}
        if given != self._expected:
            raise ValueError("the arrays do not match the global model's names, shapes and dtypes")
        for name, a in arrays.items():
            t = torch.from_numpy(a.numpy())
            if t.is_floating_point() and (not bool(torch.isfinite(t).all()) or float(t.abs().max()) > MODEL_BOUND):
                raise ValueError(f"array {name!r} is non-finite or exceeds |v| <= {MODEL_BOUND:g}")

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        messages = list(super().configure_evaluate(server_round, arrays, config, grid))
        for m in messages:
            self.ledger.add(server_round, m.metadata.dst_node_id, DOWN, array_record_bytes(arrays), EVALUATE)
        return messages

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]):
        info = self.round_info.setdefault(server_round, {"sent": 0, "valid": 0, "rejected": []})
        ok = valid_evaluate_replies(replies, info.setdefault("eval_rejected", []))
        if not ok:
            return None
        return self.evaluate_metrics_aggr_fn(ok, self.weighted_by_key)


def run_fedavg(grid: Grid, cfg: dict[str, Any], test, central_evaluate, ledger: CommLedger) -> tuple[Any, AccountedFedAvg]:
    """Run FedAvg for ``num-server-rounds``; returns Flower's ``Result`` and the strategy."""
    n_avail = int(cfg["min-available-clients"])
    strategy = AccountedFedAvg(ledger, min_clients=int(cfg["min-clients"]), fraction_train=1.0,
                               fraction_evaluate=float(cfg["fraction-evaluate"]), min_train_nodes=n_avail,
                               min_evaluate_nodes=n_avail if cfg["fraction-evaluate"] > 0 else 0,
                               min_available_nodes=n_avail)
    model = build_model(cfg, test.image_shape, test.num_classes)
    initial = ArrayRecord(state_dict_cpu(model))
    train_cfg = ConfigRecord(client_config(cfg))
    eval_cfg = ConfigRecord(client_config(cfg))
    result = strategy.start(grid=grid, initial_arrays=initial, num_rounds=int(cfg["num-server-rounds"]),
                            timeout=float(cfg["round-timeout-s"]), train_config=train_cfg, evaluate_config=eval_cfg,
                            evaluate_fn=central_evaluate)
    return result, strategy
