"""Helpers shared by the CIFAR benchmarks: the seed's pipeline, on-disk data, other loaders.

* :func:`seed_pipeline` — the seed's train transform built from stoker's or torchvision v2's
  classes (same names, same arguments).
* :func:`write_cifar_root` — 50,000 random images in the real CIFAR-10 python-version files.
* :func:`torchvision_cifar10` — ``torchvision.datasets.CIFAR10`` told the generated files' MD5s
  (it checks the official ones otherwise), so it reads them exactly as it reads the real set.
* :func:`numpy_seed_batch` — the same pipeline as plain vectorised numpy on an NHWC batch, with
  one crop offset and one flip per sample: what torchdata.nodes and grain map over batches.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from stoker.datasets import testdata
from stoker.datasets._download import file_md5

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
PADDING_PX = 4
SIDE_PX = 32
TRAIN_IMAGES = 50_000


def seed_pipeline(lib: Any) -> Callable[[Any], Any]:
    """RandomCrop(32, padding=4) → flip → ToImage → ToDtype(float32, scale) → Normalize."""
    return lib.Compose(
        [
            lib.RandomCrop(SIDE_PX, padding=PADDING_PX),
            lib.RandomHorizontalFlip(p=0.5),
            lib.ToImage(),
            lib.ToDtype(torch.float32, scale=True),
            lib.Normalize(MEAN, STD),
        ]
    )


def write_cifar_root(root: Path, n: int = TRAIN_IMAGES) -> Path:
    """Write ``root/cifar-10-batches-py`` with ``n`` random training images; returns ``root``."""
    testdata.write_cifar10(root, train=testdata.random_cifar(n, seed=0))
    return root


def torchvision_cifar10(root: Path, transform: Any) -> Any:
    """torchvision's CIFAR10 (train split) over the generated files, integrity check included."""
    import torchvision

    folder = root / "cifar-10-batches-py"
    local = type(
        "LocalCIFAR10",
        (torchvision.datasets.CIFAR10,),
        {
            "train_list": [
                [f"data_batch_{i}", file_md5(folder / f"data_batch_{i}")] for i in range(1, 6)
            ],
            "test_list": [["test_batch", file_md5(folder / "test_batch")]],
            "meta": {
                "filename": "batches.meta",
                "key": "label_names",
                "md5": file_md5(folder / "batches.meta"),
            },
        },
    )
    return local(str(root), train=True, transform=transform)


_SCALE = (1.0 / (255.0 * np.asarray(STD, dtype=np.float32))).reshape(1, 3, 1, 1)
_SHIFT = (-np.asarray(MEAN, dtype=np.float32) / np.asarray(STD, dtype=np.float32)).reshape(
    1, 3, 1, 1
)


def numpy_seed_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The seed's train pipeline on a uint8 NHWC batch → float32 NCHW, per-sample crop and flip.

    Zero-padded channels-first copy, one gather of each image's window through a sliding-window
    view, the flipped ones reversed in place, then one casting copy and an in-place scale and
    shift. (A single fancy-index gather of pixels is 4x slower: it moves 3-byte items.)
    """
    n = len(images)
    side = SIDE_PX + 2 * PADDING_PX
    padded = np.zeros((n, 3, side, side), np.uint8)
    padded[:, :, PADDING_PX:-PADDING_PX, PADDING_PX:-PADDING_PX] = images.transpose(0, 3, 1, 2)
    top = rng.integers(0, 2 * PADDING_PX + 1, n)
    left = rng.integers(0, 2 * PADDING_PX + 1, n)
    flip = rng.random(n) < 0.5
    windows = sliding_window_view(padded, (SIDE_PX, SIDE_PX), axis=(2, 3))  # N,3,9,9,32,32
    crops = windows[np.arange(n), :, top, left]
    crops[flip] = crops[flip, :, :, ::-1]
    out = crops.astype(np.float32)
    out *= _SCALE
    out += _SHIFT
    return out


def epoch_rates(
    make_loader: Callable[[], Iterable[Any]], epochs: int, max_batches: int | None = None
) -> tuple[float, float, float]:
    """(best samples/s with the first batch, best samples/s after it, median first-batch s).

    The first rate is what a user waits for in an epoch with a fresh iterator (worker start-up
    included); the second leaves out the start-up and the first batch: the steady state.
    """
    total, steady, firsts = 0.0, 0.0, []
    for _ in range(epochs):
        loader = make_loader()
        start = time.perf_counter()
        first_at, seen, after_first = 0.0, 0, 0
        for step, batch in enumerate(loader):
            n = len(batch[0] if isinstance(batch, list | tuple) else batch)
            if step == 0:
                first_at = time.perf_counter()
            else:
                after_first += n
            seen += n
            if max_batches is not None and step + 1 >= max_batches:
                break
        end = time.perf_counter()
        total = max(total, seen / (end - start))
        steady = max(steady, after_first / max(end - first_at, 1e-9))
        firsts.append(first_at - start)
        del loader
    return total, steady, statistics.median(firsts)
