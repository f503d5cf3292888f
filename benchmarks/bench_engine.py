"""Multi-process engine: stoker vs torch.utils.data.DataLoader, same dataset objects, same workers.

Run: python benchmarks/bench_engine.py [--quick]   (prints samples/s and ratios; not a test)

(a) 50,000 uint8 3x32x32 images, batch 256, 2 workers, datasets with __getitems__;
(b) per-sample __getitem__ only, batch 16, 1 worker (the seed's setting);
(c) large samples: float32 3x224x224, batch 32, 2 workers;
(d) time to the first batch of a fresh iterator, 2 workers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch

import stoker
from _common import (
    BatchGetitems,
    ListGetitems,
    PerSampleImages,
    PreStacked,
    markdown_table,
    print_table,
    rate_rows,
    samples_per_second,
    stacked_identity,
    write_results,
)


class LargeImages(torch.utils.data.Dataset[Any]):
    """float32 3x224x224 samples (64 distinct ones, cycled: memory stays small)."""

    def __init__(self, n: int = 2048):
        rng = np.random.default_rng(0)
        self.pool = rng.standard_normal((64, 3, 224, 224), dtype=np.float32)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        return torch.from_numpy(self.pool[index % 64]), index % 10


def first_batch_seconds(make: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        loader = make()
        start = time.perf_counter()
        next(iter(loader))
        times.append(time.perf_counter() - start)
        del loader
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer epochs")
    args = parser.parse_args()
    epochs = 1 if args.quick else 3
    torch_dl, stoker_dl = torch.utils.data.DataLoader, stoker.DataLoader

    listed, batched, prestacked = ListGetitems(), BatchGetitems(), PreStacked()
    rows_a = [
        (
            "torch, __getitems__ -> list + default_collate",
            samples_per_second(lambda: torch_dl(listed, 256, shuffle=True, num_workers=2), epochs),
        ),
        (
            "torch, __getitems__ -> stacked batch + identity collate",
            samples_per_second(
                lambda: torch_dl(
                    prestacked, 256, shuffle=True, num_workers=2, collate_fn=stacked_identity
                ),
                epochs,
            ),
        ),
        (
            "stoker, __getitems__ -> list + default_collate",
            samples_per_second(lambda: stoker_dl(listed, 256, shuffle=True, num_workers=2), epochs),
        ),
        (
            "stoker, __getitems__ -> CollatedSamples",
            samples_per_second(
                lambda: stoker_dl(batched, 256, shuffle=True, num_workers=2), epochs
            ),
        ),
    ]
    print_table(
        "(a) 50,000 uint8 3x32x32, batch 256, 2 workers",
        rows_a,
        "torch, __getitems__ -> list + default_collate",
    )

    per_sample = PerSampleImages()
    rows_b = [
        (
            "torch, __getitem__",
            samples_per_second(
                lambda: torch_dl(per_sample, 16, shuffle=True, num_workers=1), epochs
            ),
        ),
        (
            "stoker, __getitem__",
            samples_per_second(
                lambda: stoker_dl(per_sample, 16, shuffle=True, num_workers=1), epochs
            ),
        ),
    ]
    print_table(
        "(b) per-sample __getitem__, batch 16, 1 worker (the seed's setting)",
        rows_b,
        "torch, __getitem__",
    )

    large = LargeImages()
    rows_c = [
        (
            "torch",
            samples_per_second(lambda: torch_dl(large, 32, shuffle=True, num_workers=2), epochs),
        ),
        (
            "stoker",
            samples_per_second(lambda: stoker_dl(large, 32, shuffle=True, num_workers=2), epochs),
        ),
    ]
    print_table("(c) float32 3x224x224, batch 32, 2 workers", rows_c, "torch")

    repeats = 3 if args.quick else 7
    t_torch = first_batch_seconds(
        lambda: torch_dl(listed, 256, shuffle=True, num_workers=2), repeats
    )
    t_stoker = first_batch_seconds(
        lambda: stoker_dl(listed, 256, shuffle=True, num_workers=2), repeats
    )
    print("\n(d) time to first batch, fresh iterator, 2 workers (median)")
    print(f"  torch  {t_torch * 1e3:8.1f} ms")
    print(f"  stoker {t_stoker * 1e3:8.1f} ms   ({t_stoker / t_torch:.2f}x torch's time)")

    a, b, c = dict(rows_a), dict(rows_b), dict(rows_c)
    torch_default = a["torch, __getitems__ -> list + default_collate"]
    torch_best = max(torch_default, a["torch, __getitems__ -> stacked batch + identity collate"])
    stoker_same = a["stoker, __getitems__ -> list + default_collate"]
    stoker_best = a["stoker, __getitems__ -> CollatedSamples"]
    summary = [
        ("(a) same list-returning dataset", stoker_same / torch_default),
        ("(a) each at its best", stoker_best / torch_best),
        ("(b) per sample, batch 16, 1 worker", b["stoker, __getitem__"] / b["torch, __getitem__"]),
        ("(c) float32 3x224x224", c["stoker"] / c["torch"]),
        ("(d) sooner to the first batch", t_torch / t_stoker),
    ]
    print("\nsummary (stoker / torch):")
    for label, ratio in summary:
        print(f"  {label:40s} {ratio:.2f}x")
    headers = ["loader", "samples/s", "vs torch"]
    body = [
        f"Same dataset objects and worker counts for both; best of {epochs} epoch(s), each with "
        "a fresh iterator (worker start-up included).",
        "",
        "### (a) 50,000 uint8 3x32x32, `__getitems__`, batch 256, 2 workers",
        "",
        markdown_table(headers, rate_rows(rows_a, "torch, __getitems__ -> list + default_collate")),
        "",
        "### (b) per-sample `__getitem__`, batch 16, 1 worker",
        "",
        markdown_table(headers, rate_rows(rows_b, "torch, __getitem__")),
        "",
        "### (c) float32 3x224x224, batch 32, 2 workers",
        "",
        markdown_table(headers, rate_rows(rows_c, "torch")),
        "",
        f"### (d) time to the first batch of a fresh iterator, 2 workers (median of {repeats})",
        "",
        markdown_table(
            ["loader", "ms"],
            [["torch", f"{t_torch * 1e3:.1f}"], ["stoker", f"{t_stoker * 1e3:.1f}"]],
        ),
        "",
        "### Summary, stoker / torch",
        "",
        *[f"- {label}: **{ratio:.2f}x**" for label, ratio in summary],
    ]
    write_results(
        "bench_engine", "Worker processes: stoker vs torch, same datasets", "\n".join(body)
    )


if __name__ == "__main__":
    main()
