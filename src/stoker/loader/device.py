"""DeviceLoader: a whole uint8 image dataset kept on the training device and augmented there.

For datasets that fit in device memory (CIFAR-10: 150 MB as uint8, 240 MB padded): the images
are copied to the device once, padded once, and each batch is one gather of its crop windows
plus the float conversion, all on the device; no worker processes, no per-batch copy of images.

What keeps its batches equal to ``stoker.DataLoader``'s: the order, the seeds and the resume
state come from an inner in-process ``DataLoader`` over a stand-in dataset (:class:`_Draws`)
whose ``__getitems__`` runs inside the loader's sample context, exactly where the dataset's
transform would run, and asks the transform's own fused run for its crops and flips. Only the
window table (a few KiB per batch) crosses to the device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from stoker._collated import CollatedSamples
from stoker.loader.dataloader import DataLoader
from stoker.transforms._compose import Compose, _FusedRun
from stoker.transforms._device import gather_windows, padded_store, to_device, window_table

__all__ = ["DeviceLoader"]

_SUPPORTED = (
    "Compose([RandomCrop(...)?, RandomHorizontalFlip(...)?, ToImage(), "
    "ToDtype(<float dtype>, scale=True), Normalize(...)?])"
)


def _fused_run(transform: Any) -> _FusedRun:
    """The one fused run that ``transform`` consists of, or a ValueError saying what fits."""
    plan = getattr(transform, "_plan", None) if isinstance(transform, Compose) else None
    if plan is not None and len(plan) == 1 and isinstance(plan[0], _FusedRun):
        return plan[0]
    raise ValueError(
        f"DeviceLoader needs transform= (or dataset.transform) to be a stoker {_SUPPORTED} "
        f"— the seed's CIFAR train or test pipeline — got {transform!r}; apply other "
        "transforms with stoker.DataLoader, or to the batches this loader yields"
    )


def _images(dataset: Any) -> torch.Tensor:
    """``dataset.data`` as a uint8 (N, H, W, C) host tensor, checked."""
    data = getattr(dataset, "data", None)
    if data is None:
        raise ValueError(
            f"DeviceLoader needs a dataset holding its images in one array `data` "
            f"(N, H, W, C) uint8 and labels in `targets`, as stoker's and torchvision's CIFAR "
            f"do; {type(dataset).__name__} has no `data`"
        )
    if not isinstance(data, torch.Tensor):
        array = np.asarray(data)
        # torch warns on read-only memory (a memory-mapped array, say); the copy is made anyway.
        data = torch.from_numpy(array if array.flags.writeable else array.copy())
    images = data
    if images.dtype != torch.uint8 or images.ndim != 4 or not 1 <= images.shape[-1] <= 4:
        raise ValueError(
            f"DeviceLoader needs dataset.data as uint8 (N, H, W, C) with 1 to 4 channels, got "
            f"{images.dtype} of shape {tuple(images.shape)}"
        )
    return images


def _labels(dataset: Any, n: int) -> torch.Tensor:
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise ValueError(f"DeviceLoader needs dataset.targets; {type(dataset).__name__} has none")
    if getattr(dataset, "target_transform", None) is not None:
        raise ValueError(
            "DeviceLoader yields dataset.targets as an int64 tensor and does not run "
            f"target_transform ({dataset.target_transform!r}); drop it, or use stoker.DataLoader"
        )
    labels = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    if labels.shape != (n,):
        raise ValueError(
            f"dataset.targets has shape {tuple(labels.shape)}, expected one label per image ({n},)"
        )
    return labels


class _Draws:
    """Stand-in dataset for the inner loader: a batch is the window table of its indices.

    ``__getitems__`` runs in the loader's sample context for ``indices``, so the fused run
    draws there exactly what it draws in the dataset's own ``__getitems__``.
    """

    def __init__(self, length: int, run: _FusedRun, size: tuple[int, int], pinned: bool):
        self.length, self.run, self.size, self.pinned = length, run, size, pinned

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index]).collated[0]

    def __getitems__(self, indices: Sequence[int]) -> CollatedSamples:
        params, flips = self.run.draw(len(indices), *self.size)
        table = window_table(indices, params, flips, self.size, self.pinned)
        return CollatedSamples(table, len(indices))


class DeviceLoader(Iterable[Any]):
    """``[images, labels]`` batches of an in-memory dataset, kept and augmented on ``device``.

    ``dataset`` holds its images as one uint8 (N, H, W, C) array ``data`` and its labels as
    ``targets`` (stoker's and torchvision's CIFAR-10/100 do). ``transform`` (default
    ``dataset.transform``) is the stoker pipeline a CPU loader would apply — the seed's
    ``RandomCrop, RandomHorizontalFlip, ToImage, ToDtype(float32, scale=True), Normalize``,
    any of crop, flip and normalise left out — and is run on the device instead.

    The batches equal ``stoker.DataLoader(dataset, batch_size, shuffle, sampler, drop_last,
    generator=generator, seed=seed)``'s: the same order, every sample the same crop and flip
    (drawn from (seed, epoch, index) by the transform itself) and the same float values, bit
    for bit. ``state_dict()`` is that DataLoader's, so either loader resumes the other's run;
    ``set_epoch``, ``len`` and ``sampler=stoker.DistributedSampler(...)`` work as there.
    ``memory_format=torch.channels_last`` lays images out for channels-last models.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool | None = None,
        sampler: Iterable[int] | None = None,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        *,
        device: str | torch.device = "cuda",
        transform: Any = None,
        seed: int | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"DeviceLoader(device={str(device)!r}) but torch sees no CUDA GPU (CUDA build: "
                f"{torch.version.cuda or 'none'}); pass device='cpu' to run the same pipeline "
                "on the CPU, or use stoker.DataLoader"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if memory_format not in (torch.contiguous_format, torch.channels_last):
            raise ValueError(
                "memory_format must be torch.contiguous_format or torch.channels_last, "
                f"got {memory_format}"
            )
        self.dataset = dataset
        images = _images(dataset)
        n, h, w, self._channels = images.shape
        self._size = (h, w)
        labels = _labels(dataset, n)
        self.transform = transform if transform is not None else getattr(dataset, "transform", None)
        self._run = _fused_run(self.transform)
        self.memory_format = memory_format
        crop = self._run.crop
        # The padding the crops are drawn in (pad_if_needed may add to it): make_params on no
        # keys draws nothing and returns it.
        padding = (
            crop.make_params(np.zeros(0, np.uint64), h, w).padding
            if crop is not None
            else (0, 0, 0, 0)
        )
        self._crop_h = crop.size[0] if crop is not None else h
        try:
            fill, mode = (crop.fill, crop.padding_mode) if crop is not None else (0, "constant")
            self._store = padded_store(images.to(self.device), padding, fill, mode)
            self._labels = labels.to(self.device)
        except torch.OutOfMemoryError as error:
            error.add_note(
                f"stoker: DeviceLoader keeps the whole dataset on {self.device}: {n:,} images "
                f"of {h}x{w}, padded by {padding}; use stoker.DataLoader for datasets this size"
            )
            raise
        pinned = self.device.type == "cuda"
        self._indices = DataLoader(
            _Draws(n, self._run, self._size, pinned),
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            drop_last=drop_last,
            generator=generator,
            seed=seed,
        )

    @property
    def seed(self) -> int:
        """The root of the order and of every sample's augmentation (as DataLoader.seed)."""
        return self._indices.seed

    @property
    def batch_size(self) -> int | None:
        return self._indices.batch_size

    @property
    def sampler(self) -> Any:
        return self._indices.sampler

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        return _DeviceBatches(self, iter(self._indices))

    def __len__(self) -> int:
        return len(self._indices)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` epoch ``epoch`` (shuffle order and augmentation follow)."""
        self._indices.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Where iteration stands, in ``stoker.DataLoader``'s format; JSON-safe."""
        return self._indices.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue exactly where ``state`` was taken."""
        self._indices.load_state_dict(state)

    def _batch(self, table: torch.Tensor) -> list[torch.Tensor]:
        """The ``[images, labels]`` batch that a window table (host or device) describes."""
        table = to_device(table, self.device)
        run = self._run
        normalize = run.normalize
        images = gather_windows(
            self._store,
            table,
            self._crop_h,
            self._channels,
            run.to_dtype.dtype,
            normalize.mean if normalize is not None else None,
            normalize.std if normalize is not None else None,
            self.memory_format,
        )
        return [images, self._labels[table[:, 0]]]

    def __repr__(self) -> str:
        return (
            f"DeviceLoader(dataset={type(self.dataset).__name__}, n={len(self._labels)}, "
            f"batch_size={self.batch_size}, device={self.device}, seed={self.seed})"
        )


class _DeviceBatches(Iterator[list[torch.Tensor]]):
    """One epoch of a DeviceLoader: the inner loader's window tables, made into batches."""

    def __init__(self, loader: DeviceLoader, tables: Iterator[torch.Tensor]):
        self._loader, self._tables = loader, tables

    def __iter__(self) -> _DeviceBatches:
        return self

    def __next__(self) -> list[torch.Tensor]:
        return self._loader._batch(next(self._tables))

    def __len__(self) -> int:
        return len(self._loader)
