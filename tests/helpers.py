"""Small datasets and comparison helpers shared by the loader tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import stoker
from stoker import seeding


class TensorDataset(stoker.Dataset[Any]):
    """(image tensor, label) pairs computed from the index."""

    def __init__(self, n: int = 37, shape: tuple[int, ...] = (3, 4, 4)):
        self.n, self.shape = n, shape

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        return torch.full(self.shape, float(index)), index % 10


class BatchedDataset(stoker.Dataset[Any]):
    """In-memory uint8 images with a batched ``__getitems__`` fast path."""

    def __init__(self, n: int = 50, shape: tuple[int, ...] = (3, 8, 8)):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        self.labels = rng.integers(0, 10, size=n)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Any:
        return torch.from_numpy(self.images[index]), int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> Any:
        return stoker.CollatedSamples(
            (torch.from_numpy(self.images[indices]), torch.from_numpy(self.labels[indices])),
            len(indices),
        )


class RandomAugmentDataset(stoker.Dataset[Any]):
    """Samples whose values depend on the per-sample RNG: proves seeding is per index."""

    def __init__(self, n: int = 40):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        noise = seeding.sample_rng().standard_normal(4)
        return torch.from_numpy(noise) + index


class FailingDataset(stoker.Dataset[Any]):
    """Raises ValueError at one index."""

    def __init__(self, n: int = 20, bad: int = 7):
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        if index == self.bad:
            raise ValueError(f"corrupt sample {index}")
        return torch.tensor([index])


class CountingStream(stoker.IterableDataset[Any]):
    """0..n-1, sharded across workers by worker id."""

    def __init__(self, n: int = 23):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        info = stoker.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, self.n, step):
            yield torch.tensor([i, i * 2])


def assert_batches_equal(a: Any, b: Any) -> None:
    """Structural equality of batches (tensors compared exactly, dtype included)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_batches_equal(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_batches_equal(x, y)
    else:
        assert a == b


def collect(loader: Any) -> list[Any]:
    return list(loader)
