"""Image inputs seen as one 4-D batch: numpy channels-last (NHWC), torch channels-first (NCHW).

Every transform accepts a PIL image, an :class:`Undecoded` file, a numpy array (``HW``, ``HWC``
or a ``NHWC`` batch) or a torch tensor (``HW``, ``CHW`` or a ``NCHW`` batch). :func:`as_batch`
lifts any of them to a 4-D batch in its own library's layout and remembers how to give the
result back in the caller's form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import PIL.Image
import torch

from stoker.transforms._errors import fail
from stoker.transforms._undecoded import Undecoded

Array = np.ndarray | torch.Tensor

# numpy images are channels-last; more than this many channels almost always means a CHW array
# was passed where HWC was expected, so it is refused with a hint rather than silently misread.
_MAX_NUMPY_CHANNELS = 4
_NUMPY_DTYPES = frozenset(
    np.dtype(t)
    for t in ("uint8", "int8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64")
)


@dataclass(frozen=True)
class Batch:
    """A 4-D view of the input (numpy NHWC or torch NCHW) and how to restore the caller's form."""

    data: Any
    kind: Literal["pil", "numpy", "tensor"]
    single: bool
    had_channels: bool
    pil_mode: str | None = None
    pil_palette: Any = None

    @property
    def is_numpy(self) -> bool:
        return self.kind != "tensor"

    @property
    def size(self) -> int:
        return int(self.data.shape[0])

    @property
    def hw(self) -> tuple[int, int]:
        shape = self.data.shape
        return (int(shape[1]), int(shape[2])) if self.is_numpy else (int(shape[2]), int(shape[3]))

    @property
    def channels(self) -> int:
        return int(self.data.shape[3] if self.is_numpy else self.data.shape[1])

    def restore(self, data: Any) -> Any:
        """``data`` (a 4-D batch in this batch's layout) in the form the caller passed in."""
        if self.single:
            data = data[0]
        if not self.had_channels:
            data = data[..., 0] if self.is_numpy else data[..., 0, :, :]
        if self.kind == "pil":
            return _to_pil(np.ascontiguousarray(data), self.pil_mode, self.pil_palette)
        return data


def describe(inpt: Any) -> str:
    """A short description of an input for error messages: type, shape and dtype."""
    if isinstance(inpt, np.ndarray):
        return f"numpy array of shape {inpt.shape} and dtype {inpt.dtype}"
    if isinstance(inpt, torch.Tensor):
        return f"tensor of shape {tuple(inpt.shape)} and dtype {inpt.dtype}"
    if isinstance(inpt, PIL.Image.Image):
        return f"PIL image of mode {inpt.mode} and size {inpt.size}"
    return f"an object of type {type(inpt).__name__}"


def as_batch(inpt: Any, transform: str) -> Batch:
    """Lift ``inpt`` to a 4-D batch; refuse ranks, dtypes and channel counts that are no image.

    An :class:`Undecoded` image is decoded whole here: only a crop can use it undecoded.
    """
    if isinstance(inpt, Undecoded):
        inpt = inpt.decode()
    if isinstance(inpt, PIL.Image.Image):
        arr = np.asarray(inpt)
        palette = inpt.getpalette() if inpt.mode in ("P", "PA") else None
        had_channels = arr.ndim == 3
        data = arr[None] if had_channels else arr[None, :, :, None]
        return Batch(data, "pil", True, had_channels, inpt.mode, palette)
    if isinstance(inpt, np.ndarray):
        if inpt.dtype not in _NUMPY_DTYPES:
            raise fail(transform, "a numeric image array (uint8, int or float)", describe(inpt))
        if inpt.ndim not in (2, 3, 4):
            raise fail(
                transform,
                "a numpy image HW or HWC, or a batch NHWC",
                describe(inpt),
                "numpy images are channels-last",
            )
        if inpt.ndim >= 3 and not 1 <= inpt.shape[-1] <= _MAX_NUMPY_CHANNELS:
            raise fail(
                transform,
                f"channels-last numpy images with 1 to {_MAX_NUMPY_CHANNELS} channels",
                f"{describe(inpt)} ({inpt.shape[-1]} channels)",
                "numpy images are HWC; pass a torch tensor for channels-first (CHW) data",
            )
        had_channels = inpt.ndim != 2
        data = (
            inpt[None, :, :, None] if inpt.ndim == 2 else (inpt[None] if inpt.ndim == 3 else inpt)
        )
        return Batch(data, "numpy", inpt.ndim != 4, had_channels)
    if isinstance(inpt, torch.Tensor):
        if inpt.dtype in (torch.bool,) or inpt.is_complex():
            raise fail(transform, "a numeric image tensor (uint8, int or float)", describe(inpt))
        if inpt.ndim not in (2, 3, 4):
            raise fail(
                transform,
                "a tensor image HW or CHW, or a batch NCHW",
                describe(inpt),
                "tensors are channels-first",
            )
        if inpt.ndim >= 3 and inpt.shape[-3] == 0:
            raise fail(transform, "at least one channel", describe(inpt))
        had_channels = inpt.ndim != 2
        tensor = inpt[None, None] if inpt.ndim == 2 else (inpt[None] if inpt.ndim == 3 else inpt)
        return Batch(tensor, "tensor", inpt.ndim != 4, had_channels)
    raise fail(transform, "a PIL image, a numpy array or a torch tensor", describe(inpt))


def _to_pil(arr: np.ndarray, mode: str | None, palette: Any) -> PIL.Image.Image:
    image = PIL.Image.fromarray(arr)
    if mode in ("P", "PA") and palette is not None:
        image.putpalette(palette)
    elif mode is not None and image.mode != mode:
        # fromarray infers RGB/RGBA/L from the shape; modes with the same layout but another
        # meaning (YCbCr, CMYK, LAB, I;16) are rebuilt from the raw bytes instead.
        image = PIL.Image.frombytes(mode, (arr.shape[1], arr.shape[0]), arr.tobytes())
    return image
