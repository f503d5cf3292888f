"""assert_same: two batches are equal in structure, type, metadata, dtype and every bit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch._utils import _get_obj_state


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    with torch._C.DisableTorchFunctionSubclass():
        plain = tensor.detach().resolve_conj().resolve_neg()
        # a same-width integer view: bit and float8 dtypes have no copy kernel, nor numpy
        width = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
        if plain.dtype.itemsize in width:
            plain = plain.view(width[plain.dtype.itemsize])
        return bytes(plain.numpy().tobytes())


def _assert_same_tensor(a: torch.Tensor, b: torch.Tensor, where: str) -> None:
    assert (a.dtype, a.shape, a.layout) == (b.dtype, b.shape, b.layout), where
    assert a.requires_grad == b.requires_grad, f"{where}: requires_grad"
    assert _get_obj_state(a) == _get_obj_state(b), f"{where}: Python state"
    if a.is_quantized:
        assert a.qscheme() == b.qscheme(), where
        assert torch.equal(a.int_repr(), b.int_repr()), where
        if a.qscheme() == torch.per_tensor_affine:
            assert (a.q_scale(), a.q_zero_point()) == (b.q_scale(), b.q_zero_point()), where
        else:
            assert torch.equal(a.q_per_channel_scales(), b.q_per_channel_scales()), where
        return
    if a.layout != torch.strided:
        a, b = a.to_dense(), b.to_dense()
    assert _tensor_bytes(a) == _tensor_bytes(b), f"{where}: bytes differ"


def _assert_same_array(a: np.ndarray, b: np.ndarray, where: str) -> None:
    assert (a.dtype, a.shape) == (b.dtype, b.shape), where
    if isinstance(a, np.ma.MaskedArray):
        assert np.array_equal(a.mask, b.mask), f"{where}: mask"
        a, b = a.data, b.data
    if a.dtype.hasobject:
        assert a.tolist() == b.tolist(), where
        return
    raw_a = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    raw_b = np.ascontiguousarray(b).reshape(-1).view(np.uint8)
    assert np.array_equal(raw_a, raw_b), f"{where}: bytes differ"


def assert_same(a: Any, b: Any, where: str = "batch") -> None:
    """Fail unless ``b`` is ``a`` rebuilt: same containers, classes, metadata and bytes."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        _assert_same_tensor(a, b, where)
    elif isinstance(a, np.ndarray):
        _assert_same_array(a, b, where)
    elif isinstance(a, Mapping):
        assert list(a) == list(b), f"{where}: keys"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: length"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where
