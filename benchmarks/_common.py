"""Shared benchmark helpers: timing loops, CIFAR-shaped in-memory datasets, table printing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

import stoker


def samples_per_second(
    make_loader: Callable[[], Iterable[Any]], epochs: int = 1, max_batches: int | None = None
) -> float:
    """Best rate over ``epochs`` full passes (first batch included: the user waits for it too)."""
    best = 0.0
    for _ in range(epochs):
        loader = make_loader()
        start = time.perf_counter()
        seen = 0
        for step, batch in enumerate(loader):
            first = batch[0] if isinstance(batch, list | tuple) else batch
            seen += len(first)
            if max_batches is not None and step + 1 >= max_batches:
                break
        best = max(best, seen / (time.perf_counter() - start))
        del loader
    return best


class PerSampleImages(torch.utils.data.Dataset[Any]):
    """uint8 CHW images held in one array; only ``__getitem__``."""

    def __init__(self, n: int = 50_000, shape: tuple[int, ...] = (3, 32, 32)):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        self.labels = rng.integers(0, 10, size=n)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Any:
        return torch.from_numpy(self.images[index]), int(self.labels[index])


class ListGetitems(PerSampleImages):
    """Adds ``__getitems__`` returning a list of samples (what torch's collate expects)."""

    def __getitems__(self, indices: list[int]) -> list[Any]:
        images = torch.from_numpy(self.images[indices])
        labels = self.labels[indices].tolist()
        return list(zip(images, labels))


class BatchGetitems(PerSampleImages):
    """Adds ``__getitems__`` that gathers the whole batch at once (stoker's CollatedSamples)."""

    def __getitems__(self, indices: list[int]) -> stoker.CollatedSamples:
        return stoker.CollatedSamples(
            (torch.from_numpy(self.images[indices]), torch.from_numpy(self.labels[indices])),
            len(indices),
        )


def stacked_identity(batch: Any) -> Any:
    """torch's fastest __getitems__ route: the dataset returns the batch, collate does nothing."""
    return batch


class PreStacked(PerSampleImages):
    """``__getitems__`` returning the finished batch, for torch with ``collate_fn=identity``."""

    def __getitems__(self, indices: list[int]) -> Any:
        return torch.from_numpy(self.images[indices]), torch.from_numpy(self.labels[indices])


def print_table(title: str, rows: list[tuple[str, float]], reference: str) -> None:
    ref = dict(rows)[reference]
    print(f"\n{title}")
    print(f"  {'loader':58s} {'samples/s':>12s} {'vs ' + reference[:18]:>22s}")
    for name, rate in rows:
        print(f"  {name:58s} {rate:12,.0f} {rate / ref:21.2f}x")
