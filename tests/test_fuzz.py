"""Issue 16: property-based fuzzing of the three parsers of untrusted input.

* the federated payload decoder (:func:`federated.payload.decode_payload`),
* ``meta.json`` + ``factorized.safetensors`` loading (:meth:`haba_core.FactorizedDataset.load`),
* configuration: TOML files and ``--set`` items (``haba_cl.distill_settings``) and the Flower run config.

Each generates malformed and extreme inputs and asserts that the parser either accepts them or raises
its specific exception — never anything else, never a hang (hypothesis ``deadline`` per example), and
never a file written. ``max_examples`` is small enough that the three together take seconds.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Array

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from federated.payload import ARRAYS_KEY, META_KEY, PayloadRejected, decode_payload, encode_payload, \
    expected_hallucinator_shapes  # noqa: E402
from federated.data_cache import load_split  # noqa: E402
from federated.expectation import expected_payload  # noqa: E402
from federated.model import preprocessor_for  # noqa: E402
from federated.run_config import resolve_run_config  # noqa: E402
from haba_core import ConfigError, FactorizedDataset, FormatError, HabaError, Preprocessor, SyntheticSet  # noqa: E402
from haba_core.factorized_dataset import META_FILE, TENSOR_FILE  # noqa: E402

FUZZ = settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
NUMBERS = (st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.lists(st.floats(allow_nan=True), max_size=3) | st.lists(st.integers(-10, 10), max_size=3))
DTYPES = st.sampled_from(["float32", "float64", "float16", "int64", "int32", "uint8", "bool"])


# ---------------------------------------------------------------------------------------------- payload
_CFG = resolve_run_config({"dataset": "digits", "hallucinators": 2, "net-width": 16, "net-depth": 2})
_PRE = preprocessor_for(load_split("digits", "", "test"))
_EXPECT = expected_payload(_CFG, (1, 8, 8), 10, _PRE)


def _valid_parts():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(_EXPECT.bpc)
    bases = torch.rand((len(labels), *_EXPECT.basis_shape), generator=g)
    synth = SyntheticSet(bases, labels, _EXPECT.image_shape, 10, _EXPECT.num_hallucinators, _EXPECT.hallucinator,
                         generator=g)
    fd = FactorizedDataset(synth, Preprocessor(tuple(_PRE.mean), tuple(_PRE.std)), [str(c) for c in range(10)])
    tensors = {k: v.clone() for k, v in fd.tensors().items()}
    assert set(expected_hallucinator_shapes(_EXPECT)) <= set(tensors)
    return tensors, fd.describe()


_TENSORS, _META = _valid_parts()


def _array(dtype: str, shape: tuple[int, ...], fill: float) -> Array:
    with np.errstate(all="ignore"):
        return Array(np.full(shape, fill).astype(dtype))


PAYLOAD_MUTATION = st.one_of(
    st.tuples(st.just("meta"), st.sampled_from(sorted(_META) + ["extra"]), JSON),
    st.tuples(st.just("metric"), st.sampled_from(["num-examples", "partition-id", "distill-seconds", "x"]), NUMBERS),
    st.tuples(st.just("array"), st.sampled_from(sorted(_TENSORS) + ["lr", "zca.mean", "evil"]),
              st.tuples(DTYPES, st.lists(st.integers(0, 12), min_size=0, max_size=4).map(tuple),
                        st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([3e38, -1e30, 1e6, 0.0]))),
    st.tuples(st.just("meta-raw"), st.just("json"), st.text(max_size=200)),
)


def _assert_nothing_written(before: set[str]) -> None:
    assert set(os.listdir(".")) == before


@FUZZ
@given(mutations=st.lists(PAYLOAD_MUTATION, min_size=1, max_size=3))
def test_payload_decoder_accepts_or_rejects_never_crashes(mutations):
    before = set(os.listdir("."))
    meta = copy.deepcopy(_META)
    content = encode_payload({k: v.clone() for k, v in _TENSORS.items()}, meta,
                             {"num-examples": 10, "partition-id": 0, "distill-seconds": 1.0})
    for kind, key, value in mutations:
        if kind == "meta":
            meta[key] = value
            content.config_records[META_KEY]["json"] = json.dumps(meta)
        elif kind == "meta-raw":
            content.config_records[META_KEY]["json"] = value
        elif kind == "metric":
            try:
                content.metric_records["metrics"][key] = value
            except (TypeError, ValueError):  # Flower itself cannot carry it: it never reaches a server
                assume(False)
        else:
            content.array_records[ARRAYS_KEY][key] = _array(*value)
    try:
        decoded = decode_payload(content, _EXPECT, _PRE)
    except PayloadRejected as exc:
        assert exc.reason
    else:  # whatever got through is safe to train on
        images, _ = decoded.result.materialize()
        assert bool(torch.isfinite(images).all())
    _assert_nothing_written(before)


# ---------------------------------------------------------------------------------------------- saved results
def _saved_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="haba-fuzz-"))
    synth = SyntheticSet(torch.rand(4, 1, 8, 8), torch.tensor([0, 0, 1, 1]), (1, 8, 8), 2, num_hallucinators=2)
    FactorizedDataset(synth, Preprocessor((0.5,), (0.25,)), ["a", "b"], {"dataset": "digits"}).save(root)
    return root


_SAVED = _saved_dir()
_SAVED_META = json.loads((_SAVED / META_FILE).read_text())
_SAVED_TENSORS = (_SAVED / TENSOR_FILE).read_bytes()

FILE_MUTATION = st.one_of(
    st.tuples(st.just("meta-key"), st.sampled_from(sorted(_SAVED_META)), JSON),
    st.tuples(st.just("meta-bytes"), st.just(""), st.binary(max_size=300)),
    st.tuples(st.just("tensor-flip"), st.integers(0, len(_SAVED_TENSORS) - 1), st.integers(1, 255)),
    st.tuples(st.just("tensor-truncate"), st.integers(0, len(_SAVED_TENSORS)), st.just(0)),
    st.tuples(st.just("tensor-header"), st.integers(0, 2**64 - 1), st.binary(max_size=64)),
)


@FUZZ
@given(mutation=FILE_MUTATION, verify=st.booleans(), drop_digest=st.booleans())
def test_loading_crafted_results_raises_format_error_only(mutation, verify, drop_digest):
    kind, key, value = mutation
    with tempfile.TemporaryDirectory(prefix="haba-fuzz-") as tmp:
        d = Path(tmp)
        meta = dict(_SAVED_META)
        if drop_digest:
            meta.pop("meta_sha256")
        meta_bytes = json.dumps(meta).encode()
        data = bytearray(_SAVED_TENSORS)
        if kind == "meta-key":
            meta[key] = value
            meta_bytes = json.dumps(meta).encode()
        elif kind == "meta-bytes":
            meta_bytes = value
        elif kind == "tensor-flip":
            data[key] ^= value
        elif kind == "tensor-truncate":
            data = data[:key]
        else:
            data = bytearray(int(key).to_bytes(8, "little") + value)
        (d / META_FILE).write_bytes(meta_bytes)
        (d / TENSOR_FILE).write_bytes(bytes(data))
        before = sorted(os.listdir(d))
        try:
            fd = FactorizedDataset.load(d, verify=verify)
        except FormatError as exc:
            assert str(exc)
        else:
            images, _ = fd.materialize()
            assert images.shape[1:] == fd.image_shape
        assert sorted(os.listdir(d)) == before


# ---------------------------------------------------------------------------------------------- configuration
from haba_cl.distill_settings import load_toml, resolve  # noqa: E402

KEYS = st.sampled_from(["ipc", "bpc", "iterations", "seed", "lr_bases", "momentum", "hallucinator.depth",
                        "dm.batch_real", "net_width", "eval_batch_size", "dataset", "objective", "nope",
                        "hallucinator", "zca", "mtt.syn_steps", "eval_lr", "threads"])
VALUES = st.one_of(st.text(max_size=30), st.integers(-2**70, 2**70).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.sampled_from(["nan", "inf", "-inf", "1e999", "[1, [2]]", "{a = 1}", "true", '"x"', "'", "\x00"]))
RUN_KEYS = st.sampled_from(["ipc", "alpha", "seed", "distill-overrides", "max-payload-bytes", "defence",
                            "defence-ratio", "num-server-rounds", "fraction-evaluate", "mode", "nope", "server-lr"])


@FUZZ
@given(items=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3), toml=st.binary(max_size=200),
       run_items=st.dictionaries(RUN_KEYS, JSON, min_size=1, max_size=3))
def test_configuration_parsers_raise_config_errors_only(items, toml, run_items):
    assignments = [f"{k}={v}" for k, v in items]
    try:
        resolve(None, assignments, {})
    except HabaError as exc:  # ConfigError, UnknownNameError, BudgetError
        assert str(exc)
    with tempfile.TemporaryDirectory(prefix="haba-fuzz-") as tmp:
        path = Path(tmp) / "c.toml"
        path.write_bytes(toml)
        try:
            load_toml(path)
        except ConfigError as exc:
            assert str(exc)
        assert os.listdir(tmp) == ["c.toml"]
    try:
        cfg = resolve_run_config(run_items)
        from federated.distill_settings import distill_config

        distill_config(cfg)
    except HabaError as exc:
        assert str(exc)
