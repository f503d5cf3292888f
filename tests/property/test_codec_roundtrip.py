"""Any batch torch can carry crosses the codec unchanged: class, metadata, dtype and bytes."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from torchvision import tv_tensors

from stoker._transport import codec
from tests.same import assert_same
from tests.strategies import TORCH_DTYPES, batches


def _through_slot(batch: Any) -> Any:
    skeleton, leaves, nbytes = codec.split(batch)
    slot = bytearray(nbytes)
    codec.write_leaves(slot, skeleton, leaves)
    skeleton = pickle.loads(pickle.dumps(skeleton))  # as the pipe carries it
    return codec.rebuild(skeleton, np.frombuffer(slot, np.uint8))


def _through_inline(batch: Any) -> Any:
    return codec.from_inline(pickle.loads(pickle.dumps(codec.to_inline(batch))))


@pytest.fixture(autouse=True)
def _torch_experimental_warnings() -> Any:
    with warnings.catch_warnings():
        # complex32/bcomplex32 and quantize_per_*: torch's own notices, not the codec's
        warnings.filterwarnings(
            "ignore", "ComplexHalf|BComplex32|.*quantize_per|Sparse CSR", UserWarning
        )
        yield


_SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(batches)
def test_round_trip_through_a_slot(batch: Any) -> None:
    assert_same(batch, _through_slot(batch))


@_SETTINGS
@given(batches)
def test_round_trip_inline(batch: Any) -> None:
    assert_same(batch, _through_inline(batch))


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_every_dtype_crosses_as_bytes_in_the_slot(dtype: torch.dtype) -> None:
    """Each strided dtype travels as slot bytes, not pickled (float8 does not even pickle)."""
    tensor = torch.arange(48, dtype=torch.uint8).view(dtype).reshape(3, -1).t()
    skeleton, leaves, _ = codec.split({"x": tensor})
    assert isinstance(skeleton["x"], codec.Leaf) and len(leaves) == 1
    assert_same(tensor, _through_slot(tensor))


def test_rebuilt_leaves_view_the_slot_without_copies() -> None:
    batch = [tv_tensors.Image(torch.rand(3, 4, 4)), torch.ones(5, dtype=torch.bfloat16)]
    skeleton, leaves, nbytes = codec.split(batch)
    slot = np.zeros(nbytes, np.uint8)
    codec.write_leaves(slot, skeleton, leaves)
    image, halves = codec.rebuild(skeleton, slot)
    slot[:] = 0  # the loader's memory: the rebuilt batch sees it change
    assert not image.any() and not halves.any()
    assert type(image) is tv_tensors.Image


def test_bounding_boxes_keep_format_and_canvas_size() -> None:
    boxes = tv_tensors.BoundingBoxes([[1, 2, 5, 6]], format="XYWH", canvas_size=(48, 64))
    for out in (_through_slot([boxes])[0], _through_inline([boxes])[0]):
        assert type(out) is tv_tensors.BoundingBoxes
        assert out.format == tv_tensors.BoundingBoxFormat.XYWH and out.canvas_size == (48, 64)


def test_parameter_keeps_class_and_requires_grad() -> None:
    param = torch.nn.Parameter(torch.rand(3))
    for out in (_through_slot(param), _through_inline(param)):
        assert type(out) is torch.nn.Parameter and out.requires_grad and out.is_leaf


def test_non_leaf_requiring_grad_is_refused_with_torchs_words() -> None:
    non_leaf = torch.rand(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="Cowardly refusing to serialize non-leaf tensor"):
        codec.split([non_leaf])
    with pytest.raises(RuntimeError, match="Cowardly refusing to serialize non-leaf tensor"):
        codec.to_inline([non_leaf])


def test_user_tuples_that_look_like_old_inline_records_stay_tuples() -> None:
    batch = [("__tensor__", "torch.float32", np.zeros(2))]
    assert_same(batch, _through_inline(batch))
