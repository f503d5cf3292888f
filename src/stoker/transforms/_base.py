"""Transform: the base of every stoker transform, and the argument parsing they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from stoker import seeding
from stoker.transforms._errors import fail


class Transform:
    """A callable on images: a PIL image, a numpy HWC array / NHWC batch or a CHW / NCHW tensor.

    ``supports_batches`` is true when the transform accepts a 4-D batch and treats it as that
    many samples (random transforms draw parameters per sample). Datasets read it to decide
    whether to apply a transform once to a whole gathered batch instead of once per sample.
    """

    supports_batches: ClassVar[bool] = True

    def __call__(self, inpt: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    def _extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._extra_repr()})"


def sample_keys(n: int) -> npt.NDArray[np.uint64]:
    """One key per sample of the current fetch (see :mod:`stoker.seeding`)."""
    return seeding.current_keys(n)


def parse_size(
    size: int | Sequence[int], transform: str, argument: str = "size"
) -> tuple[int, int]:
    """``size`` as (height, width): an int, or a sequence of one or two positive ints."""
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        values = [int(size), int(size)]
    elif (
        isinstance(size, Sequence)
        and len(size) in (1, 2)
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in size)
    ):
        values = [int(size[0]), int(size[-1])]
    else:
        raise fail(
            transform, f"`{argument}` as an int or a sequence of one or two ints", repr(size)
        )
    if min(values) <= 0:
        raise fail(transform, f"a positive `{argument}`", repr(size))
    return values[0], values[1]


def parse_padding(padding: int | Sequence[int] | None, transform: str) -> tuple[int, int, int, int]:
    """``padding`` as (left, top, right, bottom), torchvision's reading of 1, 2 or 4 values."""
    if padding is None:
        return (0, 0, 0, 0)
    if isinstance(padding, int | np.integer) and not isinstance(padding, bool):
        values = [int(padding)]
    elif (
        isinstance(padding, Sequence)
        and len(padding) in (1, 2, 4)
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in padding)
    ):
        values = [int(v) for v in padding]
    else:
        raise fail(transform, "`padding` as an int or a sequence of 1, 2 or 4 ints", repr(padding))
    if min(values) < 0:
        raise fail(transform, "non-negative `padding`", repr(padding))
    if len(values) == 1:
        return (values[0],) * 4  # type: ignore[return-value]
    if len(values) == 2:
        return (values[0], values[1], values[0], values[1])
    return (values[0], values[1], values[2], values[3])


def check_probability(p: float, transform: str) -> float:
    if not isinstance(p, int | float) or not 0.0 <= float(p) <= 1.0:
        raise fail(transform, "a probability `p` in [0, 1]", repr(p))
    return float(p)


def check_fill(fill: Any, transform: str) -> float | tuple[float, ...]:
    if isinstance(fill, int | float) and not isinstance(fill, bool):
        return float(fill) if isinstance(fill, float) else fill
    if isinstance(fill, Sequence) and fill and all(isinstance(v, int | float) for v in fill):
        return tuple(fill)
    raise fail(
        transform, "`fill` as a number or a sequence of numbers (one per channel)", repr(fill)
    )
