"""Train/validation/test sets for the studies, read from ../shared/data (never copied into the repository).

Protocol (issue 14): every choice of recipe, learning rate or variant is made on a fixed, seeded,
class-balanced **validation** split carved from the training set (``split="val"``); the test split is
touched only for final tables (``split="test"``). With ``split="val"`` the returned training set excludes
the validation images, so nothing is distilled from the images it is scored on.
"""

from __future__ import annotations

from pathlib import Path

import torch

from haba_core import ImageDataset, load_dataset, validation_split

#: validation images per class carved from the training set (digits: 30 of its ~130 per class)
VAL_PER_CLASS = {"digits": 30, "mnist": 500, "cifar10": 500}


def _load_raw(name: str, root: Path) -> tuple[ImageDataset, ImageDataset]:
    if name == "digits":
        return load_dataset("digits"), load_dataset("digits", split="test")
    if name == "mnist":
        return load_dataset("mnist", root=root / "mnist"), load_dataset("mnist", root=root / "mnist", split="test")
    if name == "cifar10":
        src = f"imagefolder:{root / 'cifar10-jpeg.tar.gz'}"
        return load_dataset(src), load_dataset(src, split="test")
    raise SystemExit(f"unknown dataset {name!r}: digits, mnist or cifar10")


def _reduce(name: str, train: ImageDataset, evals: list[ImageDataset], quick: bool,
            test_limit: int | None) -> list[ImageDataset]:
    """``quick``: 2,000 training images and at most 1,000 per evaluation set; ``test_limit`` caps each
    evaluation set (seeded subsets: each set's subset does not depend on which other sets are loaded)."""
    if quick and name != "digits":
        train = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:2000])
        test_limit = min(test_limit or 1000, 1000)
    out = [train]
    for ds in evals:
        if test_limit and len(ds) > test_limit:
            ds = ds.subset(torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:test_limit])
        out.append(ds)
    return out


def load_splits(name: str, data_root: str | Path, quick: bool = False,
                test_limit: int | None = None) -> tuple[ImageDataset, ImageDataset, ImageDataset]:
    """``(train minus validation, validation, test)`` for ``digits`` (embedded), ``mnist`` (``<root>/mnist``)
    or ``cifar10`` (``<root>/cifar10-jpeg.tar.gz``): one distillation scored on both splits, the validation
    score for every choice and the test score for the final table.

    ``quick`` keeps 2,000 training and at most 1,000 images per evaluation set; ``test_limit`` caps the
    validation and the test set (seeded subsets, the same as ``load_pair`` draws for each split).
    """
    tr, te = _load_raw(name, Path(data_root))
    tr, va = validation_split(tr, VAL_PER_CLASS[name])
    tr, va, te = _reduce(name, tr, [va, te], quick, test_limit)
    return tr, va, te


def load_pair(name: str, data_root: str | Path, quick: bool = False, test_limit: int | None = None,
              split: str = "test") -> tuple[ImageDataset, ImageDataset]:
    """``(train, eval)``: ``split="test"`` evaluates on the official test split (final tables) and trains on
    the whole training set; ``split="val"`` on the fixed validation split carved from the training set (model
    selection), and trains on the rest. Other arguments as :func:`load_splits`.
    """
    if split not in ("test", "val"):
        raise SystemExit(f"unknown split {split!r}: test or val")
    tr, te = _load_raw(name, Path(data_root))
    if split == "val":
        tr, te = validation_split(tr, VAL_PER_CLASS[name])
    tr, te = _reduce(name, tr, [te], quick, test_limit)
    return tr, te
