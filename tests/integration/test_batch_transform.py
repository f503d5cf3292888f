"""batch_transform on the loader equals the same transform applied per sample in the dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import stoker
from stoker import transforms as T
from stoker.cli._common import train_pipeline
from stoker.datasets import CIFAR10, testdata
from tests.devices import DEVICES
from tests.helpers import assert_batches_equal

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


def train_transform() -> T.Compose:
    return T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(0.5),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(MEAN, STD),
        ]
    )


class Images(stoker.Dataset[Any]):
    """uint8 CHW images; optionally transformed per sample inside __getitem__."""

    def __init__(self, transform: Any = None, n: int = 40):
        self.images = np.random.default_rng(1).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Any:
        image = torch.from_numpy(self.images[index])
        return self.transform(image) if self.transform is not None else image


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batch_transform_equals_per_sample_transform(num_workers: int) -> None:
    per_sample = stoker.DataLoader(
        Images(train_transform()), batch_size=8, shuffle=True, seed=4, num_workers=num_workers
    )
    batched = stoker.DataLoader(
        Images(),
        batch_size=8,
        shuffle=True,
        seed=4,
        num_workers=num_workers,
        batch_transform=train_transform(),
    )
    for _epoch in range(2):
        for a, b in zip(per_sample, batched, strict=True):
            assert_batches_equal(a, b)


def test_batch_transform_outside_the_loader_with_an_explicit_context() -> None:
    """GPU-side use: the same result on a batch moved to a device, given the batch's context."""
    dataset = Images()
    loader = stoker.DataLoader(dataset, batch_size=8, seed=9, batch_transform=train_transform())
    expected = next(iter(loader))
    raw = torch.from_numpy(dataset.images[:8])
    with stoker.sample_context(9, 0, list(range(8))):
        got = train_transform()(raw.to("cpu"))
    assert torch.equal(got, expected)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_with_sample_context_lets_augmentation_run_after_the_loader(num_workers: int) -> None:
    """Rows of [seed, epoch, index] travel with the batch; augmenting later gives the same."""
    in_loader = stoker.DataLoader(
        Images(),
        batch_size=8,
        shuffle=True,
        seed=2,
        num_workers=num_workers,
        batch_transform=train_transform(),
    )
    raw = stoker.DataLoader(
        stoker.WithSampleContext(Images()),
        batch_size=8,
        shuffle=True,
        seed=2,
        num_workers=num_workers,
    )
    augment = train_transform()
    for _epoch in range(2):
        for expected, (images, rows) in zip(in_loader, raw, strict=True):
            assert rows.shape == (len(images), 3)
            with stoker.seeding.context_from_rows(rows.numpy()):
                assert torch.equal(augment(images), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_cifar_augmented_on_the_device_equals_augmented_in_the_workers(
    tmp_path: Path, device: str
) -> None:
    """Invariant: uint8 batches + WithSampleContext rows, augmented after the copy to ``device``
    by the seed's own pipeline, equal the batches the workers augment, bit for bit."""
    testdata.write_cifar10(tmp_path, train=testdata.random_cifar(150, seed=5))
    seed_pipeline = train_pipeline()
    in_workers = stoker.DataLoader(
        CIFAR10(tmp_path, transform=seed_pipeline),
        batch_size=32,
        shuffle=True,
        seed=3,
        num_workers=2,
    )
    raw = stoker.DataLoader(
        stoker.WithSampleContext(CIFAR10(tmp_path, transform=T.ToImage())),
        batch_size=32,
        shuffle=True,
        seed=3,
        num_workers=2,
        pin_memory=device == "cuda",
    )
    augment = train_pipeline()
    for _epoch in range(2):
        for (expected, labels), (images, raw_labels, rows) in zip(in_workers, raw, strict=True):
            assert images.dtype == torch.uint8 and rows.shape == (len(images), 3)
            on_device = images.to(device, non_blocking=True)
            with stoker.seeding.context_from_rows(rows.numpy()):
                got = augment(on_device)
            assert got.device.type == device
            assert torch.equal(got.cpu(), expected), (got.cpu() - expected).abs().max().item()
            assert torch.equal(raw_labels, labels)
