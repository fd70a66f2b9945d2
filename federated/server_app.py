"""The HaBa ServerApp: validate every client's factorized payload, compose the global synthetic set, train.

Per round (``Strategy.start`` of ``flwr.serverapp.strategy``):

1. ``configure_train`` waits for ``min-available-clients`` nodes (at most ``wait-for-clients-s``) and sends
   each the client part of the run config; from round 2 on also the global model (``"arrays"``).
2. ``aggregate_train`` validates each reply (:func:`federated.payload.decode_payload`), drops and logs
   failed clients and invalid payloads with their reason, and continues only if at least
   ``min-clients`` valid payloads arrived (otherwise the round is skipped and the model kept). With
   ``defence = "score"`` valid payloads whose sanity score (:mod:`federated.defence`) is an outlier are
   dropped too (kind ``sanity``). The
   latest valid payload of every client joins a :class:`haba_core.FactorizedCollection` (each part
   composes with its own hallucinators) and the global model continues training on it with online
   composition (:func:`haba_core.evaluate.train_on_synthetic`). If that makes the model non-finite, the
   previous model is kept and the round is marked ``failed`` (the results' status is then ``failed``).
3. Clients report the local accuracy of the new model (``fraction-evaluate``), and the server
   evaluates it on the central test set.

With ``shared-hallucinators`` a round without a bank asks one client for a full payload and keeps its
hallucinator bank (no model is trained in that round); later rounds send that bank down and take
bases-only uploads composed through it (:mod:`federated.shared_bank`).

``num-server-rounds = 1`` is one-shot. Results (accuracy and bytes per round, totals) go to
``results-path`` as JSON. ``app`` dispatches on ``mode`` (``haba`` | ``fedavg``);
:func:`make_server_app` builds the same app with programmatic run-config overrides (used by the runner).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy

from haba_core import (EvalConfig, FactorizedCollection, FactorizedDataset, ImageDataset,
                       test_accuracy, train_on_synthetic, write_json, write_safetensors)

from .accounting import DOWN, EVALUATE, TRAIN, UP, CommLedger, array_record_bytes, content_array_bytes
from .defence import build_check, outliers, sanity_score, split_check
from .data_cache import load_run_split
from .distill_settings import distill_config
from .expectation import check_shared_bank, expected_payload
from .fedavg import run_fedavg
from .metric_aggregation import aggregate_client_metrics
from .metrics_check import valid_evaluate_replies
from .model import build_model, evaluate_model, preprocessor_for, state_dict_cpu
from .node_runtime import resolve_device, set_threads
from .payload import PayloadRejected, decode_payload
from .run_config import client_config, known_keys, resolve_run_config
from .shared_bank import BANK_ID_KEY, BANK_KEY, BPC_KEY, bank_id, bank_numel, bank_tensors, shared_bpc

logger = logging.getLogger("flwr.haba")
RESULTS_FORMAT = "haba-fl-results/2"  # /2: accuracies are fractions in [0, 1] (were percent)


def wait_for_nodes(grid: Grid, minimum: int, timeout_s: float, poll_s: float = 0.5) -> list[int]:
    """Connected node ids once ``minimum`` are there, or whatever is there after ``timeout_s``.

    Not Flower's ``strategy_utils.sample_nodes``: that one waits without a deadline (a SuperNode that never
    connects would hang the run; here the round goes on and records who did not reply) and draws with the
    process-wide ``random`` state, which would make HaBa's evaluation sample depend on unrelated code.
    The FedAvg baseline uses Flower's sampling unchanged (through ``FedAvg.configure_train``).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= minimum or time.monotonic() >= deadline:
            if len(nodes) < minimum:
                logger.warning("only %d of %d nodes connected after %.0fs; continuing", len(nodes), minimum, timeout_s)
            return nodes
        time.sleep(poll_s)


class HabaStrategy(Strategy):
    """Server side of federated HaBa (see the module docstring)."""

    def __init__(self, cfg: Mapping[str, Any], test: ImageDataset, ledger: CommLedger | None = None,
                 check: ImageDataset | None = None):
        self.cfg = dict(cfg)
        self.test = test
        self.ledger = ledger if ledger is not None else CommLedger()
        self.preprocessor = preprocessor_for(test)
        self.expect = expected_payload(cfg, test.image_shape, test.num_classes, self.preprocessor)
        self.device = resolve_device(cfg["device"])
        self.model = build_model(cfg, test.image_shape, test.num_classes).to(self.device)
        self.generator = torch.Generator().manual_seed(int(cfg["seed"]))
        self.parts: dict[int, FactorizedDataset] = {}
        self.round_info: dict[int, dict[str, Any]] = {}
        self.check = build_check(check, self.preprocessor) if check is not None and len(check) else None
        self.shared = bool(self.cfg["shared-hallucinators"])
        check_shared_bank(self.cfg, self.expect)
        self.bank: dict[str, torch.Tensor] | None = None  # the shared bank, once a bank round has given one
        self.bank_id = ""
        self.round_expect: dict[int, Any] = {}

    def client_budget_numbers(self) -> int:
        """Numbers one client may store: its IPC budget, or its full plan's storage when ``bpc`` is explicit."""
        e = self.expect
        image_numel, basis_numel = e.numbers
        ipc = distill_config(self.cfg).ipc
        if ipc is not None:
            return int(ipc) * e.num_classes * image_numel
        return e.bpc * e.num_classes * basis_numel + bank_numel(self.bank or {}) + int(e.learned_lr)

    def _shared_round(self, server_round: int, nodes: list[int]) -> tuple[list[int], dict[str, Any], ArrayRecord | None]:
        """Nodes to ask, extra instruction config and the bank's ArrayRecord for a shared-bank run's round."""
        if self.bank is None:  # bank round: one client distils as usual and donates its bank
            self.round_expect[server_round] = self.expect
            return nodes[:1], {}, None
        e = self.expect
        bpc = shared_bpc(budget_numbers=self.client_budget_numbers(), num_classes=e.num_classes,
                         basis_numel=e.numbers[1], bank_numbers=bank_numel(self.bank), clients=max(1, len(nodes)),
                         extra=int(e.learned_lr))
        self.round_expect[server_round] = e.through_shared_bank(bpc)
        arrays = ArrayRecord()
        for name, t in self.bank.items():
            arrays[name] = Array(t.numpy())
        return nodes, {BANK_ID_KEY: self.bank_id, BPC_KEY: bpc}, arrays

    # -------------------------------------------------------------------------------- train
    def summary(self) -> None:
        e = self.expect
        logger.info("HaBa strategy: %s, image %s, %d classes, plan %d bases/class of %s + %d hallucinators, "
                    "payload cap %d bytes, min-clients %d", self.cfg["dataset"], e.image_shape, e.num_classes, e.bpc,
                    e.basis_shape, e.num_hallucinators, e.max_bytes, self.cfg["min-clients"])

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        nodes = wait_for_nodes(grid, int(self.cfg["min-available-clients"]), float(self.cfg["wait-for-clients-s"]))
        extra, bank_arrays = {}, None
        if self.shared:
            nodes, extra, bank_arrays = self._shared_round(server_round, nodes)
        send_model = len(arrays) > 0
        down = (array_record_bytes(arrays) if send_model else 0) + (array_record_bytes(bank_arrays) if bank_arrays else 0)
        messages = []
        for node in nodes:
            content = RecordDict({"config": ConfigRecord({**client_config(self.cfg), "server-round": server_round,
                                                          **extra})})
            if send_model:
                content["arrays"] = arrays
            if bank_arrays is not None:
                content[BANK_KEY] = bank_arrays
            messages.append(Message(content, dst_node_id=node, message_type=MessageType.TRAIN,
                                    group_id=str(server_round)))
            self.ledger.add(server_round, node, DOWN, down, TRAIN)
        self.round_info[server_round] = {"sent": len(messages), "valid": 0, "rejected": [], "clients": []}
        if self.shared:
            self.round_info[server_round]["shared_bank"] = (
                {"phase": "bank", "donor": nodes[0] if nodes else None} if bank_arrays is None else
                {"phase": "bases", "bank_id": self.bank_id, "bpc": extra[BPC_KEY], "clients": len(nodes),
                 "bank_numbers": bank_numel(self.bank), "bank_bytes_down_each": array_record_bytes(bank_arrays)})
        logger.info("round %d: asked %d nodes to distil (%s%s)", server_round, len(messages),
                    "with the global model" if send_model else "one-shot, no model sent",
                    "" if not self.shared else (", bank round" if bank_arrays is None else
                                                f", bases only through the shared bank, {extra[BPC_KEY]} per class"))
        return messages

    def _reject(self, info: dict[str, Any], server_round: int, node: int, kind: str, reason: str) -> None:
        info["rejected"].append({"node": node, "kind": kind, "reason": reason})
        logger.warning("round %d: dropped node %s: %s: %s", server_round, node, kind, reason)

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        info = self.round_info.setdefault(server_round, {"sent": len(replies), "valid": 0, "rejected": [],
                                                         "clients": []})
        info["no_reply"] = max(0, info["sent"] - len(replies))
        fresh: dict[int, FactorizedDataset] = {}
        fresh_tensors: dict[int, dict[str, torch.Tensor]] = {}
        composed: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {}  # from validation, for the score
        expect = self.round_expect.get(server_round, self.expect)
        bank = self.bank if expect.shared_bank else None
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            if msg.has_error():
                self._reject(info, server_round, node, "client-error", str(msg.error.reason))
                continue
            try:
                up = content_array_bytes(msg.content)
            except (TypeError, ValueError):
                up = sum(len(a.data) for r in msg.content.array_records.values() for a in r.values())
            self.ledger.add(server_round, node, UP, up, TRAIN)
            try:
                decoded = decode_payload(msg.content, expect, self.preprocessor, bank=bank,
                                         bank_fingerprint=self.bank_id if bank is not None else None)
            except PayloadRejected as exc:
                self._reject(info, server_round, node, exc.kind, exc.reason)
                continue
            except Exception as exc:  # noqa: BLE001 - a hostile payload must never stop the round
                self._reject(info, server_round, node, "format", f"{type(exc).__name__}: {exc}")
                continue
            fresh[node] = decoded.result
            fresh_tensors[node] = decoded.tensors
            composed[node] = decoded.composed
            m = decoded.metrics  # validated: finite numbers in range
            info["clients"].append({"node": node, "partition_id": m.get("partition-id"),
                                    "num_examples": m.get("num-examples"), "bytes_up": decoded.upload_bytes,
                                    "num_bases": len(decoded.result), "distill_seconds": m.get("distill-seconds")})
        if self.check is not None and fresh and self.cfg["defence"] == "score":
            scores = {node: sanity_score(part, self.check, composed.get(node)) for node, part in fresh.items()}
            for c in info["clients"]:
                c["sanity_score"] = scores.get(c["node"])
            for node, reason in outliers(scores, float(self.cfg["defence-ratio"])).items():
                del fresh[node]
                self._reject(info, server_round, node, "sanity", reason)
            info["clients"] = [c for c in info["clients"] if c["node"] in fresh]
        info["valid"] = len(fresh)
        if len(fresh) < int(self.cfg["min-clients"]):
            info["skipped"] = True
            logger.error("round %d: %d valid payloads, fewer than min-clients=%d; round skipped, model kept",
                         server_round, len(fresh), self.cfg["min-clients"])
            return None, MetricRecord({"valid-clients": len(fresh), "rejected-clients": len(info["rejected"])})
        self.parts.update(fresh)
        if self.shared and self.bank is None:  # the bank round's donor gives the run its bank
            donor = min(fresh)
            self.bank = bank_tensors(fresh_tensors[donor])
            self.bank_id = bank_id(self.bank)
            info["shared_bank"] = {"phase": "bank", "donor": donor, "bank_id": self.bank_id,
                                   "bank_numbers": bank_numel(self.bank)}
            logger.info("round %d: node %s's bank (%d numbers) is now shared by every client; the global model "
                        "waits for the bases rounds", server_round, donor, bank_numel(self.bank))
            return None, MetricRecord({"valid-clients": len(fresh), "rejected-clients": len(info["rejected"])})
        collection = FactorizedCollection(list(self.parts.values())).to(self.device)
        learned = sorted(p.learned_lr for p in self.parts.values() if p.learned_lr is not None)
        # the median, not the mean: one client cannot pull the server's learning rate to the edge of the range
        lr = float(self.cfg["server-learning-rate"]) or (learned[len(learned) // 2] if learned else 0.01)
        ecfg = EvalConfig(epochs=int(self.cfg["server-epochs"]), batch_size=int(self.cfg["server-batch-size"]),
                          dsa=bool(self.cfg["server-dsa"]), lr=lr, device=str(self.device))
        t0 = time.perf_counter()
        before = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        train_on_synthetic(self.model, collection, ecfg, self.generator, lr)
        info["server_train_seconds"] = time.perf_counter() - t0
        if not all(bool(torch.isfinite(v).all()) for v in self.model.state_dict().values() if v.is_floating_point()):
            self.model.load_state_dict(before)
            info["failed"] = "the global model became non-finite while training on the synthetic set; kept the previous one"
            logger.error("round %d: %s", server_round, info["failed"])
            return None, MetricRecord({"valid-clients": len(fresh), "rejected-clients": len(info["rejected"])})
        info["global_bases"] = len(collection)
        logger.info("round %d: trained the global model on %d bases from %d clients (%d valid now) in %.1fs",
                    server_round, len(collection), len(self.parts), len(fresh), info["server_train_seconds"])
        metrics = MetricRecord({"valid-clients": len(fresh), "rejected-clients": len(info["rejected"]),
                                "global-bases": len(collection), "server-train-seconds": info["server_train_seconds"],
                                "upload-bytes": sum(int(c["bytes_up"]) for c in info["clients"])})
        return ArrayRecord(state_dict_cpu(self.model)), metrics

    # -------------------------------------------------------------------------------- evaluate
    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        frac = float(self.cfg["fraction-evaluate"])
        if frac <= 0 or len(arrays) == 0:
            return []
        nodes = sorted(grid.get_node_ids())
        if not nodes:
            return []
        k = min(len(nodes), max(1, math.ceil(frac * len(nodes))))
        # seeded per round (see wait_for_nodes for why not Flower's sample_nodes): same seed, same evaluators
        nodes = sorted(random.Random(int(self.cfg["seed"]) * 7919 + server_round).sample(nodes, k))
        down = array_record_bytes(arrays)
        messages = []
        for node in nodes:
            content = RecordDict({"arrays": arrays,
                                  "config": ConfigRecord({**client_config(self.cfg), "server-round": server_round})})
            messages.append(Message(content, dst_node_id=node, message_type=MessageType.EVALUATE,
                                    group_id=str(server_round)))
            self.ledger.add(server_round, node, DOWN, down, EVALUATE)
        return messages

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        info = self.round_info.setdefault(server_round, {"sent": 0, "valid": 0, "rejected": [], "clients": []})
        ok = valid_evaluate_replies(replies, info.setdefault("eval_rejected", []))
        if not ok:
            return None
        return aggregate_client_metrics(ok, "num-examples")


def make_central_evaluate(cfg: Mapping[str, Any], test: ImageDataset,
                          val: ImageDataset | None = None) -> Callable[[int, ArrayRecord], MetricRecord | None]:
    """``evaluate_fn`` for ``Strategy.start``: accuracy/loss of the global arrays on the central test set (and
    ``val_accuracy`` on the validation split carved from training, when the run has one)."""
    pre = preprocessor_for(test)
    device = resolve_device(cfg["device"])

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if len(arrays) == 0:
            return None
        model = build_model(cfg, test.image_shape, test.num_classes)
        model.load_state_dict(arrays.to_torch_state_dict())
        acc, loss = evaluate_model(model, test, pre, device)
        logger.info("round %d: central test accuracy %.2f%%", server_round, acc)  # percent only when printed
        if not math.isfinite(loss):
            logger.error("round %d: central test loss is %s", server_round, loss)
        metrics = {"accuracy": float(acc) / 100.0, "loss": float(loss) if math.isfinite(loss) else -1.0,
                   "finite": int(math.isfinite(loss))}
        if val is not None:  # accuracy only: no loss pass
            metrics["val_accuracy"] = test_accuracy(model, pre(val.images.to(device)), val.labels.to(device)) / 100.0
        return MetricRecord(metrics)

    return central_evaluate


def build_results(cfg: Mapping[str, Any], result: Any, strategy: Any, ledger: CommLedger,
                  wall_seconds: float) -> dict[str, Any]:
    """The results document (``results-path``): per-round accuracy and bytes, and totals."""
    rounds = []
    for r in range(1, int(cfg["num-server-rounds"]) + 1):
        central = result.evaluate_metrics_serverapp.get(r) if result is not None else None
        local = result.evaluate_metrics_clientapp.get(r) if result is not None else None
        train = result.train_metrics_clientapp.get(r) if result is not None else None  # aggregate_client_metrics
        info = dict(strategy.round_info.get(r, {}))
        led = ledger.round_summary(r)
        failed = info.get("failed")
        if central and not central.get("finite", 1):
            failed = failed or "the central test loss is not finite"
        rounds.append({
            "round": r,
            "accuracy": float(central["accuracy"]) if central else None,
            "val_accuracy": float(central["val_accuracy"]) if central and "val_accuracy" in central else None,
            "loss": float(central["loss"]) if central and central.get("finite", 1) else None,
            "failed": failed,
            "eval_rejected": info.get("eval_rejected", []),
            "client_accuracy": float(local["accuracy"]) if local and "accuracy" in local else None,
            "client_train_metrics": dict(train) if train else None,
            "bytes_up": led["bytes_up"], "bytes_down": led["bytes_down"],
            "cumulative_bytes": ledger.cumulative_total(r),
            "eval_bytes_down": led["eval_bytes_down"],
            "per_client_bytes": led["per_client"],
            "clients_sent": info.get("sent", 0), "clients_valid": info.get("valid", 0),
            "clients_no_reply": info.get("no_reply", 0),
            "rejected": info.get("rejected", []), "skipped": bool(info.get("skipped", False)),
            **{k: info[k] for k in ("clients", "server_train_seconds", "global_bases", "shared_bank") if k in info},
        })
    accs = [r["accuracy"] for r in rounds if r["accuracy"] is not None]
    initial = result.evaluate_metrics_serverapp.get(0) if result is not None else None
    errors = [f"round {r['round']}: {r['failed']}" for r in rounds if r["failed"]]
    if not accs:
        errors.append("no round produced a central accuracy")
    return {
        "format": RESULTS_FORMAT, "mode": cfg["mode"], "status": "failed" if errors else "ok", "errors": errors,
        "dataset": cfg["dataset"], "num_rounds": int(cfg["num-server-rounds"]),
        "initial_accuracy": float(initial["accuracy"]) if initial else None,
        "final_accuracy": accs[-1] if accs else None,
        "final_val_accuracy": next((r["val_accuracy"] for r in reversed(rounds) if r["accuracy"] is not None), None),
        "rounds": rounds, "totals": ledger.totals(), "wall_seconds": wall_seconds,
        "config": dict(cfg),
    }


MODEL_FORMAT = "haba-fl-model/1"


def artifact_paths(results_path: str | os.PathLike) -> tuple[Path, Path]:
    """Where the final global model (``<stem>-model.safetensors``) and the global synthetic set
    (``<stem>-synthetic/``) go: next to the results file."""
    path = Path(results_path).expanduser()
    return path.with_name(f"{path.stem}-model.safetensors"), path.with_name(f"{path.stem}-synthetic")


def save_artifacts(cfg: Mapping[str, Any], result: Any, strategy: Any, test: ImageDataset) -> dict[str, str]:
    """Save the final global model (safetensors, as Flower's examples save theirs) and, for HaBa, the global
    synthetic set (:meth:`FactorizedCollection.save`) next to ``results-path``; returns the paths written."""
    if not cfg["results-path"] or result is None or len(result.arrays) == 0:
        return {}
    model_path, synthetic_path = artifact_paths(cfg["results-path"])
    model_path.parent.mkdir(parents=True, exist_ok=True)
    keys = ("mode", "dataset", "network", "net-width", "net-depth", "net-norm", "recipe", "seed")
    meta = {"format": MODEL_FORMAT, "image_shape": json.dumps(list(test.image_shape)),
            "num_classes": str(test.num_classes), "run_config": json.dumps({k: cfg[k] for k in keys})}
    write_safetensors(model_path, result.arrays.to_torch_state_dict(), metadata=meta)
    out = {"model": str(model_path)}
    parts = getattr(strategy, "parts", None)
    if parts:
        nodes = sorted(parts)
        FactorizedCollection([parts[n] for n in nodes]).save(synthetic_path, labels=[{"node": n} for n in nodes])
        out["synthetic"] = str(synthetic_path)
    return out


def write_results(path: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Write ``results`` as JSON atomically (temporary file, then rename)."""
    path = Path(path).expanduser()
    write_json(path, results)
    return path


def run_server(grid: Grid, context: Context, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Body of the ServerApp for both modes; returns (and writes) the results document."""
    run_cfg = known_keys(context.run_config)
    ignored = sorted(k for k in context.run_config if k not in run_cfg)
    if ignored:
        logger.warning("ignoring unknown run-config keys %s", ignored)
    cfg = resolve_run_config(run_cfg, overrides)
    set_threads({"num-threads": max(1, int(cfg["num-threads"]))})
    test = load_run_split(cfg, "test")
    val = load_run_split(cfg, "val") if int(cfg["val-per-class"]) > 0 else None
    ledger = CommLedger()
    central = make_central_evaluate(cfg, test, val)
    t0 = time.perf_counter()
    if cfg["mode"] == "fedavg":
        result, strategy = run_fedavg(grid, cfg, test, central, ledger)
    else:
        check = None
        if int(cfg["defence-check-per-class"]) > 0:  # held out whatever the defence, so accuracies compare
            check, rest = split_check(test, int(cfg["defence-check-per-class"]), int(cfg["seed"]))
            central = make_central_evaluate(cfg, rest, val)  # the check examples are not scored twice
        strategy = HabaStrategy(cfg, test, ledger, check)
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=int(cfg["num-server-rounds"]),
                                timeout=float(cfg["round-timeout-s"]), evaluate_fn=central)
    results = build_results(cfg, result, strategy, ledger, time.perf_counter() - t0)
    results["artifacts"] = save_artifacts(cfg, result, strategy, test)
    if cfg["results-path"]:
        write_results(cfg["results-path"], results)
        logger.info("results written to %s", cfg["results-path"])
    tot = results["totals"]
    logger.info("%s finished: final accuracy %s, %d bytes up, %d bytes down", cfg["mode"], results["final_accuracy"],
                tot["bytes_up"], tot["bytes_down"])
    return results


def make_server_app(overrides: Mapping[str, Any] | None = None) -> ServerApp:
    """A ServerApp running :func:`run_server` with ``overrides`` on top of the Flower run config."""
    frozen = dict(overrides or {})
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(grid, context, frozen)

    return server_app


app = make_server_app()
haba_server_app = make_server_app({"mode": "haba"})
