"""RandomHorizontalFlip: mirror each sample left-right with its own coin."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import PIL.Image

from stoker import seeding
from stoker.transforms import _opencv
from stoker.transforms._base import Transform, check_probability, sample_keys
from stoker.transforms._image import as_batch
from stoker.transforms._indexing import hflip_batch

_FLIP_STREAM = seeding.stream_id("RandomHorizontalFlip")


class RandomHorizontalFlip(Transform):
    """Flip with probability ``p``, decided per sample (torchvision v2: flip when ``rand < p``)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_probability(p, "RandomHorizontalFlip")

    def make_params(self, keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """Whether each sample whose key is in ``keys`` is flipped."""
        return seeding.uniform(keys, _FLIP_STREAM) < self.p

    def apply(self, inpt: Any, flips: npt.NDArray[np.bool_]) -> Any:
        batch = as_batch(inpt, "RandomHorizontalFlip")
        return batch.restore(hflip_batch(batch.data, np.asarray(flips, dtype=bool)))

    def __call__(self, inpt: Any) -> Any:
        if isinstance(inpt, PIL.Image.Image):  # one transpose, as torchvision's PIL hflip
            flip = seeding.uniform_one(int(sample_keys(1)[0]), _FLIP_STREAM) < self.p
            return inpt.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT) if flip else inpt
        if (
            isinstance(inpt, np.ndarray)
            and inpt.ndim == 3
            and inpt.dtype == np.uint8
            and inpt.shape[2] in (1, 3, 4)
            and _opencv.installed()
        ):  # one uint8 HWC array: one coin and one cv2.flip, no batch view or copy around it
            flip = seeding.uniform_one(int(sample_keys(1)[0]), _FLIP_STREAM) < self.p
            return _opencv.mirror(inpt) if flip else inpt
        batch = as_batch(inpt, "RandomHorizontalFlip")
        flips = self.make_params(sample_keys(batch.size))
        return batch.restore(hflip_batch(batch.data, flips))

    def _extra_repr(self) -> str:
        return f"p={self.p}"
