"""`stoker demo`: generate learnable data, train, evaluate, draw samples, benchmark: minutes."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stoker.cli import bench, eval_voc, show, train
from stoker.cli._checkpoint import load_checkpoint
from stoker.cli._common import CommandError
from stoker.cli._shapes import SHAPES, write_demo_cifar, write_demo_voc
from stoker.datasets import CIFAR10_CLASSES, testdata

__all__ = ["register", "run"]


@dataclass(frozen=True)
class _Size:
    """How much the demo generates and trains: full (< 3 min on 2 cores) or quick (tests)."""

    train: int
    test: int
    voc: int
    epochs: int
    bench_samples: int


_FULL = _Size(train=6_000, test=1_000, voc=200, epochs=4, bench_samples=20_000)
_QUICK = _Size(train=256, test=64, voc=24, epochs=1, bench_samples=256)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="generate data, train ResNet-20, evaluate on VOC, draw samples, benchmark",
        description="The whole example in one command, no download: writes a generated "
        "CIFAR-10-format dataset (ten classes of drawn shapes and textures, with noise) and a "
        "small VOC 2007 tree, trains ResNet-20 on it with stoker, scores it on the test split "
        "and on the VOC images, saves a sample grid and a benchmark chart, and prints where "
        "everything is. About 2 minutes on 2 CPU cores.",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", default=Path("stoker-demo"), help="folder for everything"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a few seconds (for tests)"
    )
    parser.add_argument(
        "--epochs", type=int, metavar="N", default=None, help="training epochs (default 4)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", default=1, help="loader worker processes"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.set_defaults(run=run)


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(args: argparse.Namespace) -> int:
    size = _QUICK if args.quick else _FULL
    epochs = args.epochs or size.epochs
    out: Path = args.out
    data, run_dir = out / "data", out / "run"
    grid, voc_grid, chart = out / "samples.png", out / "voc_samples.png", out / "bench.png"
    started = time.perf_counter()

    _step("1/5 data")
    write_demo_cifar(data, size.train, size.test, seed=0)
    write_demo_voc(data, size.voc, seed=1)
    legend = ", ".join(f"{name}={shape}" for name, shape in zip(CIFAR10_CLASSES, SHAPES))
    print(
        f"CIFAR-10 format, {size.train:,} train + {size.test:,} test images, and a VOC 2007 "
        f"tree of {size.voc} images, in {data}\nclasses are drawn shapes: {legend}"
    )

    _step("2/5 train ResNet-20")
    checkpoint = run_dir / train.CHECKPOINT_NAME
    train_args = [
        "--data",
        str(data),
        "--out",
        str(run_dir),
        "--epochs",
        str(epochs),
        "--workers",
        str(args.workers),
        "--device",
        args.device,
        "--seed",
        "0",
    ]
    if checkpoint.exists():
        checkpoint.unlink()  # a fresh run: an old checkpoint would not match the new data
    _call("train", train_args)
    history = load_checkpoint(checkpoint)["history"]

    _step("3/5 evaluate on the VOC images")
    voc_accuracy, voc_table, voc_count = eval_voc.evaluate_voc(checkpoint, data, device=args.device)
    print(f"{voc_count} VOC images with one object of a mapped class\n{voc_table}")

    _step("4/5 sample grids")
    drawn = _optional(lambda: _grids(data, grid, voc_grid))

    _step("5/5 benchmark")
    benched = _optional(lambda: _bench(size.bench_samples, chart))

    first, last = history[0], history[-1]
    print(
        f"\ndone in {time.perf_counter() - started:.0f} s "
        f"({torch.get_num_threads()} torch threads)\n"
        f"  test accuracy    {first['test_accuracy']:.1%} after epoch 1 -> "
        f"{last['test_accuracy']:.1%} after epoch {last['epoch']:.0f} (chance: 10%)\n"
        f"  VOC accuracy     {voc_accuracy:.1%} on {voc_count} images\n"
        f"  checkpoint       {checkpoint}\n"
        f"  sample grids     {f'{grid}, {voc_grid}' if drawn else 'skipped (see above)'}\n"
        f"  benchmark chart  {chart if benched else 'skipped (see above)'}\n"
        f"  data             {data}  (try: stoker train --data {data} --epochs 10)"
    )
    return 0


def _grids(data: Path, grid: Path, voc_grid: Path) -> None:
    _call("show", ["--data", str(data), "--out", str(grid)])
    _call("show", ["--data", str(data), "--out", str(voc_grid), "--source", "voc", "--rows", "2"])


def _bench(samples: int, chart: Path) -> None:
    # A dataset as large as the timed run: the demo's own 6,000 images would make every loader
    # restart (and fork its workers) every few batches, timing start-up instead of loading.
    with tempfile.TemporaryDirectory(prefix="stoker-demo-bench-") as scratch:
        testdata.write_cifar10(
            scratch,
            train=testdata.random_cifar(samples, seed=0),
            test=testdata.random_cifar(16, seed=1),
        )
        results = bench.measure(Path(scratch), samples)
    print(bench.table(results))
    bench.save_chart(results, chart)


def _optional(step: Callable[[], object]) -> bool:
    """Run a step that needs an optional package; if it is missing, say so and go on."""
    try:
        step()
    except CommandError as error:
        print(f"skipped: {error}")
        return False
    except ImportError as error:
        print(
            f"skipped: {error.name or error} is not installed; `pip install stoker[plot] "
            "torchvision` adds what the sample grids and the benchmark need"
        )
        return False
    return True


def _call(command: str, argv: list[str]) -> None:
    """Run another subcommand in this process, through the same registration a user's call
    goes through (this module cannot import the full parser: that parser imports it)."""
    parser = argparse.ArgumentParser(prog="stoker")
    commands = parser.add_subparsers(dest="command", required=True)
    _SUBCOMMANDS[command].register(commands)
    args = parser.parse_args([command, *argv])
    args.run(args)


_SUBCOMMANDS = {"train": train, "show": show}
