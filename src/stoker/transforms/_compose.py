"""Compose: transforms in sequence, with the seed's CIFAR train pipeline fused into one pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import PIL.Image
import torch

from stoker.transforms._base import Transform, sample_keys
from stoker.transforms._convert import ToDtype, ToImage
from stoker.transforms._crop import CropParams, RandomCrop
from stoker.transforms._device import fused_on_tensor
from stoker.transforms._flip import RandomHorizontalFlip
from stoker.transforms._fused import fused_pipeline
from stoker.transforms._normalize import Normalize
from stoker.transforms._rows import Rows

_FLOATS = (torch.float16, torch.float32, torch.float64)


class _FusedRun(Transform):
    """``[RandomCrop] [RandomHorizontalFlip] ToImage ToDtype(float, scale=True) [Normalize]``.

    Applies the members one by one unless the input is a uint8 numpy image or NHWC batch (or
    an RGB PIL image, read as one), which takes the one-pass path in
    :mod:`stoker.transforms._fused`, or a uint8 tensor on any device, which takes the gather in
    :mod:`stoker.transforms._device` (equal results every way).
    """

    def __init__(
        self,
        crop: RandomCrop | None,
        flip: RandomHorizontalFlip | None,
        members: list[Callable[[Any], Any]],
        to_dtype: ToDtype,
        normalize: Normalize | None,
    ) -> None:
        self.crop, self.flip, self.to_dtype, self.normalize = crop, flip, to_dtype, normalize
        self.members = members

    def draw(
        self, n: int, height: int, width: int
    ) -> tuple[CropParams | None, npt.NDArray[np.bool_] | None]:
        """The crop and flip of each of the ``n`` samples being loaded (``height``×``width``).

        The one place the fused run draws: the CPU pass and the device paths
        (:mod:`stoker.transforms._device`) all ask here, so they crop and flip alike.
        """
        if self.crop is None and self.flip is None:
            return None, None
        keys = sample_keys(n)
        params = self.crop.make_params(keys, height, width) if self.crop is not None else None
        flips = self.flip.make_params(keys) if self.flip is not None else None
        return params, flips

    def fusable(self, inpt: Any) -> bool:
        if isinstance(inpt, PIL.Image.Image):  # RGB: its pixels are an HWC uint8 array
            return inpt.mode == "RGB" and (self.normalize is None or self.normalize.channels_ok(3))
        if not (
            isinstance(inpt, np.ndarray | Rows) and inpt.dtype == np.uint8 and inpt.ndim in (3, 4)
        ):
            return False
        channels = inpt.shape[-1]
        return 1 <= channels <= 4 and (
            self.normalize is None or self.normalize.channels_ok(channels)
        )

    def fusable_tensor(self, inpt: Any) -> bool:
        """A uint8 CHW image or NCHW batch, on any device: the device pass takes it."""
        if not (
            isinstance(inpt, torch.Tensor) and inpt.dtype == torch.uint8 and inpt.ndim in (3, 4)
        ):
            return False
        channels = inpt.shape[-3]
        return 1 <= channels <= 4 and (
            self.normalize is None or self.normalize.channels_ok(channels)
        )

    def __call__(self, inpt: Any) -> Any:
        if self.fusable_tensor(inpt):
            return self._on_tensor(inpt)
        if not self.fusable(inpt):
            if isinstance(inpt, Rows):
                inpt = np.asarray(inpt)
            for member in self.members:
                inpt = member(inpt)
            return inpt
        if isinstance(inpt, PIL.Image.Image):
            inpt = np.asarray(inpt)  # read-only view of Pillow's pixels; the pass only reads
        batch = inpt if inpt.ndim == 4 else inpt[None]
        n, h, w, _ = batch.shape
        params, flips = self.draw(n, h, w)
        out = fused_pipeline(
            batch,
            params,
            self.crop.fill if self.crop is not None else 0,
            self.crop.padding_mode if self.crop is not None else "constant",
            flips,
            self.to_dtype.dtype,
            self.normalize.mean if self.normalize is not None else None,
            self.normalize.std if self.normalize is not None else None,
        )
        return out if inpt.ndim == 4 else out[0]

    def _on_tensor(self, inpt: torch.Tensor) -> torch.Tensor:
        """A uint8 tensor (on a GPU, say) through the device pass: same draws, same values."""
        batch = inpt if inpt.ndim == 4 else inpt[None]
        n, _, h, w = batch.shape
        params, flips = self.draw(n, h, w)
        out = fused_on_tensor(
            batch,
            params,
            flips,
            self.crop.fill if self.crop is not None else 0,
            self.crop.padding_mode if self.crop is not None else "constant",
            self.to_dtype.dtype,
            self.normalize.mean if self.normalize is not None else None,
            self.normalize.std if self.normalize is not None else None,
        )
        return out if inpt.ndim == 4 else out[0]


def _fuse(transforms: list[Callable[[Any], Any]]) -> list[Callable[[Any], Any]]:
    """``transforms`` with every fusable run replaced by one :class:`_FusedRun`."""
    plan: list[Callable[[Any], Any]] = []
    i = 0
    while i < len(transforms):
        j = i
        crop = flip = None
        if isinstance(transforms[j], RandomCrop):
            crop = transforms[j]
            j += 1
        if j < len(transforms) and isinstance(transforms[j], RandomHorizontalFlip):
            flip = transforms[j]
            j += 1
        to_dtype = transforms[j + 1] if j + 1 < len(transforms) else None
        if (
            j + 1 < len(transforms)
            and type(transforms[j]) is ToImage
            and type(to_dtype) is ToDtype
            and to_dtype.scale
            and to_dtype.dtype in _FLOATS
        ):
            j += 2
            normalize = None
            if j < len(transforms) and type(transforms[j]) is Normalize:
                normalize = transforms[j]
                j += 1
            assert isinstance(to_dtype, ToDtype)
            members = transforms[i:j]
            plan.append(_FusedRun(crop, flip, members, to_dtype, normalize))  # type: ignore[arg-type]
            i = j
        else:
            plan.append(transforms[i])
            i += 1
    return plan


class Compose(Transform):
    """Apply ``transforms`` in order. Batch-capable exactly when every member is.

    A run ``[RandomCrop] [RandomHorizontalFlip] ToImage ToDtype(float, scale=True) [Normalize]``
    on uint8 numpy input takes a fused one-pass path with identical results; pass
    ``fuse=False`` to always run the members one at a time.
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]], fuse: bool = True) -> None:
        self.transforms = list(transforms)
        for position, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(
                    f"Compose: expected callables, got {type(t).__name__} at position {position}"
                )
        self.fuse = bool(fuse)
        self._plan = _fuse(self.transforms) if self.fuse else list(self.transforms)

    @property  # type: ignore[misc]
    def supports_batches(self) -> bool:  # type: ignore[override]
        return all(getattr(t, "supports_batches", False) for t in self.transforms)

    @property
    def accepts_rows(self) -> bool:
        """Whether a :class:`Rows` batch may be passed in (read in place by the fused pass)."""
        return bool(self._plan) and isinstance(self._plan[0], _FusedRun)

    @property
    def accepts_undecoded(self) -> bool:
        """Whether an :class:`Undecoded` image may be passed in (its first step crops it)."""
        return bool(self.transforms) and bool(
            getattr(self.transforms[0], "accepts_undecoded", False)
        )

    def __call__(self, inpt: Any) -> Any:
        if isinstance(inpt, Rows) and not self.accepts_rows:
            inpt = np.asarray(inpt)
        for step in self._plan:
            inpt = step(inpt)
        return inpt

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"
