"""Shared benchmark helpers: timing loops, CIFAR-shaped datasets, tables, results files."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import stoker


def samples_per_second(
    make_loader: Callable[[], Iterable[Any]], epochs: int = 1, max_batches: int | None = None
) -> float:
    """Best rate over ``epochs`` full passes (first batch included: the user waits for it too)."""
    best = 0.0
    for _ in range(epochs):
        loader = make_loader()
        start = time.perf_counter()
        seen = 0
        for step, batch in enumerate(loader):
            first = batch[0] if isinstance(batch, list | tuple) else batch
            seen += len(first)
            if max_batches is not None and step + 1 >= max_batches:
                break
        best = max(best, seen / (time.perf_counter() - start))
        del loader
    return best


class PerSampleImages(torch.utils.data.Dataset[Any]):
    """uint8 CHW images held in one array; only ``__getitem__``."""

    def __init__(self, n: int = 50_000, shape: tuple[int, ...] = (3, 32, 32)):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        self.labels = rng.integers(0, 10, size=n)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Any:
        return torch.from_numpy(self.images[index]), int(self.labels[index])


class ListGetitems(PerSampleImages):
    """Adds ``__getitems__`` returning a list of samples (what torch's collate expects)."""

    def __getitems__(self, indices: list[int]) -> list[Any]:
        images = torch.from_numpy(self.images[indices])
        labels = self.labels[indices].tolist()
        return list(zip(images, labels))


class BatchGetitems(PerSampleImages):
    """Adds ``__getitems__`` that gathers the whole batch at once (stoker's CollatedSamples)."""

    def __getitems__(self, indices: list[int]) -> stoker.CollatedSamples:
        return stoker.CollatedSamples(
            (torch.from_numpy(self.images[indices]), torch.from_numpy(self.labels[indices])),
            len(indices),
        )


def stacked_identity(batch: Any) -> Any:
    """torch's fastest __getitems__ route: the dataset returns the batch, collate does nothing."""
    return batch


class PreStacked(PerSampleImages):
    """``__getitems__`` returning the finished batch, for torch with ``collate_fn=identity``."""

    def __getitems__(self, indices: list[int]) -> Any:
        return torch.from_numpy(self.images[indices]), torch.from_numpy(self.labels[indices])


def per_sample_ms(fn: Callable[[Any], Any], images: list[Any], seed: int = 0) -> float:
    """Median over 3 runs of ``fn``'s thread CPU time per image, in ms (sample ``i`` drawn as
    ``(seed, epoch 0, index i)``)."""
    times = []
    for _ in range(3):
        start = time.thread_time()
        for i, image in enumerate(images):
            with stoker.seeding.sample_context(seed, 0, [i]):
                fn(image)
        times.append((time.thread_time() - start) / len(images) * 1e3)
    return statistics.median(times)


def print_table(title: str, rows: list[tuple[str, float]], reference: str) -> None:
    ref = dict(rows)[reference]
    print(f"\n{title}")
    print(f"  {'loader':58s} {'samples/s':>12s} {'vs ' + reference[:18]:>22s}")
    for name, rate in rows:
        print(f"  {name:58s} {rate:12,.0f} {rate / ref:21.2f}x")


def rate_rows(rows: list[tuple[str, float]], reference: str) -> list[list[str]]:
    """``(name, samples/s)`` rows as Markdown cells with the ratio to ``reference``'s rate."""
    ref = dict(rows)[reference]
    return [[name, f"{rate:,.0f}", f"{rate / ref:.2f}x"] for name, rate in rows]


def one_torch_thread(loader: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``loader`` with torch's intra-op threads set to 1 (restored afterwards).

    stoker's fused transform runs its float ops in torch, and thread workers share the
    process's OpenMP pool; with the default thread count on a busy 2-core machine the OpenMP
    threads wait on each other (see docs/performance.md).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield from loader
    finally:
        torch.set_num_threads(previous)


# --- results files -------------------------------------------------------------------------

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_LOAD_AT_START = os.getloadavg()  # this module is imported when a benchmark starts


_DUNDER = re.compile(r"(?<!`)(__\w+?__)(?!`)")  # __getitems__ would render as bold
_NUMBER = re.compile(r"[-+]?[\d,.]+(x|%| ms| s)?")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub Markdown table; columns that hold only numbers are right-aligned."""
    rows = [[_DUNDER.sub(r"`\1`", str(cell)) for cell in row] for row in rows]
    numeric = [
        bool(rows) and all(_NUMBER.fullmatch(row[column].strip("*")) for row in rows)
        for column in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "".join(" ---: |" if right else " --- |" for right in numeric))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        pages, page_bytes = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return "unknown"
    return f"{pages * page_bytes / 2**30:.0f} GiB"


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return "not installed"


def _c_modules() -> str:
    built = []
    for name in ("stoker.transforms._cfused", "stoker._cmix", "stoker.datasets._cjpeg"):
        try:
            __import__(name)
            built.append(name.rsplit(".", 1)[1])
        except ImportError:
            pass
    return ", ".join(built) if built else "none (numpy/torch fallbacks)"


def _gpu() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "none (CPU only)"


def environment_lines() -> list[str]:
    """Machine, versions, date and command of this run, as Markdown list items."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    end = os.getloadavg()
    command = shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    lines = [
        f"- **command**: `{command}` (from the repository root)",
        f"- **date**: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- **machine**: {platform.system()} {platform.machine()}, {_cpu_model()}, {cores} "
        f"cores available, {_memory_gib()} memory, GPU: {_gpu()}",
        f"- **load average** (1 min) at start / end: {_LOAD_AT_START[0]:.2f} / {end[0]:.2f}",
        f"- **versions**: Python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {_version('torchvision')}, numpy {np.__version__}, "
        f"stoker {stoker.__version__}; C modules built: {_c_modules()}",
    ]
    note = os.environ.get("BENCH_NOTE")
    if note:
        lines.append(f"- **note**: {note}")
    return lines


def write_results(name: str, title: str, body: str) -> Path:
    """Write ``benchmarks/results/<name>.md``: ``title``, this run's environment, ``body``.

    ``body`` is Markdown (tables and sentences). The file is the benchmark's latest result:
    each run replaces it, and the docs link to it instead of copying its numbers.
    ``BENCH_NOTE`` in the environment adds a line (say, that the machine was shared).
    """
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    header = [
        f"# {title}",
        "",
        "Written by the benchmark itself; rerun the command below to replace it. Rates move",
        "with machine load: compare the ratios within this file, not rates across files.",
        "",
        *environment_lines(),
        "",
        "",
    ]
    path.write_text("\n".join(header) + body.rstrip() + "\n")
    print(f"\nresults: {path}")
    return path
