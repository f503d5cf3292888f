"""Normalize per channel, and denormalize for display."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import PIL.Image
import torch

from stoker.transforms._base import Transform
from stoker.transforms._errors import fail
from stoker.transforms._image import as_batch, describe


def _per_channel(values: float | Sequence[float], name: str, transform: str) -> tuple[float, ...]:
    if isinstance(values, int | float) and not isinstance(values, bool):
        return (float(values),)
    if isinstance(values, Sequence | np.ndarray | torch.Tensor) and len(values) > 0:
        return tuple(float(v) for v in values)
    raise fail(
        transform, f"`{name}` as a number or a sequence with one value per channel", repr(values)
    )


class Normalize(Transform):
    """``(x - mean) / std`` per channel on float images, as torchvision v2 computes it."""

    def __init__(
        self, mean: float | Sequence[float], std: float | Sequence[float], inplace: bool = False
    ) -> None:
        self.mean = _per_channel(mean, "mean", "Normalize")
        self.std = _per_channel(std, "std", "Normalize")
        if not all(self.std):
            raise fail("Normalize", "a non-zero `std` for every channel", repr(std))
        self.inplace = bool(inplace)

    def channels_ok(self, channels: int) -> bool:
        return all(len(v) in (1, channels) for v in (self.mean, self.std))

    def __call__(self, inpt: Any) -> Any:
        if isinstance(inpt, PIL.Image.Image):
            raise fail(
                "Normalize",
                "a float tensor",
                describe(inpt),
                "apply ToImage() and ToDtype(torch.float32, scale=True) first",
            )
        batch = as_batch(inpt, "Normalize")
        data = batch.data
        is_float = (
            data.is_floating_point()
            if isinstance(data, torch.Tensor)
            else np.issubdtype(data.dtype, np.floating)
        )
        if not is_float:
            raise fail(
                "Normalize",
                "a floating-point image",
                describe(inpt),
                "apply ToDtype(torch.float32, scale=True) first",
            )
        if not batch.had_channels or not self.channels_ok(batch.channels):
            channels = batch.channels if batch.had_channels else "no channel axis"
            raise fail(
                "Normalize",
                f"an image with {max(len(self.mean), len(self.std))} channel(s) "
                "(channels-first for tensors, channels-last for numpy)",
                f"{describe(inpt)} ({channels})",
            )
        if batch.is_numpy:
            image = torch.from_numpy(inpt if self.inplace else np.array(inpt))
            mean, std = self._constants(image, channels_last=True)
            return image.sub_(mean).div_(std).numpy()
        mean, std = self._constants(inpt, channels_last=False)
        image = inpt.sub_(mean) if self.inplace else inpt.sub(mean)
        return image.div_(std)

    def _constants(
        self, like: torch.Tensor, channels_last: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1,) if channels_last else (-1, 1, 1)
        mean = torch.as_tensor(self.mean, dtype=like.dtype, device=like.device).view(shape)
        std = torch.as_tensor(self.std, dtype=like.dtype, device=like.device).view(shape)
        return mean, std

    def _extra_repr(self) -> str:
        return f"mean={list(self.mean)}, std={list(self.std)}, inplace={self.inplace}"


def denormalize(
    image: torch.Tensor | npt.NDArray[Any],
    mean: float | Sequence[float],
    std: float | Sequence[float],
) -> npt.NDArray[np.float32]:
    """Undo :class:`Normalize` for display: ``x * std + mean`` clipped to [0, 1].

    Takes a CHW / NCHW tensor (or a channels-last numpy HWC / NHWC array) and returns a numpy
    float32 HWC / NHWC array, ready for ``matplotlib.pyplot.imshow``.
    """
    mean_t = _per_channel(mean, "mean", "denormalize")
    std_t = _per_channel(std, "std", "denormalize")
    batch = as_batch(image, "denormalize")
    data = batch.data
    if isinstance(data, torch.Tensor):
        data = data.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()
    data = np.asarray(data, dtype=np.float32)
    channels = data.shape[-1]
    if not all(len(v) in (1, channels) for v in (mean_t, std_t)):
        raise fail("denormalize", f"{len(mean_t)} channel(s) as in mean/std", describe(image))
    out = data * np.asarray(std_t, np.float32) + np.asarray(mean_t, np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return out[0] if batch.single else out
