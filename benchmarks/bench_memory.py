"""Worker memory: a 2,000,000-path dataset read by 2 forked workers for one epoch.

Run: python benchmarks/bench_memory.py [--n N] [--repeats R] [--batch B]   (not a test; ~5 min)

The paths are held as a Python list, as a ``stoker.SharedList`` and as a numpy fixed-width bytes
array, and loaded by torch's DataLoader and stoker's (2 fork workers, one shuffled epoch,
``__getitem__`` reads one path). Each mode runs in a fresh interpreter, so no mode inherits
another's heap. A thread samples the workers' private memory (USS, from /proc/PID/smaps via
psutil) every 50 ms and keeps the peak of their sum. ``+gc.freeze`` rows call ``gc.freeze()``
just before the workers fork (the ``(path, label)`` tuple rows are where the garbage collector
has objects to touch). The table goes to ``benchmarks/results/memory.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

import stoker
from stoker._copy_on_read import large_containers

WORKERS = 2
SAMPLE_PERIOD_S = 0.05
"""USS sampling period: reading smaps of a 300 MB process takes ~10 ms here."""

RESULTS = Path(__file__).parent / "results" / "memory.md"

MODES = [
    # (storage, loader, gc.freeze before fork)
    ("list", "torch", False),
    ("list", "stoker", False),
    ("SharedList", "torch", False),
    ("SharedList", "stoker", False),
    ("numpy", "torch", False),
    ("numpy", "stoker", False),
    ("list", "stoker", True),
    ("tuples", "stoker", False),
    ("tuples", "stoker", True),
    ("SharedList tuples", "stoker", False),
]


def make_paths(n: int) -> list[str]:
    """ImageNet-shaped file paths, 46 characters each."""
    return [f"/data/train/n{i % 1000:08d}/n{i % 1000:08d}_{i:09d}.JPEG" for i in range(n)]


class Paths(torch.utils.data.Dataset[Any]):
    """``len`` of the path (or of the ``(path, label)`` pair's path) at each index."""

    def __init__(self, paths: Any):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> int:
        item = self.paths[index]
        return len(item[0]) if isinstance(item, tuple) else len(item)


def build(storage: str, n: int) -> tuple[Any, int]:
    """The dataset's storage and its payload in bytes (Python objects included for lists)."""
    paths = make_paths(n)
    if storage == "list":
        return paths, sys.getsizeof(paths) + sum(map(sys.getsizeof, paths))
    if storage == "tuples":
        pairs = [(p, i % 1000) for i, p in enumerate(paths)]
        # the pair, its path and its label; labels below 257 are shared, cached ints
        return pairs, sys.getsizeof(pairs) + sum(
            sys.getsizeof(t) + sys.getsizeof(t[0]) for t in pairs
        )
    if storage == "SharedList":
        shared = stoker.SharedList(paths)
        return shared, shared.nbytes
    if storage == "SharedList tuples":
        shared = stoker.SharedList([(p, i % 1000) for i, p in enumerate(paths)])
        return shared, shared.nbytes
    array = np.array(paths, dtype=np.bytes_)
    return array, array.nbytes


def workers_uss() -> int:
    total = 0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += child.memory_full_info().uss
    return total


def run_one(storage: str, loader_name: str, freeze: bool, n: int, batch: int) -> dict[str, Any]:
    """One mode in this interpreter: payload, peak summed worker USS, epoch time, warning."""
    data, payload = build(storage, n)
    dataset = Paths(data)
    gc.collect()
    check_s = []
    for _ in range(200):
        start = time.perf_counter()
        large_containers(dataset)
        check_s.append(time.perf_counter() - start)
    if loader_name == "torch":
        loader: Any = torch.utils.data.DataLoader(
            dataset, batch_size=batch, shuffle=True, num_workers=WORKERS,
            multiprocessing_context="fork",
        )  # fmt: skip
    else:
        loader = stoker.DataLoader(
            dataset, batch_size=batch, shuffle=True, num_workers=WORKERS,
            multiprocessing_context="fork", seed=0,
        )  # fmt: skip
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], workers_uss())
            done.wait(SAMPLE_PERIOD_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seen = 0
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if freeze:
            gc.freeze()
        for lengths in loader:
            seen += len(lengths)
    elapsed = time.perf_counter() - start
    peak[0] = max(peak[0], workers_uss())
    done.set()
    sampler.join()
    assert seen == n, f"epoch delivered {seen} samples, expected {n}"
    warned = any("SharedList" in str(w.message) for w in caught)
    return {
        "payload": payload,
        "peak_uss": peak[0],
        "epoch_s": elapsed,
        "warned": warned,
        "check_us": statistics.median(check_s) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000, help="paths in the dataset")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode, interleaved")
    parser.add_argument(
        "--run", nargs=3, metavar=("STORAGE", "LOADER", "FREEZE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.run:
        storage, loader_name, freeze = args.run
        print(json.dumps(run_one(storage, loader_name, freeze == "1", args.n, args.batch)))
        return

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    results: dict[tuple[str, str, bool], list[dict[str, Any]]] = {m: [] for m in MODES}
    for repeat in range(args.repeats):
        for storage, loader_name, freeze in MODES:
            command = [sys.executable, __file__, "--n", str(args.n), "--batch", str(args.batch),
                       "--run", storage, loader_name, "1" if freeze else "0"]  # fmt: skip
            out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if out.returncode != 0:
                sys.exit(f"{storage}/{loader_name} failed:\n{out.stderr}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results[(storage, loader_name, freeze)].append(result)
            print(f"[{repeat + 1}/{args.repeats}] {storage:18s} {loader_name:6s} "
                  f"freeze={freeze!s:5s} peak USS {result['peak_uss'] / 1e6:7.1f} MB  "
                  f"epoch {result['epoch_s']:5.1f} s", flush=True)  # fmt: skip

    def med(mode: tuple[str, str, bool], key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    list_payload = med(("list", "torch", False), "payload")
    lines = [
        "# Worker memory: copy-on-read",
        "",
        f"{args.n:,} file paths (46 characters), {WORKERS} fork workers, one shuffled epoch, "
        f"batch {args.batch}, `__getitem__` reads one path. Each mode in a fresh interpreter; "
        f"medians of {args.repeats} interleaved run(s). Peak USS: the workers' private memory, "
        f"summed, sampled every {SAMPLE_PERIOD_S * 1000:.0f} ms with psutil.",
        "",
        "| storage | loader | gc.freeze | payload MB | workers' peak USS MB | USS / list payload"
        " | epoch s | stoker warned |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for mode in MODES:
        storage, loader_name, freeze = mode
        uss = med(mode, "peak_uss")
        warned = "yes" if results[mode][0]["warned"] else "no"
        lines.append(
            f"| {storage} | {loader_name} | {'yes' if freeze else 'no'} | "
            f"{med(mode, 'payload') / 1e6:.1f} | {uss / 1e6:.1f} | {uss / list_payload:.1%} | "
            f"{med(mode, 'epoch_s'):.1f} | {warned if loader_name == 'stoker' else '—'} |"
        )
    check = max(med(m, "check_us") for m in MODES)
    lines += [
        "",
        f"The loader-start check (`large_containers`) took at most {check:.1f} µs (median of "
        "200 calls) on any of these datasets.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs while "
        f"measured), {psutil.virtual_memory().total / 2**30:.0f} GiB; Python "
        f"{platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"stoker {stoker.__version__}. "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Command: `python benchmarks/bench_memory.py --n {args.n} --batch {args.batch} "
        f"--repeats {args.repeats}`",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
