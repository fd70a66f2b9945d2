"""Building blocks shared by the networks: norm/activation/pooling factories and the classifier base."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError

NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
ACTIVATIONS = ("relu", "leakyrelu", "sigmoid", "gelu")
POOLINGS = ("avgpool", "maxpool", "none")


class InstanceNorm(nn.GroupNorm):
    """Instance norm as in the DD literature (``GroupNorm(c, c)``), safe on 1×1 feature maps.

    On a 1×1 map instance statistics are undefined (every output would be the bias), so there the layer
    only applies its affine transform. Parameter names match ``nn.GroupNorm``.
    """

    def __init__(self, channels: int):
        super().__init__(channels, channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] * x.shape[-2] == 1:
            return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return super().forward(x)


def make_norm(norm: str, channels: int, shape: tuple[int, int] | None = None) -> nn.Module:
    """Return a norm layer; ``instancenorm`` is :class:`InstanceNorm` (``GroupNorm(c, c)``) and ``layernorm`` normalises C×H×W."""
    key = (norm or "none").lower()
    if key == "instancenorm":
        return InstanceNorm(channels)
    if key == "batchnorm":
        return nn.BatchNorm2d(channels, affine=True)
    if key == "layernorm":
        if shape is None:  # same statistics as LayerNorm([C, H, W]), per-channel affine, size-agnostic
            return nn.GroupNorm(1, channels, affine=True)
        return nn.LayerNorm([channels, shape[0], shape[1]], elementwise_affine=True)
    if key == "groupnorm":
        return nn.GroupNorm(4 if channels % 4 == 0 else 1, channels, affine=True)
    if key == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")


def make_act(act: str) -> nn.Module:
    """Return an activation module (never in-place, so functional unrolling stays safe)."""
    key = (act or "").lower()
    if key == "relu":
        return nn.ReLU()
    if key == "leakyrelu":
        return nn.LeakyReLU(0.01)
    if key == "sigmoid":
        return nn.Sigmoid()
    if key == "gelu":
        return nn.GELU()
    raise ConfigError(f"unknown activation {act!r}; expected one of {', '.join(ACTIVATIONS)}")


class SafePool2d(nn.Module):
    """2×2 stride-2 pooling that is skipped when the feature map is already smaller than 2 in either side."""

    def __init__(self, kind: str = "avgpool"):
        super().__init__()
        key = (kind or "none").lower()
        if key not in POOLINGS:
            raise ConfigError(f"unknown pooling {kind!r}; expected one of {', '.join(POOLINGS)}")
        self.kind = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "none" or min(x.shape[-2], x.shape[-1]) < 2:
            return x
        if self.kind == "avgpool":
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return F.max_pool2d(x, kernel_size=2, stride=2)

    @staticmethod
    def out_shape(kind: str, shape: tuple[int, int]) -> tuple[int, int]:
        """Spatial shape after this pooling (mirrors :meth:`forward`)."""
        if kind.lower() == "none" or min(shape) < 2:
            return shape
        return shape[0] // 2, shape[1] // 2

    def extra_repr(self) -> str:
        return self.kind


def pair(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Normalise an image size to ``(H, W)``."""
    if isinstance(image_size, int):
        size = (image_size, image_size)
    else:
        size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"image_size must be a positive int or (H, W), got {image_size!r}")
    return size  # type: ignore[return-value]


class FeatureClassifier(nn.Module):
    """Base class: subclasses define ``features(x)`` (flat vector) and a ``classifier`` linear layer."""

    feature_dim: int
    num_classes: int

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Logits, or ``(logits, features)`` from the same pass when ``return_features`` is true."""
        feat = self.features(x)
        logits = self.classifier(feat)
        return (logits, feat) if return_features else logits

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flat feature vector fed to the final linear classifier."""
        return self.features(x)
