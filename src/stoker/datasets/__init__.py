"""Datasets in their real formats — CIFAR-10/100, PASCAL VOC, VOC→CIFAR-10, image folders."""

from stoker.datasets import testdata
from stoker.datasets._images import decode_image
from stoker.datasets.cifar import CIFAR10, CIFAR100
from stoker.datasets.image_folder import ImageFolder
from stoker.datasets.voc import VOC_CLASSES, VOCDetection
from stoker.datasets.voc_cifar import CIFAR10_CLASSES, DEFAULT_VOC_TO_CIFAR, FilteredVOCtoCIFAR

__all__ = [
    "CIFAR10",
    "CIFAR10_CLASSES",
    "CIFAR100",
    "DEFAULT_VOC_TO_CIFAR",
    "VOC_CLASSES",
    "FilteredVOCtoCIFAR",
    "ImageFolder",
    "VOCDetection",
    "decode_image",
    "testdata",
]
