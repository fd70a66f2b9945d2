"""A restricted reader for the CIFAR "python version" batches (pickled dicts of numpy arrays).

The format is pickle by definition; this unpickler only resolves the few globals needed to rebuild
numpy arrays (and Python-3 protocol-2 ``bytes``), so a crafted file cannot run code.
"""

from __future__ import annotations

import codecs
import os
import pickle
from typing import Any

import numpy as np

from ..errors import FormatError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[attr-defined,no-redef]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only allows numpy array reconstruction."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch file") from None


def read_pickle_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Read one CIFAR batch or meta file (latin-1 strings, like torchvision) into a dict."""
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise FormatError(f"{path}: not a readable CIFAR python batch ({exc})") from exc
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batches(paths: list[str | os.PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate batches into uint8 images N x 3 x 32 x 32 and int64 labels (``labels`` or ``fine_labels``)."""
    images, labels = [], []
    for path in paths:
        entry = read_pickle_dict(path)
        data = entry.get("data")
        targets = entry.get("labels", entry.get("fine_labels"))
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise FormatError(f"{path}: 'data' must be a uint8 array of shape (N, 3072)")
        if targets is None or len(targets) != data.shape[0]:
            raise FormatError(f"{path}: 'labels'/'fine_labels' missing or not one per image")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(targets, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_cifar_classes(path: str | os.PathLike, key: str) -> list[str]:
    """Class names stored under ``key`` (``label_names`` or ``fine_label_names``) of a meta file."""
    names = read_pickle_dict(path).get(key)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (str, bytes)) for n in names):
        raise FormatError(f"{path}: no list of class names under {key!r}")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
