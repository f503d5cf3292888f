"""ToImage, ToDtype and the deprecated ToTensor: layout and dtype conversions."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import PIL.Image
import torch

from stoker.transforms._base import Transform
from stoker.transforms._errors import fail
from stoker.transforms._image import as_batch, describe

_INT_VALUE_BITS = {
    torch.uint8: 8,
    torch.int8: 7,
    torch.int16: 15,
    torch.uint16: 16,
    torch.int32: 31,
    torch.int64: 63,
}


def max_value(dtype: torch.dtype) -> int:
    """The value that means "full intensity" for ``dtype`` (1 for floats), as in torchvision."""
    if dtype.is_floating_point:
        return 1
    if dtype not in _INT_VALUE_BITS:
        raise TypeError(f"no intensity range is defined for {dtype}")
    return int(torch.iinfo(dtype).max)


def to_dtype_tensor(image: torch.Tensor, dtype: torch.dtype, scale: bool) -> torch.Tensor:
    """torchvision v2's ``to_dtype`` for images: the same operations, so the same bits."""
    if image.dtype == dtype:
        return image
    if not scale:
        return image.to(dtype)
    if image.is_floating_point():
        if dtype.is_floating_point:
            return image.to(dtype)
        if (image.dtype == torch.float32 and dtype in (torch.int32, torch.int64)) or (
            image.dtype == torch.float64 and dtype == torch.int64
        ):
            raise fail(
                "ToDtype",
                "a conversion that can be done exactly",
                f"{image.dtype} to {dtype} with scale=True",
                "convert to a smaller integer type",
            )
        # Scaling by max+1-eps instead of max makes [0, 1] map evenly onto the integer range.
        return image.mul(max_value(dtype) + 1.0 - 1e-3).to(dtype)
    if dtype.is_floating_point:
        return image.to(dtype).mul_(1.0 / max_value(image.dtype))
    bits_in, bits_out = _INT_VALUE_BITS[image.dtype], _INT_VALUE_BITS[dtype]
    shift = abs(bits_in - bits_out)
    if bits_in > bits_out:
        if image.dtype == torch.uint16:
            return torch.div(image, 2**shift).to(dtype)
        return image.bitwise_right_shift(shift).to(dtype)
    if dtype == torch.uint16:
        return image.to(dtype).mul(2**shift)
    return image.to(dtype).bitwise_left_shift_(shift)


class ToImage(Transform):
    """PIL images and numpy HWC / NHWC arrays to torch CHW / NCHW tensors; tensors pass through."""

    def __call__(self, inpt: Any) -> Any:
        if isinstance(inpt, torch.Tensor):
            as_batch(inpt, "ToImage")  # validates rank and dtype
            return inpt
        if not isinstance(inpt, np.ndarray | PIL.Image.Image):
            raise fail("ToImage", "a PIL image, a numpy array or a torch tensor", describe(inpt))
        batch = as_batch(inpt, "ToImage")
        nchw = np.ascontiguousarray(batch.data.transpose(0, 3, 1, 2))
        if not nchw.flags.writeable or nchw is batch.data:
            nchw = nchw.copy()  # torch.from_numpy warns on read-only memory; never share the input
        out = torch.from_numpy(nchw)
        return out[0] if batch.single else out


class ToDtype(Transform):
    """Convert to ``dtype``; with ``scale=True`` rescale intensities (uint8 255 ↔ float 1.0)."""

    def __init__(self, dtype: torch.dtype, scale: bool = False) -> None:
        if not isinstance(dtype, torch.dtype):
            raise fail("ToDtype", "a torch.dtype such as torch.float32", repr(dtype))
        self.dtype = dtype
        self.scale = bool(scale)

    def __call__(self, inpt: Any) -> Any:
        if isinstance(inpt, PIL.Image.Image):
            raise fail(
                "ToDtype", "a tensor or numpy array", describe(inpt), "apply ToImage() first"
            )
        batch = as_batch(inpt, "ToDtype")
        if batch.is_numpy:
            # Elementwise, so the numpy layout needs no change; the arithmetic is torch's.
            out = to_dtype_tensor(torch.from_numpy(np.array(inpt)), self.dtype, self.scale)
            return out.numpy()
        return to_dtype_tensor(inpt, self.dtype, self.scale)

    def _extra_repr(self) -> str:
        return f"dtype={self.dtype}, scale={self.scale}"


_warned_to_tensor = False


class ToTensor(Transform):
    """Deprecated: ``ToImage()`` then ``ToDtype(torch.float32, scale=True)``.

    Kept because the seed's VOC pipeline uses it; warns (``DeprecationWarning``) the first time
    one is created in a process.
    """

    def __init__(self) -> None:
        global _warned_to_tensor
        if not _warned_to_tensor:
            _warned_to_tensor = True
            warnings.warn(
                "stoker.transforms.ToTensor is deprecated; use "
                "Compose([ToImage(), ToDtype(torch.float32, scale=True)]) instead",
                DeprecationWarning,
                stacklevel=2,
            )
        self._to_image = ToImage()
        self._to_dtype = ToDtype(torch.float32, scale=True)

    def __call__(self, inpt: Any) -> Any:
        return self._to_dtype(self._to_image(inpt))
