"""Packing a batch for the trip to the loader: arrays into a shared-memory slot, the rest pickled.

A batch is a tree (tuples, lists, dicts, namedtuples) whose leaves are tensors, numpy arrays or
small Python values. ``split`` replaces each tensor/array leaf with a :class:`Leaf` descriptor
and returns the leaves; the worker copies their bytes into a slot (``write_leaves``) and sends
only the skeleton, which is small. The loader rebuilds the tree with ``rebuild``, every array a
zero-copy view of the slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from stoker._transport.shm import aligned
from stoker._tree import map_structure


class Leaf(NamedTuple):
    """Where one array of the batch lives in its slot, and how to view it."""

    is_tensor: bool
    dtype: str  # numpy dtype string, or the torch dtype name for torch-only dtypes
    shape: tuple[int, ...]
    offset: int
    nbytes: int


_TORCH_ONLY = {torch.bfloat16: torch.int16}  # viewed through a same-width numpy dtype
_TORCH_ONLY_BY_NAME = {str(dtype): dtype for dtype in _TORCH_ONLY}


def _is_array(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.device.type == "cpu" and not value.is_sparse
    return isinstance(value, np.ndarray) and value.dtype.kind not in "OSUV"


def _map_tree(tree: Any, on_leaf: Callable[[Any], Any]) -> Any:
    return map_structure(tree, on_leaf, lambda value: _is_array(value) or isinstance(value, Leaf))


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.dtype in _TORCH_ONLY:
            tensor = tensor.view(_TORCH_ONLY[tensor.dtype])
        return tensor.numpy()  # type: ignore[no-any-return]
    return value  # type: ignore[no-any-return]


def split(batch: Any) -> tuple[Any, list[Any], int]:
    """The skeleton with Leaf descriptors, the array leaves, and the slot bytes they need."""
    leaves: list[Any] = []
    offset = 0

    def describe(value: Any) -> Leaf:
        nonlocal offset
        array = _as_numpy(value)
        is_tensor = isinstance(value, torch.Tensor)
        dtype = str(value.dtype) if is_tensor and value.dtype in _TORCH_ONLY else array.dtype.str
        leaf = Leaf(is_tensor, dtype, tuple(array.shape), offset, array.nbytes)
        leaves.append(array)
        offset += aligned(array.nbytes)
        return leaf

    skeleton = _map_tree(batch, describe)
    return skeleton, leaves, offset


def write_leaves(buffer: Any, skeleton: Any, leaves: list[Any]) -> None:
    """Copy the leaves' bytes into ``buffer`` at the offsets ``split`` chose."""
    descriptors: list[Leaf] = []
    _map_tree(skeleton, descriptors.append)
    for leaf, array in zip(descriptors, leaves):
        target = np.frombuffer(buffer, np.uint8, leaf.nbytes, leaf.offset)
        if array.ctypes.data == target.ctypes.data and array.flags.c_contiguous:
            continue  # made in place by the transform (stoker._worker.output): nothing to copy
        np.copyto(target.view(array.dtype).reshape(array.shape), array, casting="no")


def rebuild(skeleton: Any, base: np.ndarray) -> Any:
    """The batch, every array a view into ``base`` (the slot's bytes); no copies."""

    def view(leaf: Leaf) -> Any:
        raw = base[leaf.offset : leaf.offset + leaf.nbytes]
        torch_only = _TORCH_ONLY_BY_NAME.get(leaf.dtype)
        if torch_only is not None:
            carrier = torch.from_numpy(raw.view(np.int16))  # the only torch-only width: 16
            return carrier.view(torch_only).reshape(leaf.shape)
        array = raw.view(np.dtype(leaf.dtype)).reshape(leaf.shape)
        return torch.from_numpy(array) if leaf.is_tensor else array

    return _map_tree(skeleton, view)


def to_inline(batch: Any) -> Any:
    """The batch with tensors as numpy arrays, safe to pickle without torch's fd-sharing."""
    return _map_tree(
        batch,
        lambda value: (
            ("__tensor__", str(value.dtype), _as_numpy(value))
            if isinstance(value, torch.Tensor)
            else value
        ),
    )


def _is_inline_tensor(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and value[0] == "__tensor__"


def _from_inline_tensor(value: tuple[str, str, Any]) -> torch.Tensor:
    dtype = _TORCH_ONLY_BY_NAME.get(value[1])
    tensor = torch.from_numpy(value[2])
    return tensor.view(dtype) if dtype is not None else tensor


def from_inline(batch: Any) -> Any:
    """Undo :func:`to_inline`."""
    return map_structure(batch, _from_inline_tensor, _is_inline_tensor)
