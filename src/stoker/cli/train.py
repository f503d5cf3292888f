"""`stoker train`: ResNet-20 on CIFAR-10 fed by stoker, with checkpoints that resume exactly."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import stoker
from stoker import transforms as T
from stoker.cli import _distributed
from stoker.cli._checkpoint import (
    check_settings,
    check_training_state,
    checkpoint_classes,
    load_checkpoint,
    load_model,
    malformed,
    save_checkpoint,
)
from stoker.cli._common import (
    CommandError,
    default_threads,
    device_pipeline,
    open_cifar,
    pick_device,
    positive_int,
    test_pipeline,
    train_pipeline,
)
from stoker.cli._distributed import World
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
        "--data",
        type=Path,
        metavar="DIR",
        required=True,
        help="folder holding cifar-10-batches-py/",
    )
    parser.add_argument("--download", action="store_true", help="fetch CIFAR-10 into --data first")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        metavar="N",
        default=None,
        help="default 30 (or as in --resume)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, metavar="N", default=None, help="default 128"
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        default=2,
        help="loader worker processes (0: in-process)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--augment-on",
        choices=("auto", "workers", "device"),
        default="auto",
        help="where the crop/flip/normalise runs: in the loader's workers, or on the training "
        "device after the copy (uint8 batches cross the bus: 4x fewer bytes); 'auto' picks "
        "the device on CUDA. Either way each sample gets the same augmentation.",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="S",
        default=None,
        help="seed of weights, order and augmentation (default 0)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        default=Path("runs/train"),
        help="where checkpoint.pt goes",
    )
    parser.add_argument(
        "--resume", type=Path, metavar="CKPT", default=None, help="checkpoint to continue from"
    )
    parser.add_argument(
        "--train-limit",
        type=positive_int,
        metavar="N",
        default=None,
        help="use only the first N training images",
    )
    parser.add_argument(
        "--test-limit",
        type=positive_int,
        metavar="N",
        default=None,
        help="use only the first N test images",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        default=None,
        help="torch compute threads (default: available cores minus --workers, at least 1)",
    )
    parser.add_argument(
        "--max-batches",
        type=positive_int,
        metavar="N",
        default=None,
        help="stop after N batches as Ctrl-C would (checkpoint written), to try --resume",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="run the forward pass under bfloat16 autocast (weights and optimizer stay float32)",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="keep the model and its input batches channels-last (NHWC), cuDNN's fastest layout",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="torch.use_deterministic_algorithms(True): bit-identical reruns",
    )
    _distributed.add_arguments(parser)
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
    batches: int = 0

    @property
    def data_wait(self) -> float:
        """Share of step time spent blocked in ``next(loader)``: near 1 means input-bound."""
        return self.wait_s / self.step_s if self.step_s else 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)

    def over(self, world: World) -> _EpochStats:
        """The whole job's totals: samples and losses summed, times averaged over the ranks."""
        loss_sum, seen, wait_s, step_s = world.sum([self.loss_sum, self.seen, self.wait_s,
                                                    self.step_s])  # fmt: skip
        size = world.size
        return _EpochStats(loss_sum, int(seen), wait_s / size, step_s / size, self.batches)

    def share(self, world: World) -> _EpochStats:
        """This rank's part of saved job totals: the sums kept on rank 0, so they add up once."""
        if world.is_main:
            return self
        return dataclasses.replace(self, loss_sum=0.0, seen=0)


@dataclass(frozen=True)
class _Speed:
    """The GPU speed options: bf16 autocast, channels-last layout; both off leaves a run as it was.

    They change the arithmetic (bf16) or only the layout (channels-last); a resumed run is exact
    when it keeps the same options.
    """

    bf16: bool = False
    channels_last: bool = False

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` in the layout the model is kept in."""
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The forward pass's precision: bf16 autocast on ``device``, or nothing."""
        if self.bf16:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


class _StopRequest:
    """Ctrl-C sets a flag that the loop checks between batches; a second Ctrl-C stops at once.

    Stopping between batches keeps the model, optimizer and loader state consistent, so the
    checkpoint written then resumes exactly.
    """

    def __init__(self, max_batches: int | None = None) -> None:
        self.requested = False
        self.batches_left = max_batches

    def agreed(self, world: World) -> bool:
        """Whether any rank was asked to stop; every rank then stops (one collective a step)."""
        self.requested = world.any(self.requested)
        return self.requested

    def count_batch(self) -> None:
        """One more batch trained; with ``--max-batches`` spent, stop as Ctrl-C would."""
        if self.batches_left is not None:
            self.batches_left -= 1
            self.requested = self.requested or self.batches_left <= 0

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


def _position_loader(loader: stoker.DataLoader, state: dict[str, Any], mid_epoch: bool) -> int:
    """Continue from a saved loader state; returns the epoch the next ``iter()`` runs."""
    if mid_epoch:
        loader.load_state_dict(state)  # the rest of the epoch, from the exact next batch
        return int(state["epoch"])
    # The saved epoch is finished (its scheduler step and evaluation done): start the next.
    following = int(state["epoch"]) + 1 if not state.get("fresh") else int(state["epoch"])
    loader.set_epoch(following)
    return following


def _train_epoch(
    model: nn.Module,
    loader: stoker.DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    stats: _EpochStats,
    bar: tqdm[Any],
    stop: _StopRequest,
    augment: Any = None,
    speed: _Speed = _Speed(),
    world: World | None = None,
) -> bool:
    """One epoch, or its rest past ``stats.batches``; False when stopped early by Ctrl-C.

    A stop asked for during the epoch's last batch lets the epoch end normally: its
    checkpoint is then the ordinary end-of-epoch one. Under torchrun every rank stops at the
    same batch: a Ctrl-C reaches the ranks at different moments, so they agree each step.
    """
    world = World() if world is None else world
    model.train()
    batches = iter(loader)
    total = len(loader)
    while not (stop.agreed(world) and stats.batches < total):
        started = time.perf_counter()
        try:
            images, labels, *context = next(batches)
        except StopIteration:
            return True
        got_batch = time.perf_counter()
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if augment is not None:  # device-side augmentation, seeded as the workers would have
            with stoker.seeding.context_from_rows(context[0].numpy()):
                images = augment(images)
        with speed.autocast(device):
            loss = F.cross_entropy(model(speed.inputs(images)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        # float() waits for the GPU, so step time counts the compute, not only its launch.
        stats.loss_sum += float(loss.detach()) * len(labels)
        stats.seen += len(labels)
        stats.wait_s += got_batch - started
        stats.step_s += time.perf_counter() - started
        stats.batches += 1
        stop.count_batch()
        bar.update()
        if not bar.disable:  # the fields cost a little: only for a bar someone sees
            rate = stats.seen / stats.step_s if stats.step_s else 0.0
            bar.set_postfix_str(
                f"{rate:,.0f} samples/s  loss {stats.loss_sum / stats.seen:.3f}  "
                f"data wait {stats.data_wait:.0%}",
                refresh=False,
            )
    return False


class _Training:
    """Model, optimizer, schedule and loaders of one run, and the checkpoint that holds them."""

    def __init__(
        self,
        args: argparse.Namespace,
        settings: _Settings,
        device: torch.device,
        world: World | None = None,
    ):
        cuda = device.type == "cuda"
        self.settings, self.device = settings, device
        self.world = world = World() if world is None else world
        self.path = Path(args.out) / CHECKPOINT_NAME
        on_device = args.augment_on == "device" or (args.augment_on == "auto" and cuda)
        # On the device, workers only gather uint8 batches; the augmentation follows the copy.
        self.augment = device_pipeline() if on_device else None
        train_transform = T.ToImage() if on_device else train_pipeline()
        train_set = open_cifar(args.data, True, train_transform, args.download, "train")
        test_set = open_cifar(args.data, False, test_pipeline(), False, "train")
        _limited(train_set, settings.train_limit)
        _limited(test_set, settings.test_limit)
        if len(train_set) == 0:
            raise CommandError(
                f"CIFAR-10 in {args.data} has no training images, so there is nothing to train "
                "on. Fetch the real dataset with --download, or generate one with `stoker demo`."
            )
        self.classes = list(train_set.classes)
        torch.manual_seed(settings.seed)  # the initial weights
        self.speed = _Speed(bf16=args.bf16, channels_last=args.channels_last)
        self.model: nn.Module = resnet20(len(self.classes)).to(device)
        if self.speed.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # DDP averages the gradients over the ranks; self.model stays the plain module that
        # checkpoints hold, so a checkpoint loads at any world size.
        self.trainer: nn.Module = self.model
        if world.active:
            self.trainer = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if cuda else None
            )
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=_LR, momentum=_MOMENTUM, weight_decay=_WEIGHT_DECAY
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=settings.epochs
        )
        train_data = stoker.WithSampleContext(train_set) if on_device else train_set
        # Each rank its shard (the whole set when alone), resumable at any world size.
        sampler = stoker.DistributedSampler(
            train_data, num_replicas=world.size, rank=world.rank, seed=settings.seed
        )
        self.loader = stoker.DataLoader(
            train_data,
            batch_size=settings.batch_size,
            sampler=sampler,
            seed=settings.seed,
            num_workers=args.workers,
            pin_memory=cuda,
            persistent_workers=args.workers > 0,
        )
        self.test_loader = stoker.DataLoader(
            test_set,
            batch_size=_TEST_BATCH_SIZE,
            sampler=list(range(world.rank, len(test_set), world.size)),  # each image once
            num_workers=min(args.workers, 1),
            pin_memory=cuda,
        )
        self.history: list[dict[str, float]] = []
        self.epoch = 0  # epochs completed
        self.stats = _EpochStats()

    def restore(self, path: Path, checkpoint: dict[str, Any]) -> None:
        """Continue from ``checkpoint``: same weights, optimizer, schedule, RNG and next batch.

        A malformed checkpoint, or one that does not fit this run, is a CommandError naming
        ``path``, before or instead of a traceback from torch.
        """
        stat_names = [field.name for field in dataclasses.fields(_EpochStats)]
        check_training_state(path, checkpoint, stat_names, self.scheduler.state_dict())
        classes = checkpoint_classes(path, checkpoint)
        if classes != len(self.classes):
            raise CommandError(
                f"checkpoint {path} was trained on {classes} classes but this data has "
                f"{len(self.classes)}. Resume with the data it was trained on, or leave out "
                "--resume to start a new run."
            )
        try:
            self._load_state(path, checkpoint)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as error:
            # What torch's load_state_dict methods raise for state that passed the checks above
            # yet does not fit (another optimizer's parameter groups, a short RNG state, ...).
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            what = f"its training state does not fit this run ({first_line})"
            raise malformed(path, what) from None

    def _load_state(self, path: Path, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(load_model(path, checkpoint).state_dict())
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scheduler.T_max = self.settings.epochs  # --epochs may extend a finished run
        torch.set_rng_state(checkpoint["rng"]["torch"])
        self.history = list(checkpoint["history"])
        partial = checkpoint.get("partial")
        sampler_state = (checkpoint["loader"].get("sampler") or {}).get("sampler") or {}
        if partial is not None and "num_replicas" not in sampler_state:
            raise CommandError(
                f"checkpoint {path} was written mid-epoch by a stoker train without torchrun "
                "support, whose shuffle differs from this one's; its epoch cannot be continued "
                "exactly. Resume it with the stoker that wrote it, or start a new run."
            )
        self.epoch = _position_loader(self.loader, checkpoint["loader"], partial is not None)
        if partial is not None:
            self.stats = _EpochStats(**partial).share(self.world)

    def save(self, mid_epoch: bool) -> None:
        """Write the checkpoint from rank 0 (every rank calls this: the totals are reduced)."""
        partial = self.stats.over(self.world).as_dict() if mid_epoch else None
        if not self.world.is_main:
            return
        save_checkpoint(
            self.path,
            {
                "num_classes": len(self.classes),
                "classes": self.classes,
                "settings": self.settings.__dict__.copy(),
                "model_state": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "loader": self.loader.state_dict(),
                "epoch": self.epoch,
                "rng": {"torch": torch.get_rng_state()},
                "history": self.history,
                "partial": partial,
                "torchrun_run_id": _distributed.run_id(),
            },
        )

    def finish_epoch(self) -> dict[str, float]:
        """Step the schedule, score the test split, record and checkpoint the epoch."""
        self.scheduler.step()
        predicted, truth = predict(self.model, self.test_loader, self.device)
        correct, tested = self.world.sum([float((predicted == truth).sum()), float(len(truth))])
        stats = self.stats.over(self.world)
        self.epoch += 1
        self.history.append(
            {
                "epoch": self.epoch,
                "train_loss": stats.loss_sum / max(stats.seen, 1),
                "test_accuracy": correct / tested if tested else 0.0,
                "data_wait": stats.data_wait,
                "samples_per_s": stats.seen / stats.step_s if stats.step_s else 0.0,
            }
        )
        self.stats = _EpochStats()
        self.save(mid_epoch=False)
        return self.history[-1]

    def fit(self, stop: _StopRequest) -> bool:
        """Train until the last epoch (True) or a stop request (False, checkpoint written)."""
        total = self.settings.epochs
        while self.epoch < total:
            if stop.agreed(self.world):
                return False  # asked for during the last epoch's end: its checkpoint stands
            # disable=None: a bar on a terminal (a widget in a notebook), nothing in logs; on
            # rank 0 only. The epoch's summary line below is printed either way.
            with tqdm(
                total=len(self.loader),
                initial=self.stats.batches,
                desc=f"epoch {self.epoch + 1}/{total}",
                unit="batch",
                disable=None if self.world.is_main else True,
                leave=False,
            ) as bar:
                finished = _train_epoch(
                    self.trainer, self.loader, self.optimizer, self.device, self.stats, bar, stop,
                    self.augment, self.speed, self.world,
                )  # fmt: skip
            if not finished:
                self.save(mid_epoch=True)
                return False
            row = self.finish_epoch()
            _say(
                self.world,
                f"epoch {self.epoch}/{total}  train loss {row['train_loss']:.4f}  "
                f"test acc {row['test_accuracy']:.1%}  data wait {row['data_wait']:.0%}  "
                f"{row['samples_per_s']:,.0f} samples/s",
            )
        return True


def _say(world: World, text: str) -> None:
    """Print on rank 0 only: one job, one log."""
    if world.is_main:
        print(text, flush=True)


def _restarted_checkpoint(args: argparse.Namespace) -> Path | None:
    """This job's own checkpoint, when torchrun restarted it after a failure (--max-restarts)."""
    path = Path(args.out) / CHECKPOINT_NAME
    if args.resume is not None or not _distributed.auto_resume(path):
        return None
    if load_checkpoint(path).get("torchrun_run_id") != _distributed.run_id():
        return None  # an older job's checkpoint: a restart must not continue someone else's
    return path


def run(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    if args.workers < 0:
        raise CommandError(f"--workers must be >= 0, got {args.workers}; use 0 to load in-process")
    world, device = _distributed.join(device, args.dist_timeout)
    healthy = True
    try:
        return _run(args, device, world)
    except RuntimeError as error:
        if not world.active:
            raise
        lost = _distributed.lost_rank_error(world, error, "during training")
        if lost is None:
            raise
        healthy = False  # a broken group cannot be torn down collectively
        raise lost from None
    finally:
        world.close(collective=healthy)


def _run(args: argparse.Namespace, device: torch.device, world: World) -> int:
    args.resume = _restarted_checkpoint(args) or args.resume
    checkpoint = load_checkpoint(args.resume) if args.resume is not None else None
    if checkpoint is not None:
        names = [field.name for field in dataclasses.fields(_Settings)]
        check_settings(args.resume, checkpoint, names)
    settings = _Settings.from_args(args, checkpoint["settings"] if checkpoint else None)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest
    torch.set_num_threads(args.threads or default_threads(args.workers))
    training = _Training(args, settings, device, world)
    if checkpoint is not None:
        training.restore(args.resume, checkpoint)
        where = f", batch {training.stats.batches + 1}" if training.stats.batches else ""
        _say(
            world, f"resuming {args.resume} at epoch {training.epoch + 1}/{settings.epochs}{where}"
        )
    else:
        training.loader.set_epoch(0)
    ranks = f", {world.size} ranks (torchrun)" if world.active else ""
    _say(
        world,
        f"training ResNet-20 on {len(training.loader.dataset):,} images ({args.data}), {device}, "
        f"batch {settings.batch_size}, {args.workers} worker(s), {torch.get_num_threads()} "
        f"thread(s), {settings.epochs} epoch(s){ranks}"
        + (", bf16 autocast" if args.bf16 else "")
        + (", channels-last" if args.channels_last else ""),
    )
    stop = _StopRequest(args.max_batches)
    try:
        with stop.installed():
            finished = training.fit(stop)
    finally:
        training.loader.close()
    if not finished:
        _say(
            world,
            f"stopped after {training.epoch} epoch(s) and {training.stats.batches} batch(es); "
            f"checkpoint: {training.path}\n"
            f"continue with: stoker train --data {args.data} --resume {training.path} "
            f"--out {args.out}",
        )
        return _INTERRUPTED_EXIT
    _say(world, f"checkpoint: {training.path}")
    return 0
