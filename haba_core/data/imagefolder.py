"""``imagefolder:<dir-or-tar.gz>`` data sets, decoded once and cached as uint8 safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ..atomic import write_safetensors
from ..errors import FormatError
from .dataset import ImageDataset
from .fingerprint import file_key, listing_key
from .folder_layout import find_classes, find_split_root, list_images
from .image_decode import decode_images
from .not_found import dataset_not_found
from .stats import channel_mean_std
from .tarball import extract_once, is_tarball

CACHE_FORMAT = "haba-imagefolder-v1"
LAYOUT = ["train/<class>/<image>", "test/<class>/<image>"]
HOW = (
    "create a directory in torchvision ImageFolder layout (train/<class>/*.jpg, test/<class>/*.jpg), "
    "or pack one with `tar czf my-set.tar.gz train test`, and pass imagefolder:<that path>"
)


def _read_cache(path: Path) -> tuple[torch.Tensor, torch.Tensor, dict] | None:
    """Tensors and metadata of a tensor-cache file, or None when it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["haba"])
            if meta.get("format") != CACHE_FORMAT:
                return None
            return f.get_tensor("images"), f.get_tensor("labels"), meta
    except (SafetensorError, OSError, KeyError, ValueError):
        return None


def _read_meta(path: Path) -> dict | None:
    """Metadata of a tensor-cache file (header only), or None when it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["haba"])
    except (SafetensorError, OSError, KeyError, ValueError):
        return None
    return meta if meta.get("format") == CACHE_FORMAT else None


def _build_split(root: Path, split: str, tensors_dir: Path, source: str) -> Path:
    """Decode ``root/split`` into ``tensors_dir/split.safetensors`` (building train first for the stats)."""
    path = tensors_dir / f"{split}.safetensors"
    if _read_meta(path) is not None:
        return path
    split_dir = root / split
    if not split_dir.is_dir():
        raise dataset_not_found(source, [root], LAYOUT, HOW)
    if split == "train":
        classes = find_classes(split_dir)
        if len(classes) < 2:
            raise FormatError(f"{source}: train/ holds {len(classes)} class folder(s) {classes}; classification "
                              f"needs at least 2")
        files, labels = list_images(split_dir, classes)
        channels = None
    else:
        train_meta = _read_meta(_build_split(root, "train", tensors_dir, source))
        if train_meta is None:
            raise FormatError(f"{source}: the train tensor cache under {tensors_dir} could not be read back")
        classes = train_meta["classes"]
        extra = sorted(set(find_classes(split_dir)) - set(classes))
        if extra:
            raise FormatError(f"{source}: test classes {extra} do not occur in train/ (classes come from train/)")
        files, labels = list_images(split_dir, classes)
        channels = train_meta["image_shape"][0]
    if not files:
        raise dataset_not_found(source, [split_dir], ["<class>/<image> files (.jpg, .png, ...)"], HOW)
    images = decode_images(files, channels=channels)
    shape = list(images.shape[1:])
    if split == "train":
        mean, std = channel_mean_std(images, scale=255.0)
    else:
        mean, std = train_meta["mean"], train_meta["std"]
        if shape != train_meta["image_shape"]:
            raise FormatError(f"{source}: test images are {shape} (C,H,W) but train images are {train_meta['image_shape']}")
    meta = {"format": CACHE_FORMAT, "classes": classes, "mean": list(mean), "std": list(std), "image_shape": shape}
    write_safetensors(path, {"images": images, "labels": torch.tensor(labels, dtype=torch.int64)}, {"haba": json.dumps(meta)})
    return path


def _check_extracted(split: str, archive: Path):
    def validate(tmp: Path) -> None:
        root = find_split_root(tmp)
        for needed in {"train", split}:
            if root is None or not (root / needed).is_dir():
                raise dataset_not_found(
                    f"imagefolder:{archive}", [archive], [f"{needed}/<class>/<image> (at top level or in one folder)"], HOW
                )

    return validate


def load_imagefolder(path: str, split: str, cache_dir: Path) -> ImageDataset:
    """One split of an ImageFolder directory or ``.tar.gz``/``.tgz``; tensors cached under ``cache_dir``."""
    src = Path(path).expanduser().absolute()
    name = f"imagefolder:{src}"
    if src.is_file():
        if not is_tarball(src):
            raise FormatError(f"{name}: expected a directory or a .tar.gz/.tgz archive")
        tensors_dir = cache_dir / "imagefolder" / f"{file_key(src)}-tensors"
        cached = _read_cache(tensors_dir / f"{split}.safetensors")
        if cached is None:
            extracted = extract_once(src, cache_dir, _check_extracted(split, src))
            root = find_split_root(extracted)
            if root is None:
                raise dataset_not_found(name, [extracted], LAYOUT, HOW)
            cached = _read_cache(_build_split(root, split, tensors_dir, name))
    elif src.is_dir():
        root = find_split_root(src)
        if root is None:
            raise dataset_not_found(name, [src], LAYOUT, HOW)
        listing = [f for s in ("train", "test") if (root / s).is_dir() for f in list_images(root / s, find_classes(root / s))[0]]
        tensors_dir = cache_dir / "imagefolder" / f"dir-{listing_key(root, listing)}-tensors"
        cached = _read_cache(_build_split(root, split, tensors_dir, name))
    else:
        raise dataset_not_found(name, [src.parent], [src.name, *LAYOUT], HOW)
    if cached is None:
        raise FormatError(f"{name}: the tensor cache under {tensors_dir} could not be read back")
    images, labels, meta = cached
    return ImageDataset(
        name=name,
        images=images.to(torch.float32).div_(255.0),
        labels=labels.to(torch.int64),
        classes=meta["classes"],
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        split=split,
    )
