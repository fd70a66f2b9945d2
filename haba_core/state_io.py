"""Pickle-free persistence of nested state (dicts/lists of tensors, numbers, strings, None).

Tensors go to ``<name>.safetensors``; the structure, with tensors replaced by references, goes to
``<name>.json``. Used for checkpoints (optimiser and RNG states included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .atomic import atomic_path, write_safetensors
from .errors import FormatError

_REF = "__tensor__"


def _flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {_REF: key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, tensors, prefix), _flatten(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_flatten(v, tensors, prefix) for v in obj], "tuple": isinstance(obj, tuple)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot serialise {type(obj).__name__} without pickle")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if _REF in obj:
            return tensors[obj[_REF]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_unflatten(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj


def save_state(directory: str | Path, name: str, state: Any) -> None:
    """Write ``state`` as ``name.safetensors`` + ``name.json`` in ``directory`` (each atomically)."""
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, tensors, "")
    write_safetensors(directory / f"{name}.safetensors", tensors)
    with atomic_path(directory / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(skeleton))


def load_state(directory: str | Path, name: str) -> Any:
    """Inverse of :func:`save_state`; raises :class:`FormatError` on missing or damaged files."""
    directory = Path(directory)
    try:
        tensors = load_file(str(directory / f"{name}.safetensors"))
        skeleton = json.loads((directory / f"{name}.json").read_text())
        return _unflatten(skeleton, tensors)
    except FileNotFoundError as exc:
        raise FormatError(f"missing state file in {directory}: {exc.filename}") from exc
    except (SafetensorError, json.JSONDecodeError, KeyError, OSError, ValueError) as exc:
        raise FormatError(f"unreadable state {name!r} in {directory}: {exc}") from exc
