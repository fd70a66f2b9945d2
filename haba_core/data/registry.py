"""Dataset names and aliases, and the ``load_dataset`` dispatcher."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UnknownNameError
from .dataset import ImageDataset
from .paths import default_cache_dir, default_data_root

KNOWN_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")
IMAGEFOLDER_PREFIX = "imagefolder:"
SPLITS = ("train", "test")

ALIASES = {"fmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}


def canonical_name(name: str) -> str:
    """Lower-case, alias-resolved dataset name; ``imagefolder:<path>`` keeps its path as written."""
    stripped = str(name).strip()
    if stripped.lower().startswith(IMAGEFOLDER_PREFIX):
        path = stripped[len(IMAGEFOLDER_PREFIX) :]
        if not path:
            raise UnknownNameError(f"{name!r}: the imagefolder form needs a path, e.g. imagefolder:/data/my-set.tar.gz")
        return IMAGEFOLDER_PREFIX + path
    key = ALIASES.get(stripped.lower(), stripped.lower())
    if key not in KNOWN_DATASETS:
        known = ", ".join(KNOWN_DATASETS)
        raise UnknownNameError(
            f"unknown dataset {name!r}; known datasets: {known}, or imagefolder:<dir-or-tar.gz> "
            "(a directory or .tar.gz/.tgz with train/<class>/* and test/<class>/*)"
        )
    return key


def check_split(split: str) -> str:
    """Return the lower-cased split, or raise :class:`UnknownNameError` naming train|test."""
    value = str(split).strip().lower()
    if value not in SPLITS:
        raise UnknownNameError(f"unknown split {split!r}; use train|test")
    return value


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> ImageDataset:
    """Load one split of a dataset fully into memory as an :class:`ImageDataset`.

    ``name`` is one of :data:`KNOWN_DATASETS` (case-insensitive, with aliases such as ``fmnist``) or
    ``imagefolder:<dir-or-tar.gz>``. ``root`` is where torchvision-format data lives (default
    :func:`default_data_root`); ``download`` is passed to torchvision; ``cache_dir`` (default
    :func:`default_cache_dir`) receives decompressed/extracted files and decoded tensors.
    """
    key = canonical_name(name)
    split = check_split(split)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if key.startswith(IMAGEFOLDER_PREFIX):
        from .imagefolder import load_imagefolder

        return load_imagefolder(key[len(IMAGEFOLDER_PREFIX) :], split, cache)
    if key == "digits":
        from .digits import load_digits_dataset

        return load_digits_dataset(split)
    data_root = Path(root).expanduser() if root is not None else default_data_root()
    from . import torchvision_sets

    loader = {
        "mnist": torchvision_sets.load_mnist_like,
        "fashion-mnist": torchvision_sets.load_mnist_like,
        "cifar10": torchvision_sets.load_cifar,
        "cifar100": torchvision_sets.load_cifar,
        "svhn": torchvision_sets.load_svhn,
    }[key]
    return loader(key, data_root, split, download, cache)
