"""`stoker demo`: load a generated dataset with stoker and print batches and throughput."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

import stoker


class _GeneratedImages(stoker.Dataset[Any]):
    """CIFAR-shaped uint8 images made from a seed, with a batched fetch."""

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        self.labels = rng.integers(0, 10, size=n)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Any:
        return torch.from_numpy(self.images[index]), int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> stoker.CollatedSamples:
        return stoker.CollatedSamples(
            (torch.from_numpy(self.images[indices]), torch.from_numpy(self.labels[indices])),
            len(indices),
        )


def register(commands: Any) -> None:
    parser = commands.add_parser("demo", help="load a generated dataset and report throughput")
    parser.add_argument("--samples", type=int, default=50_000, help="dataset size")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    dataset = _GeneratedImages(args.samples, args.seed)
    loader = stoker.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        seed=args.seed,
        num_workers=args.workers,
    )
    print(
        f"stoker demo: {len(dataset)} generated 3x32x32 images, batch {args.batch_size}, "
        f"{args.workers} worker(s)"
    )
    start = time.perf_counter()
    seen = 0
    for step, (images, labels) in enumerate(loader):
        if step < 2:
            print(
                f"  batch {step}: images {tuple(images.shape)} {images.dtype}, "
                f"labels {labels[:8].tolist()}..."
            )
        seen += len(labels)
    elapsed = time.perf_counter() - start
    print(f"  one epoch: {seen} samples in {elapsed:.3f} s = {seen / elapsed:,.0f} samples/s")
    return 0
