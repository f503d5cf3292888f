"""JPEG files handed to a transform undecoded, so that it decodes only what it needs.

A ``RandomResizedCrop`` keeps on average about half of a photo, but a full decode reconstructs
every pixel. With the optional C module ``_cjpeg`` (libjpeg-turbo: rows above the window are
only entropy-decoded, columns beside it and rows below it not reconstructed at all) the
window of a 375×500 photo costs 1.19 ms instead of 1.46 ms for simplejpeg's full decode (one
thread, ``benchmarks/results/jpeg.md``). The pixels are the full decode's, tested
pixel for pixel; anything unusual takes the full decode, with its results and its errors:

- no ``_cjpeg`` (built only where libjpeg-turbo's headers were found), not a JPEG, a colour
  space without RGB (CMYK, YCCK), or more pixels than Pillow's decompression-bomb limit;
- a file that does not end with the JPEG end marker: truncated, or with trailing bytes, whose
  damage a window above it would not see;
- any error or warning of libjpeg while decoding the window.

``Resize(..., backend="opencv")`` asks for its box step instead (:meth:`UndecodedJpeg.box_means`):
the means of whole k×k boxes, summed row by row as libjpeg-turbo decodes, bit for bit OpenCV's
``INTER_AREA`` of the decoded image, with the same fallbacks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from stoker.datasets._images import JPEG_MAGIC, decode_bytes, load_image, read_image_file
from stoker.transforms import _opencv
from stoker.transforms._undecoded import Undecoded

try:  # optional C module: needs libjpeg-turbo's headers when stoker is built
    from stoker.datasets import _cjpeg  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _cjpeg = None

__all__ = ["UndecodedJpeg", "available", "load_for", "open_undecoded", "takes_undecoded"]

_END_MARKER = b"\xff\xd9"
_RGB_SPACES = frozenset({"Gray", "YCbCr", "RGB"})


def available() -> bool:
    """Whether windows can be decoded alone here (the C module was built)."""
    return _cjpeg is not None


class UndecodedJpeg(Undecoded):
    """A JPEG file's bytes and size, whose windows are decoded on demand (see the module)."""

    __slots__ = ("_height", "_width", "data", "name")

    def __init__(self, data: bytes, height: int, width: int, name: str) -> None:
        self.data, self._height, self._width, self.name = data, height, width, name

    @property
    def height(self) -> int:
        return self._height

    @property
    def width(self) -> int:
        return self._width

    def decode(self) -> npt.NDArray[np.uint8]:
        return decode_bytes(self.data, name=self.name)

    def window(self, top: int, left: int, height: int, width: int) -> npt.NDArray[np.uint8]:
        out = np.empty((height, width, 3), np.uint8)
        try:
            _cjpeg.decode_into(self.data, out, top, left, height, width)
        except ValueError:  # damaged or unusual: the full decode's image, or its error
            return self.decode()[top : top + height, left : left + width]
        return out

    def box_means(self, ky: int, kx: int) -> npt.NDArray[np.uint8]:
        out = np.empty((self._height // ky, self._width // kx, 3), np.uint8)
        try:
            _cjpeg.box_means_into(self.data, out, ky, kx)
        except ValueError:  # damaged or unusual: the full decode's image, or its error
            return _opencv.box_means(self.decode(), ky, kx)
        return out

    def __repr__(self) -> str:
        return f"UndecodedJpeg({self.name!r}, {self._height}x{self._width})"


def open_undecoded(path: Path) -> UndecodedJpeg | npt.NDArray[np.uint8]:
    """``path`` as an :class:`UndecodedJpeg` where windows decode alone, else decoded whole."""
    data = read_image_file(path)
    name = str(path)
    if _cjpeg is None or data[:3] != JPEG_MAGIC or not data.endswith(_END_MARKER):
        return decode_bytes(data, name=name)
    try:
        height, width, space = _cjpeg.header(data)
    except ValueError:
        return decode_bytes(data, name=name)
    limit = Image.MAX_IMAGE_PIXELS or math.inf
    if space not in _RGB_SPACES or height * width > limit or min(height, width) == 0:
        return decode_bytes(data, name=name)
    return UndecodedJpeg(data, height, width, name)


def takes_undecoded(transform: Any, image_type: str, decode_size: tuple[int, int] | None) -> bool:
    """Whether a dataset of ``image_type`` arrays hands ``transform`` undecoded JPEGs.

    It does when the transform says it ``accepts_undecoded`` (its first step decodes less: a
    crop's window, the OpenCV resize's box means), the images are arrays, no reduced-size
    decoding was asked for, and the C module is built.
    """
    return (
        image_type == "numpy"
        and decode_size is None
        and bool(getattr(transform, "accepts_undecoded", False))
        and _cjpeg is not None
    )


def load_for(
    transform: Any, path: Path, image_type: str, decode_size: tuple[int, int] | None
) -> Any:
    """``path`` as ``transform`` takes it best: undecoded (:func:`takes_undecoded`) or loaded."""
    if takes_undecoded(transform, image_type, decode_size):
        return open_undecoded(path)
    return load_image(path, image_type, decode_size)
