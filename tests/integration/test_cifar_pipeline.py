"""The seed's CIFAR pipeline end to end: real on-disk format, batched fused transform, any mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import stoker
from stoker import transforms as T
from stoker.datasets import CIFAR10, testdata
from tests.helpers import assert_batches_equal

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    testdata.write_cifar10(root, train=testdata.random_cifar(600), test=testdata.random_cifar(50))
    return root


def seed_train() -> T.Compose:
    return T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(0.5),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(MEAN, STD),
        ]
    )


@pytest.mark.parametrize(
    "mode",
    [
        {"num_workers": 2},
        {"num_workers": 2, "persistent_workers": True},
        {"num_workers": 2, "worker_mode": "thread"},
        {"num_workers": 1, "batch_size": 16},
    ],
    ids=["processes", "persistent", "threads", "seed-setting"],
)
def test_cifar_batches_equal_in_process_reference(cifar_root: Path, mode: dict) -> None:
    """Batches built in a worker's shared-memory slot equal the in-process ones, bit for bit."""
    batch_size = mode.pop("batch_size", 64)
    dataset = CIFAR10(cifar_root, train=True, transform=seed_train())
    reference = stoker.DataLoader(dataset, batch_size, shuffle=True, seed=3)
    loader = stoker.DataLoader(dataset, batch_size, shuffle=True, seed=3, **mode)
    for _epoch in range(2):
        got = list(loader)  # every batch of the epoch held: none may be overwritten by another
        for a, b in zip(got, reference, strict=True):
            assert_batches_equal(a, b)
        assert got[0][0].dtype == torch.float32 and got[0][0].shape[1:] == (3, 32, 32)
