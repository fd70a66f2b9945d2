"""ZCA whitening fitted through kornia (regularisation 0.1 as in the trajectory-matching code)."""

from __future__ import annotations

import torch
from kornia.enhance import zca_mean
from torch import Tensor

from .errors import ConfigError, FormatError

_KEYS = ("mean", "transform", "inverse")


class ZCA:
    """ZCA whitening over flattened images: ``transform(x) = (x - mean) @ T``; ``inverse`` undoes it."""

    def __init__(self, regularization: float = 0.1):
        if not regularization >= 0:
            raise ConfigError(f"ZCA regularization must be >= 0, got {regularization!r}")
        self.regularization = float(regularization)
        self._mean: Tensor | None = None
        self._transform: Tensor | None = None
        self._inverse: Tensor | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_state_dict`) has set the matrices."""
        return self._transform is not None

    @property
    def dim(self) -> int:
        """Number of features D (C·H·W) the transform was fitted on."""
        self._check()
        return int(self._transform.shape[0])

    def fit(self, images: Tensor) -> "ZCA":
        """Fit mean and whitening matrices on N×C×H×W images (float32, on the images' device)."""
        if images.dim() < 2 or images.shape[0] < 2:
            raise ConfigError(f"ZCA.fit needs at least two samples in an N×... tensor, got shape {tuple(images.shape)}")
        flat = images.detach().reshape(images.shape[0], -1).float()
        transform, mean, inverse = zca_mean(flat, dim=0, eps=self.regularization, return_inverse=True)
        self._mean = mean.reshape(-1)
        self._transform = transform
        self._inverse = inverse
        return self

    def transform(self, x: Tensor) -> Tensor:
        """Whiten a batch; shape is preserved and the result lives on ``x``'s device (differentiable)."""
        flat = self._flatten(x)
        mean, mat, _ = self._on(x)
        return ((flat - mean) @ mat).reshape(x.shape)

    __call__ = transform

    def inverse(self, x: Tensor) -> Tensor:
        """Map whitened images back to the input space (exact inverse of :meth:`transform`)."""
        flat = self._flatten(x)
        mean, _, inv = self._on(x)
        return (flat @ inv + mean).reshape(x.shape)

    def state_dict(self) -> dict[str, Tensor]:
        """``{"mean": (D,), "transform": (D, D), "inverse": (D, D)}`` as float32 CPU tensors."""
        self._check()
        return {
            "mean": self._mean.detach().float().cpu().clone(),
            "transform": self._transform.detach().float().cpu().clone(),
            "inverse": self._inverse.detach().float().cpu().clone(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], regularization: float = 0.1) -> "ZCA":
        """Rebuild a fitted ZCA from :meth:`state_dict`; inconsistent shapes raise ``FormatError``."""
        missing = [k for k in _KEYS if k not in state]
        if missing:
            raise FormatError(f"ZCA state is missing {missing}")
        mean = torch.as_tensor(state["mean"]).float().reshape(-1)
        transform = torch.as_tensor(state["transform"]).float()
        inverse = torch.as_tensor(state["inverse"]).float()
        d = mean.numel()
        if transform.shape != (d, d) or inverse.shape != (d, d):
            raise FormatError(
                f"ZCA state shapes disagree: mean {tuple(mean.shape)}, transform {tuple(transform.shape)}, "
                f"inverse {tuple(inverse.shape)}"
            )
        zca = cls(regularization)
        zca._mean, zca._transform, zca._inverse = mean, transform, inverse
        return zca

    def to(self, device: torch.device | str) -> "ZCA":
        """Move the matrices to ``device`` (in place); returns self."""
        self._check()
        self._mean = self._mean.to(device)
        self._transform = self._transform.to(device)
        self._inverse = self._inverse.to(device)
        return self

    def _check(self) -> None:
        if not self.fitted:
            raise ConfigError("ZCA is not fitted: call fit(images) or ZCA.from_state_dict(state) first")

    def _flatten(self, x: Tensor) -> Tensor:
        self._check()
        d = self._transform.shape[0]
        if x.dim() < 2 or x[0].numel() != d:
            raise ConfigError(f"ZCA was fitted on {d} features per sample, got a batch of shape {tuple(x.shape)}")
        return x.reshape(x.shape[0], d)

    def _on(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        dtype = x.dtype if x.is_floating_point() else torch.float32
        return tuple(t.to(device=x.device, dtype=dtype) for t in (self._mean, self._transform, self._inverse))

    def __repr__(self) -> str:
        state = f"D={self.dim}" if self.fitted else "unfitted"
        return f"ZCA(regularization={self.regularization}, {state})"
