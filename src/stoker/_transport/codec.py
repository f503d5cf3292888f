"""Packing a batch for the trip to the loader: arrays into a shared-memory slot, the rest pickled.

A batch is a tree (tuples, lists, dicts, namedtuples) whose leaves are tensors, numpy arrays or
small Python values. ``split`` replaces each tensor/array leaf with a :class:`Leaf` descriptor
and returns the leaves; the worker copies their bytes into a slot (``write_leaves``) and sends
only the skeleton, which is small. The loader rebuilds the tree with ``rebuild``, every array a
zero-copy view of the slot.

What crosses, and how (torch's DataLoader is the reference: what it carries, this carries):

* every dtype of a CPU strided tensor (float8 variants, complex32, bool, bfloat16, uint16/32/64,
  bit types) travels as raw bytes, viewed through a numpy dtype of the same width;
* tensor subclasses (torchvision's ``tv_tensors``, any user subclass) keep their class and
  Python state, rebuilt as torch's own pickling does (``torch._tensor._rebuild_from_type_v2``);
  so do attributes set on plain tensors, and ``requires_grad`` of leaf tensors;
* what has no plain bytes — quantized, sparse and nested tensors, subclasses with their own
  ``__reduce_ex__`` or ``__torch_dispatch__`` (``nn.Parameter``, wrapper subclasses) — travels
  pickled, by value, as torch pickles it;
* numpy arrays of any dtype without Python objects travel as bytes; object arrays and ndarray
  subclasses (masked arrays, ``np.matrix``) stay in the skeleton and are pickled.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch._tensor import _rebuild_from_type_v2
from torch._utils import _get_obj_state

from stoker._transport.shm import aligned
from stoker._tree import map_structure

# numpy dtypes through which any torch dtype of the same width is viewed: these four widths
# cover every torch dtype; one numpy knows itself is carried as itself (same bytes, no view).
_CARRIER_BY_WIDTH = {1: np.uint8, 2: np.int16, 4: np.int32, 8: np.int64, 16: np.complex128}
_TORCH_CARRIER = {np.uint8: torch.uint8, np.int16: torch.int16, np.int32: torch.int32,
                  np.int64: torch.int64, np.complex128: torch.complex128}  # fmt: skip

_NON_LEAF_GRAD = (  # torch's words (torch/multiprocessing/reductions.py), for the same refusal
    "Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd does "
    "not support crossing process boundaries.  If you just want to transfer the data, call "
    "detach() on the tensor before serializing (e.g., putting it on the queue)."
)


def _numpy_dtype(dtype: torch.dtype) -> np.dtype[Any] | None:
    try:
        return np.dtype(torch.empty((), dtype=dtype).numpy().dtype) if dtype.itemsize else None
    except (TypeError, RuntimeError):  # a dtype numpy has no equivalent for
        return None


@dataclass(frozen=True, slots=True)
class TensorMeta:
    """What a tensor leaf needs besides its bytes: dtype, shape, class, Python state, grad."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    cls: type[torch.Tensor] = torch.Tensor
    state: bytes | None = None  # pickled _get_obj_state(); None when there is none
    requires_grad: bool = False


class Leaf(NamedTuple):
    """Where one array of the batch lives in its slot, and how to view it."""

    meta: TensorMeta | None  # None for a numpy array
    dtype: np.dtype[Any]  # the numpy dtype of the bytes (a carrier for torch-only dtypes)
    shape: tuple[int, ...]
    offset: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class Pickled:
    """A leaf with no plain bytes (quantized, sparse, Parameter...), pickled by value."""

    blob: bytes


@dataclass(frozen=True, slots=True)
class Inline:
    """A tensor leaf carried in the message itself: its metadata and its bytes."""

    meta: TensorMeta
    data: np.ndarray[Any, Any]


_NUMPY_OF: dict[torch.dtype, np.dtype[Any] | None] = {}


def _bytes_viewable(tensor: torch.Tensor) -> bool:
    """True for a CPU strided tensor whose storage is real memory and whose class rebuilds."""
    cls = type(tensor)
    return (
        tensor.layout == torch.strided
        and not tensor.is_quantized
        and not tensor.is_nested
        and tensor.device.type == "cpu"
        and (cls is torch.Tensor or _plain_subclass(cls))
    )


def _plain_subclass(cls: type[torch.Tensor]) -> bool:
    # A subclass that pickles with Tensor's own __reduce_ex__ and dispatches as Tensor does
    # (tv_tensors, most user subclasses) is rebuilt from its class and state; one with its own
    # __reduce_ex__ (nn.Parameter) or __torch_dispatch__ (wrapper subclasses) is pickled.
    return (
        cls.__reduce_ex__ is torch.Tensor.__reduce_ex__
        and getattr(cls, "__torch_dispatch__", None) is torch.Tensor.__torch_dispatch__
    )


def _tensor_parts(tensor: torch.Tensor) -> tuple[TensorMeta, np.ndarray[Any, Any]]:
    """The tensor's metadata and a numpy view of its elements (strided, not copied)."""
    if tensor.requires_grad and not tensor.is_leaf:
        raise RuntimeError(_NON_LEAF_GRAD)
    cls = type(tensor)
    state = _get_obj_state(tensor)  # type: ignore[no-untyped-call]
    with torch._C.DisableTorchFunctionSubclass():  # plain Tensor results, whatever the class
        plain = tensor.detach().resolve_conj().resolve_neg()
    dtype = tensor.dtype
    if dtype not in _NUMPY_OF:
        _NUMPY_OF[dtype] = _numpy_dtype(dtype)
    if _NUMPY_OF[dtype] is None:  # torch-only: view the same bytes as a same-width integer
        carrier = _CARRIER_BY_WIDTH[dtype.itemsize]
        plain = plain.view(_TORCH_CARRIER[carrier])
    meta = TensorMeta(
        dtype,
        tuple(tensor.shape),
        cls,
        pickle.dumps(state, pickle.HIGHEST_PROTOCOL) if state else None,
        tensor.requires_grad,
    )
    return meta, plain.numpy()


def _tensor_from(meta: TensorMeta, array: np.ndarray[Any, Any]) -> torch.Tensor:
    """Undo :func:`_tensor_parts`: ``array`` (bytes in the carrier dtype) as the tensor."""
    base = torch.from_numpy(array.reshape(meta.shape))
    if base.dtype != meta.dtype:
        base = base.view(meta.dtype)
    if meta.cls is not torch.Tensor or meta.state is not None:
        state = pickle.loads(meta.state) if meta.state is not None else None
        base = _rebuild_from_type_v2(lambda: base, meta.cls, (), state)  # type: ignore[no-untyped-call]
    if meta.requires_grad:
        base.requires_grad_(True)
    return base


def _pickled(value: Any) -> Any:
    try:
        return Pickled(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
    except Exception:  # what plain pickle cannot take is left to the connection's pickler,
        return value  # which has torch's reductions, as torch's DataLoader sends it


def _unpickle(pickled: Pickled) -> Any:
    with warnings.catch_warnings():
        # torch's own unpickling of quantized tensors reads TypedStorage.device and warns that
        # TypedStorage is deprecated: torch's internals, nothing the user can act on
        warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning)
        return pickle.loads(pickled.blob)


def _is_array(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return type(value) is np.ndarray and not value.dtype.hasobject


def _is_leaf(value: Any) -> bool:
    return _is_array(value) or isinstance(value, Leaf | Pickled | Inline)


def _map_tree(tree: Any, on_leaf: Callable[[Any], Any]) -> Any:
    return map_structure(tree, on_leaf, _is_leaf)


def split(batch: Any) -> tuple[Any, list[Any], int]:
    """The skeleton with Leaf descriptors, the array leaves, and the slot bytes they need."""
    leaves: list[Any] = []
    offset = 0

    def describe(value: Any) -> Any:
        nonlocal offset
        if isinstance(value, torch.Tensor):
            if value.device.type != "cpu":
                return value  # the connection's pickler shares it, as torch does
            if not _bytes_viewable(value):
                return _pickled(value)
            meta, array = _tensor_parts(value)
        else:
            meta, array = None, value
        leaf = Leaf(meta, array.dtype, tuple(array.shape), offset, array.nbytes)
        leaves.append(array)
        offset += aligned(array.nbytes)
        return leaf

    skeleton = _map_tree(batch, describe)
    return skeleton, leaves, offset


def write_leaves(buffer: Any, skeleton: Any, leaves: list[Any]) -> None:
    """Copy the leaves' bytes into ``buffer`` at the offsets ``split`` chose."""
    descriptors: list[Leaf] = []
    _map_tree(skeleton, lambda value: descriptors.append(value) if isinstance(value, Leaf) else 0)
    for leaf, array in zip(descriptors, leaves, strict=True):
        target = np.frombuffer(buffer, np.uint8, leaf.nbytes, leaf.offset)
        if array.ctypes.data == target.ctypes.data and array.flags.c_contiguous:
            continue  # made in place by the transform (stoker._worker.output): nothing to copy
        np.copyto(target.view(array.dtype).reshape(array.shape), array, casting="no")


def rebuild(skeleton: Any, base: np.ndarray[Any, Any]) -> Any:
    """The batch, every array a view into ``base`` (the slot's bytes); no copies."""

    def view(value: Any) -> Any:
        if isinstance(value, Pickled):
            return _unpickle(value)
        if not isinstance(value, Leaf):
            return value
        array = base[value.offset : value.offset + value.nbytes].view(value.dtype)
        if value.meta is None:
            return array.reshape(value.shape)
        return _tensor_from(value.meta, array)

    return _map_tree(skeleton, view)


def to_inline(batch: Any) -> Any:
    """The batch with tensors as numpy arrays, safe to pickle without torch's fd-sharing."""

    def encode(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            # numpy pickles a non-native byte order ('>f4') as native ('float32') unless the
            # array is contiguous and the protocol is 5, and the pipe's protocol is 4
            native = value.dtype.byteorder in "=|"
            return value if native else _pickled(value.copy(order="C"))
        if not isinstance(value, torch.Tensor) or value.device.type != "cpu":
            return value
        if not _bytes_viewable(value):
            return _pickled(value)
        meta, array = _tensor_parts(value)
        return Inline(meta, array)

    return _map_tree(batch, encode)


def from_inline(batch: Any) -> Any:
    """Undo :func:`to_inline`."""

    def decode(value: Any) -> Any:
        if isinstance(value, Inline):
            # from_numpy refuses negative strides; the pipe delivers arrays contiguous anyway
            data = value.data if value.data.flags.c_contiguous else value.data.copy(order="C")
            return _tensor_from(value.meta, data)
        if isinstance(value, Pickled):
            return _unpickle(value)
        return value

    return map_structure(batch, decode, lambda value: isinstance(value, Inline | Pickled))
