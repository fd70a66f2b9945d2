"""Name → network lookup (case-insensitive) used by every entry point."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ..errors import ConfigError, UnknownNameError
from .alexnet import AlexNet
from .convnet import ConvNet
from .resnet import ResNet18
from .vgg import VGG11

KNOWN_NETWORKS = ("ConvNet", "ConvNetD4", "ConvNetD5", "ResNet18", "VGG11", "AlexNet")

# lower-case name -> (class, default keyword arguments); aliases are accepted but not advertised.
_REGISTRY: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "convnet": (ConvNet, {}),
    "convnetd4": (ConvNet, {"depth": 4}),
    "convnetd5": (ConvNet, {"depth": 5}),
    "resnet18": (ResNet18, {}),
    "vgg11": (VGG11, {}),
    "alexnet": (AlexNet, {}),
    "convnetbn": (ConvNet, {"norm": "batchnorm"}),
    "resnet18bn": (ResNet18, {"norm": "batchnorm"}),
}


def get_network(
    name: str, in_channels: int, num_classes: int, image_size: int | tuple[int, int], **kwargs: Any
) -> nn.Module:
    """Build a network by name; extra keyword arguments (e.g. ``width``, ``depth``, ``norm``) pass through."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise UnknownNameError(f"unknown network {name!r}; known networks: {', '.join(KNOWN_NETWORKS)}")
    cls, defaults = _REGISTRY[key]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "in_channels", "num_classes", "image_size"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"network {name!r} does not accept {unknown}; accepted options: {sorted(accepted)}")
    return cls(in_channels, num_classes, image_size, **{**defaults, **kwargs})
