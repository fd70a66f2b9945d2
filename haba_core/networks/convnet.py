"""The standard dataset-distillation ConvNet (depth × [conv3×3 → norm → act → pool] → linear)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .norm import FeatureClassifier, SafePool2d, make_act, make_norm, pair


class ConvNet(FeatureClassifier):
    """ConvNet of DC/DSA/DM/MTT; ``norm="instancenorm"`` is ``GroupNorm(width, width)``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        width: int = 128,
        depth: int = 3,
        norm: str = "instancenorm",
        act: str = "relu",
        pooling: str = "avgpool",
    ):
        super().__init__()
        if depth < 1 or width < 1:
            raise ConfigError(f"ConvNet needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
        shape = pair(image_size)
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1))
            layers.append(make_norm(norm, width, shape))
            layers.append(make_act(act))
            pool = SafePool2d(pooling)
            layers.append(pool)
            shape = SafePool2d.out_shape(pool.kind, shape)
            channels = width
        self.layers = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.feature_dim = width * shape[0] * shape[1]
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).flatten(1)
