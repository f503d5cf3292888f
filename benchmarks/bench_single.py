"""num_workers=0: stoker vs torch.utils.data.DataLoader on 50,000 uint8 3×32×32 images, batch 256.

Run: python benchmarks/bench_single.py   (prints samples/s and ratios; not a test)
"""

from __future__ import annotations

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

BATCH = 256
EPOCHS = 3


def main() -> None:
    torch.set_num_threads(1)
    per_sample, listed = PerSampleImages(), ListGetitems()
    batched, prestacked = BatchGetitems(), PreStacked()
    torch_loader = torch.utils.data.DataLoader
    loaders = {
        "torch, __getitem__ per sample": lambda: torch_loader(per_sample, BATCH, shuffle=True),
        "torch, __getitems__ -> list + default_collate": lambda: torch_loader(
            listed, BATCH, shuffle=True
        ),
        "torch, __getitems__ -> stacked batch + identity collate": lambda: torch_loader(
            prestacked, BATCH, shuffle=True, collate_fn=stacked_identity
        ),
        "stoker, __getitem__ per sample": lambda: stoker.DataLoader(
            per_sample, BATCH, shuffle=True, seed=0
        ),
        "stoker, __getitems__ -> CollatedSamples": lambda: stoker.DataLoader(
            batched, BATCH, shuffle=True, seed=0
        ),
    }
    rows = [(name, samples_per_second(make, EPOCHS)) for name, make in loaders.items()]
    reference = "torch, __getitem__ per sample"
    print_table("num_workers=0, batch 256, 50,000 uint8 3x32x32 images", rows, reference)
    rate = dict(rows)
    ours = rate["stoker, __getitems__ -> CollatedSamples"]
    best_torch_batched = max(rate[name] for name in rate if name.startswith("torch, __getitems__"))
    summary = [
        ("stoker batched / torch per-sample", ours / rate[reference]),
        ("stoker batched / torch's best `__getitems__`", ours / best_torch_batched),
        (
            "stoker / torch, both per sample",
            rate["stoker, __getitem__ per sample"] / rate[reference],
        ),
    ]
    print()
    for label, ratio in summary:
        print(f"{label.replace('`', ''):46s} {ratio:.2f}x")
    table = markdown_table(
        ["loader", "samples/s", "vs torch per sample"], rate_rows(rows, reference)
    )
    lines = "\n".join(f"- {label}: **{ratio:.2f}x**" for label, ratio in summary)
    write_results(
        "bench_single",
        "In-process loading (`num_workers=0`): stoker vs torch",
        f"50,000 uint8 3x32x32 images in memory, batch {BATCH}, shuffled, one torch thread, "
        f"best of {EPOCHS} epochs.\n\n{table}\n\n{lines}\n",
    )


if __name__ == "__main__":
    main()
