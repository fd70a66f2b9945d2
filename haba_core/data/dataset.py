"""The in-memory image dataset every loader returns and every consumer codes against."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch


@dataclass(eq=False, repr=False)
class ImageDataset:
    """A whole split in memory: float32 images in [0, 1] (N x C x H x W) and int64 labels.

    ``mean``/``std`` are per-channel statistics of the TRAIN split, shared by both splits, so that
    ``normalized()`` treats train and test identically.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    split: str

    def __post_init__(self) -> None:
        self.classes = [str(c) for c in self.classes]
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        if self.images.ndim != 4:
            raise ValueError(f"images must be N x C x H x W, got shape {tuple(self.images.shape)}")
        if self.labels.ndim != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"labels must be a vector with one entry per image: {tuple(self.labels.shape)} vs {self.images.shape[0]} images"
            )
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise ValueError(f"mean/std need one value per channel ({self.images.shape[1]}), got {self.mean}/{self.std}")

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``), whether or not every class occurs in this split."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes})"
        )

    def normalized(self) -> torch.Tensor:
        """``(images - mean) / std`` per channel, as float32."""
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=self.images.device).view(shape)
        std = torch.tensor(self.std, dtype=torch.float32, device=self.images.device).view(shape)
        return (self.images.to(torch.float32) - mean) / std

    def subset(self, indices: torch.Tensor | Sequence[int]) -> "ImageDataset":
        """The selected rows (integer indices or a boolean mask) with the same metadata."""
        idx = torch.as_tensor(indices, device=self.labels.device)
        if idx.dtype != torch.bool:
            idx = idx.to(torch.int64)
        return replace(self, images=self.images[idx.to(self.images.device)], labels=self.labels[idx])

    def class_indices(self, c: int) -> torch.Tensor:
        """int64 indices of the images whose label is ``c``."""
        return torch.nonzero(self.labels == int(c), as_tuple=False).flatten().to(torch.int64)

    def samples_per_class(self) -> list[int]:
        """Number of images of each class, indexed by label (length ``num_classes``)."""
        if len(self) == 0:
            return [0] * self.num_classes
        counts = torch.bincount(self.labels.to("cpu", torch.int64), minlength=self.num_classes)
        return [int(n) for n in counts.tolist()]
