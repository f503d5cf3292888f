"""`stoker train`: ResNet-20 on CIFAR-10 fed by stoker, with checkpoints that resume exactly."""

from __future__ import annotations

import argparse
import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import stoker
from stoker._progress import ProgressBar
from stoker.cli._checkpoint import load_checkpoint, load_model, save_checkpoint
from stoker.cli._common import (
    CommandError,
    open_cifar,
    pick_device,
    positive_int,
    test_pipeline,
    train_pipeline,
)
from stoker.cli._evaluate import predict
from stoker.datasets import CIFAR10
from stoker.models import resnet20

__all__ = ["register", "run"]

CHECKPOINT_NAME = "checkpoint.pt"
_LR = 0.1
_MOMENTUM = 0.9
_WEIGHT_DECAY = 5e-4
_TEST_BATCH_SIZE = 512  # inference only: larger batches are cheaper per image
_INTERRUPTED_EXIT = 130  # the shell's code for "stopped by Ctrl-C"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "train",
        help="train ResNet-20 on CIFAR-10 with stoker feeding it",
        description="Train ResNet-20 on CIFAR-10 with the seed's augmentation, SGD (momentum "
        "0.9, weight decay 5e-4, lr 0.1) and a cosine schedule. A checkpoint is written to "
        "OUT/checkpoint.pt after every epoch (and on Ctrl-C, at the next batch boundary); "
        "--resume continues from it exactly, with the same batches and the same weights as "
        "an uninterrupted run.",
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="folder holding cifar-10-batches-py/"
    )
    parser.add_argument("--download", action="store_true", help="fetch CIFAR-10 into --data first")
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="default 30 (or as in --resume)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default 128")
    parser.add_argument(
        "--workers", type=int, default=2, help="loader worker processes (0: in-process)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of weights, order and augmentation (default 0)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/train"), help="where checkpoint.pt goes"
    )
    parser.add_argument("--resume", type=Path, default=None, help="checkpoint to continue from")
    parser.add_argument(
        "--train-limit",
        type=positive_int,
        default=None,
        help="use only the first N training images",
    )
    parser.add_argument(
        "--test-limit", type=positive_int, default=None, help="use only the first N test images"
    )
    parser.add_argument("--deterministic", action="store_true",
                        help="torch.use_deterministic_algorithms(True): bit-identical reruns")  # fmt: skip
    parser.set_defaults(run=run)


@dataclass
class _Settings:
    """What must stay the same across a resume for it to be exact."""

    seed: int = 0
    batch_size: int = 128
    epochs: int = 30
    train_limit: int | None = None
    test_limit: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, saved: dict[str, Any] | None) -> _Settings:
        settings = cls(**saved) if saved else cls()
        for name in ("seed", "batch_size", "epochs", "train_limit", "test_limit"):
            given = getattr(args, name)
            if given is None:
                continue
            if saved and name != "epochs" and given != saved.get(name):
                raise CommandError(
                    f"--{name.replace('_', '-')} {given} differs from the {saved.get(name)} the "
                    f"checkpoint {args.resume} was trained with; a resumed run must keep it to "
                    "continue exactly. Leave the option out to use the checkpoint's value."
                )
            setattr(settings, name, given)
        return settings


@dataclass
class _EpochStats:
    """Running totals for one epoch; saved in a mid-epoch checkpoint to carry on counting."""

    loss_sum: float = 0.0
    seen: int = 0
    wait_s: float = 0.0
    step_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def data_wait(self) -> float:
        """Share of step time spent blocked in ``next(loader)``: near 1 means input-bound."""
        return self.wait_s / self.step_s if self.step_s else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"loss_sum": self.loss_sum, "seen": self.seen, "wait_s": self.wait_s,
                "step_s": self.step_s}  # fmt: skip


class _StopRequest:
    """Ctrl-C sets a flag that the loop checks between batches; a second Ctrl-C stops at once.

    Stopping between batches keeps the model, optimizer and loader state consistent, so the
    checkpoint written then resumes exactly.
    """

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopRequest]:
        try:
            previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C stays torch's business
            yield self
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def _limited(dataset: CIFAR10, limit: int | None) -> CIFAR10:
    if limit is not None:
        dataset.data, dataset.targets = dataset.data[:limit], dataset.targets[:limit]
    return dataset


def _position_loader(loader: stoker.DataLoader, state: dict[str, Any]) -> int:
    """Continue from a saved loader state; returns the epoch the next ``iter()`` runs."""
    if int(state.get("batches_yielded", 0)) >= len(loader):
        # The saved epoch is finished: start the next one at its first batch.
        loader.set_epoch(int(state["epoch"]) + 1)
        return int(state["epoch"]) + 1
    loader.load_state_dict(state)
    return int(state["epoch"])


def _train_epoch(
    model: nn.Module,
    loader: stoker.DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    stats: _EpochStats,
    bar: ProgressBar,
    stop: _StopRequest,
) -> bool:
    """One (possibly resumed) epoch; returns False when stopped early by Ctrl-C."""
    model.train()
    batches = iter(loader)
    done = loader.state_dict()["batches_yielded"] if stats.seen else 0
    while not stop.requested:
        started = time.perf_counter()
        try:
            images, labels = next(batches)
        except StopIteration:
            return True
        got_batch = time.perf_counter()
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stats.loss_sum += float(loss.detach()) * len(
            labels
        )  # syncs with the GPU: step time stays honest
        stats.seen += len(labels)
        stats.wait_s += got_batch - started
        stats.step_s += time.perf_counter() - started
        done += 1
        if bar.due(done):
            rate = stats.seen / stats.step_s if stats.step_s else 0.0
            bar.update(done, f"{rate:,.0f} samples/s  loss {stats.loss_sum / stats.seen:.3f}  "
                             f"data wait {stats.data_wait:.0%}")  # fmt: skip
    return False


def run(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    if args.workers < 0:
        raise CommandError(f"--workers must be >= 0, got {args.workers}; use 0 to load in-process")
    checkpoint = load_checkpoint(args.resume) if args.resume is not None else None
    settings = _Settings.from_args(args, checkpoint["settings"] if checkpoint else None)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest
    cuda = device.type == "cuda"

    train_set = _limited(
        open_cifar(args.data, True, train_pipeline(), args.download, "train"), settings.train_limit
    )
    test_set = _limited(
        open_cifar(args.data, False, test_pipeline(), False, "train"), settings.test_limit
    )
    if len(train_set) == 0:
        raise CommandError(f"CIFAR-10 in {args.data} has no training images; nothing to train on.")

    torch.manual_seed(settings.seed)
    model: nn.Module = resnet20(len(train_set.classes))
    if checkpoint is not None:
        model = load_model(args.resume, checkpoint)
    model.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=_LR, momentum=_MOMENTUM, weight_decay=_WEIGHT_DECAY
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    loader = stoker.DataLoader(
        train_set, batch_size=settings.batch_size, shuffle=True, seed=settings.seed,
        num_workers=args.workers, pin_memory=cuda, persistent_workers=args.workers > 0,
    )  # fmt: skip
    test_loader = stoker.DataLoader(
        test_set, batch_size=_TEST_BATCH_SIZE, num_workers=min(args.workers, 1), pin_memory=cuda
    )
    history: list[dict[str, float]] = []
    stats = _EpochStats()
    epoch = 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scheduler.T_max = settings.epochs  # --epochs may extend a finished run
        torch.set_rng_state(checkpoint["rng"]["torch"])
        history = list(checkpoint["history"])
        epoch = _position_loader(loader, checkpoint["loader"])
        stats = _EpochStats(**checkpoint["partial"]) if checkpoint.get("partial") else stats
        print(f"resuming {args.resume} at epoch {epoch + 1}/{settings.epochs}"
              + (f", batch {checkpoint['loader']['batches_yielded'] + 1}" if stats.seen else ""))  # fmt: skip
    else:
        loader.set_epoch(0)
    print(f"training ResNet-20 on {len(train_set):,} images ({args.data}), {device}, batch "
          f"{settings.batch_size}, {args.workers} worker(s), {settings.epochs} epoch(s)")  # fmt: skip

    out = Path(args.out)
    path = out / CHECKPOINT_NAME

    def _save(epoch: int, partial: _EpochStats | None) -> None:
        save_checkpoint(path, {
            "num_classes": len(train_set.classes), "classes": list(train_set.classes),
            "settings": settings.__dict__.copy(), "model_state": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "loader": loader.state_dict(), "epoch": epoch,
            "rng": {"torch": torch.get_rng_state()}, "history": history,
            "partial": partial.as_dict() if partial else None,
        })  # fmt: skip

    stop = _StopRequest()
    try:
        with stop.installed():
            while epoch < settings.epochs:
                bar = ProgressBar(len(loader), f"epoch {epoch + 1}/{settings.epochs}")
                finished = _train_epoch(model, loader, optimizer, device, stats, bar, stop)
                bar.close()
                if not finished:
                    _save(epoch, stats)
                    print(f"stopped in epoch {epoch + 1}; checkpoint: {path}\ncontinue with: "
                          f"stoker train --data {args.data} --resume {path} --out {out}")  # fmt: skip
                    return _INTERRUPTED_EXIT
                scheduler.step()
                predicted, truth = predict(model, test_loader, device)
                accuracy = float((predicted == truth).float().mean()) if len(truth) else 0.0
                history.append({
                    "epoch": epoch + 1, "train_loss": stats.loss_sum / max(stats.seen, 1),
                    "test_accuracy": accuracy, "data_wait": stats.data_wait,
                    "samples_per_s": stats.seen / stats.step_s if stats.step_s else 0.0,
                })  # fmt: skip
                _save(epoch + 1, None)
                row = history[-1]
                print(f"epoch {epoch + 1}/{settings.epochs}  train loss {row['train_loss']:.4f}  "
                      f"test acc {accuracy:.1%}  data wait {row['data_wait']:.0%}  "
                      f"{row['samples_per_s']:,.0f} samples/s")  # fmt: skip
                epoch += 1
                stats = _EpochStats()
    finally:
        loader.close()
    print(f"checkpoint: {path}")
    return 0
