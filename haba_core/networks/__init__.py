"""Networks of the dataset-distillation literature and the name registry."""

from .alexnet import AlexNet
from .convnet import ConvNet
from .norm import FeatureClassifier, make_act, make_norm
from .registry import KNOWN_NETWORKS, get_network
from .resnet import BasicBlock, ResNet18
from .vgg import VGG11

__all__ = [
    "KNOWN_NETWORKS",
    "AlexNet",
    "BasicBlock",
    "ConvNet",
    "FeatureClassifier",
    "ResNet18",
    "VGG11",
    "get_network",
    "make_act",
    "make_norm",
]
