"""A fixed, seeded, class-balanced validation split carved from a training split (issue 14's protocol).

Every choice of recipe, learning rate, variant or strategy is made on this split; the test split is kept for
final tables. The images of the validation split are removed from the training split returned with it, so
nothing is distilled or trained from the images it is scored on.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .dataset import ImageDataset

#: the seed of the validation draw: the same split for every study, seed, strategy and variant
VAL_SEED = 12345
#: the largest split a command line or a recorded file may ask for (images per class)
MAX_VAL_PER_CLASS = 1_000_000


def is_val_per_class(value: object) -> bool:
    """Whether ``value`` (from a command line or an untrusted file) is a usable split size: an ``int`` (not a
    bool) in ``0..MAX_VAL_PER_CLASS``; 0 means no validation split."""
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value <= MAX_VAL_PER_CLASS


def validation_split(train: ImageDataset, per_class: int, seed: int = VAL_SEED) -> tuple[ImageDataset, ImageDataset]:
    """``(train minus validation, validation)``: ``per_class`` random images of each class (fewer for a class
    with ``per_class`` images or fewer: one always stays in training), drawn with a fixed seed."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"validation images per class must be a positive integer, got {per_class!r}")
    g = torch.Generator().manual_seed(int(seed))
    val_idx = []
    for c in range(train.num_classes):
        idx = train.class_indices(c).cpu()
        take = min(per_class, max(idx.numel() - 1, 0))
        val_idx.append(idx[torch.randperm(idx.numel(), generator=g)[:take]])
    val = torch.cat(val_idx).sort().values
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[val] = False
    return train.subset(keep.nonzero().flatten()), replace(train.subset(val), split="val")


__all__ = ["MAX_VAL_PER_CLASS", "VAL_SEED", "is_val_per_class", "validation_split"]
