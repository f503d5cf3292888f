"""An epoch with a worker SIGKILLed half-way: stoker recovers, torch raises.

Run: python benchmarks/bench_faults.py   (prints wall times and the ratio; not a test)

The dataset does real per-sample work (a small numpy computation), 2 workers, batch 32. A thread
kills worker 0 with SIGKILL — what the kernel's OOM killer sends — when half the epoch has been
delivered. stoker replaces the worker, recomputes the batches it held, and finishes the epoch;
target: the recovered epoch costs <= 1.2x an undisturbed one.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np
import torch

import stoker
from _common import markdown_table, write_results

N = 15000
BATCH = 32


class Work(torch.utils.data.Dataset[Any]):
    """~0.3 ms of numpy work per sample, deterministic per index."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, index: int) -> Any:
        rng = np.random.default_rng(index)
        x = rng.standard_normal((64, 64)).astype(np.float32)
        for _ in range(3):
            x = np.tanh(x @ x.T / 64)
        return torch.from_numpy(x[:8]), index


def worker_pids(iterator: Any) -> list[int]:
    if hasattr(iterator, "_pool"):
        return [w.process.pid for w in iterator._pool.workers]
    return [w.pid for w in iterator._workers]


def timed_epoch(make_loader: Any, kill_at: int | None) -> tuple[float, int, str]:
    loader = make_loader()
    start = time.perf_counter()
    seen, outcome = 0, "completed"
    iterator = iter(loader)
    try:
        for step, (_, labels) in enumerate(iterator):
            seen += len(labels)
            if kill_at is not None and step == kill_at:
                os.kill(worker_pids(iterator)[0], signal.SIGKILL)
    except RuntimeError as error:
        outcome = f"raised {type(error).__name__}: {str(error).splitlines()[0][:70]}"
    elapsed = time.perf_counter() - start
    del iterator
    return elapsed, seen, outcome


def main() -> None:
    torch.set_num_threads(1)
    dataset = Work()
    half = N // BATCH // 2

    def ours() -> stoker.DataLoader:
        return stoker.DataLoader(dataset, BATCH, shuffle=True, seed=0, num_workers=2)

    def theirs() -> torch.utils.data.DataLoader[Any]:
        return torch.utils.data.DataLoader(dataset, BATCH, shuffle=True, num_workers=2)

    rows = [
        ("stoker, undisturbed", *timed_epoch(ours, None)),
        ("stoker, worker 0 SIGKILLed half-way", *timed_epoch(ours, half)),
        ("torch, undisturbed", *timed_epoch(theirs, None)),
        ("torch, worker 0 SIGKILLed half-way", *timed_epoch(theirs, half)),
    ]
    print(f"\n{N} samples, batch {BATCH}, 2 workers; worker 0 killed after batch {half}")
    print(f"  {'run':40s} {'wall s':>8s} {'samples':>8s}  outcome")
    for name, elapsed, seen, outcome in rows:
        print(f"  {name:40s} {elapsed:8.2f} {seen:8d}  {outcome}")
    recovered, undisturbed = rows[1][1], rows[0][1]
    complete = rows[1][2] == N
    print(
        f"\nstoker recovered epoch / undisturbed epoch: {recovered / undisturbed:.3f}x "
        f"(target <= 1.2x); every sample delivered: {complete}"
    )
    table = markdown_table(
        ["run", "wall s", "samples delivered", "outcome"],
        [[name, f"{elapsed:.2f}", str(seen), outcome] for name, elapsed, seen, outcome in rows],
    )
    write_results(
        "bench_faults",
        "Recovery: an epoch with a worker SIGKILLed half-way",
        f"{N:,} samples with ~0.3 ms of numpy work each, batch {BATCH}, 2 workers; worker 0 "
        f"is sent SIGKILL after batch {half}.\n\n{table}\n\n"
        f"- stoker's recovered epoch / its undisturbed epoch: **{recovered / undisturbed:.2f}x**"
        f"; every sample delivered: **{'yes' if complete else 'no'}**\n",
    )


if __name__ == "__main__":
    main()
