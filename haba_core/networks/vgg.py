"""VGG-11 for small images (conv3×3 + norm + ReLU, max-pools skipped at 1×1, 512 features)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .norm import FeatureClassifier, SafePool2d, make_norm

VGG11_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(FeatureClassifier):
    """VGG-11 (instance norm by default), adaptive-average-pooled to 1×1 so ``feature_dim == 512``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int] = 32,
        norm: str = "instancenorm",
    ):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = image_size
        layers: list[nn.Module] = []
        channels = in_channels
        for item in VGG11_CFG:
            if item == "M":
                layers.append(SafePool2d("maxpool"))
            else:
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), make_norm(norm, item), nn.ReLU()]
                channels = item
        self.layers = nn.Sequential(*layers)
        self.feature_dim = channels
        self.classifier = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.layers(x), 1).flatten(1)
