"""Dataset splits loaded once per process (every node of an in-process run shares them), cut to the run's limits."""

from __future__ import annotations

import threading
from typing import Any, Mapping

import numpy as np
import torch

from haba_core import ImageDataset, canonical_dataset_name, load_dataset

_DATA_CACHE: dict[tuple[str, str, str], ImageDataset] = {}
_DATA_LOCK = threading.Lock()


def load_split(dataset: str, data_root: str | None, split: str) -> ImageDataset:
    """Load (and cache per process) one split; ``data_root`` ``""``/``None`` means the default root."""
    root = data_root or None
    key = (canonical_dataset_name(dataset), str(root), split)
    with _DATA_LOCK:
        if key not in _DATA_CACHE:
            _DATA_CACHE[key] = load_dataset(dataset, root=root, split=split)
        return _DATA_CACHE[key]


def load_run_split(cfg: Mapping[str, Any], split: str) -> ImageDataset:
    """The configured dataset's ``split``, cut to ``train-limit`` / ``test-limit`` examples (seeded, 0 = all)."""
    data = load_split(cfg["dataset"], cfg["data-root"], split)
    limit = int(cfg["train-limit" if split == "train" else "test-limit"])
    if 0 < limit < len(data):
        pick = torch.from_numpy(np.random.default_rng(12345).permutation(len(data))[:limit]).sort().values
        data = data.subset(pick)
    return data
