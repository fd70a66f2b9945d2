"""Client and server apps driven directly with constructed Messages (no Ray, no network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp

import federated.client_app as client_mod
from federated.accounting import content_array_bytes, tensor_bytes
from federated.client_app import app as client_app
from federated.client_app import haba_train
from federated.client_common import local_evaluate
from federated.data_cache import load_split
from federated.expectation import expected_payload
from federated.in_process_grid import InProcessGrid, set_task_identity
from federated.model import build_model, evaluate_model, preprocessor_for, state_dict_cpu
from federated.partitioning import load_partition
from federated.payload import ARRAYS_KEY, decode_payload
from federated.run_config import client_config, resolve_run_config
from federated.server_app import run_server

TINY = {"dataset": "digits", "iterations": 2, "net-width": 16, "net-depth": 2, "batch-real": 32, "hallucinators": 2,
        "server-epochs": 3, "fraction-evaluate": 0.0, "wait-for-clients-s": 1.0}


@pytest.fixture(autouse=True)
def _identity():
    set_task_identity(4242)


def node_context(pid: int, n: int, **node_cfg) -> Context:
    return Context(run_id=4242, node_id=100 + pid, node_config={"partition-id": pid, "num-partitions": n, **node_cfg},
                   state=RecordDict(), run_config={})


def instruction(cfg, node_id: int, kind=MessageType.TRAIN, arrays: ArrayRecord | None = None, rnd: int = 1) -> Message:
    content = RecordDict({"config": ConfigRecord({**client_config(cfg), "server-round": rnd})})
    if arrays is not None:
        content["arrays"] = arrays
    return Message(content, dst_node_id=node_id, message_type=kind)


def server_context(cfg_overrides) -> Context:
    return Context(run_id=4242, node_id=0, node_config={}, state=RecordDict(), run_config=dict(cfg_overrides))


def test_train_handler_replies_with_a_valid_payload():
    cfg = resolve_run_config(TINY)
    reply = client_app(instruction(cfg, 100), node_context(0, 3))
    assert reply.has_content()
    train = load_partition(cfg, 0, 3)
    metrics = reply.content["metrics"]
    assert metrics["upload-bytes"] == content_array_bytes(reply.content)
    assert metrics["num-examples"] == len(train) and metrics["distill-seconds"] > 0
    test = load_split("digits", "", "test")
    decoded = decode_payload(reply.content, expected_payload(cfg, test.image_shape, 10), preprocessor_for(test))
    present = {c for c, k in enumerate(train.samples_per_class()) if k > 0}
    assert set(decoded.result.synthetic.labels.tolist()) == present  # bases of absent classes are not uploaded
    assert decoded.upload_bytes == tensor_bytes(decoded.tensors)


def test_evaluate_handler_reports_local_accuracy():
    cfg = resolve_run_config(TINY)
    model = build_model(cfg, (1, 8, 8), 10)
    msg = instruction(cfg, 101, MessageType.EVALUATE, ArrayRecord(state_dict_cpu(model)))
    reply = client_app(msg, node_context(1, 3))
    m = reply.content["metrics"]
    assert m["num-examples"] == len(load_partition(cfg, 1, 3, split="test"))
    assert 0.0 <= m["accuracy"] <= 1.0 and m["loss"] > 0  # a fraction, as Flower's apps report it


def test_fedavg_train_handler_returns_updated_model():
    cfg = resolve_run_config({**TINY, "mode": "fedavg"})
    model = build_model(cfg, (1, 8, 8), 10)
    before = state_dict_cpu(model)
    reply = client_app(instruction(cfg, 100, arrays=ArrayRecord(before)), node_context(0, 2))
    after = reply.content["arrays"].to_torch_state_dict()
    assert set(after) == set(before) and any(not torch.equal(after[k], before[k]) for k in before)
    assert reply.content["metrics"]["upload-bytes"] == tensor_bytes(before)


def _crashy_app() -> ClientApp:
    """Partition 1 crashes, partition 2 uploads labels out of range; the others behave."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        if pid == 1:
            raise RuntimeError("simulated client crash")
        reply = haba_train(msg, context)
        if pid == 2:
            labels = reply.content.array_records[ARRAYS_KEY]["labels"].numpy().copy()
            labels[0] = 99
            reply.content.array_records[ARRAYS_KEY]["labels"] = Array(labels)
        return reply

    app.evaluate()(local_evaluate)
    return app


def test_crashing_and_invalid_clients_do_not_stop_the_round(tmp_path):
    over = {**TINY, "min-available-clients": 4, "results-path": str(tmp_path / "r.json")}
    grid = InProcessGrid(_crashy_app(), 4)
    results = run_server(grid, server_context({}), over)
    assert results["status"] == "ok" and results["final_accuracy"] is not None
    r1 = results["rounds"][0]
    assert r1["clients_sent"] == 4 and r1["clients_valid"] == 2
    assert sorted(x["kind"] for x in r1["rejected"]) == ["client-error", "label-range"]
    assert any("simulated client crash" in x["reason"] for x in r1["rejected"])
    assert (tmp_path / "r.json").exists()


def test_too_few_valid_clients_skip_the_round():
    grid = InProcessGrid(_crashy_app(), 3)
    results = run_server(grid, server_context({}), {**TINY, "min-clients": 2, "min-available-clients": 3})
    r1 = results["rounds"][0]
    assert r1["skipped"] and r1["clients_valid"] == 1 and r1["accuracy"] is None
    assert results["status"] == "failed"


def spy_on_distill(monkeypatch, record) -> list:
    """Every client ``distill`` call, as ``record(config, keyword arguments)``, in call order."""
    calls = []
    real_distill = client_mod.distill

    def spy(train, config, **kw):
        calls.append(record(config, kw))
        return real_distill(train, config, **kw)

    monkeypatch.setattr(client_mod, "distill", spy)
    return calls


def test_few_rounds_refine_from_the_global_model_and_account_bytes(tmp_path, monkeypatch):
    calls = spy_on_distill(monkeypatch, lambda config, kw: {
        "resume": kw.get("resume"), "init": kw.get("network_init") is not None, "iterations": config.iterations})
    uploads: list[int] = []
    app = ClientApp()

    @app.train()
    def train(msg, context):
        reply = client_app(msg, context)
        uploads.append(sum(t.numel() * t.element_size()
                           for t in reply.content.array_records[ARRAYS_KEY].to_torch_state_dict().values()))
        return reply

    app.evaluate()(local_evaluate)
    state = tmp_path / "state"
    grid = InProcessGrid(app, 2, node_configs=[{"state-dir": str(state)}] * 2)
    over = {**TINY, "num-server-rounds": 2, "min-available-clients": 2, "fraction-evaluate": 1.0}
    results = run_server(grid, server_context({}), over)

    assert [c["resume"] for c in calls] == [False, False, True, True]
    assert [c["init"] for c in calls] == [False, False, True, True]
    assert [c["iterations"] for c in calls] == [2, 2, 4, 4]
    assert not any(state.rglob("state.json"))  # refinement checkpoints are removed after the last round

    cfg = resolve_run_config(over)
    model_bytes = tensor_bytes(state_dict_cpu(build_model(cfg, (1, 8, 8), 10)))
    r1, r2 = results["rounds"]
    assert r1["bytes_down"] == 0 and r1["bytes_up"] == sum(uploads[:2])
    assert r2["bytes_down"] == 2 * model_bytes and r2["bytes_up"] == sum(uploads[2:])
    assert r1["eval_bytes_down"] == r2["eval_bytes_down"] == 2 * model_bytes
    assert results["totals"]["bytes_total"] == sum(uploads) + 2 * model_bytes == r2["cumulative_bytes"]
    assert r1["accuracy"] is not None and r2["accuracy"] is not None and r2["client_accuracy"] is not None


def test_fedavg_mode_through_the_same_server_app(tmp_path):
    over = {**TINY, "mode": "fedavg", "num-server-rounds": 2, "min-available-clients": 2, "fraction-evaluate": 1.0,
            "results-path": str(tmp_path / "fedavg.json")}
    results = run_server(InProcessGrid(client_app, 2), server_context({}), over)
    cfg = resolve_run_config(over)
    model_bytes = tensor_bytes(state_dict_cpu(build_model(cfg, (1, 8, 8), 10)))
    assert results["mode"] == "fedavg" and results["status"] == "ok"
    for r in results["rounds"]:
        assert r["bytes_down"] == 2 * model_bytes and r["bytes_up"] == 2 * model_bytes
        assert r["accuracy"] is not None and r["client_accuracy"] is not None
    assert results["totals"]["bytes_total"] == 8 * model_bytes
    assert np.isfinite(results["final_accuracy"]) and 0.0 <= results["final_accuracy"] <= 1.0
    for r in results["rounds"]:  # upload-bytes is a total: summed over clients, not averaged
        assert r["client_train_metrics"]["upload-bytes"] == r["bytes_up"] == 2 * model_bytes
        assert r["client_train_metrics"]["num-examples"] > 0 and 0.0 <= r["client_accuracy"] <= 1.0
    # the final global model is saved next to the results (safetensors), and it is the model scored last
    from safetensors.torch import load_file

    model = build_model(cfg, (1, 8, 8), 10)
    model.load_state_dict(load_file(results["artifacts"]["model"]))
    test = load_split("digits", None, "test")
    acc, _ = evaluate_model(model, test, preprocessor_for(test))
    assert abs(acc / 100 - results["final_accuracy"]) < 1e-9 and "synthetic" not in results["artifacts"]


def test_haba_saves_the_global_model_and_synthetic_set_next_to_the_results(tmp_path):
    from safetensors import safe_open

    from haba_core import FactorizedCollection

    over = {**TINY, "min-available-clients": 2, "results-path": str(tmp_path / "haba.json"), "defence": "none"}
    results = run_server(InProcessGrid(client_app, 2), server_context({}), over)
    assert results["status"] == "ok"
    art = results["artifacts"]
    assert art == {"model": str(tmp_path / "haba-model.safetensors"), "synthetic": str(tmp_path / "haba-synthetic")}
    with safe_open(art["model"], "pt") as f:
        assert f.metadata()["format"] == "haba-fl-model/1" and f.metadata()["num_classes"] == "10"
    synthetic = FactorizedCollection.load(art["synthetic"])
    assert len(synthetic.parts) == 2 and len(synthetic) == results["rounds"][0]["global_bases"]
    r1 = results["rounds"][0]
    assert r1["client_train_metrics"]["upload-bytes"] == r1["bytes_up"] == sum(c["bytes_up"] for c in r1["clients"])


# ---------------------------------------------------------------------------------------------- issue 16
def _hostile_app(attacks: dict[int, str]) -> ClientApp:
    """Partition ``p`` applies ``attacks[p]`` to its honest reply (train and evaluate); the others behave."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        reply = haba_train(msg, context)
        arrays, attack = reply.content.array_records[ARRAYS_KEY], attacks.get(pid)
        if attack == "nan-metrics":
            reply.content.metric_records["metrics"]["partition-id"] = float("nan")
        elif attack == "list-metrics":
            reply.content.metric_records["metrics"]["num-examples"] = [1, 2]
        elif attack == "huge-hallucinator":
            arrays["hallucinators.dec_w0"] = Array(arrays["hallucinators.dec_w0"].numpy() * np.float32(1e30))
        elif attack == "huge-bases":
            bases = arrays["bases"].numpy().copy()
            bases[0] = 3e38
            arrays["bases"] = Array(bases)
        elif attack == "lr-in-dm":
            arrays["lr"] = Array(np.array([3e38], dtype=np.float32))
        elif attack == "flip":
            labels = arrays["labels"].numpy()
            arrays["labels"] = Array(((labels + 5) % 10).astype(np.int64))
        return reply

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        reply = local_evaluate(msg, context)
        if attacks.get(int(context.node_config["partition-id"])) == "nan-metrics":
            reply.content["metrics"]["accuracy"] = float("nan")
        if attacks.get(int(context.node_config["partition-id"])) == "list-metrics":
            reply.content["metrics"]["num-examples"] = [1, 2]
        return reply

    return app


def test_hostile_replies_are_rejected_and_the_round_goes_on(tmp_path):
    attacks = {1: "nan-metrics", 2: "list-metrics", 3: "huge-hallucinator", 4: "huge-bases", 5: "lr-in-dm"}
    over = {**TINY, "min-available-clients": 7, "fraction-evaluate": 1.0, "results-path": str(tmp_path / "r.json"),
            "defence": "none"}
    results = run_server(InProcessGrid(_hostile_app(attacks), 7), server_context({}), over)
    assert results["status"] == "ok" and np.isfinite(results["final_accuracy"])
    r1 = results["rounds"][0]
    assert r1["clients_valid"] == 2
    assert sorted(x["kind"] for x in r1["rejected"]) == ["magnitude", "magnitude", "metrics", "metrics",
                                                          "unexpected-array"]
    assert sorted(x["kind"] for x in r1["eval_rejected"]) == ["metrics", "metrics"]
    assert 0 <= r1["client_accuracy"] <= 1
    assert (tmp_path / "r.json").exists()


def test_the_sanity_defence_drops_a_label_flipping_client():
    # modest: at these tiny settings paper-pca (the digits default) leaves one honest client out of range
    over = {**TINY, "iterations": 10, "min-available-clients": 5, "partitioning": "iid", "recipe": "modest"}
    results = run_server(InProcessGrid(_hostile_app({2: "flip"}), 5), server_context({}), over)
    r1 = results["rounds"][0]
    assert [x["kind"] for x in r1["rejected"]] == ["sanity"]
    assert r1["clients_valid"] == 4 and all(c["sanity_score"] > 30 for c in r1["clients"])


def test_the_sanity_score_reuses_the_images_validation_composed(monkeypatch):
    from haba_core import FactorizedDataset
    from federated.defence import build_check, sanity_score, split_check

    cfg = resolve_run_config(TINY)
    reply = client_app(instruction(cfg, 100), node_context(0, 3))
    test = load_split("digits", "", "test")
    decoded = decode_payload(reply.content, expected_payload(cfg, test.image_shape, 10), preprocessor_for(test))
    images, labels = decoded.result.materialize()
    assert torch.equal(decoded.composed[0], images) and torch.equal(decoded.composed[1], labels)
    check = build_check(split_check(test, 5, 0)[0], preprocessor_for(test))
    assert sanity_score(decoded.result, check, decoded.composed) == sanity_score(decoded.result, check)

    calls = []
    real = FactorizedDataset.materialize
    monkeypatch.setattr(FactorizedDataset, "materialize", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    over = {**TINY, "min-available-clients": 3, "partitioning": "iid", "defence": "score"}
    results = run_server(InProcessGrid(client_app, 3), server_context({}), over)
    assert results["rounds"][0]["clients_valid"] == 3
    assert len(calls) == 3  # once per client: validation's composition feeds the sanity score


def test_a_non_finite_global_model_fails_the_run(monkeypatch):
    import federated.server_app as server_mod

    def poison(net, *args, **kwargs):
        with torch.no_grad():
            next(net.parameters()).fill_(float("nan"))
        return net

    monkeypatch.setattr(server_mod, "train_on_synthetic", poison)
    results = run_server(InProcessGrid(client_app, 2), server_context({}), {**TINY, "min-available-clients": 2})
    assert results["status"] == "failed" and "non-finite" in results["rounds"][0]["failed"]
    assert results["errors"]


def test_fedavg_rejects_a_poisoned_model_upload():
    app = ClientApp()

    @app.train()
    def train(msg, context):
        reply = client_app(msg, context)
        if int(context.node_config["partition-id"]) == 1:
            rec = reply.content["arrays"]
            name = next(iter(rec.keys()))
            rec[name] = Array(rec[name].numpy() * np.float32(1e30))
        return reply

    app.evaluate()(local_evaluate)
    over = {**TINY, "mode": "fedavg", "min-available-clients": 3, "fraction-evaluate": 0.0}
    results = run_server(InProcessGrid(app, 3), server_context({}), over)
    r1 = results["rounds"][0]
    assert results["status"] == "ok" and r1["clients_valid"] == 2
    assert [x["kind"] for x in r1["rejected"]] == ["invalid-reply"]


def test_the_check_set_never_takes_more_than_half_of_a_class():
    from federated.defence import split_check

    test = load_split("digits", "", "test")
    small = test.subset(torch.arange(30))
    check, rest = split_check(small, 10, 0)
    assert len(check) + len(rest) == 30 and len(rest) >= 15
    counts = torch.bincount(check.labels, minlength=10)
    assert all(int(counts[c]) <= int((small.labels == c).sum()) // 2 for c in range(10))


def test_fedavg_model_does_not_depend_on_the_order_flower_samples_nodes_in(tmp_path):
    """Flower samples nodes with the global ``random``; the same seed must still give the same model."""
    import random

    from safetensors.torch import load_file

    models = []
    for k, py_seed in enumerate((1, 7)):
        random.seed(py_seed)
        over = {**TINY, "mode": "fedavg", "num-server-rounds": 1, "min-available-clients": 3,
                "results-path": str(tmp_path / f"r{k}" / "fedavg.json")}
        results = run_server(InProcessGrid(client_app, 3), server_context({}), over)
        models.append(load_file(results["artifacts"]["model"]))
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])
