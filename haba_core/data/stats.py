"""Per-channel mean and standard deviation of an image tensor, computed in chunks."""

from __future__ import annotations

import torch


def channel_mean_std(images: torch.Tensor, scale: float = 1.0, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and (population) std per channel of ``images / scale`` (N x C x H x W), in float64.

    Works on uint8 images without materialising a float copy of the whole tensor.
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"need a non-empty N x C x H x W tensor, got shape {tuple(images.shape)}")
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64) / scale
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
