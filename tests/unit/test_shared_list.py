"""SharedList acts as the list it was built from, holds no per-item objects, refuses the rest."""

from __future__ import annotations

import math
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from stoker import SharedList
from tests.strategies import shared_list_items


def _same(a: object, b: object) -> bool:
    """Equal, of the same type, and for floats bit-identical (so -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)  # type: ignore[arg-type]
    return a == b


@given(shared_list_items())
def test_round_trips_as_the_list(items: list[object]) -> None:
    shared = SharedList(items)
    assert len(shared) == len(items)
    assert shared == items and items == shared and (shared != items) is False
    assert all(_same(a, b) for a, b in zip(shared, items, strict=True))
    assert all(_same(shared[i], items[i]) for i in range(-len(items), len(items)))
    assert list(reversed(shared)) == list(reversed(items))
    restored = pickle.loads(pickle.dumps(shared))
    assert type(restored) is SharedList and restored == shared and restored == items
    assert all(_same(a, b) for a, b in zip(restored, items, strict=True))


@given(shared_list_items(), st.data())
def test_slices_are_shared_lists_equal_to_list_slices(
    items: list[object], data: st.DataObject
) -> None:
    shared = SharedList(items)
    where = data.draw(st.slices(len(items) + 2))
    part = shared[where]
    assert type(part) is SharedList
    assert all(_same(a, b) for a, b in zip(part, items[where], strict=True))
    assert part == items[where] and len(part) == len(items[where])
    if items:
        positions = data.draw(st.lists(st.integers(-len(items), len(items) - 1), max_size=10))
        taken = shared.take(positions)
        assert all(_same(a, items[p]) for a, p in zip(taken, positions, strict=True))


@given(st.lists(st.tuples(st.text(max_size=5), st.integers(0, 9)), min_size=1, max_size=20))
def test_membership_index_and_count_follow_the_list(items: list[tuple[str, int]]) -> None:
    shared = SharedList(items)
    for item in items:
        assert item in shared
        assert shared.index(item) == items.index(item)
        assert shared.count(item) == items.count(item)
    assert ("\0absent", 10) not in shared


def test_iteration_crosses_chunk_boundaries() -> None:
    items = [(f"p{i}", i, i / 3) for i in range(150_000)]  # > 2 internal 65,536-item chunks
    shared = SharedList(items)
    assert list(shared) == items
    assert shared[::7] == items[::7] and shared[-70_000:] == items[-70_000:]


def test_nan_and_infinities_come_back() -> None:
    shared = SharedList([math.nan, math.inf, -math.inf, -0.0])
    assert math.isnan(shared[0]) and shared[1:3] == [math.inf, -math.inf]
    assert math.copysign(1.0, shared[3]) == -1.0


def test_equality_is_list_equality() -> None:
    assert SharedList([1, 2]) == SharedList([1, 2]) and SharedList([1, 2]) != SharedList([2, 1])
    assert SharedList([1, 2]) == SharedList([1.0, 2.0])  # as [1, 2] == [1.0, 2.0]
    assert SharedList([1, 2]) != [1, 2, 3] and SharedList(["a"]) != ["b"]
    assert SharedList([1, 2]) != (1, 2)  # a list is not equal to a tuple either
    assert SharedList([]) == [] and SharedList(x for x in "ab") == ["a", "b"]
    with pytest.raises(TypeError, match="unhashable"):
        hash(SharedList([1]))


def test_read_only() -> None:
    shared = SharedList([("a", 1)])
    with pytest.raises(TypeError):
        shared[0] = ("b", 2)  # type: ignore[index]
    assert not hasattr(shared, "append") and not hasattr(shared, "__dict__")
    column = shared._columns[1]
    with pytest.raises(ValueError, match="read-only"):
        column.arrays()[0][0] = 5


def test_indexing_errors_name_index_and_length() -> None:
    shared = SharedList(["a", "b"])
    assert shared[np.int64(1)] == "b" and shared[torch.tensor(0)] == "a"
    with pytest.raises(IndexError, match="index 2 is out of range for length 2"):
        shared[2]
    with pytest.raises(IndexError, match="index -3 is out of range for length 2"):
        shared[-3]
    with pytest.raises(IndexError, match="index 5 is out of range"):
        shared.take([0, 5])
    with pytest.raises(TypeError, match="integers or slices, not str"):
        shared["0"]  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["a", "b", "c", Path("d")], r"item 3 a pathlib\.PosixPath"),
        ([[1, 2]], r"item 0 a list \(\[1, 2\]\)"),
        ([1, 2, None], r"item 2 a NoneType"),
        ([np.int64(3)], r"item 0 a numpy\.int64"),
        ([("a", 1), ("b", (1, 2))], r"item 1, field 1, a tuple"),
        ([("a", 1), ("b", 2), ("c", np.float32(1))], r"item 2, field 1, a numpy\.float32"),
        ([1, 2, 3.5], r"types of item 0, int, but item 2 is float"),
        ([("a", 1), ("b", 2.0)], r"item 0, \(str, int\), but item 1 is \(str, float\)"),
        ([("a", 1), ("b",)], r"item 0, \(str, int\), but item 1 is \(str\)"),
        ([("a", 1), "b"], r"but item 1 is str"),
        ([True, 1], r"item 0, bool, but item 1 is int"),
    ],
)
def test_unsupported_items_name_the_first_bad_index_and_type(
    items: list[object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        SharedList(items)


def test_integers_beyond_int64_are_named() -> None:
    with pytest.raises(OverflowError, match=r"item 1 is 9223372036854775808, outside int64"):
        SharedList([0, 2**63])


def test_buffers_are_compact_and_pickle_as_them() -> None:
    paths = [f"/data/train/n{i % 100:08d}/{i:09d}.JPEG" for i in range(20_000)]
    as_list = sys.getsizeof(paths) + sum(map(sys.getsizeof, paths))
    shared = SharedList((p, i % 100) for i, p in enumerate(paths))
    # per item: the UTF-8 bytes, a 4-byte offset and a 1-byte label (0..99 fits int8)
    assert shared.nbytes == sum(map(len, paths)) + 4 * (len(paths) + 1) + len(paths)
    assert shared.nbytes < as_list / 2
    assert len(pickle.dumps(shared)) < shared.nbytes + 1024
    assert SharedList(range(100)).nbytes == 100 and SharedList([2**40]).nbytes == 8


def test_holds_no_python_object_per_item() -> None:
    # A list-backed container would keep its 50,000 str objects alive after the source is gone.
    source = [f"item-{i:06d}-{'x' * (i % 7)}" for i in range(50_000)]
    before = sys.getallocatedblocks()
    shared = SharedList(source)
    del source
    assert sys.getallocatedblocks() - before < -40_000
    assert shared[49_999] == "item-049999-" + "x" * (49_999 % 7)


def test_empty() -> None:
    empty = SharedList([])
    assert len(empty) == 0 and list(empty) == [] and empty[:] == [] and empty.take([]) == []
    assert pickle.loads(pickle.dumps(empty)) == []
    with pytest.raises(IndexError, match="out of range for length 0"):
        empty[0]


def test_copying_a_shared_list_shares_its_buffers() -> None:
    shared = SharedList(["a", "b"])
    again = SharedList(shared)
    assert again == shared and again._columns is shared._columns


def test_repr_and_field_types() -> None:
    shared = SharedList([("a", 1, 0.5)] * 5)
    assert shared.field_types == (str, int, float)
    assert repr(shared).startswith("SharedList(5 items of (str, int, float), ")
    assert "('a', 1, 0.5), ..." in repr(shared)
    assert SharedList().field_types == () and "0 items" in repr(SharedList())
