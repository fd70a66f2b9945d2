"""scikit-learn's embedded 8x8 digits (no files needed), with a fixed stratified 70/30 split."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .dataset import ImageDataset
from .stats import channel_mean_std

TEST_SIZE = 0.3
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _digits_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y)
    return {"train": (x_tr, y_tr), "test": (x_te, y_te)}


def load_digits_dataset(split: str) -> ImageDataset:
    """The ``train`` (1257) or ``test`` (540) split of the 1797 sklearn digits, 1 x 8 x 8 in [0, 1]."""
    splits = _digits_splits()
    x, y = splits[split]
    mean, std = channel_mean_std(torch.from_numpy(splits["train"][0]))
    return ImageDataset(
        name="digits",
        images=torch.from_numpy(x.copy()),
        labels=torch.from_numpy(y.copy()),
        classes=[str(i) for i in range(10)],
        mean=mean,
        std=std,
        split=split,
    )
