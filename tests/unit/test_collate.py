"""default_collate equals torch's; pad and numpy collate; errors name field and shapes."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data

import stoker
from stoker import (
    CollatedSamples,
    CollateError,
    default_collate,
    default_convert,
    numpy_collate,
    pad_collate,
)
from tests.same import assert_same as assert_identical

Point = namedtuple("Point", ["x", "y"])


def assert_same(a: object, b: object) -> None:
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


BATCHES = [
    [torch.arange(3), torch.arange(3) + 1],
    [np.arange(4, dtype=np.float32), np.ones(4, dtype=np.float32)],
    [1, 2, 3],
    [1.5, 2.5],
    [True, False],
    ["a", "b"],
    [np.int64(3), np.int64(4)],
    [{"x": torch.zeros(2), "y": 1}, {"x": torch.ones(2), "y": 2}],
    [(torch.zeros(2), 0), (torch.ones(2), 1)],
    [[1, 2], [3, 4]],
    [Point(1, 2.0), Point(3, 4.0)],
    [{"nested": (np.zeros((2, 2)), "s")}, {"nested": (np.ones((2, 2)), "t")}],
]


@pytest.mark.parametrize("batch", BATCHES, ids=range(len(BATCHES)))
def test_default_collate_equals_torch(batch: list) -> None:
    assert_same(default_collate(batch), torch.utils.data.default_collate(batch))


def test_mismatched_shapes_name_position_field_and_shapes() -> None:
    batch = [
        {"image": torch.zeros(3, 32, 32)},
        {"image": torch.zeros(3, 32, 32)},
        {"image": torch.zeros(3, 30, 32)},
    ]
    with pytest.raises(CollateError) as info:
        default_collate(batch)
    message = str(info.value)
    assert "sample 2" in message and "['image']" in message
    assert "(3, 30, 32)" in message and "(3, 32, 32)" in message


def test_mismatched_keys_and_unsupported_types() -> None:
    with pytest.raises(CollateError, match="keys"):
        default_collate([{"a": 1}, {"b": 2}])
    with pytest.raises(CollateError, match="found <class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(CollateError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(CollateError, match="empty"):
        default_collate([])


def test_collated_samples_pass_through_and_look_like_samples() -> None:
    images = np.arange(24, dtype=np.uint8).reshape(4, 6)
    labels = torch.tensor([0, 1, 2, 3])
    batch = CollatedSamples((images, labels), 4)
    out = default_collate(batch)
    assert torch.equal(out[0], torch.from_numpy(images)) and torch.equal(out[1], labels)
    # torch's own collate sees an ordinary sequence of samples and agrees
    assert_same(torch.utils.data.default_collate(batch), out)
    assert len(batch) == 4 and np.array_equal(batch[2][0], images[2])
    with pytest.raises(IndexError):
        batch[4]


def test_pad_collate_seed_example() -> None:
    batch = [(torch.tensor([1, 2, 3]), 0), (torch.tensor([4]), 1), (torch.tensor([5, 6]), 2)]
    padded, lengths, labels = pad_collate(batch)
    expected = torch.nn.utils.rnn.pad_sequence([s for s, _ in batch], batch_first=True)
    assert torch.equal(padded, expected)
    assert lengths.tolist() == [3, 1, 2] and labels.tolist() == [0, 1, 2]
    padded_tb, _ = pad_collate([s for s, _ in batch], padding_value=-1, batch_first=False)
    assert torch.equal(
        padded_tb,
        torch.nn.utils.rnn.pad_sequence([s for s, _ in batch], padding_value=-1),
    )


def test_pad_collate_rejects_mismatched_trailing_shape() -> None:
    with pytest.raises(CollateError, match="sample 1"):
        pad_collate([torch.zeros(3, 2), torch.zeros(2, 5)])


def test_numpy_collate_gives_arrays() -> None:
    out = numpy_collate([(np.zeros(2), 1), (np.ones(2), 2)])
    assert isinstance(out[0], np.ndarray) and out[0].shape == (2, 2)
    assert isinstance(out[1], np.ndarray) and out[1].tolist() == [1, 2]


def test_default_convert_matches_torch() -> None:
    for sample in [np.zeros(3), {"a": np.ones(2)}, (np.zeros(1), "x"), 3]:
        assert_same(stoker.default_convert(sample), torch.utils.data.default_convert(sample))


# --- torch's exception types and phrases (code written against torch matches on them) --------


def test_unequal_sizes_raise_a_runtime_error_with_torchs_phrase_first() -> None:
    batch = [torch.zeros(3), torch.zeros(4)]
    with pytest.raises(RuntimeError) as theirs:
        torch.utils.data.default_collate(batch)
    with pytest.raises(stoker.CollateError) as ours:
        default_collate(batch)
    assert isinstance(ours.value, RuntimeError) and isinstance(ours.value, ValueError)
    assert str(ours.value).startswith(str(theirs.value))
    assert "stack expects each tensor to be equal size" in str(ours.value)
    assert "pad_collate" in str(ours.value)


def test_unequal_numpy_sizes_use_torchs_phrase_too() -> None:
    batch = [np.zeros((2, 3)), np.zeros((2, 4))]
    with pytest.raises(RuntimeError) as theirs:
        torch.utils.data.default_collate(batch)
    with pytest.raises(RuntimeError) as ours:
        default_collate(batch)
    assert str(ours.value).startswith(str(theirs.value))


@pytest.mark.parametrize("batch", [[object(), object()], [{1}, {2}], [np.array(["a"])] * 2])
def test_uncollatable_types_raise_type_error_with_torchs_message(batch: list[Any]) -> None:
    with pytest.raises(TypeError) as theirs:
        torch.utils.data.default_collate(batch)
    with pytest.raises(stoker.CollateTypeError) as ours:
        default_collate(batch)
    assert isinstance(ours.value, TypeError) and isinstance(ours.value, stoker.CollateError)
    assert str(ours.value).startswith(str(theirs.value))


def test_unequal_sequences_raise_runtime_error_with_torchs_phrase() -> None:
    with pytest.raises(RuntimeError, match=r"^each element in list of batch should be of equal"):
        torch.utils.data.default_collate([[1, 2], [1]])
    with pytest.raises(RuntimeError, match=r"^each element in list of batch should be of equal"):
        default_collate([[1, 2], [1]])


def test_missing_key_is_a_key_error_and_extra_keys_are_ignored_as_in_torch() -> None:
    with pytest.raises(KeyError):
        torch.utils.data.default_collate([{"a": 1}, {"b": 2}])
    with pytest.raises(stoker.CollateKeyError, match="sample 1 has no key 'a'") as ours:
        default_collate([{"a": 1}, {"b": 2}])
    assert isinstance(ours.value, KeyError)
    extra = [{"a": 1}, {"a": 2, "b": 3}]
    assert_identical(torch.utils.data.default_collate(extra), default_collate(extra))


@pytest.mark.parametrize("layout", ["sparse", "nested"])
def test_sparse_and_nested_batches_raise_torchs_runtime_error(layout: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nested tensors: "prototype stage"
        if layout == "sparse":
            batch = [torch.eye(2).to_sparse()] * 2
        else:
            batch = [torch.nested.nested_tensor([torch.zeros(1), torch.zeros(2)])] * 2
    with pytest.raises(RuntimeError) as theirs:
        torch.utils.data.default_collate(batch)
    with pytest.raises(stoker.CollateError) as ours:
        default_collate(batch)
    assert str(ours.value).startswith(str(theirs.value))


def test_mutable_mappings_and_sequences_keep_their_type_as_in_torch() -> None:
    import collections

    samples = [collections.defaultdict(list, {"x": 1}), collections.defaultdict(list, {"x": 2})]
    ours, theirs = default_collate(samples), torch.utils.data.default_collate(samples)
    assert type(ours) is type(theirs) is collections.defaultdict
    assert ours.default_factory is list and torch.equal(ours["x"], theirs["x"])

    class Fields(list):  # type: ignore[type-arg]
        pass

    rows = [Fields([1, 2.0]), Fields([3, 4.0])]
    assert type(default_collate(rows)) is type(torch.utils.data.default_collate(rows)) is Fields


@pytest.mark.parametrize(
    "data",
    [
        np.float32(1.5),
        np.int64(3),
        np.bool_(True),
        np.zeros(()),
        {"a": np.arange(3), "b": (np.ones(2), "s")},
        range(3),
        [np.array(["x"]), np.zeros(2)],
    ],
    ids=repr,
)
def test_default_convert_matches_torch_on_numpy_scalars_and_sequences(data: Any) -> None:
    assert_identical(torch.utils.data.default_convert(data), default_convert(data))
