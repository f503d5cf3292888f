"""Rows: a batch that is still "these images of that array", gathered by whoever reads it."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class Rows:
    """The images ``data[indices]`` of an NHWC uint8 array, not yet copied out.

    Datasets that hold all their images in one array (CIFAR) hand this to transforms that
    declare ``accepts_rows``: the fused pipeline then reads each image straight from ``data``
    in its one pass, instead of a gather copying the batch first. Anything else gets the
    gathered batch from ``numpy.asarray(rows)``.
    """

    __slots__ = ("data", "indices")

    def __init__(self, data: npt.NDArray[Any], indices: npt.ArrayLike):
        self.data = data
        self.indices = np.ascontiguousarray(indices, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.indices), *self.data.shape[1:])

    @property
    def ndim(self) -> int:
        return int(self.data.ndim)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    def __len__(self) -> int:
        return len(self.indices)

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[Any]:
        gathered = self.data[self.indices]
        return gathered if dtype is None else gathered.astype(dtype)
