"""Decode image files as RGB (PIL images or uint8 HWC arrays), errors naming the file.

JPEGs go through ``simplejpeg`` (libjpeg-turbo, decoding with the GIL released) when it is
installed, straight into a numpy array; everything else, and every JPEG simplejpeg refuses
(CMYK, arithmetic coding, a damaged file), goes through Pillow, exactly as before. Both use
libjpeg-turbo's accurate integer IDCT and fancy upsampling, so the pixels are the same (tested).

Reduced-size decoding (``decode_size``) asks libjpeg for the image scaled by 1/2, 1/4 or 1/8 in
the DCT, the largest reduction that keeps both sides at least ``decode_size``. It is much less
work to decode, but the pixels are not those of a full decode followed by a resize: after a
``Resize((32, 32))`` of 375×500 photos they differ by 2-3 uint8 levels on average (see
``tests/datasets/test_decode.py`` for the bound that is tested). It is therefore opt-in.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from stoker.errors import DatasetError

try:  # optional: libjpeg-turbo without Pillow's per-image overhead (pip install stoker[jpeg])
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    simplejpeg = None

__all__ = [
    "IMAGE_TYPES",
    "check_image_type",
    "decode_bytes",
    "decode_image",
    "load_image",
    "open_rgb",
    "parse_decode_size",
    "read_image_file",
    "supports_batches",
]

IMAGE_TYPES = ("pil", "numpy")
"""What image datasets return: RGB PIL images (torchvision's choice) or RGB uint8 HWC arrays."""

JPEG_MAGIC = b"\xff\xd8\xff"
# libjpeg scales in the DCT by n/8; these are the reductions worth their pixel change.
_DCT_DENOMINATORS = (8, 4, 2)


def parse_decode_size(value: Any, owner: str) -> tuple[int, int] | None:
    """``decode_size`` as (height, width) or None; an int is a square."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(
        f"{owner}: `decode_size` must be None, a positive int or (height, width) of positive "
        f"ints (the smallest size the decoded image may have), got {value!r}"
    )


def dct_denominator(height: int, width: int, decode_size: tuple[int, int] | None) -> int:
    """The largest reduction 8, 4 or 2 keeping ``ceil(side / d)`` ≥ ``decode_size``, else 1."""
    if decode_size is None:
        return 1
    for d in _DCT_DENOMINATORS:
        if math.ceil(height / d) >= decode_size[0] and math.ceil(width / d) >= decode_size[1]:
            return d
    return 1


def _refused(name: str, exc: BaseException) -> DatasetError:
    return DatasetError(
        f"{name}: refused to decode the image ({type(exc).__name__}: {exc}); the file is "
        "corrupt or hostile, replace it or download the dataset again (for a genuinely "
        "huge image, raise PIL.Image.MAX_IMAGE_PIXELS)"
    )


def _corrupt(name: str, exc: BaseException) -> DatasetError:
    return DatasetError(
        f"{name}: cannot decode the image ({type(exc).__name__}: {exc}); the file is "
        "truncated or corrupt, replace it or download the dataset again"
    )


def _missing(name: str) -> DatasetError:
    return DatasetError(
        f"{name}: image file is missing; the dataset is incomplete, extract or download it again"
    )


def open_rgb(
    source: Path | bytes, decode_size: tuple[int, int] | None = None, *, name: str | None = None
) -> Image.Image:
    """Decode ``source`` fully with Pillow (so truncation is caught here, not in a transform).

    With ``decode_size``, a JPEG is decoded reduced in the DCT (``Image.draft``), see the module.
    ``name`` is what errors call the file (its path by default).
    """
    if name is None:
        name = str(source) if isinstance(source, Path) else "<image bytes>"
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
            if decode_size is not None and image.format == "JPEG":
                d = dct_denominator(image.height, image.width, decode_size)
                if d > 1:  # Pillow picks the largest power of two ≤ side // requested side
                    image.draft("RGB", (image.width // d, image.height // d))
            return image.convert("RGB")
    except FileNotFoundError as exc:
        raise _missing(name) from exc
    # Neither an OSError nor a ValueError: PIL's refusal of an image whose header declares more
    # pixels than Image.MAX_IMAGE_PIXELS (twice that for the error; the warning only counts
    # when warnings are turned into errors). A 60-byte PNG can declare 400 megapixels.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _refused(name, exc) from exc
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise _corrupt(name, exc) from exc


def _simplejpeg_rgb(
    data: bytes, decode_size: tuple[int, int] | None
) -> npt.NDArray[np.uint8] | None:
    """The JPEG ``data`` as RGB through simplejpeg, or None where Pillow must decide."""
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    # Pillow's decompression-bomb guard (error or warning) decides on huge images, and
    # colour spaces libjpeg cannot turn into RGB (CMYK, YCCK) take Pillow's conversion.
    limit = Image.MAX_IMAGE_PIXELS or math.inf
    if height * width > limit or colorspace not in ("Gray", "YCbCr", "RGB"):
        return None
    d = dct_denominator(height, width, decode_size)
    try:
        if d == 1:
            return simplejpeg.decode_jpeg(data, colorspace="RGB")  # type: ignore[no-any-return]
        return simplejpeg.decode_jpeg(  # type: ignore[no-any-return]
            data,
            colorspace="RGB",
            min_height=math.ceil(height / d),
            min_width=math.ceil(width / d),
        )
    except ValueError:  # damaged or unusual: Pillow gives the error (or the image) users know
        return None


def decode_image(
    source: str | Path | bytes, *, decode_size: int | tuple[int, int] | None = None
) -> npt.NDArray[np.uint8]:
    """An image file (or its bytes) as an RGB uint8 ``H×W×3`` array.

    JPEGs are decoded by simplejpeg (libjpeg-turbo, GIL released) when installed, other formats
    and unusual JPEGs by Pillow, converted as ``PIL.Image.convert("RGB")`` does. ``decode_size``
    (height, width) opts in to reduced-size JPEG decoding: 1/2, 1/4 or 1/8 scale, the smallest
    that keeps both sides at least that large (pixels differ from a full decode, see the module).
    Unreadable files raise :class:`~stoker.errors.DatasetError` naming the file.
    """
    size = parse_decode_size(decode_size, "decode_image")
    if isinstance(source, str | Path):
        path = Path(source)
        return decode_bytes(read_image_file(path), size, name=str(path))
    return decode_bytes(bytes(source), size)  # bytes, bytearray or memoryview


def read_image_file(path: Path) -> bytes:
    """The bytes of an image file; a missing or unreadable one raises a DatasetError naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise _missing(str(path)) from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the image file ({exc})") from exc


def decode_bytes(
    data: bytes, size: tuple[int, int] | None = None, *, name: str | None = None
) -> npt.NDArray[np.uint8]:
    """:func:`decode_image` of bytes already read; errors call the file ``name``."""
    if simplejpeg is not None and data[:3] == JPEG_MAGIC:
        decoded = _simplejpeg_rgb(data, size)
        if decoded is not None:
            return decoded
    image = open_rgb(data, size, name=name)
    return np.array(image)  # writable, as simplejpeg's (asarray of a PIL image is read-only)


def check_image_type(value: Any, owner: str) -> str:
    if value not in IMAGE_TYPES:
        raise ValueError(
            f"{owner}: `image_type` must be one of {IMAGE_TYPES} (RGB PIL images or RGB uint8 "
            f"HWC arrays), got {value!r}"
        )
    return str(value)


def load_image(path: Path, image_type: str, decode_size: tuple[int, int] | None) -> Any:
    """``path`` as an RGB PIL image or an RGB uint8 HWC array (``image_type``)."""
    if image_type == "numpy":
        return decode_image(path, decode_size=decode_size)
    return open_rgb(path, decode_size)


def supports_batches(transform: Any) -> bool:
    """Whether ``transform`` takes numpy HWC/NHWC uint8 arrays (stoker's batched transforms)."""
    return bool(getattr(transform, "supports_batches", False))
