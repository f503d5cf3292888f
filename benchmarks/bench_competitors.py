"""Where stoker stands: the seed's CIFAR-10 train pipeline through the fastest loaders we know.

Run: PYTHONPATH=src python benchmarks/bench_competitors.py [--quick]   (samples/s; not a test)

50,000 random images in the real CIFAR-10 files, batch 256, shuffled, the seed's train transform
(RandomCrop(32, padding=4), RandomHorizontalFlip, ToDtype(float32, scale), Normalize) with a
crop offset and a flip per sample, 2 workers or threads:

* torch: ``torch.utils.data.DataLoader`` over ``torchvision.datasets.CIFAR10`` + v2, per sample;
* grain (if installed): ``MapDataset`` of shuffled index batches mapped by a vectorised numpy
  transform, ``mp_prefetch`` with 2 worker processes; and its classic ``DataLoader`` (records
  → ``Batch`` → the same batched map, 2 workers);
* torchdata.nodes (if installed): ``SamplerWrapper → Batcher → ParallelMapper(2 threads,
  gather + vectorised numpy) → Prefetcher``, the fastest loader known for this pipeline;
* stoker: ``stoker.DataLoader`` over ``stoker.datasets.CIFAR10`` with its batched transform —
  2 worker processes (fresh and persistent), in-process (``num_workers=0``, with torch's default
  thread count and with one intra-op thread), and with 2 worker threads
  (``worker_mode="thread"``).

Every rate is the best of ``--repeats`` epochs, each with a fresh iterator and its first batch
(worker start-up included, except "persistent", which reuses warm workers). stoker's loaders
are made once and iterated once per epoch, as a training loop does; without
``persistent_workers`` that still forks new workers every epoch. The machine is
shared and small: compare ratios within one run. grain and torchdata are optional; install them
next to torch without letting pip touch torch (``pip install --no-deps --target DIR ...``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2

import stoker
from _common import markdown_table, one_torch_thread, write_results
from _competitors import (
    TRAIN_IMAGES,
    epoch_rates,
    numpy_seed_batch,
    seed_pipeline,
    torchvision_cifar10,
    write_cifar_root,
)
from stoker import transforms as T

BATCH = 256
WORKERS = 2
SEED = 0


class BatchedNumpy:
    """Index batch → (float32 NCHW images, int64 labels) by gather + :func:`numpy_seed_batch`.

    The random stream is keyed by the batch's first index, so threads and processes need no
    shared generator (and the result does not depend on which one runs the batch).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __call__(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        picked = np.asarray(indices, dtype=np.int64)
        rng = np.random.default_rng([SEED, int(picked[0])])
        return numpy_seed_batch(self.images[picked], rng), self.labels[picked]


def torchdata_loader(images: np.ndarray, labels: np.ndarray) -> Any:
    from torchdata import nodes

    transform = BatchedNumpy(images, labels)

    def as_tensors(indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        batch, targets = transform(indices)
        return torch.from_numpy(batch), torch.from_numpy(targets)

    sampler = torch.utils.data.RandomSampler(range(len(labels)))
    node = nodes.SamplerWrapper(sampler)
    node = nodes.Batcher(node, batch_size=BATCH, drop_last=False)
    node = nodes.ParallelMapper(node, as_tensors, num_workers=WORKERS, method="thread")
    node = nodes.Prefetcher(node, prefetch_factor=2)
    return nodes.Loader(node)


def grain_dataset_loader(images: np.ndarray, labels: np.ndarray) -> Any:
    import grain

    indices = grain.MapDataset.range(len(labels)).shuffle(seed=SEED).batch(BATCH)
    batches = indices.map(BatchedNumpy(images, labels))
    options = grain.multiprocessing.MultiprocessingOptions(num_workers=WORKERS)
    return batches.to_iter_dataset().mp_prefetch(options)


class _Records:
    """grain data source: one (HWC uint8 image, label) record per index."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index]


def grain_dataloader(images: np.ndarray, labels: np.ndarray) -> Any:
    import grain

    class Augment(grain.transforms.Map):
        def map(self, batch: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            stacked, targets = batch
            rng = np.random.default_rng([SEED, int(targets[0]), len(targets)])
            return numpy_seed_batch(stacked, rng), targets

    sampler = grain.samplers.IndexSampler(
        len(labels),
        shuffle=True,
        seed=SEED,
        num_epochs=1,
        shard_options=grain.sharding.NoSharding(),
    )
    return grain.DataLoader(
        data_source=_Records(images, labels),
        sampler=sampler,
        operations=[grain.transforms.Batch(BATCH, drop_remainder=False), Augment()],
        worker_count=WORKERS,
    )


def available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, torch on a subset")
    parser.add_argument("--repeats", type=int, default=None, help="epochs per loader (best of)")
    parser.add_argument(
        "--chart", type=Path, metavar="PNG", help="also draw the per-epoch rates as a bar chart"
    )
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    torch_batches = 100 if args.quick else None

    with tempfile.TemporaryDirectory(prefix="stoker-bench-cifar-") as tmp:
        root = write_cifar_root(Path(tmp))
        ours = stoker.datasets.CIFAR10(root, transform=seed_pipeline(T))
        theirs = torchvision_cifar10(root, transform=seed_pipeline(v2))
        images, labels = ours.data, ours.targets
        print(
            f"{len(ours):,} CIFAR-10 images, batch {BATCH}, {WORKERS} workers/threads, "
            f"best of {repeats} epochs, torch threads {torch.get_num_threads()}"
        )

        persistent = stoker.DataLoader(
            ours, BATCH, shuffle=True, num_workers=WORKERS, seed=SEED, persistent_workers=True
        )
        # One loader object for every epoch, as a training loop has: it still forks fresh
        # workers each epoch, which inherit the previous epoch's shared-memory slots.
        fresh_workers = stoker.DataLoader(ours, BATCH, shuffle=True, num_workers=WORKERS, seed=SEED)
        candidates: list[tuple[str, str | None, Any, int | None]] = [
            (
                "torch + torchvision CIFAR10 + v2 per sample"
                + (f" ({torch_batches} batches)" if torch_batches else ""),
                None,
                lambda: torch.utils.data.DataLoader(
                    theirs, BATCH, shuffle=True, num_workers=WORKERS
                ),
                torch_batches,
            ),
            (
                "grain DataLoader, records -> Batch -> numpy map",
                "grain",
                lambda: grain_dataloader(images, labels),
                None,
            ),
            (
                "grain MapDataset, index batches -> numpy map",
                "grain",
                lambda: grain_dataset_loader(images, labels),
                None,
            ),
            (
                "torchdata.nodes, 2 threads, numpy map",
                "torchdata",
                lambda: torchdata_loader(images, labels),
                None,
            ),
            ("stoker, 2 worker processes", None, lambda: fresh_workers, None),
            ("stoker, 2 worker processes, persistent", None, lambda: persistent, None),
            (
                "stoker, num_workers=0 (in process)",
                None,
                lambda: stoker.DataLoader(ours, BATCH, shuffle=True, seed=SEED),
                None,
            ),
            (
                "stoker, num_workers=0, torch.set_num_threads(1)",
                None,
                lambda: one_torch_thread(stoker.DataLoader(ours, BATCH, shuffle=True, seed=SEED)),
                None,
            ),
            (
                "stoker, 2 worker threads (worker_mode='thread')",
                None,
                lambda: stoker.DataLoader(
                    ours,
                    BATCH,
                    shuffle=True,
                    num_workers=WORKERS,
                    seed=SEED,
                    worker_mode="thread",
                ),
                None,
            ),
        ]
        rows: list[tuple[str, float, float, float]] = []
        for name, module, make, max_batches in candidates:
            if module is not None and not available(module):
                print(f"  skipped {name}: {module} is not installed")
                continue
            rows.append((name, *epoch_rates(make, repeats, max_batches)))
            print(f"  measured {name}: {rows[-1][1]:,.0f} samples/s", flush=True)

    torch_rate, torch_steady = rows[0][1], rows[0][2]
    others = [row for row in rows[1:] if not row[0].startswith("stoker")]
    fastest = max(others, key=lambda row: row[1], default=rows[0])
    print(f"\nCIFAR-10 train, seed transform, batch {BATCH}, {WORKERS} workers/threads")
    print("  per epoch = first batch included (fresh iterator); steady = after the first batch")
    print(
        f"  {'loader':50s} {'per epoch':>10s} {'vs torch':>9s} {'vs fastest':>11s} "
        f"{'steady':>10s} {'vs torch':>9s} {'1st batch':>10s}"
    )
    for name, rate, steady, first in rows:
        print(
            f"  {name:50s} {rate:10,.0f} {rate / torch_rate:8.1f}x {rate / fastest[1]:10.2f}x "
            f"{steady:10,.0f} {steady / torch_steady:8.1f}x {first * 1e3:8.0f}ms"
        )
    print(f"fastest other loader (per epoch): {fastest[0]}")
    table = markdown_table(
        ["loader", "per epoch", "vs torch", "vs fastest other", "steady", "1st batch"],
        [
            [
                f"**{name}**" if name.startswith("stoker") else name,
                f"{rate:,.0f}",
                f"{rate / torch_rate:.1f}x",
                f"{rate / fastest[1]:.2f}x",
                f"{steady:,.0f}",
                f"{first * 1e3:.0f} ms",
            ]
            for name, rate, steady, first in rows
        ],
    )
    skipped = [name for name, module, *_ in candidates if module and not available(module)]
    write_results(
        "bench_competitors",
        "Where stoker stands: the seed's CIFAR-10 pipeline through other loaders",
        f"{TRAIN_IMAGES:,} random images in the real CIFAR-10 files, batch {BATCH}, shuffled, "
        f"the seed's train transform with a crop and a flip per sample, {WORKERS} workers or "
        f"threads, best of {repeats} epoch(s). Rates are samples/s; *per epoch* includes the "
        f"first batch of a fresh iterator; *vs fastest other* is against {fastest[0]}."
        + (f" torch runs {torch_batches} batches (`--quick`)." if torch_batches else "")
        + (f" Not installed, so skipped: {'; '.join(skipped)}." if skipped else "")
        + f"\n\n{table}\n",
    )
    if args.chart is not None:
        draw_chart(rows, fastest, args.chart)
        print(f"chart: {args.chart}")


def draw_chart(
    rows: list[tuple[str, float, float, float]],
    fastest: tuple[str, float, float, float],
    path: Path,
) -> None:
    """Horizontal bars of samples/s per epoch, stoker's in one colour, a line at the fastest
    other loader: where stoker stands is read at a glance."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = [name for name, *_ in rows][::-1]
    rates = [rate for _, rate, *_ in rows][::-1]
    colours = ["#d9480f" if name.startswith("stoker") else "#868e96" for name in names]
    figure, axis = plt.subplots(figsize=(11, 0.45 * len(rows) + 1.6))
    bars = axis.barh(names, rates, color=colours)
    labels = [f"{rate:,.0f}  ({rate / fastest[1]:.2f}x)" for rate in rates]
    axis.bar_label(bars, labels=labels, padding=3, fontsize=9)
    axis.axvline(fastest[1], color="#1c7ed6", linestyle="--", linewidth=1)
    fastest_name = fastest[0].split(",")[0]
    axis.set_xlabel(
        f"samples/s per epoch, first batch included;  (x) against {fastest_name} (dashed line)"
    )
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(6))
    axis.xaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda value, _: f"{value / 1000:,.0f}k")
    )
    axis.set_xlim(0, max(rates) * 1.3)
    axis.set_title(f"CIFAR-10 train pipeline, batch {BATCH}, {WORKERS} workers or threads")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
