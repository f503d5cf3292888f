"""Keys are the dataset's business: only integer indices are range-checked, the rest pass through.

torch hands ``__getitem__``/``__getitems__`` whatever the sampler yields; stoker checks the range
of integer indices (int, numpy integer, 0-d integer tensor) and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data

from stoker import DataLoader
from stoker._fetch import _index_array


class _ByName(torch.utils.data.Dataset[Any]):
    """A dict-like dataset: samples looked up by string key, as torch allows."""

    def __init__(self) -> None:
        self.rows = {"ant": 1.0, "bee": 2.0, "cat": 3.0, "dog": 4.0}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: str) -> Any:
        return {"name": key, "value": self.rows[key]}


class _Keys(torch.utils.data.Sampler[Any]):
    def __init__(self, keys: list[Any]):
        self.keys = keys

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _both(dataset: Any, **kwargs: Any) -> tuple[list[Any], list[Any]]:
    ours = list(DataLoader(dataset, **kwargs))
    theirs = list(torch.utils.data.DataLoader(dataset, **kwargs))
    return ours, theirs


def test_string_keys_reach_getitem_as_with_torch() -> None:
    sampler = _Keys(["dog", "ant", "cat", "bee"])
    ours, theirs = _both(_ByName(), sampler=sampler, batch_size=2)
    assert (
        [b["name"] for b in ours] == [b["name"] for b in theirs] == [["dog", "ant"], ["cat", "bee"]]
    )
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a["value"], b["value"])


def test_string_keys_through_process_workers() -> None:
    loader = DataLoader(
        _ByName(), sampler=_Keys(["cat", "dog", "ant"]), batch_size=2, num_workers=2
    )
    assert [b["name"] for b in loader] == [["cat", "dog"], ["ant"]]


class _Bulk(torch.utils.data.Dataset[Any]):
    """Bulk loading: ``__getitem__`` takes a list of indices and returns a whole batch."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, indices: list[int]) -> Any:
        assert isinstance(indices, list), type(indices)
        return torch.tensor(indices) * 10


def test_batch_size_none_with_a_sampler_of_index_lists() -> None:
    sampler = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(10)), 4, False)
    ours, theirs = _both(_Bulk(), sampler=sampler, batch_size=None)
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(ours[2], torch.tensor([80, 90]))


class _Grid(torch.utils.data.Dataset[Any]):
    """Tuple keys (row, column), as a 2-D dataset might take them."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, key: tuple[int, int]) -> Any:
        row, column = key
        return row * 10 + column


def test_tuple_keys_are_not_range_checked() -> None:
    sampler = _Keys([(0, 1), (7, 9), (3, 3)])  # 7 > len: the dataset's business, not ours
    ours, theirs = _both(_Grid(), sampler=sampler, batch_size=3)
    assert torch.equal(ours[0], theirs[0]) and ours[0].tolist() == [1, 79, 33]


class _Items(torch.utils.data.Dataset[Any]):
    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: Any) -> Any:
        return int(index)

    def __getitems__(self, keys: list[Any]) -> list[Any]:
        return [f"got {key!r}" for key in keys]


def test_getitems_receives_keys_as_the_sampler_made_them() -> None:
    batch = next(iter(DataLoader(_Items(), sampler=_Keys(["a", ("b", 1)]), batch_size=2)))
    assert batch == ["got 'a'", "got ('b', 1)"]


@pytest.mark.parametrize("bad", [5, -1, np.int64(9), torch.tensor(5)], ids=repr)
def test_integer_indices_out_of_range_still_fail_clearly(bad: Any) -> None:
    loader = DataLoader(_Items(), sampler=_Keys([0, bad]), batch_size=2)
    with pytest.raises(IndexError, match=r"dataset index .*5 samples \(valid indices: 0\.\.4\)"):
        list(loader)


def test_integers_among_other_keys_are_checked() -> None:
    loader = DataLoader(_Items(), sampler=_Keys(["a", 7]), batch_size=2)
    with pytest.raises(IndexError, match="dataset index 7"):
        list(loader)


def test_non_integer_keys_get_stable_distinct_seed_indices() -> None:
    """A key's per-sample seed index: itself if integral, else a stable digest of its repr."""
    assert _index_array(np.int64(3)).tolist() == [3]
    assert _index_array([4, 5]).tolist() == [4, 5]
    first, second = _index_array("ant"), _index_array("bee")
    assert first.tolist() == _index_array("ant").tolist() != second.tolist()
    assert 0 <= int(first[0]) < 2**63
