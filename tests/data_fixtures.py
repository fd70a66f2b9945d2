"""Writers of tiny data sets in the real on-disk formats the loaders read (CIFAR pickles, IDX, .mat, ImageFolder)."""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official batches are Python-2 protocol-2 pickles


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``; returns the rows and labels written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    out: dict[str, list] = {"train_x": [], "train_y": []}
    for b in range(1, 6):
        x, y = _cifar_rows(rng, per_batch), [int(v) for v in rng.integers(0, 10, per_batch)]
        _dump(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "labels": y, "data": x,
                                           "filenames": [f"img_{b}_{i}.png" for i in range(per_batch)]})
        out["train_x"].append(x)
        out["train_y"].extend(y)
    tx, ty = _cifar_rows(rng, n_test), [int(v) for v in rng.integers(0, 10, n_test)]
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": ty, "data": tx,
                                  "filenames": [f"t_{i}.png" for i in range(n_test)]})
    _dump(folder / "batches.meta", {"num_cases_per_batch": per_batch, "label_names": CIFAR10_NAMES, "num_vis": 3072})
    return {"train_x": np.concatenate(out["train_x"]), "train_y": np.array(out["train_y"]), "test_x": tx, "test_y": np.array(ty)}


def write_cifar100(root: Path, n_train: int = 8, n_test: int = 4, seed: int = 1) -> dict[str, np.ndarray]:
    """``<root>/cifar-100-python/{train,test,meta}`` with fine and coarse labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = _cifar_rows(rng, n)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        _dump(folder / split, {"filenames": [f"{split}_{i}.png" for i in range(n)], "batch_label": f"{split} batch",
                               "fine_labels": fine, "coarse_labels": [f // 5 for f in fine], "data": x})
        out[f"{split}_x"], out[f"{split}_y"] = x, np.array(fine)
    _dump(folder / "meta", {"fine_label_names": [f"fine{i:02d}" for i in range(100)],
                            "coarse_label_names": [f"coarse{i:02d}" for i in range(20)]})
    return out


def _idx_bytes(arr: np.ndarray) -> bytes:
    magic = 0x0800 | arr.ndim  # 0x08 = unsigned byte
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, gz: bool, n_train: int = 12, n_test: int = 5, seed: int = 2) -> dict[str, np.ndarray]:
    """The four MNIST-style IDX files (28x28) in ``folder``, gzip-compressed or raw."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{prefix}-{kind}-ubyte"
            data = _idx_bytes(arr)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        out[f"{split}_x"], out[f"{split}_y"] = x, y.astype(np.int64)
    return out


def write_svhn(root: Path, n_train: int = 7, n_test: int = 3, seed: int = 3) -> dict[str, np.ndarray]:
    """``<root>/{train,test}_32x32.mat`` with X of shape 32x32x3xN and y in 1..10 (10 = digit 0)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
        y[0, 0] = 10
        savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
        out[f"{split}_x"], out[f"{split}_y"] = x, y
    return out


COLORS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "eel": (30, 30, 200)}


def write_imagefolder(root: Path, per_class: dict[str, int] | None = None, size: tuple[int, int] = (12, 10),
                      ext: str = "jpg", gray: bool = False) -> Path:
    """``root/{train,test}/<class>/NNNN.<ext>``: solid-colour images (one colour per class)."""
    per_class = per_class or {"train": 3, "test": 2}
    for split, n in per_class.items():
        for cls, rgb in COLORS.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = Image.new("L", size, rgb[0]) if gray else Image.new("RGB", size, rgb)
                img.save(d / f"{i:04d}.{ext}")
    return root


def make_tarball(src: Path, archive: Path, wrap: str | None = None) -> Path:
    """``tar czf`` of ``src/train`` and ``src/test``, optionally inside one top-level folder ``wrap``."""
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(src / split, arcname=f"{wrap}/{split}" if wrap else split)
    return archive
