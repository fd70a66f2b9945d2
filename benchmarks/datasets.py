"""Train/validation/test sets for the studies, read from ../shared/data (never copied into the repository).

Protocol (issue 14): every choice of recipe, learning rate or variant is made on a fixed, seeded,
class-balanced **validation** split carved from the training set (``split="val"``); the test split is
touched only for final tables (``split="test"``). With ``split="val"`` the returned training set excludes
the validation images, so nothing is distilled from the images it is scored on.
"""

from __future__ import annotations

from pathlib import Path

import torch

from haba_core import ImageDataset, load_dataset

#: validation images per class carved from the training set (digits: 30 of its ~130 per class)
VAL_PER_CLASS = {"digits": 30, "mnist": 500, "cifar10": 500}
VAL_SEED = 12345  # fixed: the same validation split for every study, seed and variant


def validation_split(train: ImageDataset, per_class: int, seed: int = VAL_SEED) -> tuple[ImageDataset, ImageDataset]:
    """``(train minus validation, validation)``: ``per_class`` images of each class, drawn with a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    val_idx = []
    for c in range(train.num_classes):
        idx = (train.labels == c).nonzero().flatten()
        take = min(per_class, max(idx.numel() - 1, 0))
        val_idx.append(idx[torch.randperm(idx.numel(), generator=g)[:take]])
    val = torch.cat(val_idx).sort().values
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[val] = False
    return train.subset(keep.nonzero().flatten()), train.subset(val)


def load_pair(name: str, data_root: str | Path, quick: bool = False, test_limit: int | None = None,
              split: str = "test") -> tuple[ImageDataset, ImageDataset]:
    """``(train, eval)`` for ``digits`` (embedded), ``mnist`` (``<root>/mnist``) or ``cifar10``
    (``<root>/cifar10-jpeg.tar.gz``).

    ``split="test"`` evaluates on the official test split (final tables); ``split="val"`` on the fixed
    validation split carved from the training set (model selection), and trains on the rest.
    ``quick`` keeps 2,000 training and 1,000 evaluation images; ``test_limit`` caps the evaluation set (seeded).
    """
    if split not in ("test", "val"):
        raise SystemExit(f"unknown split {split!r}: test or val")
    root = Path(data_root)
    if name == "digits":
        tr, te = load_dataset("digits"), load_dataset("digits", split="test")
    elif name == "mnist":
        tr, te = load_dataset("mnist", root=root / "mnist"), load_dataset("mnist", root=root / "mnist", split="test")
    elif name == "cifar10":
        src = f"imagefolder:{root / 'cifar10-jpeg.tar.gz'}"
        tr, te = load_dataset(src), load_dataset(src, split="test")
    else:
        raise SystemExit(f"unknown dataset {name!r}: digits, mnist or cifar10")
    if split == "val":
        tr, te = validation_split(tr, VAL_PER_CLASS[name])
    g = torch.Generator().manual_seed(0)
    if quick and name != "digits":
        tr = tr.subset(torch.randperm(len(tr), generator=g)[:2000])
        test_limit = min(test_limit or 1000, 1000)
    if test_limit and len(te) > test_limit:
        te = te.subset(torch.randperm(len(te), generator=g)[:test_limit])
    return tr, te
