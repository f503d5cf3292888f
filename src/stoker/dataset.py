"""Map-style and iterable dataset protocols, and lazy helpers: Subset, Concat, map, filter."""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import torch
import torch.utils.data

from stoker import seeding
from stoker._collated import CollatedSamples
from stoker._shared_list import SharedList

__all__ = [
    "ConcatDataset",
    "Dataset",
    "FilteredDataset",
    "IterableDataset",
    "MappedDataset",
    "Subset",
    "WithSampleContext",
]

T = TypeVar("T")
U = TypeVar("U")


class Dataset(torch.utils.data.Dataset[T], Generic[T]):
    """A map-style dataset: ``__getitem__(index)`` and ``__len__``.

    Subclasses may also define ``__getitems__(indices) -> list`` to fetch a whole batch at once;
    stoker's loader (and torch's, from 2.1) then calls it instead of ``__getitem__`` per sample.
    Subclassing torch's ``Dataset`` keeps stoker datasets usable with ``torch.utils.data``.
    """

    def __getitem__(self, index: int) -> T:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def map(self, fn: Callable[[T], U]) -> MappedDataset[U]:
        """A lazy view applying ``fn`` to every sample when it is loaded."""
        return MappedDataset(self, fn)

    def filter(self, predicate: Callable[[T], bool]) -> FilteredDataset[T]:
        """A view keeping the samples for which ``predicate`` is true (evaluated once, eagerly)."""
        return FilteredDataset(self, predicate)

    def __add__(self, other: torch.utils.data.Dataset[T]) -> ConcatDataset[T]:  # type: ignore[override]
        return ConcatDataset([self, other])


class IterableDataset(torch.utils.data.IterableDataset[T], Generic[T]):
    """A stream of samples; in workers, shard it with ``stoker.get_worker_info()``."""

    def __iter__(self) -> Iterator[T]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


def _checked_index(index: int, length: int, owner: str) -> int:
    if not -length <= index < length:
        raise IndexError(f"index {index} is out of range for {owner} of length {length}")
    return index + length if index < 0 else index


def _int_indices(indices: Iterable[Any]) -> SharedList:
    """``indices`` (ints, numpy or torch integers) as a SharedList of int; TypeError otherwise."""
    if isinstance(indices, SharedList):
        return indices
    values = []
    for position, index in enumerate(indices):
        try:
            values.append(operator.index(index))
        except TypeError:
            raise TypeError(
                f"Subset indices must be integers; indices[{position}] is "
                f"{type(index).__name__} {index!r}"
            ) from None
    return SharedList(values)


class Subset(Dataset[T]):
    """The samples of ``dataset`` at ``indices``, in that order.

    ``indices`` is kept as a :class:`~stoker.SharedList` of ints (equal to the list given), so
    a subset of millions of samples is not copied into every worker process as it is read.
    """

    def __init__(self, dataset: Sequence[T] | torch.utils.data.Dataset[T], indices: Sequence[int]):
        self.dataset = dataset
        self.indices = _int_indices(indices)

    def __getitem__(self, index: int) -> T:
        i = _checked_index(index, len(self.indices), "Subset")
        return self.dataset[self.indices[i]]  # type: ignore[index]

    def __getitems__(self, indices: Sequence[int]) -> list[T]:
        n = len(self.indices)
        inner = self.indices.take([_checked_index(i, n, "Subset") for i in indices])
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            return list(getitems(inner))
        return [self.dataset[i] for i in inner]  # type: ignore[index]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset[T]):
    """Several map-style datasets one after the other."""

    def __init__(self, datasets: Iterable[torch.utils.data.Dataset[T]]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset needs at least one dataset, got none")
        self.cumulative_sizes: list[int] = []
        total = 0
        for position, ds in enumerate(self.datasets):
            if isinstance(ds, torch.utils.data.IterableDataset):
                raise TypeError(
                    f"ConcatDataset takes map-style datasets only; dataset {position} "
                    f"({type(ds).__name__}) is iterable"
                )
            total += len(ds)  # type: ignore[arg-type]
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> T:
        i = _checked_index(index, len(self), "ConcatDataset")
        which = bisect.bisect_right(self.cumulative_sizes, i)
        offset = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][i - offset]


class MappedDataset(Dataset[U]):
    """``fn(dataset[i])`` for every index, computed when loaded (in the worker)."""

    def __init__(self, dataset: torch.utils.data.Dataset[Any], fn: Callable[[Any], U]):
        self.dataset = dataset
        self.fn = fn

    def __getitem__(self, index: int) -> U:
        return self.fn(self.dataset[index])

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


class FilteredDataset(Subset[T]):
    """The samples of ``dataset`` for which ``predicate(sample)`` is true, indexed densely."""

    def __init__(self, dataset: torch.utils.data.Dataset[T], predicate: Callable[[T], bool]):
        keep = [i for i in range(len(dataset)) if predicate(dataset[i])]  # type: ignore[arg-type]
        super().__init__(dataset, keep)


class WithSampleContext(Dataset[Any]):
    """``dataset``'s samples, each with one more field: its ``[seed, epoch, index]`` row.

    For augmentation that runs later, elsewhere — on the GPU, on the collated batch — but must
    stay a function of (seed, epoch, index): batches carry an int64 ``B×3`` tensor as their last
    field, and ``with stoker.seeding.context_from_rows(rows):`` recreates the context in which
    the loader's workers would have augmented them. A batched ``__getitems__`` of ``dataset``
    returning :class:`~stoker.CollatedSamples` stays batched.
    """

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        sample = self.dataset[index]
        row = torch.from_numpy(seeding.context_rows(seeding.current_context(), 1)[0])
        return (*sample, row) if isinstance(sample, tuple | list) else (sample, row)

    def __getitems__(self, indices: Sequence[int]) -> Any:
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is None:
            samples: Any = []
            for position, index in enumerate(indices):
                with seeding.each_sample(position):
                    samples.append(self[index])
            return samples
        rows = torch.from_numpy(seeding.context_rows(seeding.current_context(), len(indices)))
        batch = getitems(indices)
        if isinstance(batch, CollatedSamples):
            fields = batch.collated
            fields = (*fields, rows) if isinstance(fields, tuple | list) else (fields, rows)
            return CollatedSamples(fields, len(indices))
        return [
            (*sample, row) if isinstance(sample, tuple | list) else (sample, row)
            for sample, row in zip(batch, rows)
        ]
