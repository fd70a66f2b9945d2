"""Client-side pieces both modes share: the run config a client works with, the round, local evaluation."""

from __future__ import annotations

from typing import Any, Mapping

from flwr.app import Context, Message, MetricRecord, RecordDict

from .model import build_model, evaluate_model, preprocessor_for
from .node_runtime import resolve_device, set_threads
from .partitioning import load_partition, node_partition
from .run_config import DEFAULT_RUN_CONFIG, known_keys, resolve_run_config


def client_run_config(msg: Message, context: Context) -> dict[str, Any]:
    """The run config a client works with: its own run config, overridden by what the server sent.

    A ``data-root`` in the node config (``--node-config 'data-root="/data"'``) wins over both, so each
    SuperNode can keep its data wherever it likes.
    """
    layers: list[Mapping[str, Any]] = [known_keys(context.run_config)]
    if "config" in msg.content.config_records:
        layers.append({k: v for k, v in msg.content.config_records["config"].items() if k in DEFAULT_RUN_CONFIG})
    cfg = resolve_run_config(*layers)
    if context.node_config.get("data-root"):
        cfg["data-root"] = str(context.node_config["data-root"])
    return cfg


def server_round_of(msg: Message) -> int:
    if "config" in msg.content.config_records:
        return int(msg.content.config_records["config"].get("server-round", 1))
    return 1


def local_evaluate(msg: Message, context: Context) -> Message:
    """Evaluate handler shared by both modes: accuracy of the received global model on this node's test part."""
    cfg = client_run_config(msg, context)
    set_threads(cfg)
    pid, n = node_partition(context.node_config)
    test = load_partition(cfg, pid, n, split="test")
    model = build_model(cfg, test.image_shape, test.num_classes)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    acc, loss = evaluate_model(model, test, preprocessor_for(test), resolve_device(cfg["device"]))
    metrics = MetricRecord({"num-examples": len(test), "accuracy": float(acc) / 100.0, "loss": float(loss)})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
