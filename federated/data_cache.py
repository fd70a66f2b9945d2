"""Dataset splits loaded once per process (every node of an in-process run shares them), cut to the run's limits."""

from __future__ import annotations

import threading
from typing import Any, Mapping

import numpy as np
import torch

from haba_core import ConfigError, ImageDataset, canonical_dataset_name, load_dataset, validation_split

_DATA_CACHE: dict[tuple[str, str, str], ImageDataset] = {}
_VAL_CACHE: dict[tuple[str, str, int], tuple[ImageDataset, ImageDataset]] = {}
_DATA_LOCK = threading.Lock()


def load_split(dataset: str, data_root: str | None, split: str) -> ImageDataset:
    """Load (and cache per process) one split; ``data_root`` ``""``/``None`` means the default root."""
    root = data_root or None
    key = (canonical_dataset_name(dataset), str(root), split)
    with _DATA_LOCK:
        if key not in _DATA_CACHE:
            _DATA_CACHE[key] = load_dataset(dataset, root=root, split=split)
        return _DATA_CACHE[key]


def _validation_parts(dataset: str, data_root: str | None, per_class: int) -> tuple[ImageDataset, ImageDataset]:
    """``(train minus validation, validation)``, carved once per process."""
    key = (canonical_dataset_name(dataset), str(data_root or None), per_class)
    train = load_split(dataset, data_root, "train")
    with _DATA_LOCK:
        if key not in _VAL_CACHE:
            _VAL_CACHE[key] = validation_split(train, per_class)
        return _VAL_CACHE[key]


def load_run_split(cfg: Mapping[str, Any], split: str) -> ImageDataset:
    """The configured dataset's ``split`` (``train``, ``test`` or ``val``), cut to ``train-limit`` / ``test-limit``
    examples (seeded, 0 = all). With ``val-per-class`` > 0, ``val`` is that many training examples per class
    (``haba_core.validation_split``) and ``train`` is the rest; the test limit also caps ``val``."""
    per_class = int(cfg.get("val-per-class", 0) or 0)
    if split == "val" and per_class < 1:
        raise ConfigError("no validation split: set val-per-class to a positive number of examples per class")
    if split == "test" or per_class < 1:
        data = load_split(cfg["dataset"], cfg["data-root"], split)
    else:
        data = _validation_parts(cfg["dataset"], cfg["data-root"], per_class)[0 if split == "train" else 1]
    limit = int(cfg["train-limit" if split == "train" else "test-limit"])
    if 0 < limit < len(data):
        pick = torch.from_numpy(np.random.default_rng(12345).permutation(len(data))[:limit]).sort().values
        data = data.subset(pick)
    return data
