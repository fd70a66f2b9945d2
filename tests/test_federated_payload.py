"""Federated payload: bit-exact round trip, every rejection with its reason, byte accounting, partitioning."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from haba_core import ConfigError, DistillConfig, distill
from federated.accounting import CommLedger, array_record_bytes, content_array_bytes, tensor_bytes
from federated.payload import ARRAYS_KEY, META_KEY, REJECTION_KINDS, PayloadRejected, decode_payload, encode_payload
from federated.conversion import drop_classes
from federated.data_cache import load_split
from federated.distill_settings import distill_config
from federated.expectation import expected_payload
from federated.model import preprocessor_for
from federated.partitioning import load_partition, partition_indices
from federated.run_config import DEFAULT_RUN_CONFIG, DEPRECATED_KEYS, resolve_run_config

ROOT = Path(__file__).resolve().parent.parent
TINY = {"dataset": "digits", "iterations": 2, "net-width": 16, "net-depth": 2, "batch-real": 32, "hallucinators": 2}


@pytest.fixture(scope="module")
def cfg():
    return resolve_run_config(TINY)


@pytest.fixture(scope="module")
def result(cfg):
    train = load_partition(cfg, 0, 3)
    return distill(train, distill_config(cfg, seed=3), preprocessor=preprocessor_for(train))


@pytest.fixture(scope="module")
def pre():
    return preprocessor_for(load_split("digits", "", "test"))


@pytest.fixture(scope="module")
def expect(cfg, pre):
    return expected_payload(cfg, (1, 8, 8), 10, pre)


def parts(result):
    return {k: v.clone() for k, v in result.tensors().items()}, copy.deepcopy(result.describe())


def test_round_trip_is_bit_exact(result, expect, pre):
    tensors, meta = parts(result)
    content = encode_payload(tensors, meta, {"num-examples": 7})
    decoded = decode_payload(content, expect, pre)
    assert set(decoded.tensors) == set(tensors)
    for name, t in tensors.items():
        got = decoded.tensors[name]
        assert got.dtype == t.dtype and got.shape == t.shape
        if t.dtype == torch.float32:
            assert torch.equal(got.view(torch.int32), t.view(torch.int32)), name
        else:
            assert torch.equal(got, t), name
    again = decoded.result.tensors()
    for name, t in tensors.items():
        assert torch.equal(again[name], t)
    x0, y0 = result.materialize()
    x1, y1 = decoded.result.materialize()
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert decoded.result.preprocessor.zca is None
    assert decoded.metrics["num-examples"] == 7


def test_dropped_classes_still_decode(result, expect, pre):
    keep = torch.zeros(10, dtype=torch.bool)
    keep[[1, 4, 7]] = True
    tensors, meta = drop_classes(result, keep)
    decoded = decode_payload(encode_payload(tensors, meta), expect, pre)
    labels = decoded.result.synthetic.labels.tolist()
    per_class = result.synthetic.num_bases // 10
    assert sorted(labels) == sorted([1, 4, 7] * per_class)


def _set_array(content, name, array):
    content.array_records[ARRAYS_KEY][name] = array


def _mutations():
    """case -> (mutate(tensors, meta) before encoding | "cap" | None, post(content) after encoding | None)."""
    m = {}
    m["missing-record"] = (None, lambda c: c.__delitem__(ARRAYS_KEY))
    m["missing-record/bases"] = (lambda ts, me: ts.pop("bases"), None)
    m["bad-meta/format"] = (None, lambda c: c.config_records[META_KEY].__setitem__("format", "other/9"))
    m["bad-meta/json"] = (None, lambda c: c.config_records[META_KEY].__setitem__("json", "{not json"))
    m["bad-meta/field"] = (lambda ts, me: me.pop("num_bases"), None)
    m["too-large"] = ("cap", None)
    m["unexpected-array"] = (lambda ts, me: ts.__setitem__("evil", torch.zeros(3)), None)
    m["zca"] = (lambda ts, me: ts.__setitem__("zca.mean", torch.zeros(64)), None)
    m["dtype/bases"] = (lambda ts, me: ts.__setitem__("bases", ts["bases"].double()), None)
    m["dtype/labels"] = (lambda ts, me: ts.__setitem__("labels", ts["labels"].int()), None)
    m["undecodable"] = (None, lambda c: _set_array(c, "bases", Array(dtype="float32", shape=tuple(
        c.array_records[ARRAYS_KEY]["bases"].shape), stype="numpy.ndarray", data=b"\x93NUMPY garbage")))
    m["undecodable/shape"] = (None, lambda c: _set_array(c, "bases", Array(dtype="float32", shape=(99, 1, 8, 8),
                                                                           stype="numpy.ndarray",
                                                                           data=c.array_records[ARRAYS_KEY]["bases"].data)))
    m["non-finite/bases"] = (lambda ts, me: ts["bases"].view(-1).__setitem__(0, float("nan")), None)
    m["non-finite/hallucinator"] = (lambda ts, me: ts["hallucinators.sigma"].view(-1).__setitem__(0, float("inf")),
                                    None)
    m["image-shape"] = (lambda ts, me: me.__setitem__("image_shape", [1, 16, 16]), None)
    m["num-classes"] = (lambda ts, me: (me.__setitem__("num_classes", 11), me["classes"].append("x")), None)
    m["parameterization"] = (lambda ts, me: me.__setitem__("parameterization", "plain"), None)
    m["hallucinator-config/depth"] = (lambda ts, me: me["hallucinator"].__setitem__("depth", 2), None)
    m["hallucinator-config/count"] = (lambda ts, me: me.__setitem__("num_hallucinators", 5), None)
    m["shape/basis"] = (lambda ts, me: me.__setitem__("basis_shape", [1, 3, 3]), None)  # bases are 4×4 or 8×8
    m["shape/bases"] = (lambda ts, me: ts.__setitem__("bases", ts["bases"][:, :, :-1, :-1].contiguous()), None)
    m["shape/labels"] = (lambda ts, me: ts.__setitem__("labels", ts["labels"][:-1].contiguous()), None)
    m["hallucinator-shape/missing"] = (lambda ts, me: ts.pop("hallucinators.mu"), None)
    m["hallucinator-shape/shape"] = (lambda ts, me: ts.__setitem__("hallucinators.mu", ts["hallucinators.mu"][:1]),
                                     None)
    m["label-range"] = (lambda ts, me: ts["labels"].__setitem__(0, 10), None)
    m["label-range/negative"] = (lambda ts, me: ts["labels"].__setitem__(0, -1), None)
    m["budget"] = (lambda ts, me: ts["labels"].fill_(3), None)
    m["lr"] = (lambda ts, me: ts.__setitem__("lr", torch.tensor([-1.0])), None)
    m["lr/huge"] = (lambda ts, me: ts.__setitem__("lr", torch.tensor([3e38])), None)
    # issue 16: hostile but well-formed replies
    m["unexpected-array/lr-in-dm"] = (lambda ts, me: ts.__setitem__("lr", torch.tensor([0.01])), None)
    m["metrics/nan"] = (None, lambda c: c.metric_records["metrics"].__setitem__("num-examples", float("nan")))
    m["metrics/inf"] = (None, lambda c: c.metric_records["metrics"].__setitem__("partition-id", float("inf")))
    m["metrics/list"] = (None, lambda c: c.metric_records["metrics"].__setitem__("num-examples", [1, 2]))
    m["metrics/negative"] = (None, lambda c: c.metric_records["metrics"].__setitem__("distill-seconds", -5.0))
    m["too-large/meta"] = ("meta-cap", None)
    m["magnitude/hallucinator"] = (lambda ts, me: ts["hallucinators.dec_w0"].mul_(1e30), None)
    m["magnitude/bases"] = (lambda ts, me: ts["bases"].view(-1).__setitem__(0, 3e38), None)
    m["composed-range"] = (lambda ts, me: (ts["hallucinators.sigma"].fill_(150.0), ts["bases"].fill_(150.0)), None)
    m["bad-meta/overflow"] = (lambda ts, me: me.__setitem__("num_bases", 1e400), None)
    return m


MUTATIONS = _mutations()


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_every_invalid_payload_is_rejected_with_its_reason(case, result, expect, pre):
    kind = case.split("/")[0]
    assert kind in REJECTION_KINDS
    mutate, post = MUTATIONS[case]
    tensors, meta = parts(result)
    if callable(mutate):
        mutate(tensors, meta)
    content = encode_payload(tensors, meta)
    if post is not None:
        post(content)
    exp = expect
    from dataclasses import replace

    if mutate == "cap":
        exp = replace(expect, max_bytes=tensor_bytes(tensors) - 1)
    if mutate == "meta-cap":  # the metadata JSON counts toward the cap
        content.config_records[META_KEY]["json"] = content.config_records[META_KEY]["json"][:-1] + ', "x": "' + \
            "a" * 4096 + '"}'
        exp = replace(expect, max_bytes=tensor_bytes(tensors) + 4096)
    if case.startswith("lr"):  # an objective that learns its lr (MTT)
        exp = replace(exp, learned_lr=True)
    with pytest.raises(PayloadRejected) as info:
        decode_payload(content, exp, pre)
    assert info.value.kind == kind, (case, info.value)
    assert info.value.reason and len(info.value.reason) > 10


def test_every_rejection_kind_is_exercised():
    tested = {case.split("/")[0] for case in MUTATIONS}
    # client-error: tests/test_federated_apps.py; format: the last-resort FormatError from from_tensors;
    # bank: tests/test_federated_shared_bank.py (needs a shared bank)
    assert set(REJECTION_KINDS) - tested == {"client-error", "format", "sanity", "bank"}


def test_bytes_accounting_equals_array_sizes(result):
    tensors, meta = parts(result)
    expected = sum(t.numel() * t.element_size() for t in tensors.values())
    assert tensor_bytes(tensors) == expected
    content = encode_payload(tensors, meta)
    assert content["metrics"]["upload-bytes"] == expected
    assert array_record_bytes(content.array_records[ARRAYS_KEY]) == expected
    assert content_array_bytes(content) == expected
    # the wire form is the raw arrays plus small .npy headers
    wire = sum(len(a.data) for a in content.array_records[ARRAYS_KEY].values())
    assert expected < wire < expected + 200 * len(tensors)
    model = torch.nn.Linear(5, 3)
    rec = ArrayRecord(model.state_dict())
    assert array_record_bytes(rec) == (5 * 3 + 3) * 4


def test_ledger_sums_per_round_and_client():
    led = CommLedger()
    led.add(1, "a", "up", 100)
    led.add(1, "b", "up", 50)
    led.add(2, "a", "down", 1000)
    led.add(2, "a", "up", 100)
    led.add(2, "a", "down", 7, "evaluate")
    r2 = led.round_summary(2)
    assert r2["bytes_up"] == 100 and r2["bytes_down"] == 1000 and r2["eval_bytes_down"] == 7
    assert r2["per_client"] == {"a": {"bytes_up": 100, "bytes_down": 1000}}
    assert led.totals() == {"bytes_up": 250, "bytes_down": 1000, "bytes_total": 1250, "eval_bytes_down": 7,
                            "eval_bytes_up": 0}
    assert led.cumulative_total(1) == 150 and led.cumulative_total(2) == 1250


@pytest.mark.parametrize("scheme,alpha", [("iid", 1.0), ("dirichlet", 0.5), ("dirichlet", 0.05)])
def test_partitions_are_disjoint_exhaustive_and_deterministic(scheme, alpha):
    labels = load_split("digits", "", "train").labels
    a = partition_indices(labels, 7, scheme, alpha, seed=3, num_classes=10)
    b = partition_indices(labels, 7, scheme, alpha, seed=3, num_classes=10)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    allidx = torch.cat(a)
    assert allidx.numel() == labels.numel() and torch.unique(allidx).numel() == labels.numel()
    assert min(p.numel() for p in a) >= 1


def test_small_alpha_skews_labels():
    labels = load_split("digits", "", "train").labels

    def classes_per_part(alpha):
        ps = partition_indices(labels, 10, "dirichlet", alpha, seed=0, num_classes=10)
        return np.mean([len(set(labels[p].tolist())) for p in ps])

    assert classes_per_part(0.05) < classes_per_part(100.0)
    assert classes_per_part(100.0) >= 9


def test_config_validation():
    with pytest.raises(ConfigError):
        resolve_run_config({"alpha": 0})
    with pytest.raises(ConfigError):
        resolve_run_config({"mode": "fedprox"})
    with pytest.raises(ConfigError):
        resolve_run_config({"no-such-key": 1})
    with pytest.raises(ConfigError, match="ZCA"):
        distill_config(resolve_run_config({"distill-overrides": json.dumps({"zca": True})}))
    cfg = resolve_run_config({"distill-overrides": json.dumps({"lambda_cos": 0.0, "dm": {"batch_real": 8}})})
    d = distill_config(cfg)
    assert isinstance(d, DistillConfig) and d.lambda_cos == 0.0 and d.dm.batch_real == 8 and not d.zca


def test_client_distillation_starts_from_the_run_configs_recipe():
    from haba_core import UnknownNameError

    modest = distill_config(resolve_run_config({"dataset": "mnist"}))  # the default recipe off the 8x8 digits
    assert (modest.parameterization, modest.hallucinator_optimizer, modest.lr_hallucinators) == ("idc-haba", "adam", 1e-4)
    assert modest.hallucinator.affine_stride == 2 and modest.lambda_cos == 0.0
    pca = distill_config(resolve_run_config({}))  # the app's default dataset, digits: paper-pca (issue 17)
    assert (pca.parameterization, pca.hallucinator.init, pca.hallucinator_lr_rule) == ("haba", "pca", "dm-scaled")
    paper = distill_config(resolve_run_config({"recipe": "paper"}))
    assert (paper.parameterization, paper.hallucinator_optimizer, paper.lambda_cos) == ("haba", "sgd", 0.1)
    mine = distill_config(resolve_run_config({"recipe": "modest", "parameterization": "haba", "hallucinator-depth": 2}))
    assert mine.parameterization == "haba" and mine.hallucinator.depth == 2 and mine.hallucinator.affine_stride == 2
    with pytest.raises(UnknownNameError):
        resolve_run_config({"recipe": "turbo"})


def test_federated_task_keeps_the_documented_import_path():
    import federated.task as task
    from federated import distill_settings, model, partitioning, run_config

    assert all(hasattr(task, name) for name in task.__all__)
    assert task.build_model is model.build_model and task.distill_config is distill_settings.distill_config
    assert task.partition_indices is partitioning.partition_indices
    assert task.DEFAULT_RUN_CONFIG is run_config.DEFAULT_RUN_CONFIG


def test_pyproject_flower_app_section_matches_defaults():
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    flwr = doc["tool"]["flwr"]
    assert "federations" not in flwr
    app = flwr["app"]
    assert app["publisher"]
    assert app["components"] == {"serverapp": "federated.server_app:app", "clientapp": "federated.client_app:app"}
    # every key, plus the deprecated names as "" (not given) so that `flwr run --run-config` still takes them
    assert app["config"] == {**DEFAULT_RUN_CONFIG, **{old: "" for old in DEPRECATED_KEYS}}
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    from federated import client_app, server_app

    assert isinstance(server_app.app, ServerApp) and isinstance(client_app.app, ClientApp)


# ---------------------------------------------------------------------------------------------- issue 17
def test_recipe_defaults_come_from_one_rule_in_haba_core():
    from haba_cl.fl_cli import build_parser, run_config_overrides
    from haba_core.distillation.recipes import default_recipe_for

    for name, expected in [("digits", "paper-pca"), ("split-digits", "paper-pca"), ("mnist", "modest"),
                           ("cifar100", "modest"), ("imagefolder:/x.tar.gz", "modest"), (None, "modest")]:
        assert default_recipe_for(name) == expected
    assert default_recipe_for("digits", digits_profile=True) == "paper"
    # the Flower app's "" means the dataset's default; an explicit recipe wins; the CLI leaves it to the app
    assert resolve_run_config({})["recipe"] == "paper-pca"
    assert resolve_run_config({"dataset": "mnist"})["recipe"] == "modest"
    assert resolve_run_config({"recipe": "", "dataset": "cifar10"})["recipe"] == "modest"
    assert resolve_run_config({"recipe": "paper"})["recipe"] == "paper"
    args = build_parser().parse_args(["--dataset", "digits"])
    assert resolve_run_config(run_config_overrides(args, "haba"))["recipe"] == "paper-pca"


def test_flower_quickstart_key_names_and_deprecated_aliases(caplog):
    import federated.run_config as run_config

    assert {"learning-rate", "batch-size", "local-epochs", "num-server-rounds", "fraction-evaluate",
            "server-learning-rate", "bases-learning-rate"} <= set(DEFAULT_RUN_CONFIG)
    assert not set(DEPRECATED_KEYS) & set(DEFAULT_RUN_CONFIG)
    run_config._WARNED.clear()
    with caplog.at_level("WARNING", logger="flwr.haba"):
        cfg = resolve_run_config({"local-lr": 0.05, "local-batch-size": 8, "server-lr": "0.2", "lr-bases": 3})
        resolve_run_config({"local-lr": 0.07})  # warned once per process
    assert (cfg["learning-rate"], cfg["batch-size"], cfg["server-learning-rate"], cfg["bases-learning-rate"]) == \
        (0.05, 8, 0.2, 3.0)
    warned = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warned) == 4 and all("\n" not in m for m in warned)
    assert any("'local-lr'" in m and "'learning-rate'" in m for m in warned)
    # "" (pyproject's value for the old names) means not given; a later layer's new name still wins
    assert resolve_run_config({"local-lr": "", "learning-rate": 0.3})["learning-rate"] == 0.3
    assert resolve_run_config({"local-lr": 0.05}, {"learning-rate": 0.4})["learning-rate"] == 0.4
    with pytest.raises(ConfigError):
        resolve_run_config({"local-lr": "fast"})
    assert distill_config(resolve_run_config({"lr-bases": 0.5})).lr_bases == 0.5


def test_client_metrics_use_flowers_weighted_mean_and_sum_upload_bytes():
    from flwr.app import MetricRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

    from federated.metric_aggregation import aggregate_client_metrics

    def rec(n, acc, up):
        return RecordDict({"metrics": MetricRecord({"num-examples": n, "accuracy": acc, "upload-bytes": up})})

    records = [rec(10, 0.5, 1000), rec(30, 0.9, 3000), rec(0, 0.0, 7)]
    out = aggregate_client_metrics(records, "num-examples")
    flower = aggregate_metricrecords(records[:2], "num-examples")
    assert out["accuracy"] == flower["accuracy"] == pytest.approx(0.8)
    assert out["upload-bytes"] == 4007 and out["num-examples"] == 40
    empty = aggregate_client_metrics([rec(0, 0.0, 5)], "num-examples")
    assert dict(empty) == {"num-examples": 0, "upload-bytes": 5}


def test_a_factorized_collection_saves_and_loads_bit_exactly(result, tmp_path):
    from haba_core import FactorizedCollection
    from haba_core.errors import FormatError

    coll = FactorizedCollection([result, result])
    coll.save(tmp_path / "c", labels=[{"node": 1}, {"node": 2}])
    back = FactorizedCollection.load(tmp_path / "c")
    assert len(back.parts) == 2 and len(back) == len(coll)
    for a, b in zip(coll.parts, back.parts):
        for k, t in a.tensors().items():
            assert torch.equal(t.cpu(), b.tensors()[k].cpu())
    doc = json.loads((tmp_path / "c" / "collection.json").read_text())
    assert [p["node"] for p in doc["parts"]] == [1, 2]
    doc["parts"][0]["dir"] = "../elsewhere"
    (tmp_path / "c" / "collection.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError):
        FactorizedCollection.load(tmp_path / "c")


def test_flwr_run_still_takes_the_deprecated_names():
    """`flwr run --run-config` only takes keys declared in pyproject: the old names are, as "" (not given)."""
    from flwr.common.config import flatten_dict, fuse_dicts

    from federated.run_config import known_keys

    declared = flatten_dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"])
    run_config = fuse_dicts(declared, {"local-lr": 0.05, "num-server-rounds": 2}, check_keys=True)
    cfg = resolve_run_config(known_keys(run_config))
    assert cfg["learning-rate"] == 0.05 and cfg["batch-size"] == 32 and cfg["num-server-rounds"] == 2
    assert resolve_run_config(known_keys(declared)) == resolve_run_config({})
