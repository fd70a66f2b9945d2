"""One hallucinator bank for all clients (run-config key ``shared-hallucinators``): protocol, bytes, validation."""

from __future__ import annotations

import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp

from federated.accounting import array_record_bytes
from federated.client_app import app as client_app
from federated.client_app import shared_bank_of
from federated.client_common import local_evaluate
from federated.data_cache import load_split
from federated.expectation import expected_payload
from federated.in_process_grid import InProcessGrid
from federated.model import preprocessor_for
from federated.payload import ARRAYS_KEY, PayloadRejected, decode_payload
from federated.run_config import client_config, resolve_run_config
from federated.server_app import run_server
from federated.shared_bank import (BANK_ID_KEY, BANK_KEY, BPC_KEY, as_hallucinator_init, bank_id, bank_numel,
                                   bank_tensors, shared_bpc)
from haba_core import ConfigError

import test_federated_apps as apps
from test_federated_apps import node_context

_identity = apps._identity  # the autouse fixture that fixes the Flower task identity

# 5 hallucinators asked for, 4 fit the plan of 2 images per class: bases-only clients must use the bank's 4
TINY = {**apps.TINY, "hallucinators": 5}


def bank_instruction(cfg, bank: dict, bpc: int, announced: str | None = None, rnd: int = 2) -> Message:
    arrays = ArrayRecord()
    for name, t in bank.items():
        arrays[name] = Array(t.numpy())
    config = {**client_config(cfg), "server-round": rnd, BANK_ID_KEY: announced or bank_id(bank), BPC_KEY: bpc}
    return Message(RecordDict({"config": ConfigRecord(config), BANK_KEY: arrays}), dst_node_id=100,
                   message_type=MessageType.TRAIN)


def a_bank(cfg) -> dict:
    """The bank of one ordinary client payload (what a bank round gives the server)."""
    reply = client_app(Message(RecordDict({"config": ConfigRecord({**client_config(cfg), "server-round": 1})}),
                               dst_node_id=100, message_type=MessageType.TRAIN), node_context(0, 3))
    return bank_tensors(reply.content.array_records[ARRAYS_KEY].to_torch_state_dict())


def test_shared_bpc_charges_each_client_its_share_of_the_bank():
    # 2 IPC of 64-number images over 10 classes = 1280 numbers; bases of 16 numbers
    assert shared_bpc(budget_numbers=1280, num_classes=10, basis_numel=16, bank_numbers=100, clients=1) == 7
    assert shared_bpc(budget_numbers=1280, num_classes=10, basis_numel=16, bank_numbers=100, clients=4) == 7
    assert shared_bpc(budget_numbers=1280, num_classes=10, basis_numel=16, bank_numbers=10, clients=10, extra=1) == 7
    assert shared_bpc(budget_numbers=1280, num_classes=10, basis_numel=16, bank_numbers=0, clients=3) == 8
    with pytest.raises(ConfigError, match="less than one basis"):
        shared_bpc(budget_numbers=200, num_classes=10, basis_numel=16, bank_numbers=100, clients=2)
    with pytest.raises(ConfigError):
        shared_bpc(budget_numbers=1280, num_classes=10, basis_numel=16, bank_numbers=100, clients=0)


def test_bank_fingerprint_and_names():
    bank = {"hallucinators.a": torch.zeros(2, 3), "hallucinators.b": torch.ones(4)}
    same = {k: v.clone() for k, v in reversed(list(bank.items()))}
    assert bank_id(bank) == bank_id(same) and bank_numel(bank) == 10
    other = dict(bank, **{"hallucinators.b": torch.tensor([1.0, 1.0, 1.0, 1.0 + 1e-6])})
    assert bank_id(other) != bank_id(bank)
    assert set(as_hallucinator_init(bank)) == {"a", "b"}
    with pytest.raises(ConfigError):
        as_hallucinator_init({"bases": torch.zeros(1)})


def test_run_config_needs_haba_mode_and_two_rounds():
    with pytest.raises(ConfigError, match="shared-hallucinators"):
        resolve_run_config({**TINY, "shared-hallucinators": True})
    with pytest.raises(ConfigError, match="shared-hallucinators"):
        resolve_run_config({**TINY, "shared-hallucinators": True, "num-server-rounds": 2, "mode": "fedavg"})
    assert resolve_run_config({**TINY, "shared-hallucinators": "true", "num-server-rounds": 2})["shared-hallucinators"]


def test_server_refuses_shared_bank_without_hallucinators(tmp_path):
    grid = InProcessGrid(client_app, 1)
    over = {**TINY, "shared-hallucinators": True, "num-server-rounds": 2, "parameterization": "idc"}
    with pytest.raises(ConfigError, match="factorized"):
        run_server(grid, Context(run_id=4242, node_id=0, node_config={}, state=RecordDict(), run_config={}), over)


def test_client_distils_bases_only_through_the_bank_and_server_validates_them():
    cfg = resolve_run_config({**TINY, "shared-hallucinators": True, "num-server-rounds": 2, "refine": False})
    bank = a_bank(cfg)
    test = load_split("digits", "", "test")
    expect = expected_payload(cfg, test.image_shape, 10, preprocessor_for(test))
    bpc = expect.bpc + 1
    reply = client_app(bank_instruction(cfg, bank, bpc), node_context(1, 3))
    sent = reply.content.array_records[ARRAYS_KEY]
    assert not [n for n in sent.keys() if n.startswith("hallucinators.")]  # bases only
    shared = expect.through_shared_bank(bpc)
    decoded = decode_payload(reply.content, shared, preprocessor_for(test), bank=bank)
    assert decoded.result.num_hallucinators == expect.num_hallucinators == 4
    got = decoded.result.synthetic.hallucinators.state_dict()
    assert all(torch.equal(got[k], v) for k, v in as_hallucinator_init(bank).items())  # composed through the bank
    assert int(torch.bincount(decoded.result.synthetic.labels).max()) == bpc

    other = {k: v + 0.01 for k, v in bank.items()}
    with pytest.raises(PayloadRejected) as exc:
        decode_payload(reply.content, shared, preprocessor_for(test), bank=other)
    assert exc.value.kind == "bank"
    with pytest.raises(PayloadRejected) as exc:  # the server's precomputed fingerprint is what is checked
        decode_payload(reply.content, shared, preprocessor_for(test), bank=bank, bank_fingerprint=bank_id(other))
    assert exc.value.kind == "bank"
    assert decode_payload(reply.content, shared, preprocessor_for(test), bank=bank,
                          bank_fingerprint=bank_id(bank)).result.num_hallucinators == 4
    with pytest.raises(PayloadRejected) as exc:  # more bases per class than the server granted
        decode_payload(reply.content, expect.through_shared_bank(bpc - 1), preprocessor_for(test), bank=bank)
    assert exc.value.kind == "budget"
    full = client_app(Message(RecordDict({"config": ConfigRecord({**client_config(cfg), "server-round": 1})}),
                              dst_node_id=100, message_type=MessageType.TRAIN), node_context(1, 3))
    with pytest.raises(PayloadRejected) as exc:  # hallucinators uploaded where the bank is the server's
        decode_payload(full.content, shared, preprocessor_for(test), bank=bank)
    assert exc.value.kind in ("hallucinator-shape", "bank")


def test_client_refuses_a_bank_that_does_not_match_its_fingerprint():
    cfg = resolve_run_config({**TINY, "shared-hallucinators": True, "num-server-rounds": 2})
    bank = a_bank(cfg)
    with pytest.raises(ConfigError, match="fingerprint"):
        shared_bank_of(bank_instruction(cfg, bank, 3, announced="0" * 64))
    with pytest.raises(ConfigError, match="positive integer"):
        shared_bank_of(bank_instruction(cfg, bank, 0))


def test_three_rounds_bank_round_then_bases_only_refined(tmp_path, monkeypatch):
    calls = apps.spy_on_distill(monkeypatch, lambda config, kw: {
        "resume": kw.get("resume"), "bank": kw.get("hallucinator_init") is not None,
        "iterations": config.iterations, "bpc": config.bpc, "lr_h": config.lr_hallucinators})
    uploads: list[set] = []
    app = ClientApp()

    @app.train()
    def train(msg, context):
        reply = client_app(msg, context)
        uploads.append(set(reply.content.array_records[ARRAYS_KEY].keys()))
        return reply

    app.evaluate()(local_evaluate)
    state = tmp_path / "state"
    grid = InProcessGrid(app, 3, node_configs=[{"state-dir": str(state)}] * 3)
    over = {**TINY, "num-server-rounds": 3, "min-available-clients": 3, "shared-hallucinators": True,
            "results-path": str(tmp_path / "r.json")}
    results = run_server(grid, Context(run_id=4242, node_id=0, node_config={}, state=RecordDict(), run_config={}),
                         over)

    assert results["status"] == "ok"
    r1, r2, r3 = results["rounds"]
    assert r1["clients_sent"] == 1 and r1["shared_bank"]["phase"] == "bank"
    assert r1["accuracy"] is None and r2["accuracy"] is not None  # no model from the bank round alone
    assert r2["clients_sent"] == r3["clients_sent"] == 3 and r2["shared_bank"]["phase"] == "bases"
    assert r2["shared_bank"]["bank_id"] == r1["shared_bank"]["bank_id"] == r3["shared_bank"]["bank_id"]
    # round 1: the donor distils as usual; later rounds: bases only through the fixed bank, refined in round 3
    assert [c["bank"] for c in calls] == [False] + [True] * 6
    assert [c["resume"] for c in calls] == [False] * 4 + [True] * 3
    assert [c["iterations"] for c in calls] == [2, 2, 2, 2, 4, 4, 4]
    assert all(c["lr_h"] == 0.0 and c["bpc"] == r2["shared_bank"]["bpc"] for c in calls[1:])
    assert any(n.startswith("hallucinators.") for n in uploads[0])
    assert not any(n.startswith("hallucinators.") for u in uploads[1:] for n in u)
    assert not any(state.rglob("state.json"))
    # the bank travels down once per client per bases round, on top of the model
    bank_bytes = r2["shared_bank"]["bank_bytes_down_each"]
    assert bank_bytes > 0 and r2["bytes_down"] >= 3 * bank_bytes
    # every part of the global synthetic set composes through the same bank, within the per-client budget
    cfg = resolve_run_config(over)
    test = load_split("digits", "", "test")
    expect = expected_payload(cfg, test.image_shape, 10)
    assert r2["shared_bank"]["bpc"] == shared_bpc(
        budget_numbers=int(cfg["ipc"]) * 10 * 64, num_classes=10, basis_numel=expect.numbers[1],
        bank_numbers=r2["shared_bank"]["bank_numbers"], clients=3, extra=int(expect.learned_lr))
    assert r3["global_bases"] <= 3 * 10 * r2["shared_bank"]["bpc"]
    assert results["final_accuracy"] is not None


def test_bank_round_bytes_are_counted(tmp_path):
    grid = InProcessGrid(client_app, 2)
    over = {**TINY, "num-server-rounds": 2, "min-available-clients": 2, "shared-hallucinators": True,
            "refine": False}
    results = run_server(grid, Context(run_id=4242, node_id=0, node_config={}, state=RecordDict(), run_config={}),
                         over)
    r1, r2 = results["rounds"]
    assert r1["bytes_down"] == 0 and r1["bytes_up"] > 0 and len(r1["clients"]) == 1
    assert r2["bytes_down"] == 2 * r2["shared_bank"]["bank_bytes_down_each"]  # the bank only: no model yet
    assert len(r2["clients"]) == 2 and all(c["bytes_up"] < r1["clients"][0]["bytes_up"] * 2 for c in r2["clients"])
    assert array_record_bytes(ArrayRecord()) == 0
