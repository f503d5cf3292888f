"""What the subcommands share: the seed's pipelines, device choice, data opening, user errors."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from stoker import transforms as T
from stoker.datasets import CIFAR10, FilteredVOCtoCIFAR
from stoker.errors import StokerError

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CommandError",
    "default_threads",
    "open_cifar",
    "open_voc",
    "pick_device",
    "positive_int",
    "test_pipeline",
    "train_pipeline",
    "voc_pipeline",
]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class CommandError(Exception):
    """A problem the user can fix (bad data, bad checkpoint): printed as one paragraph, exit 2."""


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def default_threads(workers: int) -> int:
    """Torch threads that leave a core to each loader worker: the available cores minus workers.

    More compute threads than free cores makes OpenMP threads wait on each other at every
    barrier: on a 2-core machine with a busy neighbour, training ran 10× slower.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - max(workers, 0))


def train_pipeline(library: Any = T) -> Any:
    """The seed's training augmentation: pad-4 random crop, flip, float, CIFAR normalisation.

    Built from ``library``: ``stoker.transforms``, or torchvision's ``transforms.v2`` to compare.
    """
    return library.Compose(
        [
            library.RandomCrop(32, padding=4),
            library.RandomHorizontalFlip(p=0.5),
            library.ToImage(),
            library.ToDtype(torch.float32, scale=True),
            library.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )


def device_pipeline() -> T.Compose:
    """The training augmentation for uint8 NCHW batches already on the training device.

    The seed's pipeline itself (``ToImage`` passes tensors through): on a uint8 tensor its
    fused run takes the device pass of :mod:`stoker.transforms._device` — a few kernels and one
    small host→device copy per batch — and computes what the workers would have.
    """
    return train_pipeline()  # type: ignore[no-any-return]


def test_pipeline() -> T.Compose:
    """The seed's test transform: float and CIFAR normalisation only."""
    return T.Compose(
        [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
    )


def voc_pipeline() -> T.Compose:
    """The seed's VOC→CIFAR transform: resize to 32×32, then the test transform."""
    return T.Compose(
        [
            T.Resize((32, 32)),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise CommandError(
            "--device cuda was asked for, but torch sees no CUDA GPU (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}). Run with "
            "--device cpu, or install a CUDA build of torch on a machine with a GPU."
        )
    return torch.device(name)


def open_cifar(data: Path, train: bool, transform: Any, download: bool, command: str) -> CIFAR10:
    """CIFAR-10 from ``data``, or a CommandError saying how to get it."""
    try:
        return CIFAR10(data, train=train, transform=transform, download=download)
    except (StokerError, OSError) as error:
        hint = (
            "Check the network and the folder's permissions, or download "
            "cifar-10-python.tar.gz yourself and extract it there."
            if download
            else f"Run `stoker {command} --data {data} --download` to fetch it, or `stoker "
            "demo` to generate a small dataset in the same format."
        )
        raise CommandError(f"CIFAR-10 could not be read from {data}: {error}. {hint}") from None


def open_voc(voc: Path, transform: Any, download: bool) -> FilteredVOCtoCIFAR:
    """The seed's filtered VOC→CIFAR split from ``voc``, or a CommandError saying how to get it."""
    try:
        dataset = FilteredVOCtoCIFAR(
            voc, year="2007", image_set="val", transform=transform, download=download
        )
    except (StokerError, OSError) as error:
        raise CommandError(
            f"PASCAL VOC 2007 could not be read from {voc}: {error}. Run `stoker eval-voc "
            f"--voc {voc} --download` to fetch it (about 440 MB), or `stoker demo` to generate "
            "a small tree in the same format."
        ) from None
    if len(dataset) == 0:
        raise CommandError(
            f"PASCAL VOC 2007 in {voc} has no 'val' image with exactly one object of a class "
            "mapped to CIFAR-10 (aeroplane, car, bird, cat, dog), so there is nothing to score. "
            "Point --voc at the full VOC 2007 tree, or fetch it with --download."
        )
    return dataset
