"""The HaBa client payload: encoding into a Flower ``RecordDict`` and strict validation on the server.

Layout of a train reply's content::

    "haba.arrays"  ArrayRecord   bases, labels, hallucinators.<name>..., optional lr
                                 (exactly the names of ``FactorizedDataset.tensors()``)
    "haba.meta"    ConfigRecord  {"format": "haba-fl-payload/1", "json": <FactorizedDataset.describe()>}
    "metrics"      MetricRecord  num-examples, upload-bytes, distill-seconds, partition-id, num-bases

The server trusts nothing in it. :func:`decode_payload` checks, in this order, and raises
:class:`PayloadRejected` with a ``kind`` and a human-readable ``reason`` at the first failure:

``missing-record`` · ``metrics`` · ``too-large`` (arrays and metadata JSON together) · ``bad-meta`` ·
``unexpected-array`` (including ``lr`` when the objective learns none) · ``zca`` · ``dtype`` ·
``undecodable`` · ``non-finite`` · ``magnitude`` · ``image-shape`` · ``num-classes`` · ``parameterization`` ·
``hallucinator-config`` · ``shape`` · ``hallucinator-shape`` · ``label-range`` · ``budget`` · ``lr`` ·
``bank`` (a bases-only upload declaring another shared bank than the server's) · ``format`` (anything
``FactorizedDataset.from_tensors`` still refuses) · ``composed-range``; the server
adds ``client-error`` and ``sanity`` (:mod:`federated.defence`).

Value bounds derive from the data's value range (``PayloadExpectation.value_span``, the largest ``|x|`` of a
normalised real pixel): uploaded floats must satisfy ``|v| <= ARRAY_BOUND * span`` and every composed
image ``|x| <= COMPOSED_BOUND * span``, so finite-but-huge uploads cannot turn the global model into NaN.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from torch import Tensor

from haba_core import FactorizedDataset, FormatError, HallucinatorBank, HallucinatorConfig, Preprocessor

from .accounting import array_bytes, tensor_bytes
from .metrics_check import TRAIN_METRICS, MetricsRejected, check_metrics
from .conversion import to_factorized
from .expectation import PayloadExpectation
from .shared_bank import bank_id

PAYLOAD_FORMAT = "haba-fl-payload/1"
ARRAYS_KEY = "haba.arrays"
META_KEY = "haba.meta"
METRICS_KEY = "metrics"

REJECTION_KINDS = ("client-error", "missing-record", "metrics", "bad-meta", "too-large", "unexpected-array", "zca",
                   "dtype", "undecodable", "non-finite", "magnitude", "image-shape", "num-classes", "parameterization",
                   "hallucinator-config", "shape", "hallucinator-shape", "label-range", "budget", "lr", "bank", "format",
                   "composed-range", "sanity")

ARRAY_BOUND = 100.0
"""Uploaded bases and hallucinator weights must satisfy ``|v| <= ARRAY_BOUND * value_span``."""
COMPOSED_BOUND = 10.0
"""Composed images must satisfy ``|x| <= COMPOSED_BOUND * value_span`` (honest ones stay near 1×)."""
LR_MAX = 1.0
"""Largest learned learning rate accepted (MTT learns ~0.01)."""

_FLOAT_KEYS_PREFIX = "hallucinators."
# HallucinatorConfig fields that change the shape or meaning of the hallucinator weights.
_SHAPE_FIELDS = ("depth", "channels", "activation", "padding")


class PayloadRejected(Exception):
    """A client payload that the server refuses; ``kind`` is one of :data:`REJECTION_KINDS`."""

    def __init__(self, kind: str, reason: str):
        assert kind in REJECTION_KINDS, kind
        self.kind, self.reason = kind, reason
        super().__init__(f"{kind}: {reason}")


@dataclass
class DecodedPayload:
    result: FactorizedDataset
    tensors: dict[str, Tensor]
    meta: dict[str, Any]
    upload_bytes: int
    metrics: dict[str, Any]
    composed: tuple[Tensor, Tensor] | None = None
    """Every basis through every hallucinator (images, labels), as checked; reused by the sanity score."""


# ---------------------------------------------------------------------------------------------- encode
def encode_payload(tensors: Mapping[str, Tensor], meta: Mapping[str, Any],
                   metrics: Mapping[str, int | float] | None = None) -> RecordDict:
    """A train reply's content from ``FactorizedDataset.tensors()``-style tensors and ``describe()`` metadata.

    ``metrics`` gets ``upload-bytes`` (the arrays' raw size) added.
    """
    arrays = ArrayRecord()
    for name, t in tensors.items():
        arrays[name] = Array(t.detach().cpu().contiguous().numpy())
    meta_rec = ConfigRecord({"format": PAYLOAD_FORMAT, "json": json.dumps(dict(meta), default=_json_default)})
    m = dict(metrics or {})
    m["upload-bytes"] = tensor_bytes(tensors)
    return RecordDict({ARRAYS_KEY: arrays, META_KEY: meta_rec, METRICS_KEY: MetricRecord(m)})


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, tuple):
        return list(obj)
    return str(obj)


# ---------------------------------------------------------------------------------------------- decode
@lru_cache(maxsize=16)
def _hallucinator_shapes(count: int, in_channels: int, out_channels: int, size: tuple[int, int],
                         config_items: tuple[tuple[str, Any], ...]) -> dict[str, tuple[int, ...]]:
    bank = HallucinatorBank(count, in_channels, out_channels, size, HallucinatorConfig(**dict(config_items)))
    return {f"hallucinators.{k}": tuple(p.shape) for k, p in bank.named_parameters()}


def expected_hallucinator_shapes(expect: PayloadExpectation) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the hallucinator tensors a valid payload carries (empty if not factorized, or
    bases only through a shared bank)."""
    if expect.num_hallucinators == 0 or expect.shared_bank:
        return {}
    count = expect.num_hallucinators * (expect.num_classes if expect.per_class_hallucinators else 1)
    cfg = tuple(sorted({**asdict(expect.hallucinator), "init": "random"}.items()))  # shapes ignore init
    return _hallucinator_shapes(count, expect.basis_shape[0], expect.image_shape[0],
                                tuple(expect.image_shape[1:]), cfg)


def decode_payload(content: RecordDict, expect: PayloadExpectation, preprocessor: Preprocessor,
                   bank: Mapping[str, Tensor] | None = None, bank_fingerprint: str | None = None) -> DecodedPayload:
    """Validate a train reply's content against ``expect`` and rebuild the client's factorized dataset.

    The result uses ``preprocessor`` (the server's dataset normalisation), whatever the client declared.
    With ``expect.shared_bank`` the upload carries bases only; ``bank`` (the server's shared bank, tensors
    named ``hallucinators.<k>``) composes them, and the payload's ``bank_id`` must be that bank's
    (``bank_fingerprint``: its :func:`~federated.shared_bank.bank_id`, computed here when not given).
    Raises :class:`PayloadRejected`.
    """
    if expect.shared_bank and not bank:
        raise ValueError("a bases-only expectation needs the server's shared bank")
    # -- records
    if ARRAYS_KEY not in content.array_records or META_KEY not in content.config_records:
        raise PayloadRejected("missing-record", f"reply lacks the {ARRAYS_KEY!r} ArrayRecord or the {META_KEY!r} "
                                                f"ConfigRecord (has {sorted(content.keys())})")
    arrays: ArrayRecord = content.array_records[ARRAYS_KEY]
    try:
        metrics = check_metrics(dict(content.metric_records[METRICS_KEY]) if METRICS_KEY in content.metric_records
                                else {}, TRAIN_METRICS)
    except MetricsRejected as exc:
        raise PayloadRejected("metrics", str(exc)) from None

    # -- size cap (arrays and the metadata JSON), before decoding anything
    try:
        declared = {name: array_bytes(a) for name, a in arrays.items()}
    except (TypeError, ValueError) as exc:
        raise PayloadRejected("dtype", f"an array declares an unknown dtype ({exc})") from None
    raw_meta = content.config_records[META_KEY].get("json")
    meta_bytes = len(raw_meta.encode("utf-8", "surrogatepass")) if isinstance(raw_meta, str) else 0
    total = sum(declared.values()) + meta_bytes
    wire = sum(len(a.data) for a in arrays.values()) + meta_bytes
    if max(total, wire) > expect.max_bytes:
        raise PayloadRejected("too-large", f"payload has {max(total, wire):,} bytes (metadata {meta_bytes:,}), "
                                           f"the cap is {expect.max_bytes:,}")
    meta = _parse_meta(content.config_records[META_KEY])

    # -- names
    names = set(arrays.keys())
    if any(n.startswith("zca.") for n in names) or meta.get("zca"):
        raise PayloadRejected("zca", "ZCA-whitened payloads are not accepted in federated mode")
    allowed = {"bases", "labels"} | ({"lr"} if expect.learned_lr else set()) | set(expected_hallucinator_shapes(expect))
    unknown = sorted(n for n in names - allowed if not n.startswith(_FLOAT_KEYS_PREFIX))
    if unknown:
        raise PayloadRejected("unexpected-array", f"unexpected arrays {unknown}")
    for required in ("bases", "labels"):
        if required not in names:
            raise PayloadRejected("missing-record", f"payload lacks the {required!r} array")

    # -- dtypes (declared), then decode and compare with the declaration
    for name, a in arrays.items():
        want = "int64" if name == "labels" else "float32"
        if a.dtype != want:
            raise PayloadRejected("dtype", f"array {name!r} is {a.dtype}, expected {want}")
    tensors: dict[str, Tensor] = {}
    for name, a in arrays.items():
        try:
            nd = a.numpy()
        except Exception as exc:  # noqa: BLE001 - any decoding failure of untrusted bytes is a rejection
            raise PayloadRejected("undecodable", f"array {name!r} cannot be decoded ({type(exc).__name__}: {exc})") from None
        if str(nd.dtype) != a.dtype or tuple(nd.shape) != tuple(int(s) for s in a.shape):
            raise PayloadRejected("undecodable", f"array {name!r} decodes to {nd.dtype}{tuple(nd.shape)} but declares "
                                                 f"{a.dtype}{tuple(a.shape)}")
        tensors[name] = torch.from_numpy(np.ascontiguousarray(nd))
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise PayloadRejected("non-finite", f"array {name!r} contains NaN or infinite values")
    bound = ARRAY_BOUND * expect.value_span
    for name, t in tensors.items():
        if t.is_floating_point() and name != "lr" and t.numel() and float(t.abs().max()) > bound:
            raise PayloadRejected("magnitude", f"array {name!r} reaches |v| = {float(t.abs().max()):.3g}, the bound "
                                               f"derived from the data's value range is {bound:.3g}")

    # -- metadata vs the run's expectations
    _check_meta(meta, expect)
    bases, labels = tensors["bases"], tensors["labels"]
    num_bases = int(meta["num_bases"])
    if tuple(bases.shape) != (num_bases, *expect.basis_shape):
        raise PayloadRejected("shape", f"bases have shape {tuple(bases.shape)}, expected "
                                       f"({num_bases}, {', '.join(map(str, expect.basis_shape))})")
    if tuple(labels.shape) != (num_bases,):
        raise PayloadRejected("shape", f"labels have shape {tuple(labels.shape)}, expected ({num_bases},)")
    if num_bases < 1:
        raise PayloadRejected("shape", "payload carries no bases")
    hall_expected = expected_hallucinator_shapes(expect)
    hall_given = {n: tuple(t.shape) for n, t in tensors.items() if n.startswith(_FLOAT_KEYS_PREFIX)}
    if set(hall_given) != set(hall_expected):
        raise PayloadRejected("hallucinator-shape", f"hallucinator arrays {sorted(hall_given)} do not match the "
                                                    f"configuration {sorted(hall_expected)}")
    for name, shape in hall_expected.items():
        if hall_given[name] != shape:
            raise PayloadRejected("hallucinator-shape", f"{name} has shape {hall_given[name]}, expected {shape}")
    if int(labels.min()) < 0 or int(labels.max()) >= expect.num_classes:
        raise PayloadRejected("label-range", f"labels span {int(labels.min())}..{int(labels.max())}, "
                                             f"expected 0..{expect.num_classes - 1}")
    per_class = torch.bincount(labels, minlength=expect.num_classes)
    if int(per_class.max()) > expect.bpc:
        raise PayloadRejected("budget", f"{int(per_class.max())} bases for class {int(per_class.argmax())}, "
                                        f"the plan allows {expect.bpc} per class")
    if "lr" in tensors:
        lr = tensors["lr"]
        if lr.numel() != 1 or not 0 < float(lr.reshape(-1)[0]) <= LR_MAX:
            raise PayloadRejected("lr", f"learned learning rate must be one number in (0, {LR_MAX}], "
                                        f"got {lr.reshape(-1)[:4].tolist()}")

    full = tensors
    if expect.shared_bank:
        want = bank_fingerprint or bank_id(bank)
        if meta.get("bank_id") != want:
            raise PayloadRejected("bank", f"payload was distilled through bank {str(meta.get('bank_id'))[:12]!r}, "
                                          f"the server's shared bank is {want[:12]!r}")
        full = {**tensors, **{k: v.detach().cpu() for k, v in bank.items()}}
    try:
        result = to_factorized(full, meta, preprocessor)
    except FormatError as exc:
        raise PayloadRejected("format", str(exc)) from None
    composed = _check_composed(result, expect)
    return DecodedPayload(result, tensors, meta, sum(declared.values()), metrics, composed)


def _check_composed(result: FactorizedDataset, expect: PayloadExpectation) -> tuple[Tensor, Tensor]:
    """Every basis through every hallucinator: finite and within ``COMPOSED_BOUND * value_span``; returns them."""
    with torch.no_grad():
        images, labels = result.materialize()
    if not bool(torch.isfinite(images).all()):
        raise PayloadRejected("composed-range", "composed images contain NaN or infinite values")
    bound = COMPOSED_BOUND * expect.value_span
    peak = float(images.abs().max()) if images.numel() else 0.0
    if peak > bound:
        raise PayloadRejected("composed-range", f"composed images reach |x| = {peak:.3g}, the bound derived from the "
                                                f"data's value range is {bound:.3g}")
    return images, labels


def _parse_meta(rec: ConfigRecord) -> dict[str, Any]:
    if rec.get("format") != PAYLOAD_FORMAT:
        raise PayloadRejected("bad-meta", f"payload format is {rec.get('format')!r}, expected {PAYLOAD_FORMAT!r}")
    raw = rec.get("json")
    if not isinstance(raw, str):
        raise PayloadRejected("bad-meta", "payload metadata lacks its JSON string")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PayloadRejected("bad-meta", f"payload metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise PayloadRejected("bad-meta", "payload metadata is not a JSON object")
    for key in ("image_shape", "basis_shape", "num_classes", "num_bases", "num_hallucinators", "classes"):
        if key not in meta:
            raise PayloadRejected("bad-meta", f"payload metadata lacks {key!r}")
    try:
        meta["image_shape"] = [int(v) for v in meta["image_shape"]]
        meta["basis_shape"] = [int(v) for v in meta["basis_shape"]]
        for key in ("num_classes", "num_bases", "num_hallucinators"):
            meta[key] = int(meta[key])
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadRejected("bad-meta", f"payload metadata has a malformed field ({exc})") from None
    if not isinstance(meta["classes"], list) or not all(isinstance(c, str) for c in meta["classes"]):
        raise PayloadRejected("bad-meta", "payload metadata 'classes' is not a list of names")
    if not isinstance(meta.get("hallucinator", {}), dict):
        raise PayloadRejected("bad-meta", "payload metadata 'hallucinator' is not an object")
    return meta


def _check_meta(meta: dict[str, Any], expect: PayloadExpectation) -> None:
    if tuple(meta["image_shape"]) != expect.image_shape:
        raise PayloadRejected("image-shape", f"payload declares image shape {tuple(meta['image_shape'])}, the run "
                                             f"uses {expect.image_shape}")
    if meta["num_classes"] != expect.num_classes or len(meta["classes"]) != expect.num_classes:
        raise PayloadRejected("num-classes", f"payload declares {meta['num_classes']} classes, the run has "
                                             f"{expect.num_classes}")
    param = meta.get("parameterization", expect.parameterization)
    if param != expect.parameterization:
        raise PayloadRejected("parameterization", f"payload is {param!r}, the run distils {expect.parameterization!r}")
    if meta["num_hallucinators"] != expect.num_hallucinators:
        raise PayloadRejected("hallucinator-config", f"payload has {meta['num_hallucinators']} hallucinators, the "
                                                     f"plan has {expect.num_hallucinators}")
    if bool(meta.get("per_class_hallucinators", False)) != expect.per_class_hallucinators:
        raise PayloadRejected("hallucinator-config", "per-class hallucinators differ from the run's configuration")
    if expect.num_hallucinators:
        given = meta.get("hallucinator", {})
        want = asdict(expect.hallucinator)
        diffs = [f for f in _SHAPE_FIELDS if given.get(f, want[f]) != want[f]]
        if diffs:
            raise PayloadRejected("hallucinator-config", "hallucinator " + ", ".join(
                f"{f}={given.get(f)!r} (expected {want[f]!r})" for f in diffs))
        # the architecture that rebuilds the weights is the server's, not the client's
        meta["hallucinator"] = {**want, "init": "random"}  # weights are overwritten by the payload
    if tuple(meta["basis_shape"]) != expect.basis_shape:
        raise PayloadRejected("shape", f"payload declares basis shape {tuple(meta['basis_shape'])}, the plan uses "
                                       f"{expect.basis_shape}")
    if meta["num_bases"] > expect.bpc * expect.num_classes:
        raise PayloadRejected("budget", f"payload has {meta['num_bases']} bases, the plan allows "
                                        f"{expect.bpc * expect.num_classes}")
