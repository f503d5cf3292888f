"""`stoker bench`: stoker against torch's DataLoader + torchvision on the seed's CIFAR pipeline."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.utils.data
from PIL import Image
from tqdm.auto import tqdm

import stoker
from stoker.cli._common import CommandError, open_cifar, train_pipeline
from stoker.datasets import testdata

__all__ = ["Result", "measure", "register", "run", "save_chart"]

SETTINGS = ((16, 1), (256, 2))
"""(batch size, workers): the seed's setting, and a large-batch one."""

_FULL_SAMPLES = 50_000  # one CIFAR-10 training epoch
_QUICK_SAMPLES = 4_096  # enough batches for a stable rate, under a minute for everything


@dataclass(frozen=True)
class Result:
    """Samples per second of both loaders in one setting."""

    batch_size: int
    workers: int
    torch_rate: float
    stoker_rate: float

    @property
    def ratio(self) -> float:
        return self.stoker_rate / self.torch_rate if self.torch_rate else float("inf")


class _TorchvisionStyleCIFAR(torch.utils.data.Dataset[Any]):
    """What ``torchvision.datasets.CIFAR10.__getitem__`` does: a PIL image, then the transform.

    torchvision's own class refuses files whose MD5 differs from the official download, so
    it cannot read generated data; this does the same per-sample work on the same array.
    """

    def __init__(self, data: npt.NDArray[np.uint8], targets: Any, transform: Any):
        self.data, self.targets, self.transform = data, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.transform(Image.fromarray(self.data[index])), int(self.targets[index])


def _torchvision_pipeline() -> Any:
    try:
        from torchvision.transforms import v2
    except ImportError:
        raise CommandError(
            "stoker bench compares against torchvision, which is not installed (stoker itself "
            "does not need it). Install it with `pip install torchvision` and run again."
        ) from None
    return train_pipeline(v2)


def _rate(loader: Iterable[Any], limit: int) -> float:
    """Samples per second until ``limit`` samples, first batch included (the user waits too)."""
    start = time.perf_counter()
    seen = 0
    for images, _ in loader:
        seen += len(images)
        if seen >= limit:
            break
    return seen / (time.perf_counter() - start)


def measure(
    data: Path, samples: int, settings: Iterable[tuple[int, int]] = SETTINGS
) -> list[Result]:
    """Time both loaders on CIFAR-format ``data``, ``samples`` each, per (batch size, workers)."""
    reference = _torchvision_pipeline()
    dataset = open_cifar(data, True, train_pipeline(), False, "bench")
    theirs = _TorchvisionStyleCIFAR(dataset.data, dataset.targets, reference)
    settings = list(settings)
    results = []
    # One step per timed run, advanced between runs: the bar never runs inside a timing.
    # disable=None: a bar on a terminal (a widget in a notebook), nothing in logs.
    with tqdm(total=2 * len(settings), desc="timing", unit="run", disable=None, leave=False) as bar:
        for batch_size, workers in settings:
            bar.set_postfix_str(f"torch, batch {batch_size}, {workers} worker(s)")
            torch_loader = torch.utils.data.DataLoader(
                theirs, batch_size=batch_size, shuffle=True, num_workers=workers
            )
            torch_rate = _rate(torch_loader, samples)
            del torch_loader  # its workers go before ours start: no sharing of the 2 cores
            bar.update()
            bar.set_postfix_str(f"stoker, batch {batch_size}, {workers} worker(s)")
            stoker_loader = stoker.DataLoader(
                dataset, batch_size=batch_size, shuffle=True, num_workers=workers, seed=0
            )
            stoker_rate = _rate(stoker_loader, samples)
            stoker_loader.close()
            del stoker_loader
            bar.update()
            results.append(Result(batch_size, workers, torch_rate, stoker_rate))
    return results


def table(results: list[Result]) -> str:
    """The results as a terminal table, one row per setting."""
    lines = [
        f"{'batch':>5}  {'workers':>7}  {'torch+torchvision':>17}  {'stoker':>10}  {'ratio':>6}",
    ]
    for r in results:
        lines.append(
            f"{r.batch_size:>5}  {r.workers:>7}  {r.torch_rate:>17,.0f}  "
            f"{r.stoker_rate:>10,.0f}  {r.ratio:>5.1f}x"
        )
    return "\n".join(lines)


def save_chart(results: list[Result], out: Path) -> None:
    """A bar chart of samples/s per setting, torch beside stoker, ratios on top; PNG at ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels = [
        f"batch {r.batch_size}\n{r.workers} worker{'s' if r.workers != 1 else ''}" for r in results
    ]
    x = np.arange(len(results))
    width = 0.38
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    theirs = axis.bar(
        x - width / 2,
        [r.torch_rate for r in results],
        width,
        label="torch DataLoader + torchvision v2",
        color="#9aa5b1",
    )
    ours = axis.bar(
        x + width / 2, [r.stoker_rate for r in results], width, label="stoker", color="#d9480f"
    )
    axis.bar_label(theirs, fmt="{:,.0f}", fontsize=8)
    axis.bar_label(
        ours, labels=[f"{r.stoker_rate:,.0f}\n{r.ratio:.1f}x" for r in results], fontsize=8
    )
    axis.set_xticks(x, labels)
    axis.set_ylabel("samples / s (higher is better)")
    axis.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    axis.set_title("CIFAR-10 training pipeline (crop, flip, normalise)", fontsize=10)
    axis.margins(y=0.25)
    axis.legend(fontsize=8, loc="upper left")
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "bench",
        help="compare stoker with torch's DataLoader + torchvision on the seed's pipeline",
        description="Load CIFAR-10-format data through the seed's training pipeline (random "
        "crop with padding 4, flip, float, normalise) with torch.utils.data.DataLoader + "
        "torchvision v2 (per-sample PIL, as torchvision.datasets.CIFAR10) and with stoker "
        "(batched transforms), at batch 16 / 1 worker (the seed's setting) and batch 256 / "
        "2 workers. Prints samples/s and ratios and writes a bar chart. Needs torchvision.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        default=None,
        help="folder with cifar-10-batches-py/ (default: 50,000 generated images)",
    )
    parser.add_argument("--quick", action="store_true", help="4,096 samples per run (< 1 minute)")
    parser.add_argument(
        "--out", type=Path, metavar="PNG", default=Path("bench.png"), help="chart PNG to write"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    samples = _QUICK_SAMPLES if args.quick else _FULL_SAMPLES
    _torchvision_pipeline()  # say that torchvision is missing before generating anything
    with tempfile.TemporaryDirectory(prefix="stoker-bench-") as scratch:
        data = args.data
        if data is None:
            # Random pixels cost the pipelines what real photos cost: the work is per pixel.
            data = Path(scratch)
            testdata.write_cifar10(
                data,
                train=testdata.random_cifar(samples, seed=0),
                test=testdata.random_cifar(16, seed=1),
            )
        print(
            f"timing {samples:,} samples per run from {args.data or 'generated CIFAR-format data'}"
            f", {torch.get_num_threads()} torch threads"
        )
        results = measure(data, samples)
    print(table(results))
    try:
        save_chart(results, args.out)
    except ImportError:
        raise CommandError(
            "the table is above, but the chart needs matplotlib, which is not installed. "
            "Install it with `pip install matplotlib` (or `pip install stoker[plot]`)."
        ) from None
    print(f"chart: {args.out}")
    return 0
