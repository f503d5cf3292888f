"""`stoker show`: a grid of de-normalised samples with their class names, saved as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import stoker
from stoker.cli._common import (
    CIFAR_MEAN,
    CIFAR_STD,
    CommandError,
    open_cifar,
    open_voc,
    positive_int,
    train_pipeline,
    voc_pipeline,
)
from stoker.transforms import denormalize

__all__ = ["register", "run", "save_grid"]

_CELL_IN = 1.2  # figure inches per grid cell: class names stay legible at 100 dpi
_DPI = 100


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "show",
        help="save a grid of augmented samples with their class names",
        description="Save a rows×cols grid of samples as the loader delivers them (CIFAR: the "
        "seed's training augmentation; VOC: the filtered VOC→CIFAR images resized to 32×32), "
        "de-normalised, each titled with its class name.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        required=True,
        help="folder with cifar-10-batches-py/ (or VOCdevkit/ for --source voc)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="PNG", default=Path("grid.png"), help="PNG to write"
    )
    parser.add_argument("--rows", type=positive_int, metavar="N", default=4)
    parser.add_argument("--cols", type=positive_int, metavar="N", default=8)
    parser.add_argument("--source", choices=("cifar", "voc"), default="cifar")
    parser.add_argument(
        "--seed", type=int, metavar="S", default=0, help="which samples and augmentations"
    )
    parser.add_argument("--download", action="store_true", help="fetch the dataset first")
    parser.set_defaults(run=run)


def save_grid(images: Any, titles: list[str], rows: int, cols: int, out: Path) -> None:
    """Draw normalised NCHW ``images`` in a rows×cols grid titled ``titles``; write ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    pixels = denormalize(images, CIFAR_MEAN, CIFAR_STD)
    figure, axes = plt.subplots(
        rows, cols, figsize=(cols * _CELL_IN, rows * _CELL_IN * 1.15), squeeze=False
    )
    for position, axis in enumerate(axes.flat):
        axis.axis("off")
        if position < len(pixels):
            axis.imshow(pixels[position], interpolation="nearest")
            axis.set_title(titles[position], fontsize=9)
    figure.tight_layout(pad=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=_DPI)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    count = args.rows * args.cols
    dataset: Any
    if args.source == "cifar":
        dataset = open_cifar(args.data, True, train_pipeline(), args.download, "show")
    else:
        dataset = open_voc(args.data, voc_pipeline(), args.download)
    if len(dataset) == 0:
        raise CommandError(f"the {args.source} data in {args.data} holds no image to show.")
    loader = stoker.DataLoader(
        dataset, batch_size=min(count, len(dataset)), shuffle=True, seed=args.seed
    )
    images, labels = next(iter(loader))
    titles = [dataset.classes[int(label)] for label in labels]
    try:
        save_grid(images, titles, args.rows, args.cols, args.out)
    except ImportError:
        raise CommandError(
            "stoker show draws with matplotlib, which is not installed. Install it with "
            "`pip install matplotlib` (or `pip install stoker[plot]`)."
        ) from None
    print(f"sample grid ({len(titles)} {args.source} images): {args.out}")
    return 0
