"""Undecoded: an image file not decoded yet, so a crop or a resize can decode less of it."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import numpy.typing as npt


class Undecoded(ABC):
    """An image whose size is known (from its header) and whose pixels are decoded on demand.

    Datasets hand one to transforms that declare ``accepts_undecoded`` (stoker's
    :class:`~stoker.transforms.RandomResizedCrop`, ``Resize(..., backend="opencv")``, or a
    :class:`~stoker.transforms.Compose` that starts with one): the crop draws its window from
    :attr:`height` and :attr:`width` and asks for that window alone; the OpenCV resize asks for
    the box means of its first step. Every other transform sees :meth:`decode`'s RGB array.
    """

    __slots__ = ()

    @property
    @abstractmethod
    def height(self) -> int:
        """Rows of the decoded image."""

    @property
    @abstractmethod
    def width(self) -> int:
        """Columns of the decoded image."""

    @abstractmethod
    def decode(self) -> npt.NDArray[np.uint8]:
        """The whole image as an RGB uint8 ``H×W×3`` array."""

    @abstractmethod
    def window(self, top: int, left: int, height: int, width: int) -> npt.NDArray[np.uint8]:
        """``decode()[top:top + height, left:left + width]``, decoding as little as it can."""

    @abstractmethod
    def box_means(self, ky: int, kx: int) -> npt.NDArray[np.uint8]:
        """The means of the whole ``ky``×``kx`` boxes of :meth:`decode`, as OpenCV's
        integer-factor ``INTER_AREA`` gives them (the opt-in OpenCV resize's first step)."""
