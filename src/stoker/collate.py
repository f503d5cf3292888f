"""Collate functions: turn a list of samples into a batch (torch's semantics, padding, numpy)."""

from __future__ import annotations

import collections.abc
import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from stoker._collated import CollatedSamples
from stoker.errors import CollateError, CollateKeyError, CollateTypeError

__all__ = ["default_collate", "default_convert", "numpy_collate", "pad_collate"]

_NUMPY_NON_NUMERIC_KINDS = "SaUO"  # bytes, str, object: torch refuses these too


def _field(path: str) -> str:
    return f" in field {path}" if path else ""


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _first_mismatch(shapes: Sequence[tuple[int, ...]]) -> int | None:
    """The position of the first sample whose shape differs from sample 0's, or None."""
    first = tuple(shapes[0])
    return next((i for i, shape in enumerate(shapes) if tuple(shape) != first), None)


def _unequal_size(
    shapes: Sequence[tuple[int, ...]], position: int, path: str, phrase: str | None = None
) -> CollateError:
    # torch.stack's words first (what code matching torch's message looks for), then stoker's
    first, shape = list(shapes[0]), list(shapes[position])
    phrase = phrase or (
        f"stack expects each tensor to be equal size, but got {first} at entry 0 "
        f"and {shape} at entry {position}"
    )
    return CollateError(
        f"{phrase}; stoker: cannot stack samples into a batch: sample {position} has shape "
        f"{tuple(shape)}{_field(path)} but sample 0 has shape {tuple(first)}; "
        "use stoker.pad_collate for variable-length data, or resize the samples"
    )


def _unsupported(kind: str, what: Any, path: str) -> CollateTypeError:
    # torch's words first (its default_collate_err_msg_format), then where in the sample
    return CollateTypeError(
        f"{kind}: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        f"found {what}{_field(path)}"
    )


_UNSUPPORTED_LAYOUT = (  # torch's words for the tensors its default_collate refuses
    "Batches of {} tensors are not currently supported by the default collate_fn; "
    "please provide a custom collate_fn to handle them appropriately."
)
_SPARSE_LAYOUTS = {
    torch.sparse_coo,
    torch.sparse_csr,
    torch.sparse_bsr,
    torch.sparse_csc,
    torch.sparse_bsc,
}


def _collate_tensors(batch: Sequence[Any], path: str) -> torch.Tensor:
    elem = batch[0]
    if elem.is_nested or elem.layout in _SPARSE_LAYOUTS:
        which = "nested" if elem.is_nested else "sparse"
        raise CollateError(_UNSUPPORTED_LAYOUT.format(which) + _field(path))
    try:
        return torch.stack(list(batch), 0)
    except RuntimeError as error:  # shapes are checked only on failure: the common case is fast
        shapes = [tuple(sample.shape) for sample in batch]
        position = _first_mismatch(shapes)
        if position is None:
            raise
        raise _unequal_size(shapes, position, path, str(error)) from error


def _collate_mapping(batch: Sequence[Any], path: str, to_numpy: bool) -> Any:
    elem = batch[0]
    for position, sample in enumerate(batch):
        missing = [key for key in elem if key not in sample]
        if missing:
            raise CollateKeyError(
                f"{missing[0]!r}: sample {position}{_field(path)} has no key {missing[0]!r}, "
                f"which sample 0 has (keys {list(elem)}); every sample of a batch needs the "
                "keys of the first"
            )
    collated = {
        key: _collate([s[key] for s in batch], f"{path}[{key!r}]", to_numpy) for key in elem
    }
    try:  # as torch: a mutable mapping keeps its type and attributes (defaultdict, OrderedDict)
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(collated)
            return clone
        return type(elem)(collated)  # type: ignore[call-arg]
    except TypeError:  # a Mapping type that cannot be copied or built from a dict
        return collated


def _collate_sequence(batch: Sequence[Any], path: str, to_numpy: bool, kind: str) -> Any:
    elem = batch[0]
    size = len(elem)
    for position, sample in enumerate(batch):
        if len(sample) != size:
            raise CollateError(
                "each element in list of batch should be of equal size; "
                f"stoker: {kind} sample {position}{_field(path)} has {len(sample)} fields "
                f"but sample 0 has {size}"
            )
    fields = [_collate(samples, f"{path}[{i}]", to_numpy) for i, samples in enumerate(zip(*batch))]
    if isinstance(elem, tuple):
        return fields  # torch turns tuples of fields into a list, and so do we
    try:  # as torch: a mutable sequence keeps its type and attributes
        if isinstance(elem, collections.abc.MutableSequence):
            clone: Any = copy.copy(elem)
            for i, field in enumerate(fields):
                clone[i] = field
            return clone
        return type(elem)(fields)  # type: ignore[call-arg]
    except TypeError:
        return fields


def _collate(batch: Sequence[Any], path: str, to_numpy: bool) -> Any:
    elem = batch[0]
    kind = "numpy_collate" if to_numpy else "default_collate"
    if isinstance(elem, torch.Tensor):
        stacked = _collate_tensors(batch, path)
        return stacked.numpy() if to_numpy else stacked
    if isinstance(elem, np.ndarray | np.generic) and not isinstance(elem, np.str_ | np.bytes_):
        if elem.dtype.kind in _NUMPY_NON_NUMERIC_KINDS:
            raise _unsupported(kind, elem.dtype, path)
        try:
            stacked_np = np.stack(batch)
        except ValueError:
            shapes = [np.shape(sample) for sample in batch]
            position = _first_mismatch(shapes)
            if position is None:
                raise
            raise _unequal_size(shapes, position, path) from None
        return stacked_np if to_numpy else torch.from_numpy(stacked_np)
    if isinstance(elem, bool | int | float) and not isinstance(elem, np.generic):
        if to_numpy:
            return np.asarray(batch)
        return torch.tensor(batch, dtype=torch.float64 if isinstance(elem, float) else None)
    if isinstance(elem, str | bytes):
        return batch  # as torch: a list at the top level, a tuple inside a structure
    if isinstance(elem, Mapping):
        return _collate_mapping(batch, path, to_numpy)
    if _is_namedtuple(elem):
        return type(elem)(
            *(
                _collate(samples, f"{path}.{name}", to_numpy)
                for name, samples in zip(elem._fields, zip(*batch))
            )
        )
    if isinstance(elem, collections.abc.Sequence):
        return _collate_sequence(batch, path, to_numpy, kind)
    raise _unsupported(kind, type(elem), path)


def _no_negative_strides(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``array``, copied if a stride is negative (torch refuses those; stoker copies)."""
    return array.copy() if any(stride < 0 for stride in array.strides) else array


def _convert_leaves(tree: Any) -> Any:
    if isinstance(tree, np.ndarray) and tree.dtype.kind not in _NUMPY_NON_NUMERIC_KINDS:
        return torch.from_numpy(_no_negative_strides(tree))
    if isinstance(tree, Mapping):
        return {key: _convert_leaves(value) for key, value in tree.items()}
    if _is_namedtuple(tree):
        return type(tree)(*(_convert_leaves(value) for value in tree))
    if isinstance(tree, tuple | list):
        return [_convert_leaves(value) for value in tree]
    return tree


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch, exactly as ``torch.utils.data.default_collate``.

    Tensors and numpy arrays are stacked on a new first axis, Python numbers become tensors
    (float64 for floats), strings stay lists, and dicts, namedtuples, tuples and lists recurse
    (a tuple of fields becomes a list, as in torch). A :class:`CollatedSamples` from a batched
    ``__getitems__`` is returned as already collated, with numpy leaves made tensors.
    """
    if isinstance(batch, CollatedSamples):
        return _convert_leaves(batch.collated)
    if len(batch) == 0:
        raise CollateError("default_collate got an empty batch; check the sampler and batch_size")
    return _collate(batch, "", to_numpy=False)


def numpy_collate(batch: Sequence[Any]) -> Any:
    """Like :func:`default_collate`, but leaves are numpy arrays instead of torch tensors."""
    if isinstance(batch, CollatedSamples):
        return batch.collated
    if len(batch) == 0:
        raise CollateError("numpy_collate got an empty batch; check the sampler and batch_size")
    return _collate(batch, "", to_numpy=True)


def default_convert(data: Any) -> Any:
    """Turn numpy arrays and scalars into tensors inside any nesting, exactly as torch's.

    Used when ``batch_size=None``. Arrays of strings or objects stay as they are; mutable
    mappings and sequences keep their type, tuples become lists.
    """
    if isinstance(data, torch.Tensor):
        return data
    module, name = type(data).__module__, type(data).__name__
    if module == "numpy" and name not in ("str_", "string_", "bytes_"):
        if isinstance(data, np.ndarray):
            if data.dtype.kind in _NUMPY_NON_NUMERIC_KINDS:
                return data
            return torch.as_tensor(_no_negative_strides(data))
        return torch.as_tensor(data)
    if isinstance(data, Mapping):
        converted = {key: default_convert(data[key]) for key in data}
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update(converted)
                return clone
            return type(data)(converted)  # type: ignore[call-arg]
        except TypeError:
            return converted
    if _is_namedtuple(data):
        return type(data)(*(default_convert(value) for value in data))
    if isinstance(data, tuple):
        return [default_convert(value) for value in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, str | bytes):
        values = [default_convert(value) for value in data]
        try:
            if isinstance(data, collections.abc.MutableSequence):
                sequence_clone: Any = copy.copy(data)
                for i, value in enumerate(values):
                    sequence_clone[i] = value
                return sequence_clone
            return type(data)(values)  # type: ignore[call-arg]
        except TypeError:  # e.g. range
            return values
    return data


def _as_tensor(sequence: Any, position: int) -> torch.Tensor:
    if isinstance(sequence, torch.Tensor):
        return sequence
    if isinstance(sequence, np.ndarray | list | tuple):
        return torch.as_tensor(np.asarray(sequence))
    raise CollateError(
        f"pad_collate: sample {position} is a {type(sequence).__name__}, expected a tensor, "
        "numpy array or list holding a variable-length sequence"
    )


def pad_sequences(
    sequences: Sequence[Any], padding_value: float = 0, batch_first: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad sequences of different lengths (first axis) into one tensor; also return lengths."""
    tensors = [_as_tensor(s, i) for i, s in enumerate(sequences)]
    trailing = tensors[0].shape[1:]
    for position, tensor in enumerate(tensors):
        if tensor.dim() == 0 or tensor.shape[1:] != trailing:
            raise CollateError(
                f"pad_collate: sample {position} has shape {tuple(tensor.shape)} but sample 0 "
                f"has {tuple(tensors[0].shape)}; only the first (length) axis may differ"
            )
    lengths = torch.tensor([t.shape[0] for t in tensors], dtype=torch.int64)
    dtype = tensors[0].dtype
    padded = torch.full((len(tensors), int(lengths.max()), *trailing), padding_value, dtype=dtype)
    for row, tensor in enumerate(tensors):
        padded[row, : tensor.shape[0]] = tensor
    return (padded if batch_first else padded.transpose(0, 1).contiguous()), lengths


def pad_collate(
    batch: Sequence[Any],
    padding_value: float = 0,
    batch_first: bool = True,
    collate_rest: Callable[[Sequence[Any]], Any] = default_collate,
) -> tuple[Any, ...]:
    """The seed's padding collate for variable-length sequences.

    Samples are either bare sequences → ``(padded, lengths)``, or tuples whose first field is
    the sequence → ``(padded, lengths, *rest)``, each further field collated by
    ``collate_rest``. ``padded`` is ``B×T×...`` (``T×B×...`` with ``batch_first=False``),
    padded with ``padding_value``; ``lengths`` holds each sample's true length. Customise with
    ``functools.partial(pad_collate, padding_value=-1)``.
    """
    if len(batch) == 0:
        raise CollateError("pad_collate got an empty batch; check the sampler and batch_size")
    if isinstance(batch, CollatedSamples):
        batch = [batch[i] for i in range(len(batch))]
    first = batch[0]
    if isinstance(first, tuple | list) and first and not isinstance(first[0], int | float):
        sequences = [sample[0] for sample in batch]
        padded, lengths = pad_sequences(sequences, padding_value, batch_first)
        rest_fields = list(zip(*(sample[1:] for sample in batch)))
        return (padded, lengths, *(collate_rest(field) for field in rest_fields))
    return pad_sequences(batch, padding_value, batch_first)
