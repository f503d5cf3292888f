"""RandomCrop and CenterCrop: per-sample windows, optionally from a padded image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stoker import seeding
from stoker.transforms._base import (
    Transform,
    check_fill,
    parse_padding,
    parse_size,
    sample_keys,
)
from stoker.transforms._errors import fail
from stoker.transforms._image import as_batch
from stoker.transforms._indexing import PADDING_MODES, crop_batch

_TOP_STREAM = seeding.stream_id("RandomCrop.top")
_LEFT_STREAM = seeding.stream_id("RandomCrop.left")


@dataclass(frozen=True)
class CropParams:
    """Where each sample is cropped: offsets in the padded image, as torchvision's pad then crop.

    ``padding`` is (left, top, right, bottom); ``top``/``left`` hold one offset per sample.
    """

    top: npt.NDArray[np.int64]
    left: npt.NDArray[np.int64]
    height: int
    width: int
    padding: tuple[int, int, int, int]


class RandomCrop(Transform):
    """Crop a random ``size`` window, each sample its own offset (torchvision v2 semantics).

    ``padding`` is added on the borders first (1, 2 or 4 values as in torchvision);
    ``pad_if_needed`` pads further when the image is smaller than ``size``; ``padding_mode`` is
    ``constant`` (with ``fill``), ``edge``, ``reflect`` or ``symmetric``.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int | Sequence[int] | None = None,
        pad_if_needed: bool = False,
        fill: float | Sequence[float] = 0,
        padding_mode: str = "constant",
    ) -> None:
        self.size = parse_size(size, "RandomCrop")
        self.padding = parse_padding(padding, "RandomCrop")
        self.pad_if_needed = bool(pad_if_needed)
        self.fill = check_fill(fill, "RandomCrop")
        if padding_mode not in PADDING_MODES:
            raise fail("RandomCrop", f"`padding_mode` in {PADDING_MODES}", repr(padding_mode))
        self.padding_mode = padding_mode

    def make_params(self, keys: npt.NDArray[np.uint64], height: int, width: int) -> CropParams:
        """The crop of each sample whose key is in ``keys``, for images of ``height``×``width``."""
        left, top, right, bottom = self.padding
        padded_h, padded_w = height + top + bottom, width + left + right
        crop_h, crop_w = self.size
        if self.pad_if_needed:
            if padded_h < crop_h:
                extra = crop_h - padded_h
                top, bottom, padded_h = top + extra, bottom + extra, padded_h + 2 * extra
            if padded_w < crop_w:
                extra = crop_w - padded_w
                left, right, padded_w = left + extra, right + extra, padded_w + 2 * extra
        if padded_h < crop_h or padded_w < crop_w:
            padded = "padded " if any(self.padding) else ""
            raise fail(
                "RandomCrop",
                f"an image at least as large as the crop {(crop_h, crop_w)} (height, width)",
                f"{padded}image size {(padded_h, padded_w)}",
                "pass padding= or pad_if_needed=True, or a smaller size",
            )
        n = len(keys)
        tops = (
            seeding.integers(keys, _TOP_STREAM, 0, padded_h - crop_h + 1)
            if padded_h > crop_h
            else np.zeros(n, np.int64)
        )
        lefts = (
            seeding.integers(keys, _LEFT_STREAM, 0, padded_w - crop_w + 1)
            if padded_w > crop_w
            else np.zeros(n, np.int64)
        )
        return CropParams(tops, lefts, crop_h, crop_w, (left, top, right, bottom))

    def apply(self, inpt: Any, params: CropParams) -> Any:
        """Crop ``inpt`` (a sample or a batch) with given parameters, one set per sample."""
        batch = as_batch(inpt, "RandomCrop")
        if len(params.top) != batch.size:
            raise fail("RandomCrop", f"parameters for {batch.size} sample(s)", f"{len(params.top)}")
        return self._crop(batch, params)

    def __call__(self, inpt: Any) -> Any:
        batch = as_batch(inpt, "RandomCrop")
        return self._crop(batch, self.make_params(sample_keys(batch.size), *batch.hw))

    def _crop(self, batch: Any, params: CropParams) -> Any:
        out = crop_batch(
            batch.data,
            params.top,
            params.left,
            params.height,
            params.width,
            params.padding,
            self.fill,
            self.padding_mode,
        )
        return batch.restore(out)

    def _extra_repr(self) -> str:
        return (
            f"size={self.size}, padding={self.padding}, pad_if_needed={self.pad_if_needed}, "
            f"fill={self.fill}, padding_mode={self.padding_mode!r}"
        )


class CenterCrop(Transform):
    """Crop the centre ``size`` window, padding with zeros where the image is smaller."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = parse_size(size, "CenterCrop")

    def __call__(self, inpt: Any) -> Any:
        batch = as_batch(inpt, "CenterCrop")
        height, width = batch.hw
        crop_h, crop_w = self.size
        # torchvision pads (left, top) by floor(diff/2) then rounds the anchor half-to-even.
        pad_top = (crop_h - height) // 2 if crop_h > height else 0
        pad_left = (crop_w - width) // 2 if crop_w > width else 0
        padded_h = max(height, crop_h)
        padded_w = max(width, crop_w)
        top = round((padded_h - crop_h) / 2.0)
        left = round((padded_w - crop_w) / 2.0)
        n = batch.size
        padding = (pad_left, pad_top, padded_w - width - pad_left, padded_h - height - pad_top)
        out = crop_batch(
            batch.data, np.full(n, top), np.full(n, left), crop_h, crop_w, padding, 0, "constant"
        )
        return batch.restore(out)

    def _extra_repr(self) -> str:
        return f"size={self.size}"


__all__ = ["CenterCrop", "CropParams", "RandomCrop"]
