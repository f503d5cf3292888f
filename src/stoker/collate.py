"""Collate functions: turn a list of samples into a batch (torch's semantics, padding, numpy)."""

from __future__ import annotations

import collections.abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from stoker._collated import CollatedSamples
from stoker.errors import CollateError

__all__ = ["default_collate", "default_convert", "numpy_collate", "pad_collate"]

_NUMPY_NON_NUMERIC_KINDS = "SaUO"  # bytes, str, object: torch refuses these too


def _field(path: str) -> str:
    return f" in field {path}" if path else ""


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _check_shapes(shapes: Sequence[tuple[int, ...]], path: str) -> None:
    first = shapes[0]
    for position, shape in enumerate(shapes):
        if shape != first:
            raise CollateError(
                f"cannot stack samples into a batch: sample {position} has shape "
                f"{tuple(shape)}{_field(path)} but sample 0 has shape {tuple(first)}; "
                "use stoker.pad_collate for variable-length data, or resize the samples"
            )


def _unsupported(kind: str, value: Any, path: str) -> CollateError:
    return CollateError(
        f"{kind}: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        f"found {type(value).__name__}{_field(path)}"
    )


def _collate(batch: Sequence[Any], path: str, to_numpy: bool) -> Any:
    elem = batch[0]
    kind = "numpy_collate" if to_numpy else "default_collate"
    if isinstance(elem, torch.Tensor):
        try:
            stacked = torch.stack(list(batch), 0)
        except RuntimeError:  # shapes are checked only on failure: the common case stays fast
            _check_shapes([tuple(sample.shape) for sample in batch], path)
            raise
        return stacked.numpy() if to_numpy else stacked
    if isinstance(elem, np.ndarray | np.generic) and not isinstance(elem, np.str_ | np.bytes_):
        if elem.dtype.kind in _NUMPY_NON_NUMERIC_KINDS:
            raise _unsupported(kind, elem, path)
        try:
            stacked_np = np.stack(batch)
        except ValueError:
            _check_shapes([np.shape(sample) for sample in batch], path)
            raise
        return stacked_np if to_numpy else torch.from_numpy(stacked_np)
    if isinstance(elem, bool | int | float) and not isinstance(elem, np.generic):
        if to_numpy:
            return np.asarray(batch)
        return torch.tensor(batch, dtype=torch.float64 if isinstance(elem, float) else None)
    if isinstance(elem, str | bytes):
        return batch  # as torch: a list at the top level, a tuple inside a structure
    if isinstance(elem, Mapping):
        keys = list(elem)
        for position, sample in enumerate(batch):
            if not isinstance(sample, Mapping) or sample.keys() != elem.keys():
                got = list(sample) if isinstance(sample, Mapping) else type(sample).__name__
                raise CollateError(
                    f"{kind}: sample {position}{_field(path)} has keys {got} but sample 0 "
                    f"has keys {keys}; every sample of a batch needs the same keys"
                )
        collated = {
            key: _collate([s[key] for s in batch], f"{path}[{key!r}]", to_numpy) for key in keys
        }
        try:
            return type(elem)(collated)  # type: ignore[call-arg]
        except TypeError:  # a Mapping type that cannot be built from a dict
            return collated
    if _is_namedtuple(elem):
        return type(elem)(
            *(
                _collate(samples, f"{path}.{name}", to_numpy)
                for name, samples in zip(elem._fields, zip(*batch))
            )
        )
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        for position, sample in enumerate(batch):
            if len(sample) != size:
                raise CollateError(
                    f"{kind}: sample {position}{_field(path)} has {len(sample)} fields but "
                    f"sample 0 has {size}; each element in list of batch should be of equal size"
                )
        fields = [
            _collate(samples, f"{path}[{i}]", to_numpy) for i, samples in enumerate(zip(*batch))
        ]
        if isinstance(elem, tuple):
            return fields  # torch turns tuples of fields into a list, and so do we
        try:
            return type(elem)(fields)  # type: ignore[call-arg]
        except TypeError:
            return fields
    raise _unsupported(kind, elem, path)


def _convert_leaves(tree: Any) -> Any:
    if isinstance(tree, np.ndarray) and tree.dtype.kind not in _NUMPY_NON_NUMERIC_KINDS:
        return torch.from_numpy(np.ascontiguousarray(tree))
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
    """Turn numpy arrays into tensors inside any nesting; used when ``batch_size=None``."""
    if isinstance(data, np.ndarray):
        return _convert_leaves(data)
    if isinstance(data, Mapping):
        return type(data)({key: default_convert(value) for key, value in data.items()})  # type: ignore[call-arg]
    if _is_namedtuple(data):
        return type(data)(*(default_convert(value) for value in data))
    if isinstance(data, tuple):
        return [default_convert(value) for value in data]
    if isinstance(data, list):
        return [default_convert(value) for value in data]
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
