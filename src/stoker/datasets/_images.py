"""Open image files as RGB PIL images, turning decoder failures into errors naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from stoker.errors import DatasetError

__all__ = ["open_rgb", "supports_batches"]


def open_rgb(path: Path) -> Image.Image:
    """Decode ``path`` fully (so truncation is caught here, not in a transform) as RGB."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError as exc:
        raise DatasetError(
            f"{path}: image file is missing; the dataset is incomplete, extract or download "
            "it again"
        ) from exc
    # Neither an OSError nor a ValueError: PIL's refusal of an image whose header declares more
    # pixels than Image.MAX_IMAGE_PIXELS (twice that for the error; the warning only counts
    # when warnings are turned into errors). A 60-byte PNG can declare 400 megapixels.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(
            f"{path}: refused to decode the image ({type(exc).__name__}: {exc}); the file is "
            "corrupt or hostile, replace it or download the dataset again (for a genuinely "
            "huge image, raise PIL.Image.MAX_IMAGE_PIXELS)"
        ) from exc
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"{path}: cannot decode the image ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt, replace it or download the dataset again"
        ) from exc


def supports_batches(transform: Any) -> bool:
    """Whether ``transform`` takes numpy HWC/NHWC uint8 arrays (stoker's batched transforms)."""
    return bool(getattr(transform, "supports_batches", False))
