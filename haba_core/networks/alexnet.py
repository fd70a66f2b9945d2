"""The small AlexNet of the dataset-distillation literature (192 features after adaptive pooling).

Initialisation: He (Kaiming) normal for the convolutions, zero biases. With PyTorch's default
initialisation this plain five-convolution stack (no normalisation layers) halves the activations'
spread at every layer, so the logits start ~50× smaller than the inputs, gradients to the first layers
vanish, and on small distilled sets the network often never leaves a constant prediction — exactly
chance accuracy. He initialisation keeps the spread through the ReLUs (see ``tests/test_networks.py``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .norm import FeatureClassifier, SafePool2d


class AlexNet(FeatureClassifier):
    """Five convolutions (128-192-256-192-192) with max-pools skipped at 1×1, then a linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int | tuple[int, int] = 32):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = image_size
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, 128, kernel_size=5, stride=1, padding=4 if in_channels == 1 else 2),
            nn.ReLU(),
            SafePool2d("maxpool"),
            nn.Conv2d(128, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            SafePool2d("maxpool"),
            nn.Conv2d(192, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 192, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(192, 192, kernel_size=3, padding=1),
            nn.ReLU(),
            SafePool2d("maxpool"),
        )
        self.feature_dim = 192
        self.classifier = nn.Linear(192, num_classes)
        for m in self.layers:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.layers(x), 1).flatten(1)
