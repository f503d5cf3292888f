"""Dataset helpers: Subset, ConcatDataset, map and filter views, and their errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch.utils.data

import stoker


class Squares(stoker.Dataset[int]):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.n:
            raise IndexError(index)
        return index * index


def test_subset_and_negative_indices() -> None:
    subset = stoker.Subset(Squares(10), [9, 2, 4])
    assert len(subset) == 3 and [subset[i] for i in range(3)] == [81, 4, 16]
    assert subset[-1] == 16
    assert subset.__getitems__([0, 2]) == [81, 16]
    with pytest.raises(IndexError, match="index 3 is out of range for Subset of length 3"):
        subset[3]


def test_concat_dataset_matches_torch() -> None:
    parts = [Squares(3), Squares(0), Squares(4)]
    ours = stoker.ConcatDataset(parts)
    theirs = torch.utils.data.ConcatDataset(parts)
    assert len(ours) == len(theirs) == 7
    assert [ours[i] for i in range(7)] == [theirs[i] for i in range(7)]
    assert ours[-1] == theirs[-1]
    assert len(Squares(2) + Squares(3)) == 5
    with pytest.raises(IndexError, match="ConcatDataset"):
        ours[7]


def test_concat_refuses_iterables_and_empty() -> None:
    class Stream(stoker.IterableDataset[int]):
        def __iter__(self) -> Any:
            return iter([1])

    with pytest.raises(TypeError, match="dataset 1"):
        stoker.ConcatDataset([Squares(1), Stream()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one"):
        stoker.ConcatDataset([])


def test_map_is_lazy_and_filter_is_dense() -> None:
    calls: list[int] = []

    def record(value: int) -> int:
        calls.append(value)
        return value + 1

    mapped = Squares(5).map(record)
    assert calls == [] and len(mapped) == 5
    assert mapped[2] == 5 and calls == [4]
    evens = Squares(10).filter(lambda v: v % 2 == 0)
    assert len(evens) == 5 and [evens[i] for i in range(5)] == [0, 4, 16, 36, 64]


def test_abstract_dataset_says_what_is_missing() -> None:
    with pytest.raises(NotImplementedError, match="__getitem__"):
        stoker.Dataset()[0]
    with pytest.raises(NotImplementedError, match="__len__"):
        len(stoker.Dataset())


def test_loader_over_mapped_subset() -> None:
    loader = stoker.DataLoader(stoker.Subset(Squares(10), [1, 3]).map(float), batch_size=2)
    assert next(iter(loader)).tolist() == [1.0, 9.0]


def test_subset_indices_are_a_shared_list_equal_to_the_given_ones() -> None:
    base = list(range(10, 20))
    subset = stoker.Subset(base, np.array([3, -1, 0]))
    assert isinstance(subset.indices, stoker.SharedList) and subset.indices == [3, -1, 0]
    assert [subset[i] for i in range(3)] == [13, 19, 10]
    assert subset.__getitems__([2, -3]) == [10, 13]
    assert stoker.Subset(base, []).__getitems__([]) == []
    with pytest.raises(TypeError, match=r"indices\[1\] is float 1\.5"):
        stoker.Subset(base, [0, 1.5])  # type: ignore[list-item]
