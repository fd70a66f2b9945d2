"""Differentiable DSA ops (ParamDiffAug of the DC/DSA/DM/MTT code) driven by pre-sampled uniforms.

Each op takes the image batch ``x`` (N×C×H×W), a tensor ``u`` of uniforms in [0, 1) with first dimension
``n`` (1 = shared by every sample, else n == N) already on ``x``'s device (left on the host for the ops in
``HOST_UNIFORMS``, which read them as Python numbers), and the :class:`DSAConfig`.
Sizes that depend on the image (shifts, cutout offsets) are derived from ``u`` here, so one set of
parameters applies to batches of any image size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F


def _col(u: Tensor, x: Tensor) -> Tensor:
    return u.reshape(-1, 1, 1, 1).to(x.dtype)


def brightness(x: Tensor, u: Tensor, cfg) -> Tensor:
    """``x + (r - 0.5) * brightness``."""
    return x + (_col(u, x) - 0.5) * cfg.brightness


def saturation(x: Tensor, u: Tensor, cfg) -> Tensor:
    """``(x - channel_mean) * (r * saturation) + channel_mean`` (identity for one channel)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_col(u, x) * cfg.saturation) + mean


def contrast(x: Tensor, u: Tensor, cfg) -> Tensor:
    """``(x - image_mean) * (r + contrast) + image_mean``."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_col(u, x) + cfg.contrast) + mean


def _shift(u: Tensor, size: int, ratio: float) -> Tensor:
    """Integer shifts uniform in [-s, s] with ``s = int(size * ratio + 0.5)`` (as ``torch.randint`` there)."""
    s = int(size * ratio + 0.5)
    return (u * (2 * s + 1)).floor().long().clamp(max=2 * s) - s


def crop(x: Tensor, u: Tensor, cfg) -> Tensor:
    """Translate by up to ``ratio_crop_pad`` of the size with zero fill; ``u`` is n×2 (rows, columns)."""
    n, (N, C, H, W) = u.shape[0], x.shape
    tx = _shift(u[:, 0], H, cfg.ratio_crop_pad)
    ty = _shift(u[:, 1], W, cfg.ratio_crop_pad)
    if n == 1:  # one shared shift (siamese DSA): pad and slice, whose backward is deterministic on CUDA too
        return _translate(x, int(tx), int(ty))  # u stays on the host (HOST_UNIFORMS): no device sync
    tx, ty = tx.to(x.device), ty.to(x.device)
    rows = (torch.arange(H, device=x.device).unsqueeze(0) + tx.unsqueeze(1) + 1).clamp(0, H + 1)
    cols = (torch.arange(W, device=x.device).unsqueeze(0) + ty.unsqueeze(1) + 1).clamp(0, W + 1)
    x_pad = F.pad(x, [1, 1, 1, 1])  # the one-pixel zero border is what out-of-range indices read
    out = x_pad.gather(2, rows.reshape(n, 1, H, 1).expand(N, C, H, W + 2))
    return out.gather(3, cols.reshape(n, 1, 1, W).expand(N, C, H, W))


def _translate(x: Tensor, tx: int, ty: int) -> Tensor:
    """``out[..., i, j] = x[..., i + tx, j + ty]``, zero where that falls outside (the gather path's values)."""
    H, W = x.shape[-2:]
    px, py = min(abs(tx), H), min(abs(ty), W)
    x_pad = F.pad(x, [py, py, px, px])
    rows = x_pad.narrow(-2, px + max(-H, min(H, tx)), H)
    return rows.narrow(-1, py + max(-W, min(W, ty)), W)


def cutout(x: Tensor, u: Tensor, cfg) -> Tensor:
    """Zero a ``ratio_cutout``-sized rectangle at a random centre; ``u`` is n×2."""
    H, W = x.shape[-2:]
    masks = []
    for k, size in enumerate((H, W)):
        side = int(size * cfg.ratio_cutout + 0.5)
        high = size + (1 - side % 2)  # exclusive upper bound of the centre, as in the reference code
        centre = (u[:, k] * high).floor().long().clamp(max=high - 1)
        start = (centre - side // 2).unsqueeze(1)
        idx = torch.arange(size, device=x.device).unsqueeze(0)
        masks.append((idx >= start) & (idx < start + side))
    hole = masks[0].unsqueeze(2) & masks[1].unsqueeze(1)  # n×H×W
    return x * (~hole).unsqueeze(1).to(x.dtype)


def flip(x: Tensor, u: Tensor, cfg) -> Tensor:
    """Horizontal flip where ``u < prob_flip`` (0.5)."""
    return torch.where((u < cfg.prob_flip).reshape(-1, 1, 1, 1), x.flip(3), x)


# Largest image (pixels) warped through a dense interpolation matrix on CUDA: 64×64 → a 64 MiB matrix.
MATRIX_WARP_MAX_PIXELS = 64 * 64


def _warp(x: Tensor, theta: Tensor) -> Tensor:
    theta = theta.to(x.dtype)
    if x.is_cuda and theta.shape[0] == 1 and x.shape[-2] * x.shape[-1] <= MATRIX_WARP_MAX_PIXELS:
        # grid_sample's CUDA backward accumulates with atomics (differs run to run); a matmul does not
        return warp_by_matrix(x, theta)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def warp_by_matrix(x: Tensor, theta: Tensor) -> Tensor:
    """``grid_sample(x, affine_grid(theta), align_corners=True)`` (bilinear, zero padding) for ONE shared
    ``theta`` (1×2×3), as ``x @ Mᵀ`` with the (H·W)×(H·W) interpolation matrix ``M``: deterministic forward
    and backward on every device."""
    N, C, H, W = x.shape
    grid = F.affine_grid(theta.reshape(1, 2, 3), [1, C, H, W], align_corners=True)[0].reshape(-1, 2)
    ix, iy = (grid[:, 0] + 1) / 2 * (W - 1), (grid[:, 1] + 1) / 2 * (H - 1)
    x0, y0 = ix.floor(), iy.floor()
    fx, fy = ix - x0, iy - y0
    cols = torch.arange(H * W, device=x.device).unsqueeze(0)
    matrix = x.new_zeros(H * W, H * W)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        cx, cy = (x0 + dx).long(), (y0 + dy).long()
        ok = (cx >= 0) & (cx < W) & (cy >= 0) & (cy < H)
        # one-hot rows, no boolean indexing (that would synchronise with the host four times per corner);
        # the four corners of a row are distinct columns, so each entry gets one weight or exact zeros
        column = torch.where(ok, cy * W + cx, -1).unsqueeze(1)
        matrix = matrix + (column == cols) * torch.where(ok, w, 0.0).unsqueeze(1)
    return (x.reshape(N * C, H * W) @ matrix.T).reshape(N, C, H, W)


def scale(x: Tensor, u: Tensor, cfg) -> Tensor:
    """Independent x/y scale in [1/ratio_scale, ratio_scale] through an affine grid; ``u`` is n×2."""
    r = cfg.ratio_scale
    s = u * (r - 1.0 / r) + 1.0 / r
    zero = torch.zeros_like(s[:, 0])
    theta = torch.stack([torch.stack([s[:, 0], zero, zero], 1), torch.stack([zero, s[:, 1], zero], 1)], 1)
    return _warp(x, theta)


def rotate(x: Tensor, u: Tensor, cfg) -> Tensor:
    """Rotation by an angle uniform in ±ratio_rotate degrees through an affine grid."""
    angle = (u - 0.5) * 2 * cfg.ratio_rotate / 180 * math.pi
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _warp(x, theta)


# op name -> (function, number of uniforms per sample)
OPS = {
    "brightness": (brightness, 1),
    "saturation": (saturation, 1),
    "contrast": (contrast, 1),
    "crop": (crop, 2),
    "cutout": (cutout, 2),
    "flip": (flip, 1),
    "scale": (scale, 2),
    "rotate": (rotate, 1),
}

# ops that take their uniforms where they were sampled (the host) rather than on x's device
HOST_UNIFORMS = frozenset({"crop"})

# strategy token -> ops it expands to
GROUPS = {
    "color": ("brightness", "saturation", "contrast"),
    **{name: (name,) for name in OPS},
}
