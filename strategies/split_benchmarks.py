"""Class-incremental split benchmarks for ``haba-cl``, built from ``haba_core`` loaders as Avalanche streams.

Every benchmark loads the whole dataset with :func:`haba_core.load_dataset` (so a local root in
torchvision's layout, IDX files or ``imagefolder:<dir|tar.gz>`` all work), normalises it with the train
split's mean/std — the tensors the model sees — and splits the classes into experiences with Avalanche's
``nc_benchmark`` under a seed-dependent class order (the same order for every strategy of a seed). With ``val_per_class`` a fixed, class-balanced validation
split (``haba_core.validation_split``) is carved from the training images first and kept out of the stream: the
runs are scored on it for every choice, on the test split for final tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from haba_core import ConfigError, ImageDataset, UnknownNameError, load_dataset, validation_split

# benchmark name -> (haba_core dataset name, default number of experiences)
BENCHMARKS: dict[str, tuple[str, int]] = {
    "split-cifar100": ("cifar100", 10),
    "split-cifar10": ("cifar10", 5),
    "split-mnist": ("mnist", 5),
    "split-fmnist": ("fashion-mnist", 5),
    "split-digits": ("digits", 5),
}


def check_benchmark(name: str) -> str:
    key = str(name).strip().lower()
    if key not in BENCHMARKS:
        raise UnknownNameError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return key


@dataclass
class SplitData:
    """A whole dataset in memory, normalised (model input space), ready to be split into experiences."""

    benchmark: str
    dataset: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    present: list[int] = field(default_factory=list)
    val_x: torch.Tensor | None = None  # the validation split carved from the training images (None: none)
    val_y: torch.Tensor | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "dataset": self.dataset, "train": int(self.train_y.numel()),
                "test": int(self.test_y.numel()),
                "val": 0 if self.val_y is None else int(self.val_y.numel()), "classes": len(self.present), "image_shape": list(self.image_shape),
                "mean": list(self.mean), "std": list(self.std)}


def _per_class_subset(data: ImageDataset, n: int | None, seed: int = 0) -> ImageDataset:
    """At most ``n`` random images per class (a fixed draw, the same for every strategy and seed)."""
    if n is None or n <= 0:
        return data
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(data.num_classes):
        idx = data.class_indices(c)
        if idx.numel():
            keep.append(idx[torch.randperm(idx.numel(), generator=g)[:n]])
    sel = torch.sort(torch.cat(keep)).values
    return data.subset(sel)


def load_split_data(benchmark: str, *, data_root: str | os.PathLike | None = None, source: str | None = None,
                    cache_dir: str | os.PathLike | None = None, train_per_class: int | None = None,
                    test_per_class: int | None = None, val_per_class: int | None = None) -> SplitData:
    """Load a benchmark's train and test split (``source`` overrides the dataset, e.g. ``imagefolder:x.tar.gz``).

    ``data_root`` may itself be written ``imagefolder:<dir|tar.gz>``. ``val_per_class`` carves that many
    images per class from the training split as a validation split (before ``train_per_class`` subsamples
    the rest), so the validation images never enter the stream.
    """
    key = check_benchmark(benchmark)
    dataset, _ = BENCHMARKS[key]
    root: str | os.PathLike | None = data_root
    if source is None and data_root is not None and str(data_root).lower().startswith("imagefolder:"):
        source, root = str(data_root), None
    name = source or dataset
    train = load_dataset(name, root=root, split="train", cache_dir=cache_dir)
    test = load_dataset(name, root=root, split="test", cache_dir=cache_dir)
    if train.image_shape != test.image_shape:
        raise ConfigError(f"{name}: train images {train.image_shape} and test images {test.image_shape} differ")
    val = None
    if val_per_class:
        train, val = validation_split(train, int(val_per_class))
    train = _per_class_subset(train, train_per_class)
    test = _per_class_subset(test, test_per_class)
    present = sorted(int(c) for c in torch.unique(train.labels).tolist())
    missing = sorted(set(int(c) for c in torch.unique(test.labels).tolist()) - set(present))
    if missing:
        raise ConfigError(f"{name}: test classes {missing} have no training images")
    if len(present) < 2:
        raise ConfigError(f"{name}: a class-incremental benchmark needs at least 2 classes, found {len(present)}")
    return SplitData(key, name, train.normalized(), train.labels.clone(), test.normalized(), test.labels.clone(),
                     list(train.classes), train.mean, train.std, present,
                     None if val is None else val.normalized(), None if val is None else val.labels.clone())


def class_order_for(data: SplitData, seed: int) -> list[int]:
    """The seed's class order (a permutation of the classes present)."""
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(data.present), generator=g).tolist()
    return [data.present[i] for i in perm]


def experiences_of(data: SplitData, n_experiences: int, order: list[int]) -> list[list[int]]:
    """Classes of each experience (equal split of ``order``)."""
    n = len(order)
    if n_experiences < 1 or n % n_experiences:
        raise ConfigError(f"{n} classes cannot be split into {n_experiences} equal experiences; choose "
                          f"--n-experiences among {[k for k in range(1, n + 1) if n % k == 0]}")
    k = n // n_experiences
    return [order[i * k:(i + 1) * k] for i in range(n_experiences)]


def make_stream(data: SplitData, n_experiences: int, order: list[int]):
    """An Avalanche class-incremental benchmark (task label 0 everywhere) with the given class order."""
    from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset as tensor_dataset

    experiences_of(data, n_experiences, order)  # validates the split
    train = tensor_dataset(data.train_x, data.train_y)
    test = tensor_dataset(data.test_x, data.test_y)
    return nc_benchmark(train, test, n_experiences, task_labels=False, fixed_class_order=list(order))
