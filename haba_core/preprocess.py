"""The input space synthetic data live in: per-channel normalisation, optionally ZCA-whitened."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .zca import ZCA


@dataclass
class Preprocessor:
    """Maps [0,1] images to the model input space and back (for viewing)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    zca: ZCA | None = None

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return mean, std

    def __call__(self, images: Tensor, batch_size: int = 4096) -> Tensor:
        """Normalise (and whiten) images in [0,1]."""
        mean, std = self._stats(images)
        out = (images - mean) / std
        if self.zca is not None:
            out = torch.cat([self.zca.transform(chunk) for chunk in out.split(batch_size)])
        return out

    def inverse(self, x: Tensor) -> Tensor:
        """Back to [0,1] pixel space (clamped), e.g. to save a PNG."""
        if self.zca is not None:
            x = self.zca.inverse(x)
        mean, std = self._stats(x)
        return (x * std + mean).clamp(0, 1)

    @classmethod
    def fit(cls, images: Tensor, mean: tuple[float, ...], std: tuple[float, ...], zca: bool,
            regularization: float = 0.1) -> "Preprocessor":
        """Build from training images; fits ZCA on the normalised images when ``zca``."""
        pre = cls(tuple(mean), tuple(std))
        if zca:
            pre.zca = ZCA(regularization).fit(pre(images))
        return pre

    def to(self, device: torch.device) -> "Preprocessor":
        if self.zca is not None:
            self.zca = self.zca.to(device)
        return self
