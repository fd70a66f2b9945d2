"""Schema of a saved result's ``meta.json``: types, ranges and nesting depth, checked before anything is built.

``meta.json`` is read from disk (or received from a federated client) and is untrusted: a list instead
of an object, a string ``format_version``, a 3-value mean on 1-channel data, a hallucinator of depth
10^6 or a zero ``std`` must be refused with :class:`~haba_core.errors.FormatError`, never crash, hang or
mislead. :func:`check_meta` does that; :func:`meta_digest` is the SHA-256 that covers ``meta.json``
itself (stored as ``meta_sha256``; results written before it existed load without it).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import fields
from typing import Any

from .errors import FormatError
from .factorization import HallucinatorConfig

MAX_DEPTH = 16          # nesting of JSON objects/arrays in meta.json
MAX_CHANNELS = 64
MAX_SIDE = 4096
MAX_CLASSES = 100_000
MAX_BASES = 10_000_000
MAX_HALLUCINATORS = 10_000
MAX_HALLUCINATOR_DEPTH = 64
MAX_HALLUCINATOR_CHANNELS = 4096


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of ``obj`` (stops counting past ``limit``)."""
    stack, deepest = [(obj, 1)], 0
    while stack:
        node, d = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((v, d + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def _int(meta: dict[str, Any], key: str, lo: int, hi: int, where: str = "") -> int:
    v = meta.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise FormatError(f"meta.json: {where}{key} must be an integer in {lo}..{hi}, got {v!r}")
    return v


def _shape(meta: dict[str, Any], key: str) -> tuple[int, int, int]:
    v = meta.get(key)
    if not isinstance(v, list) or len(v) != 3 or any(isinstance(x, bool) or not isinstance(x, int) for x in v):
        raise FormatError(f"meta.json: {key} must be a list of 3 integers (C, H, W), got {v!r}")
    c, h, w = v
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise FormatError(f"meta.json: {key} {v} is out of range (1..{MAX_CHANNELS} channels, 1..{MAX_SIDE} pixels)")
    return c, h, w


def _numbers(meta: dict[str, Any], key: str, n: int, positive: bool) -> None:
    if key not in meta:
        return
    v = meta[key]
    if (not isinstance(v, list) or len(v) != n
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in v)):
        raise FormatError(f"meta.json: {key} must be a list of {n} finite numbers (one per channel), got {v!r}")
    if positive and any(x <= 0 for x in v):
        raise FormatError(f"meta.json: {key} must be > 0 for every channel, got {v!r}")


def _hallucinator(h: Any) -> None:
    if not isinstance(h, dict):
        raise FormatError(f"meta.json: hallucinator must be an object, got {type(h).__name__}")
    kinds = {f.name: f.type for f in fields(HallucinatorConfig)}
    unknown = sorted(set(h) - set(kinds))
    if unknown:
        raise FormatError(f"meta.json: unknown hallucinator fields {unknown}")
    if "depth" in h:
        _int(h, "depth", 0, MAX_HALLUCINATOR_DEPTH, "hallucinator.")
    if h.get("channels") is not None:
        _int(h, "channels", 1, MAX_HALLUCINATOR_CHANNELS, "hallucinator.")
    if "affine_stride" in h:
        _int(h, "affine_stride", 1, 64, "hallucinator.")
    for key in ("activation", "padding", "init"):
        if key in h and not isinstance(h[key], str):
            raise FormatError(f"meta.json: hallucinator.{key} must be a string, got {h[key]!r}")
    for key in ("init_noise", "pca_scale"):
        if key in h and (isinstance(h[key], bool) or not isinstance(h[key], (int, float)) or not math.isfinite(h[key])):
            raise FormatError(f"meta.json: hallucinator.{key} must be a finite number, got {h[key]!r}")
    if "match_stats" in h and not isinstance(h["match_stats"], bool):
        raise FormatError("meta.json: hallucinator.match_stats must be true or false")


def check_meta(meta: Any, *, file_format: bool = True) -> dict[str, Any]:
    """Return ``meta`` if it satisfies the schema, else raise :class:`FormatError` naming the field.

    ``file_format`` also requires the ``format``/``format_version`` header of a saved result.
    """
    from .version import FORMAT_VERSION

    if not isinstance(meta, dict):
        raise FormatError(f"meta.json must hold a JSON object, got {type(meta).__name__}")
    if _depth(meta, MAX_DEPTH) > MAX_DEPTH:
        raise FormatError(f"meta.json is nested deeper than {MAX_DEPTH} levels")
    if file_format:
        if meta.get("format") != "haba-factorized":
            raise FormatError("meta.json does not describe a haba-factorized dataset")
        version = meta.get("format_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise FormatError(f"meta.json: format_version must be a positive integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise FormatError(f"written by a newer toolkit (format {version}; this one reads up to {FORMAT_VERSION})")
    c, h, w = _shape(meta, "image_shape")
    _shape(meta, "basis_shape")
    num_classes = _int(meta, "num_classes", 1, MAX_CLASSES)
    _int(meta, "num_bases", 0, MAX_BASES)
    _int(meta, "num_hallucinators", 0, MAX_HALLUCINATORS)
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) != num_classes or not all(isinstance(x, str) for x in classes):
        raise FormatError(f"meta.json: classes must be a list of {num_classes} names")
    if "per_class_hallucinators" in meta and not isinstance(meta["per_class_hallucinators"], bool):
        raise FormatError("meta.json: per_class_hallucinators must be true or false")
    _hallucinator(meta.get("hallucinator", {}))
    _numbers(meta, "mean", c, positive=False)
    _numbers(meta, "std", c, positive=True)
    zca = meta.get("zca")
    if zca is not None:
        reg = zca.get("regularization", 0.1) if isinstance(zca, dict) else None
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not (math.isfinite(reg) and reg >= 0):
            raise FormatError(f"meta.json: zca must be null or {{\"regularization\": number >= 0}}, got {zca!r}")
    lr = meta.get("learned_lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0)):
        raise FormatError(f"meta.json: learned_lr must be null or a positive number, got {lr!r}")
    for key in ("config", "budget", "timings", "storage"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise FormatError(f"meta.json: {key} must be an object, got {type(meta[key]).__name__}")
    config = meta.get("config") or {}
    for key, (lo, hi) in {"net_width": (1, 65_536), "net_depth": (1, 64)}.items():
        if key in config:
            _int(config, key, lo, hi, "config.")
    for key in ("net_norm", "dataset", "objective", "parameterization", "sha256", "meta_sha256"):
        holder = config if key == "net_norm" else meta
        if holder.get(key) is not None and not isinstance(holder[key], str):
            raise FormatError(f"meta.json: {key} must be a string, got {holder[key]!r}")
    return meta


def meta_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of ``meta`` without its ``meta_sha256`` field, over canonical JSON (sorted keys, no spaces)."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
