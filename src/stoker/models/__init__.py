"""Reference models for stoker's examples: the CIFAR ResNet-20 of He et al. 2016."""

from stoker.models.resnet import resnet20

__all__ = ["resnet20"]
