"""The seed's CIFAR-10 train pipeline: torchvision v2 vs stoker, per sample and batched, one core.

Run: ``PYTHONPATH=src python benchmarks/bench_transforms.py [--images 50000] [--batch 256]``

Pipeline: RandomCrop(32, padding=4) → RandomHorizontalFlip(0.5) → ToImage →
ToDtype(float32, scale=True) → Normalize(CIFAR mean, std), on uint8 32×32×3 images.

* torchvision per sample: what ``torchvision.datasets.CIFAR10`` does per item —
  ``PIL.Image.fromarray`` then the v2 pipeline — and, as its best case, the v2 pipeline on a
  CHW uint8 tensor. Measured on a subset and reported as a rate.
* stoker per sample: the same pipeline object on one HWC array at a time, in a sample context.
* stoker batched: a shuffled batch as ``T.Rows(data, indices)`` (what stoker's CIFAR10 passes),
  gathered inside the fused pass; and, for comparison, ``data[indices]`` first.
* ceiling: the least memory traffic any implementation needs — read every uint8 image and write
  its float32 result — as a plain numpy casting copy (same layout, no transpose) into a new output
  array per batch, which is what any transform returning a batch must do. Two references are
  printed too: writing into one preallocated, already-touched epoch array, and into one reused
  (cache-resident) batch.

"faults/img" is the process's minor page faults per image during the run. glibc may give freed
multi-MiB blocks back to the kernel, and then every new batch-sized array is faulted in again;
whether that happens depends on the process's heap history, so throughput of anything that
allocates per batch (stoker's output, the first ceiling) varies between runs. Compare ratios
within one run.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import numpy as np
import PIL.Image
import torch
from torchvision.transforms import v2

from _common import markdown_table, write_results
from _competitors import seed_pipeline
from stoker import seeding
from stoker import transforms as T


def rate(images: int, seconds: float) -> float:
    return images / seconds


def best_of(repeats: int, fn: Callable[[], int]) -> tuple[float, float]:
    """Images/s of the fastest of ``repeats`` runs (others are disturbed by the shared machine),
    and that run's minor page faults per image."""
    best, faults = 0.0, 0.0
    for _ in range(repeats):
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        images = fn()
        speed = rate(images, time.perf_counter() - start)
        if speed > best:
            best = speed
            faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / images
    return best, faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--per-sample-subset", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n, bs = args.images, args.batch
    subset = min(args.per_sample_subset, n)
    data = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    order = np.random.default_rng(1).permutation(n)
    print(
        f"{n} uint8 images 32x32x3, batch {bs}, torch threads {torch.get_num_threads()}, "
        f"best of {args.repeats}"
    )

    tv = seed_pipeline(v2)

    def tv_pil() -> int:
        for i in order[:subset]:
            tv(PIL.Image.fromarray(data[i]))
        return subset

    tensors = torch.from_numpy(data).permute(0, 3, 1, 2)

    def tv_tensor() -> int:
        for i in order[:subset]:
            tv(tensors[i])
        return subset

    ours = seed_pipeline(T)

    def stoker_per_sample() -> int:
        for i in order[:subset]:
            with seeding.sample_context(0, 0, [i]):
                ours(data[i])
        return subset

    def stoker_batched() -> int:
        for start in range(0, n, bs):
            indices = order[start : start + bs]
            with seeding.sample_context(0, 0, indices):
                ours(T.Rows(data, indices))  # as stoker's CIFAR10: gathered in the fused pass
        return n

    def stoker_batched_gathered() -> int:
        for start in range(0, n, bs):
            indices = order[start : start + bs]
            with seeding.sample_context(0, 0, indices):
                ours(data[indices])  # a dataset that gathers first, then transforms
        return n

    # Same layout in and out: a plain copy moves the bytes and nothing else.
    def ceiling_new_output() -> int:
        for start in range(0, n, bs):
            src = data[start : start + bs]
            np.copyto(np.empty(src.shape, np.float32), src)
        return n

    out_all = np.ones(data.shape, np.float32)  # touched, so page faults are not timed

    def ceiling_memory() -> int:
        for start in range(0, n, bs):
            np.copyto(out_all[start : start + bs], data[start : start + bs])
        return n

    out_batch = np.empty((bs, *data.shape[1:]), np.float32)

    def ceiling_cache() -> int:
        for start in range(0, n - bs + 1, bs):
            np.copyto(out_batch, data[start : start + bs])
        return (n // bs) * bs

    results, fault_rates = {}, {}
    for name, fn in [
        ("torchvision v2 per sample (PIL, as CIFAR10)", tv_pil),
        ("torchvision v2 per sample (CHW tensor)", tv_tensor),
        ("stoker per sample (HWC numpy)", stoker_per_sample),
        (f"stoker batched ({bs}, NHWC numpy)", stoker_batched),
        ("  the same after a data[indices] gather", stoker_batched_gathered),
        ("ceiling: u8 read + f32 write, new output", ceiling_new_output),
        ("  reference: into a touched epoch array", ceiling_memory),
        ("  reference: into one reused batch (cache)", ceiling_cache),
    ]:
        fn()  # warm-up
        results[name], faults = best_of(args.repeats, fn)
        fault_rates[name] = faults
        print(f"  {name:46s} {results[name]:>12,.0f} images/s  {faults:5.2f} faults/img")

    tv_best = max(
        results["torchvision v2 per sample (PIL, as CIFAR10)"],
        results["torchvision v2 per sample (CHW tensor)"],
    )
    batched = results[f"stoker batched ({bs}, NHWC numpy)"]
    tv_pil = results["torchvision v2 per sample (PIL, as CIFAR10)"]
    ceiling = results["ceiling: u8 read + f32 write, new output"]
    summary = [
        ("stoker batched / torchvision per sample (its faster, tensor path)", batched / tv_best),
        ("stoker batched / torchvision per sample (PIL, as CIFAR10)", batched / tv_pil),
    ]
    shares = [
        ("stoker batched / memory-bandwidth ceiling (new output per batch)", batched / ceiling)
    ]
    for name in (
        "  reference: into a touched epoch array",
        "  reference: into one reused batch (cache)",
    ):
        shares.append((f"stoker batched / ceiling {name.strip()[11:]}", batched / results[name]))
    for label, ratio in summary:
        print(f"{label:70s} {ratio:6.1f}x")
    for label, share in shares:
        print(f"{label:70s} {share:6.1%}")
    table = markdown_table(
        ["pipeline", "images/s", "minor faults/image"],
        [[name.strip(), f"{results[name]:,.0f}", f"{fault_rates[name]:.2f}"] for name in results],
    )
    lines = [f"- {label}: **{ratio:.1f}x**" for label, ratio in summary]
    lines += [f"- {label}: **{share:.1%}**" for label, share in shares]
    write_results(
        "bench_transforms",
        "The seed's CIFAR-10 train transform, one core: torchvision v2 vs stoker",
        f"{n:,} uint8 32x32x3 images, batch {bs}, one torch thread, best of {args.repeats}; "
        "RandomCrop(32, padding=4), RandomHorizontalFlip, ToImage, ToDtype(float32, scale), "
        f"Normalize. Per-sample rows run {subset:,} images.\n\n{table}\n\n" + "\n".join(lines),
    )


if __name__ == "__main__":
    main()
