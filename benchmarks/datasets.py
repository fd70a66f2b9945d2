"""Train/test pairs for the studies, read from ../shared/data (never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

import torch

from haba_core import ImageDataset, load_dataset


def load_pair(name: str, data_root: str | Path, quick: bool = False, test_limit: int | None = None
              ) -> tuple[ImageDataset, ImageDataset]:
    """``digits`` (embedded), ``mnist`` (``<root>/mnist``) or ``cifar10`` (``<root>/cifar10-jpeg.tar.gz``).

    ``quick`` keeps 2,000 training and 1,000 test images; ``test_limit`` caps the test set (seeded).
    """
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
    g = torch.Generator().manual_seed(0)
    if quick and name != "digits":
        tr = tr.subset(torch.randperm(len(tr), generator=g)[:2000])
        test_limit = min(test_limit or 1000, 1000)
    if test_limit and len(te) > test_limit:
        te = te.subset(torch.randperm(len(te), generator=g)[:test_limit])
    return tr, te
