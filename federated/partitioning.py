"""IID / Dirichlet-α partitioning of a dataset between the nodes, and a node's own partition."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from haba_core import ConfigError, ImageDataset

from .data_cache import load_run_split


def dirichlet_proportions(num_classes: int, num_partitions: int, alpha: float, seed: int) -> np.ndarray:
    """Class-by-partition matrix: row ``c`` is Dirichlet(α·1) over partitions (seeded)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(num_partitions, float(alpha)), size=num_classes)


def partition_indices(labels: Tensor, num_partitions: int, partitioning: str = "iid", alpha: float = 0.5,
                      seed: int = 0, num_classes: int | None = None, min_size: int = 1) -> list[Tensor]:
    """Split example indices into ``num_partitions`` disjoint, exhaustive parts.

    ``iid``: a seeded shuffle cut into near-equal parts. ``dirichlet``: for each class, its examples are
    divided between partitions in proportions drawn from Dirichlet(α) (small α → few classes per
    partition). Draws are repeated (new seeds derived from ``seed``) until every partition holds at
    least ``min_size`` examples; after 100 attempts the smallest partitions take examples from the
    largest. The same ``(seed, α, n)`` gives the same class proportions for any label vector, so the
    train and test splits are partitioned alike.

    Not ``flwr-datasets``' ``IidPartitioner`` / ``DirichletPartitioner``: that package is not a dependency
    (it brings Hugging Face ``datasets`` and ``pyarrow``), it partitions Hugging Face datasets rather than
    the tensors of ``haba_core.load_dataset`` (the embedded digits, MNIST/CIFAR from their release files,
    imagefolder archives), and it partitions one split at a time, whereas each node's test part here
    follows its train part's class proportions.
    """
    if num_partitions < 1:
        raise ConfigError("the number of partitions must be >= 1")
    labels = labels.detach().cpu().to(torch.int64)
    n = int(labels.numel())
    if n < num_partitions * min_size:
        raise ConfigError(f"{n} examples cannot fill {num_partitions} partitions of at least {min_size}")
    if partitioning == "iid":
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(n)).to(torch.int64)
        return [p.sort().values for p in torch.tensor_split(perm, num_partitions)]
    if partitioning != "dirichlet":
        raise ConfigError(f"unknown partitioning {partitioning!r}; use iid or dirichlet")
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {alpha}")
    k = int(num_classes if num_classes is not None else (int(labels.max()) + 1 if n else 0))
    parts: list[list[np.ndarray]] = []
    for attempt in range(100):
        parts = _dirichlet_split(labels.numpy(), k, num_partitions, alpha, seed + 7919 * attempt)
        if min(sum(len(a) for a in p) for p in parts) >= min_size:
            break
    else:
        parts = _rebalance(parts, min_size)
    return [torch.from_numpy(np.sort(np.concatenate(p) if p else np.zeros(0, np.int64))).to(torch.int64)
            for p in parts]


def _dirichlet_split(labels: np.ndarray, num_classes: int, num_partitions: int, alpha: float,
                     seed: int) -> list[list[np.ndarray]]:
    props = dirichlet_proportions(num_classes, num_partitions, alpha, seed)
    rng = np.random.default_rng(seed + 1)
    parts: list[list[np.ndarray]] = [[] for _ in range(num_partitions)]
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        cuts = (np.cumsum(props[c])[:-1] * len(idx)).round().astype(int)
        for p, chunk in enumerate(np.split(idx, cuts)):
            parts[p].append(chunk.astype(np.int64))
    return parts


def _rebalance(parts: list[list[np.ndarray]], min_size: int) -> list[list[np.ndarray]]:
    flat = [np.concatenate(p) if p else np.zeros(0, np.int64) for p in parts]
    for i in range(len(flat)):
        while len(flat[i]) < min_size:
            j = int(np.argmax([len(f) for f in flat]))
            flat[i], flat[j] = np.append(flat[i], flat[j][-1]), flat[j][:-1]
    return [[f] for f in flat]


def load_partition(cfg: Mapping[str, Any], partition_id: int, num_partitions: int,
                   split: str = "train") -> ImageDataset:
    """Partition ``partition_id`` of ``num_partitions`` of the configured dataset's ``split``."""
    if not 0 <= partition_id < num_partitions:
        raise ConfigError(f"partition-id {partition_id} is outside 0..{num_partitions - 1}")
    data = load_run_split(cfg, split)
    parts = partition_indices(data.labels, num_partitions, cfg["partitioning"], float(cfg["alpha"]),
                              int(cfg["partition-seed"]), data.num_classes, min_size=1 if split == "train" else 0)
    return data.subset(parts[partition_id])


def node_partition(node_config: Mapping[str, Any]) -> tuple[int, int]:
    """``(partition-id, num-partitions)`` from a node config (both required)."""
    try:
        return int(node_config["partition-id"]), int(node_config["num-partitions"])
    except KeyError as exc:
        raise ConfigError(f"the node config lacks {exc}; start the SuperNode with "
                          "--node-config 'partition-id=<i> num-partitions=<n>'") from None
    except (TypeError, ValueError):
        raise ConfigError("partition-id and num-partitions in the node config must be integers") from None
