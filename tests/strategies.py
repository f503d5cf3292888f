"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torchvision import tv_tensors

dataset_sizes = st.integers(min_value=1, max_value=200)
batch_sizes = st.integers(min_value=1, max_value=40)
seeds = st.integers(min_value=0, max_value=2**63 - 1)
epochs = st.integers(min_value=0, max_value=1000)

# SharedList items: every kind it holds, text with lone surrogates (os.fsdecode's undecodable
# bytes) and both float zeros; NaN is tested apart since NaN != NaN in list equality too.
shared_scalars = {
    str: st.text(st.characters(exclude_categories=()), max_size=12),
    bytes: st.binary(max_size=12),
    int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    float: st.floats(allow_nan=False),
    bool: st.booleans(),
}


@st.composite
def shared_list_items(draw: st.DrawFn) -> list[object]:
    """A list SharedList accepts: all one kind, or all tuples of one field-type signature."""
    if draw(st.booleans()):
        kind = draw(st.sampled_from(sorted(shared_scalars, key=lambda t: t.__name__)))
        return draw(st.lists(shared_scalars[kind], max_size=40))
    kinds = draw(
        st.lists(st.sampled_from(sorted(shared_scalars, key=lambda t: t.__name__)), max_size=4)
    )
    return draw(st.lists(st.tuples(*(shared_scalars[k] for k in kinds)), max_size=40))


# --- batches for the transport codec: every dtype, subclasses, odd layouts, numpy arrays ------


class TaggedTensor(torch.Tensor):
    """A user's tensor subclass carrying Python state, as a dataset might return."""


def _every_strided_dtype() -> list[torch.dtype]:
    """Every torch dtype a CPU strided tensor can be made in (quantized ones need scales)."""
    found = []
    for dtype in sorted({v for v in vars(torch).values() if isinstance(v, torch.dtype)}, key=str):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # complex32/bcomplex32: "experimental"
                probe = torch.empty(2, dtype=dtype)
                probe.view(torch.uint8)
        except (RuntimeError, TypeError):
            continue
        if probe.is_quantized:  # no plain bytes: made by quantize_per_*, in pickled_only_leaves
            continue
        found.append(dtype)
    return found


TORCH_DTYPES = _every_strided_dtype()
NUMPY_DTYPES = [
    np.dtype(code)
    for code in ("?", "i1", "u1", "<i2", ">i2", "<u4", "<i8", "<u8", "<f2", ">f4", "<f8",
                 "<c8", "<c16", "S3", "<U2", "<M8[s]", "<m8[ms]")
] + [np.dtype([("x", "<f4"), ("y", "u1")])]  # fmt: skip

shapes = st.lists(st.integers(min_value=0, max_value=4), min_size=0, max_size=3).map(tuple)


def _random_bytes_tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Arbitrary bit patterns (NaNs, subnormals included) in ``dtype``: values are bytes."""
    count = int(np.prod(shape)) * dtype.itemsize
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    raw = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8)
    if dtype == torch.bool:
        raw = raw & 1
    return torch.from_numpy(raw).view(dtype).reshape(shape)


@st.composite
def tensor_leaves(draw: st.DrawFn) -> torch.Tensor:
    """One tensor of any dtype/shape, maybe non-contiguous, maybe a subclass or with state."""
    dtype = draw(st.sampled_from(TORCH_DTYPES))
    shape = draw(shapes)
    seed = draw(st.integers(0, 2**32 - 1))
    layout = draw(st.sampled_from(["contiguous", "transposed", "sliced", "expanded"]))
    if layout == "transposed" and len(shape) >= 2:
        tensor = _random_bytes_tensor(shape[::-1], dtype, seed).transpose(0, -1)
    elif layout == "sliced":
        tensor = _random_bytes_tensor((*shape[:-1], 2 * shape[-1]) if shape else (2,), dtype, seed)
        tensor = tensor[..., ::2] if shape else tensor[0]
    elif layout == "expanded" and shape:
        tensor = _random_bytes_tensor((1, *shape[1:]), dtype, seed).expand(shape)
    else:
        tensor = _random_bytes_tensor(shape, dtype, seed)
    kind = draw(st.sampled_from(["plain", "tagged", "attribute", "grad"]))
    if kind == "tagged":
        tensor = tensor.as_subclass(TaggedTensor)
        tensor.tag = draw(st.text(max_size=5))  # type: ignore[attr-defined]
    elif kind == "attribute":
        tensor.note = {"k": draw(st.integers())}  # type: ignore[attr-defined]
    elif kind == "grad" and dtype in (torch.float32, torch.float64) and tensor.is_contiguous():
        tensor = tensor.clone().requires_grad_(True)
    return tensor


@st.composite
def torchvision_leaves(draw: st.DrawFn) -> torch.Tensor:
    """torchvision's tv_tensors, with their metadata."""
    n = draw(st.integers(0, 3))
    kind = draw(st.sampled_from(["boxes", "image", "mask", "video", "keypoints"]))
    if kind == "boxes":
        fmt = draw(st.sampled_from(["XYXY", "XYWH", "CXCYWH"]))
        size = (draw(st.integers(1, 50)), draw(st.integers(1, 50)))
        return tv_tensors.BoundingBoxes(torch.rand(n, 4) * 10, format=fmt, canvas_size=size)
    if kind == "image":
        return tv_tensors.Image(torch.randint(0, 255, (3, n + 1, 2), dtype=torch.uint8))
    if kind == "mask":
        return tv_tensors.Mask(torch.rand(n + 1, 3) > 0.5)
    if kind == "keypoints" and hasattr(tv_tensors, "KeyPoints"):
        return tv_tensors.KeyPoints(torch.rand(n, 2), canvas_size=(8, 9))
    return tv_tensors.Video(torch.rand(n + 1, 3, 2, 2))


@st.composite
def pickled_only_leaves(draw: st.DrawFn) -> Any:
    """Leaves with no plain bytes: quantized, sparse, Parameter, object and subclass arrays."""
    values = torch.rand(4, 3)
    kind = draw(
        st.sampled_from(["qtensor", "qchannel", "coo", "csr", "param", "objects", "masked"])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantize_per_*: "deprecated"; CSR: "beta", once
        if kind == "qtensor":
            return torch.quantize_per_tensor(values, 0.05, 3, torch.quint8)
        if kind == "qchannel":
            scales, zeros = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0, 1, 2, 3])
            return torch.quantize_per_channel(values, scales, zeros, 0, torch.qint8)
        if kind == "coo":
            return (values * (values > 0.5)).to_sparse()
        if kind == "csr":
            return values.to_sparse_csr()
    if kind == "param":
        return torch.nn.Parameter(values, requires_grad=draw(st.booleans()))
    if kind == "objects":
        return np.array([1, "two", (3,)], dtype=object)
    return np.ma.masked_array(np.arange(4.0), mask=[False, True, False, True])


@st.composite
def numpy_leaves(draw: st.DrawFn) -> Any:
    """A numpy array of any dtype, maybe non-contiguous or Fortran-ordered."""
    dtype = draw(st.sampled_from(NUMPY_DTYPES))
    shape = draw(shapes)
    raw = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(
        0, 256, int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8
    )
    if dtype.kind == "b":
        raw = raw & 1
    if dtype.kind in "SU":
        array = np.full(shape, draw(st.text("abcxyz", max_size=2)), dtype=dtype)
    else:
        array = raw.view(dtype).reshape(shape)
    if draw(st.booleans()) and array.ndim >= 2:
        array = array.T
    elif draw(st.booleans()) and array.ndim >= 1:
        array = array[::-1]
    return array


leaves = st.one_of(tensor_leaves(), torchvision_leaves(), pickled_only_leaves(), numpy_leaves())
batches = st.recursive(
    st.one_of(leaves, st.integers(), st.text(max_size=3), st.none()),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=3), children, max_size=3),
    ),
    max_leaves=6,
)
