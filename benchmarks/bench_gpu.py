"""The GPU path: ResNet-20 epochs fed four ways, and the device augmentation alone.

Run on a GPU machine (one command, ~2-4 min on an H200 with 50,000 images):

    PYTHONPATH=src:benchmarks python benchmarks/bench_gpu.py

Smoke test without a GPU: ``--device cpu --quick`` (a few hundred images; numbers meaningless).

50,000 random images are written in the real CIFAR-10 python-version format, then one epoch of
ResNet-20 (SGD, batch 256; on CUDA cudnn.benchmark, bf16 autocast, channels-last) is trained
with each feeder:

1. torch: ``torch.utils.data.DataLoader`` + torchvision's CIFAR10 and v2 seed transform per
   sample on PIL images (the seed's setting), ``--workers`` processes, pin_memory;
2. stoker workers: ``stoker.DataLoader`` + ``stoker.datasets.CIFAR10`` with the batched seed
   transform in ``--workers`` processes, pin_memory;
3. stoker device aug: the workers only gather uint8 batches (``WithSampleContext`` rows ride
   along); the seed transform runs on the device after the copy;
4. DeviceLoader: the dataset kept on the device, each batch gathered and augmented there.

For each: epoch time (first batch and worker start included), images/s, and the data wait:
the share of step time spent blocked in ``next(loader)``, each step ending with
``float(loss)`` as ``stoker train`` does. Then the augmentation alone, in images/s: the device
pass on uint8 batches already on the device, DeviceLoader's window gather from a table already
there, and DeviceLoader iterated without a model (host draws included). Writes the tables, with
the device's name and versions, to ``--out`` (``benchmarks/results/gpu.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import stoker
from _competitors import seed_pipeline, torchvision_cifar10, write_cifar_root
from stoker import transforms as T
from stoker.models import resnet20
from stoker.transforms._device import gather_windows, to_device, window_table

_WARMUP_STEPS = 20  # cudnn.benchmark tries its algorithms on the first steps of each shape
_AUGMENT_REPEATS = 20  # timed calls per augmentation measurement (after one untimed call)
# The median of 20 is steady to a few % on a quiet GPU; --quick takes 3 (a smoke test).
_TARGET_WAIT = 0.05  # the bar: data wait < 5 % of step time for stoker's best mode
_TARGET_AUGMENT = 10e6  # the bar: GPU-resident augmentation >= 10 million images/s


class _Trainer:
    """ResNet-20 and SGD on ``device``, with the CUDA speed options where they apply."""

    def __init__(self, device: torch.device, classes: int = 10):
        self.device = device
        self.cuda = device.type == "cuda"
        torch.manual_seed(0)
        self.model = resnet20(classes).to(device)
        self.layout = torch.channels_last if self.cuda else torch.contiguous_format
        self.model = self.model.to(memory_format=self.layout)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4
        )

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        images = images.contiguous(memory_format=self.layout)
        with self._autocast():
            loss = F.cross_entropy(self.model(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        return float(loss.detach())  # waits for the device: step time includes the compute

    def warm_up(self, batch_size: int) -> None:
        images = torch.randn(batch_size, 3, 32, 32, device=self.device)
        labels = torch.randint(0, 10, (batch_size,), device=self.device)
        for _ in range(_WARMUP_STEPS):
            self.step(images, labels)


def _epoch(
    trainer: _Trainer,
    batches: Iterable[Any],
    prepare: Callable[[Any], tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, float]:
    """One epoch: seconds, images/s and the data-wait share of step time."""
    seen, wait_s = 0, 0.0
    start = time.perf_counter()
    iterator = iter(batches)
    while True:
        asked = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            break
        wait_s += time.perf_counter() - asked
        images, labels = prepare(batch)
        trainer.step(images, labels)
        seen += len(labels)
    total_s = time.perf_counter() - start
    return {"seconds": total_s, "images_per_s": seen / total_s, "wait": wait_s / total_s}


def _copier(device: torch.device) -> Callable[[Any], tuple[torch.Tensor, torch.Tensor]]:
    def prepare(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch[0], batch[1]
        return images.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    return prepare


def _device_augmenter(device: torch.device) -> Callable[[Any], tuple[torch.Tensor, torch.Tensor]]:
    augment = seed_pipeline(T)

    def prepare(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels, rows = batch
        images = images.to(device, non_blocking=True)
        with stoker.seeding.context_from_rows(rows.numpy()):
            images = augment(images)
        return images, labels.to(device, non_blocking=True)

    return prepare


def _on_device(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return batch[0], batch[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(device: torch.device, images: int, run: Callable[[], Any], repeats: int) -> float:
    """Median images/s of ``run`` (``images`` per call), the device's queue drained each time."""
    run()
    _sync(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        _sync(device)
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


def _augment_rates(
    device: torch.device, loader: stoker.DeviceLoader, batches: list[int], repeats: int
) -> list[tuple[str, float]]:
    """Images/s of the device augmentation alone, at each batch size."""
    rows: list[tuple[str, float]] = []
    images = loader.dataset.data
    n = len(images)
    transform = seed_pipeline(T)
    run = loader._run
    mean, std = run.normalize.mean, run.normalize.std
    for size in batches:
        size = min(size, n)
        indices = np.random.default_rng(size).permutation(n)[:size]
        raw = torch.from_numpy(images[indices]).permute(0, 3, 1, 2).contiguous().to(device)
        context = stoker.sample_context(0, 0, indices)

        def device_pass(batch: torch.Tensor = raw, ctx: Any = context) -> Any:
            with ctx:
                return transform(batch)

        label = f"device pass on a uint8 batch already on the device, batch {size:,}"
        rows.append((label, _rate(device, size, device_pass, repeats)))
        with context:
            params, flips = run.draw(size, 32, 32)
        table = to_device(window_table(indices, params, flips, (32, 32), False), device)

        def gather(table: torch.Tensor = table) -> Any:
            return gather_windows(loader._store, table, 32, 3, torch.float32, mean, std)

        label = f"DeviceLoader gather + normalise, table on the device, batch {size:,}"
        rows.append((label, _rate(device, size, gather, repeats)))
    for size in batches:
        size = min(size, n)
        full = stoker.DeviceLoader(
            loader.dataset, batch_size=size, shuffle=True, seed=0, device=device
        )

        def epoch(full: stoker.DeviceLoader = full) -> None:
            for _ in full:
                pass

        label = f"DeviceLoader epoch without a model (host draws included), batch {size:,}"
        rows.append((label, _rate(device, n, epoch, repeats)))
    return rows


def _markdown(
    args: argparse.Namespace,
    device: torch.device,
    epochs: list[tuple[str, dict[str, float]]],
    augment: list[tuple[str, float]],
) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    ref = epochs[0][1]["images_per_s"]
    lines = [
        "# GPU path: ResNet-20 epochs and device augmentation",
        "",
        f"- device: **{name or device}** ({device}); {os.cpu_count()} CPU cores",
        f"- torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}), Python "
        f"{platform.python_version()}, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- command: `{' '.join(sys.argv)}`",
        f"- {args.images:,} CIFAR-format images, batch {args.batch}, {args.workers} workers; "
        "one epoch each, first batch and worker start included; each step ends with "
        "`float(loss)`"
        + ("; bf16 autocast, channels-last, cudnn.benchmark" if device.type == "cuda" else ""),
        "",
        "| feeder | epoch s | images/s | vs torch | data wait |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, row in epochs:
        lines.append(
            f"| {label} | {row['seconds']:.2f} | {row['images_per_s']:,.0f} | "
            f"{row['images_per_s'] / ref:.2f}x | {row['wait']:.1%} |"
        )
    best = min(row["wait"] for label, row in epochs if label.startswith("stoker"))
    lines += [
        "",
        f"Best stoker data wait: {best:.1%} (target < {_TARGET_WAIT:.0%}: "
        f"{'met' if best < _TARGET_WAIT else 'NOT met'}).",
        "",
        "| augmentation alone | images/s |",
        "| --- | ---: |",
    ]
    lines += [f"| {label} | {rate:,.0f} |" for label, rate in augment]
    top = max(rate for label, rate in augment if label.startswith("DeviceLoader gather"))
    lines += [
        "",
        f"Best GPU-resident augmentation: {top:,.0f} images/s (target >= {_TARGET_AUGMENT:,.0f}: "
        f"{'met' if top >= _TARGET_AUGMENT else 'NOT met'}).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke test")
    parser.add_argument("--quick", action="store_true", help="a few hundred images: a smoke test")
    parser.add_argument("--images", type=int, default=None, help="default 50,000 (--quick: 512)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="default 4 (--quick: 2)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu.md")
    args = parser.parse_args()
    args.images = args.images or (512 if args.quick else 50_000)
    args.workers = args.workers or (2 if args.quick else 4)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest
    else:
        # A CPU run is a smoke test: one compute thread, as OpenMP threads that wait for each
        # other on a loaded 2-core machine ran training steps up to 50x slower.
        torch.set_num_threads(1)
    pin = device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="stoker-bench-gpu-") as tmp:
        root = write_cifar_root(Path(tmp), args.images)
        trainer = _Trainer(device)
        if device.type == "cuda":
            trainer.warm_up(args.batch)
        common: dict[str, Any] = {"batch_size": args.batch, "shuffle": True}
        workers: dict[str, Any] = {"num_workers": args.workers, "pin_memory": pin}
        feeders: list[tuple[str, Callable[[], Iterable[Any]], Any]] = [
            (
                f"torch DataLoader + torchvision v2, {args.workers} workers",
                lambda: torch.utils.data.DataLoader(
                    torchvision_cifar10(root, seed_pipeline(_v2())), **common, **workers
                ),
                _copier(device),
            ),
            (
                f"stoker workers (augment in {args.workers} processes)",
                lambda: stoker.DataLoader(
                    stoker.datasets.CIFAR10(root, transform=seed_pipeline(T)),
                    seed=0, **common, **workers,
                ),
                _copier(device),
            ),
            (
                f"stoker device aug ({args.workers} processes gather uint8)",
                lambda: stoker.DataLoader(
                    stoker.WithSampleContext(stoker.datasets.CIFAR10(root, transform=T.ToImage())),
                    seed=0, **common, **workers,
                ),
                _device_augmenter(device),
            ),
            (
                "stoker DeviceLoader (dataset on the device)",
                lambda: stoker.DeviceLoader(
                    stoker.datasets.CIFAR10(root, transform=seed_pipeline(T)),
                    seed=0, device=device, memory_format=trainer.layout, **common,
                ),
                _on_device,
            ),
        ]  # fmt: skip
        epochs = []
        for label, make, prepare in feeders:
            result = _epoch(trainer, make(), prepare)
            epochs.append((label, result))
            print(
                f"{label:60s} {result['seconds']:7.2f} s {result['images_per_s']:10,.0f} img/s "
                f"data wait {result['wait']:6.1%}",
                flush=True,
            )
        resident = stoker.DeviceLoader(
            stoker.datasets.CIFAR10(root, transform=seed_pipeline(T)),
            batch_size=args.batch, seed=0, device=device,
        )  # fmt: skip
        sizes = sorted({min(size, args.images) for size in (args.batch, 8192, args.images)})
        repeats = 3 if args.quick else _AUGMENT_REPEATS
        augment = _augment_rates(device, resident, sizes, repeats)
        for label, rate in augment:
            print(f"{label:72s} {rate:14,.0f} img/s", flush=True)
    report = _markdown(args, device, epochs, augment)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"\nwrote {args.out}")


def _v2() -> Any:
    from torchvision.transforms import v2

    return v2


if __name__ == "__main__":
    main()
