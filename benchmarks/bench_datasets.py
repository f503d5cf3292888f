"""CIFAR-10 from its on-disk files: stoker's dataset + loader vs torchvision's + torch's.

Run: PYTHONPATH=src python benchmarks/bench_datasets.py [--quick]   (samples/s, ratios; not a test)

50,000 random images are written in the real CIFAR-10 python-version format to a temporary
folder, then read by ``stoker.datasets.CIFAR10`` and by ``torchvision.datasets.CIFAR10`` (told
the generated files' MD5s). Both apply the seed's train transform — RandomCrop(32, padding=4),
RandomHorizontalFlip, ToImage, ToDtype(float32, scale=True), Normalize — stoker's batched one
(one call per batch, per-sample crops and flips) and torchvision v2's per sample on PIL images,
as the seed does. Settings:

(a) batch 256, 2 workers, shuffle;
(b) batch 16, 1 worker, shuffle (the seed's own setting).

Every rate includes starting the workers and waiting for the first batch (new workers every
epoch, as a training loop without persistent workers has; stoker's loader object is made once and
iterated once per epoch, as such a loop does). stoker runs full epochs; torch runs
full epochs too unless ``--quick``, where it runs a fixed number of batches reported as a rate.
Each rate is the best of ``--repeats`` epochs; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

import stoker
from _common import markdown_table, write_results
from _competitors import (
    TRAIN_IMAGES,
    epoch_rates,
    seed_pipeline,
    torchvision_cifar10,
    write_cifar_root,
)
from stoker import transforms as T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, torch on a subset")
    parser.add_argument("--repeats", type=int, default=None, help="epochs per loader (best of)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    # torch at ~12,000 (a) and ~4,400 (b) samples/s: a subset keeps --quick near 20 s.
    torch_batches = {"a": 100, "b": 1000} if args.quick else {"a": None, "b": None}

    with tempfile.TemporaryDirectory(prefix="stoker-bench-cifar-") as tmp:
        start = time.perf_counter()
        root = write_cifar_root(Path(tmp))
        written = time.perf_counter() - start
        ours = stoker.datasets.CIFAR10(root, transform=seed_pipeline(T))
        theirs = torchvision_cifar10(root, transform=seed_pipeline(v2))
        print(
            f"{len(ours):,} CIFAR-10 training images written in {written:.1f} s to {root}; "
            f"best of {repeats} epochs per loader, fresh loader each epoch"
        )

        results, sections = {}, []
        for key, batch, workers in (("a", 256, 2), ("b", 16, 1)):
            subset = torch_batches[key]
            persistent = stoker.DataLoader(
                ours, batch, shuffle=True, num_workers=workers, seed=0, persistent_workers=True
            )
            # One loader for every epoch, as a training loop has: new workers each epoch still.
            fresh_workers = stoker.DataLoader(
                ours, batch, shuffle=True, num_workers=workers, seed=0
            )
            rows = [
                (
                    "torch + torchvision CIFAR10 + v2" + (f" ({subset} batches)" if subset else ""),
                    epoch_rates(
                        lambda b=batch, w=workers: torch.utils.data.DataLoader(
                            theirs, b, shuffle=True, num_workers=w
                        ),
                        repeats,
                        max_batches=subset,
                    ),
                ),
                (
                    "stoker + stoker CIFAR10 + batched transform",
                    epoch_rates(lambda f=fresh_workers: f, repeats + 1),
                ),
                (
                    "  the same, persistent_workers=True",
                    epoch_rates(lambda p=persistent: p, repeats + 1),
                ),
                (
                    "  the same, worker_mode='thread'",
                    epoch_rates(
                        lambda b=batch, w=workers: stoker.DataLoader(
                            ours, b, shuffle=True, num_workers=w, seed=0, worker_mode="thread"
                        ),
                        repeats,
                    ),
                ),
            ]
            print(f"\n({key}) CIFAR-10 train, seed transform, batch {batch}, {workers} worker(s)")
            print(
                f"  {'loader':52s} {'per epoch':>10s} {'vs torch':>9s} {'steady':>10s} "
                f"{'vs torch':>9s} {'1st batch':>10s}"
            )
            (_, (ref, ref_steady, _)) = rows[0]
            for name, (rate, steady, first) in rows:
                print(
                    f"  {name:52s} {rate:10,.0f} {rate / ref:8.1f}x {steady:10,.0f} "
                    f"{steady / ref_steady:8.1f}x {first * 1e3:8.0f}ms"
                )
            results[key] = rows[1][1][0] / ref
            table = markdown_table(
                ["loader", "per epoch", "vs torch", "steady", "vs torch", "1st batch"],
                [
                    [
                        name.strip(),
                        f"{rate:,.0f}",
                        f"{rate / ref:.1f}x",
                        f"{steady:,.0f}",
                        f"{steady / ref_steady:.1f}x",
                        f"{first * 1e3:.0f} ms",
                    ]
                    for name, (rate, steady, first) in rows
                ],
            )
            sections.append(f"### ({key}) batch {batch}, {workers} worker(s)\n\n{table}\n")
            del persistent, fresh_workers

    print("\nsummary (stoker / torch, fresh workers, per epoch):")
    for key, ratio in results.items():
        print(f"  ({key}) {ratio:6.1f}x")
    summary = "\n".join(
        f"- ({key}) stoker / torch, fresh workers, per epoch: **{ratio:.1f}x**"
        for key, ratio in results.items()
    )
    write_results(
        "bench_datasets",
        "CIFAR-10 from its on-disk files: stoker vs torchvision + torch",
        f"{TRAIN_IMAGES:,} random images in the real CIFAR-10 python files, the seed's train "
        f"transform, shuffled; best of {repeats} epoch(s). *Per epoch* counts from creating "
        "the iterator to the last batch (workers started, first batch waited for); *steady* "
        "leaves the first batch out. Rates are samples/s."
        + (" torch runs a fixed number of batches (`--quick`)." if args.quick else "")
        + "\n\n"
        + "\n".join(sections)
        + "\n"
        + summary,
    )


if __name__ == "__main__":
    main()
