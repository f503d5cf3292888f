"""`stoker eval-voc`: how a CIFAR-trained ResNet-20 does on PASCAL VOC images of CIFAR classes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import stoker
from stoker.cli._checkpoint import load_model
from stoker.cli._common import open_voc, pick_device, voc_pipeline
from stoker.cli._evaluate import accuracy_table, predict
from stoker.datasets import CIFAR10_CLASSES

__all__ = ["evaluate_voc", "register", "run"]

_BATCH_SIZE = 64


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "eval-voc",
        help="score a trained checkpoint on VOC 2007 images of CIFAR-10 classes",
        description="Score a `stoker train` checkpoint on the VOC 2007 'val' images that hold "
        "exactly one object of a class mapped to CIFAR-10 (aeroplane→airplane, car→automobile, "
        "bird, cat, dog), resized to 32×32 and normalised as CIFAR. Prints overall and "
        "per-class accuracy.",
    )
    parser.add_argument(
        "--checkpoint", type=Path, metavar="CKPT", required=True, help="checkpoint.pt from train"
    )
    parser.add_argument(
        "--voc", type=Path, metavar="DIR", required=True, help="folder holding VOCdevkit/"
    )
    parser.add_argument("--download", action="store_true", help="fetch VOC 2007 into --voc first")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--workers", type=int, metavar="N", default=0, help="loader worker processes"
    )
    parser.set_defaults(run=run)


def evaluate_voc(
    checkpoint: Path, voc: Path, download: bool = False, device: str = "auto", workers: int = 0
) -> tuple[float, str, int]:
    """(overall accuracy, per-class table, number of images) of ``checkpoint`` on ``voc``."""
    target = pick_device(device)
    model = load_model(checkpoint).to(target)
    dataset = open_voc(voc, voc_pipeline(), download)
    loader = stoker.DataLoader(dataset, batch_size=_BATCH_SIZE, num_workers=max(workers, 0))
    predicted, truth = predict(model, loader, target)
    overall, table = accuracy_table(predicted, truth, CIFAR10_CLASSES)
    return overall, table, len(dataset)


def run(args: argparse.Namespace) -> int:
    _, table, count = evaluate_voc(
        args.checkpoint, args.voc, args.download, args.device, args.workers
    )
    print(f"VOC 2007 val → CIFAR-10: {count} images with one object of a mapped class")
    print(table)
    return 0
