"""MNIST, Fashion-MNIST, CIFAR-10/100 and SVHN through torchvision's dataset classes and on-disk layouts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100, MNIST, SVHN, FashionMNIST
from torchvision.datasets import utils as tv_utils
from torchvision.datasets.mnist import read_image_file, read_label_file

from ..errors import FormatError
from .cifar_pickle import read_cifar_batches, read_cifar_classes
from .dataset import ImageDataset
from .idx_files import all_idx_names, find_idx_pair, uncompressed
from .not_found import dataset_not_found
from .normalization import NORMALIZATION


def _make(key: str, images: torch.Tensor, labels: torch.Tensor, classes: list[str], split: str) -> ImageDataset:
    """Wrap uint8 N x C x H x W images and labels as float [0, 1] with the standard constants of ``key``."""
    labels = labels.to(torch.int64)
    if images.shape[0] != labels.shape[0]:
        raise FormatError(f"{key} {split}: {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise FormatError(f"{key} {split}: labels outside 0..{len(classes) - 1}")
    mean, std = NORMALIZATION[key]
    floats = images.contiguous().to(torch.float32).div_(255.0)
    return ImageDataset(name=key, images=floats, labels=labels.contiguous(), classes=list(classes), mean=mean, std=std, split=split)


# --- MNIST / Fashion-MNIST -------------------------------------------------------------------


def load_mnist_like(key: str, root: Path, split: str, download: bool, cache_dir: Path) -> ImageDataset:
    """MNIST or Fashion-MNIST from ``<root>/<Class>/raw`` (torchvision), or flat IDX files, gzipped or not."""
    cls = MNIST if key == "mnist" else FashionMNIST
    train = split == "train"
    tv_raw = root / cls.__name__ / "raw"
    if all((tv_raw / n).is_file() for n in all_idx_names()):
        ds = cls(str(root), train=train, download=False)
        return _make(key, ds.data.unsqueeze(1), ds.targets, list(cls.classes), split)
    pair = find_idx_pair([tv_raw, root, root / key], split)
    if pair is not None:
        try:
            images = read_image_file(str(uncompressed(pair[0], cache_dir)))
            labels = read_label_file(str(uncompressed(pair[1], cache_dir)))
        except (AssertionError, TypeError, ValueError, KeyError, RuntimeError) as exc:
            raise FormatError(f"{key}: unreadable IDX files {pair[0]}, {pair[1]} ({exc!r})") from exc
        return _make(key, images.unsqueeze(1), labels, list(cls.classes), split)
    if download:
        ds = cls(str(root), train=train, download=True)
        return _make(key, ds.data.unsqueeze(1), ds.targets, list(cls.classes), split)
    raise dataset_not_found(
        key,
        [tv_raw, root, root / key],
        [f"{n}[.gz]" for n in all_idx_names()],
        f"fetch the four .gz files from {cls.mirrors[0]} and place them (gzipped or not) in {root} or {tv_raw} "
        f"(from Python, load_dataset(..., download=True) lets torchvision fetch them)",
    )


# --- CIFAR-10 / CIFAR-100 --------------------------------------------------------------------


def official_cifar_files(cls: type[CIFAR10], root: Path) -> bool:
    """True when every batch and the meta file match torchvision's md5 sums of the official release."""
    folder = root / cls.base_folder
    files = [*cls.train_list, *cls.test_list, [cls.meta["filename"], cls.meta["md5"]]]
    return all(tv_utils.check_integrity(str(folder / name), md5) for name, md5 in files)


def load_cifar(key: str, root: Path, split: str, download: bool, cache_dir: Path) -> ImageDataset:
    """CIFAR-10/100 from ``<root>/cifar-10-batches-py`` or ``<root>/cifar-100-python`` (fine labels for 100).

    Verified official files are read by torchvision itself; any other files in the same format go
    through a restricted unpickler that can only rebuild numpy arrays.
    """
    cls = CIFAR10 if key == "cifar10" else CIFAR100
    train = split == "train"
    folder = root / cls.base_folder
    if not download:
        batches = [name for name, _ in (cls.train_list if train else cls.test_list)]
        expected = [*batches, cls.meta["filename"]]
        if not all((folder / n).is_file() for n in expected):
            raise dataset_not_found(
                key,
                [folder],
                expected,
                f"fetch {cls.url} and extract it under {root} (it unpacks to {folder}); from Python, "
                f"load_dataset(..., download=True) lets torchvision fetch it",
            )
    if download or official_cifar_files(cls, root):
        ds = cls(str(root), train=train, download=download)
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return _make(key, images, torch.as_tensor(ds.targets), list(ds.classes), split)
    data, labels = read_cifar_batches([folder / n for n in batches])
    classes = read_cifar_classes(folder / cls.meta["filename"], cls.meta["key"])
    return _make(key, torch.from_numpy(data), torch.from_numpy(labels), classes, split)


# --- SVHN ------------------------------------------------------------------------------------


class _LocalSVHN(SVHN):
    """torchvision's SVHN reading whatever local ``.mat`` is present (md5 is checked only when downloading)."""

    def _check_integrity(self) -> bool:
        return os.path.isfile(os.path.join(self.root, self.filename))


def load_svhn(key: str, root: Path, split: str, download: bool, cache_dir: Path) -> ImageDataset:
    """SVHN (cropped digits) from ``<root>/{train,test}_32x32.mat`` (also ``<root>/svhn/``); label 10 means 0."""
    url, filename, _ = SVHN.split_list[split]
    where = next((d for d in (root, root / "svhn") if (d / filename).is_file()), None)
    if where is None and not download:
        raise dataset_not_found(
            key,
            [root, root / "svhn"],
            [filename],
            f"fetch {url} and place it in {root} (from Python: load_dataset(..., download=True))",
        )
    try:
        ds = (SVHN if where is None else _LocalSVHN)(str(where or root), split=split, download=download)
    except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
        raise FormatError(f"svhn: unreadable {(where or root) / filename} ({exc!r})") from exc
    if ds.data.ndim != 4 or ds.data.shape[1] != 3:
        raise FormatError(f"svhn: {filename} must hold X of shape 32 x 32 x 3 x N, got {ds.data.shape}")
    images = torch.from_numpy(np.ascontiguousarray(ds.data))
    return _make(key, images, torch.from_numpy(ds.labels), [str(i) for i in range(10)], split)
