"""Resize and RandomResizedCrop: Pillow for PIL and uint8 arrays, interpolate for tensors.

Two opt-in backends resample uint8 arrays faster: ``backend="opencv"`` (4-10× less CPU, a few
uint8 levels from torchvision, see :mod:`stoker.transforms._opencv`) and ``backend="torch"``
(torch's ``interpolate``, the kernel torchvision v2 runs on uint8 tensors: its pixels exactly,
at most 1 level from its PIL path on the tested photos; 0.27 ms against 1.02 ms for Pillow on
the array, a 375×500 → 32×32 resize on one thread: benchmarks/results/jpeg.md).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import PIL.Image
import torch
import torch.nn.functional as F

from stoker import seeding
from stoker.transforms import _opencv
from stoker.transforms._base import Transform, parse_size, sample_keys
from stoker.transforms._errors import fail
from stoker.transforms._image import Batch, as_batch
from stoker.transforms._undecoded import Undecoded

_MODES = ("nearest", "bilinear", "bicubic")
_PIL_FILTERS = {
    "nearest": PIL.Image.Resampling.NEAREST,
    "bilinear": PIL.Image.Resampling.BILINEAR,
    "bicubic": PIL.Image.Resampling.BICUBIC,
}
# torchvision tries this many (area, aspect) draws before falling back to a centre crop.
_ATTEMPTS = 10
_SCALE_STREAMS = [seeding.stream_id(f"RandomResizedCrop.scale.{i}") for i in range(_ATTEMPTS)]
_RATIO_STREAMS = [seeding.stream_id(f"RandomResizedCrop.ratio.{i}") for i in range(_ATTEMPTS)]
_ATTEMPT_MIXES = seeding.stream_mixes([*_SCALE_STREAMS, *_RATIO_STREAMS])
_TOP_STREAM = seeding.stream_id("RandomResizedCrop.top")
_LEFT_STREAM = seeding.stream_id("RandomResizedCrop.left")


def _interpolation(value: Any, transform: str) -> str:
    mode = getattr(value, "value", value)  # torchvision's InterpolationMode is a str enum
    if mode not in _MODES:
        raise fail(transform, f"`interpolation` in {_MODES}", repr(value))
    return str(mode)


def _output_size(
    hw: tuple[int, int], size: list[int] | None, max_size: int | None
) -> tuple[int, int]:
    """torchvision's rule: one int sets the shorter edge (aspect kept), two set (h, w)."""
    h, w = hw
    if size is not None and len(size) == 2:
        return size[0], size[1]
    short, long = (w, h) if w <= h else (h, w)
    if size is None:
        assert max_size is not None
        new_short, new_long = int(max_size * short / long), max_size
    else:
        new_short, new_long = size[0], int(size[0] * long / short)
        if max_size is not None and new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)


def _native_uint8(mode: str) -> bool:
    if mode == "bilinear":
        return torch.backends.cpu.get_cpu_capability() in (
            "AVX2",
            "AVX512",
        ) or platform.machine() in (
            "aarch64",
            "arm64",
        )
    return mode == "bicubic"


def resize_tensor(
    image: torch.Tensor, hw: tuple[int, int], mode: str, antialias: bool
) -> torch.Tensor:
    """NCHW ``image`` resized to ``hw`` with ``interpolate``, casting as torchvision v2 does."""
    if tuple(image.shape[-2:]) == hw:
        return image
    if image.numel() == 0:
        return image.new_empty((*image.shape[:-2], *hw))
    antialias = antialias and mode != "nearest"
    dtype = image.dtype
    ok = [torch.float32, torch.float64]
    if mode == "nearest" or (image.device.type == "cpu" and _native_uint8(mode)):
        ok.append(torch.uint8)
    work = image if dtype in ok else image.to(torch.float32)
    if image.shape[0] == 1 and work.is_contiguous(memory_format=torch.channels_last):
        # interpolate allocates a contiguous output for 1×C×H×W channels-last input (torch
        # issue 68430); torchvision restrides so uint8 bilinear stays channels-last. Same here.
        strides = list(work.stride())
        strides[0] = work.numel()
        work = work.as_strided(tuple(work.shape), strides)
    out = F.interpolate(
        work,
        size=list(hw),
        mode=mode,
        align_corners=None if mode == "nearest" else False,
        antialias=antialias,
    )
    if work.dtype != dtype:
        if mode == "bicubic" and dtype == torch.uint8:
            out = out.clamp_(0, 255)
        if not dtype.is_floating_point:
            out = out.round_()
        out = out.to(dtype)
    return out


def resize_batch(
    batch: Batch, data: Any, hw: tuple[int, int], mode: str, antialias: bool, backend: str = "exact"
) -> Any:
    """Resize a 4-D batch in ``batch``'s layout: Pillow or OpenCV for uint8 arrays, else torch."""
    if isinstance(data, torch.Tensor):
        return resize_tensor(data, hw, mode, antialias)
    if data.shape[1:3] == hw:
        return data
    if backend == "opencv" and data.dtype == np.uint8:
        out = np.empty((data.shape[0], *hw, data.shape[3]), np.uint8)
        for i, image in enumerate(data):
            out[i] = _opencv.resize(image, hw)
        return out
    if backend == "torch" and data.dtype == np.uint8:
        return np.concatenate([resize_with_torch(image, hw, mode, antialias) for image in data])
    if data.dtype == np.uint8 and data.shape[3] in (1, 2, 3, 4):
        out = np.empty((data.shape[0], *hw, data.shape[3]), np.uint8)
        for i, image in enumerate(data):  # Pillow resizes one image at a time
            pil = PIL.Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
            resized = np.asarray(pil.resize((hw[1], hw[0]), resample=_PIL_FILTERS[mode]))
            out[i] = resized.reshape(out.shape[1:])
        return out
    tensor = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2)
    return resize_tensor(tensor, hw, mode, antialias).permute(0, 2, 3, 1).numpy()


def resize_with_torch(
    image: npt.NDArray[np.uint8], hw: tuple[int, int], mode: str, antialias: bool
) -> npt.NDArray[np.uint8]:
    """One uint8 HWC ``image`` (a view is fine) resampled as torchvision v2 resamples a tensor.

    The array is seen as a channels-last 1×C×H×W tensor without a copy, so ``interpolate``
    takes its native uint8 kernel (AVX2) and returns channels-last: the NHWC result is a view.
    Returns a 1×h×w×C array.
    """
    source = np.ascontiguousarray(image)
    if not source.flags.writeable:  # np.asarray(pil_image): from_numpy would warn on it
        source = source.copy()
    tensor = torch.from_numpy(source).permute(2, 0, 1)[None]
    return resize_tensor(tensor, hw, mode, antialias).permute(0, 2, 3, 1).numpy()


class Resize(Transform):
    """Resize to ``size``: an int sets the shorter edge, (h, w) sets both (torchvision v2).

    ``backend="opencv"`` resamples uint8 numpy arrays with OpenCV (bilinear only; PIL images
    and tensors keep the exact path): several times faster, a few uint8 levels from torchvision.
    ``backend="torch"`` resamples them with torchvision v2's tensor kernel: its pixels exactly,
    at most a level from its PIL path, about 4× faster than Pillow.
    """

    def __init__(
        self,
        size: int | Sequence[int] | None,
        interpolation: Any = "bilinear",
        max_size: int | None = None,
        antialias: bool = True,
        backend: str = "exact",
    ) -> None:
        if size is None:
            if not isinstance(max_size, int):
                raise fail("Resize", "an int `max_size` when `size` is None", repr(max_size))
            self.size: list[int] | None = None
        elif isinstance(size, int):
            self.size = [parse_size(size, "Resize")[0]]
        else:
            if not isinstance(size, Sequence) or len(size) not in (1, 2):
                raise fail(
                    "Resize", "`size` as an int or a sequence of one or two ints", repr(size)
                )
            parsed = parse_size(size, "Resize")
            self.size = [parsed[0]] if len(size) == 1 else list(parsed)
        if max_size is not None and self.size is not None:
            if len(self.size) != 1:
                raise fail("Resize", "`max_size` only with a single-int `size`", repr(size))
            if max_size <= self.size[0]:
                raise fail("Resize", f"`max_size` greater than size {self.size[0]}", repr(max_size))
        self.max_size = max_size
        self.interpolation = _interpolation(interpolation, "Resize")
        self.antialias = bool(antialias)
        self.backend = _opencv.check_backend(backend, self.interpolation, "Resize")

    @property
    def accepts_undecoded(self) -> bool:
        """With OpenCV, an :class:`Undecoded` JPEG is box-averaged as it is decoded (same bits)."""
        return self.backend == "opencv"

    def __call__(self, inpt: Any) -> Any:
        if isinstance(inpt, Undecoded) and self.backend == "opencv":
            hw = _output_size((inpt.height, inpt.width), self.size, self.max_size)
            return _opencv.resize_undecoded(inpt, hw)
        if isinstance(inpt, PIL.Image.Image):  # PIL reports its size: no array needed
            width, height = inpt.size
            hw = _output_size((height, width), self.size, self.max_size)
            if hw == (height, width):
                return inpt
            return inpt.resize((hw[1], hw[0]), resample=_PIL_FILTERS[self.interpolation])
        batch = as_batch(inpt, "Resize")
        hw = _output_size(batch.hw, self.size, self.max_size)
        return batch.restore(
            resize_batch(batch, batch.data, hw, self.interpolation, self.antialias, self.backend)
        )

    def _extra_repr(self) -> str:
        return (
            f"size={self.size}, interpolation={self.interpolation!r}, max_size={self.max_size}, "
            f"antialias={self.antialias}{_backend_repr(self.backend)}"
        )


class RandomResizedCrop(Transform):
    """Crop a random area and aspect ratio, then resize to ``size`` (torchvision v2 semantics).

    Parameters are drawn for the whole batch at once; the resampling then runs per sample,
    because every sample's crop has its own size. One PIL image or one HWC array takes a
    per-sample path (:meth:`make_params_one`) that draws the very same parameters.

    ``backend="opencv"`` resamples uint8 numpy arrays with OpenCV from the same windows
    (bilinear only; PIL images and tensors keep the exact path): ~0.23 ms instead of ~1.2 ms a
    375×500 sample, a few uint8 levels from torchvision (measured in docs/transforms.md).
    ``backend="torch"`` resamples them as torchvision v2 resamples a uint8 tensor crop.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: Any = "bilinear",
        antialias: bool = True,
        backend: str = "exact",
    ) -> None:
        self.size = parse_size(size, "RandomResizedCrop")
        if not (isinstance(scale, Sequence) and len(scale) == 2 and 0 < scale[0] <= scale[1]):
            raise fail(
                "RandomResizedCrop", "`scale` as (min, max) with 0 < min <= max", repr(scale)
            )
        if not (isinstance(ratio, Sequence) and len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
            raise fail(
                "RandomResizedCrop", "`ratio` as (min, max) with 0 < min <= max", repr(ratio)
            )
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = _interpolation(interpolation, "RandomResizedCrop")
        self.antialias = bool(antialias)
        self.backend = _opencv.check_backend(backend, self.interpolation, "RandomResizedCrop")

    def make_params(
        self, keys: npt.NDArray[np.uint64], height: int, width: int
    ) -> tuple[npt.NDArray[np.int64], ...]:
        """(top, left, crop height, crop width) per sample, all attempts drawn vectorised."""
        n = len(keys)
        area = float(height * width)
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        chosen = np.full(n, -1)
        crop_h = np.zeros(n, np.int64)
        crop_w = np.zeros(n, np.int64)
        for attempt in range(_ATTEMPTS):  # a loop over attempts, each over the whole batch
            u_area = seeding.uniform(keys, _SCALE_STREAMS[attempt])
            u_ratio = seeding.uniform(keys, _RATIO_STREAMS[attempt])
            target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * u_area)
            aspect = np.exp(log_lo + (log_hi - log_lo) * u_ratio)
            w = np.rint(np.sqrt(target * aspect)).astype(np.int64)
            h = np.rint(np.sqrt(target / aspect)).astype(np.int64)
            fits = (chosen < 0) & (w > 0) & (w <= width) & (h > 0) & (h <= height)
            chosen[fits] = attempt
            crop_h[fits], crop_w[fits] = h[fits], w[fits]
        fallback = chosen < 0
        if fallback.any():
            in_ratio = width / height
            if in_ratio < self.ratio[0]:
                fw, fh = width, round(width / self.ratio[0])
            elif in_ratio > self.ratio[1]:
                fh, fw = height, round(height * self.ratio[1])
            else:
                fw, fh = width, height
            crop_h[fallback], crop_w[fallback] = fh, fw
        safe_h = np.maximum(crop_h, 1)
        safe_w = np.maximum(crop_w, 1)
        top = seeding.integers(keys, _TOP_STREAM, 0, height - safe_h + 1)
        left = seeding.integers(keys, _LEFT_STREAM, 0, width - safe_w + 1)
        top[fallback] = (height - crop_h[fallback]) // 2
        left[fallback] = (width - crop_w[fallback]) // 2
        return top, left, crop_h, crop_w

    def make_params_one(self, key: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``make_params([key], height, width)`` for one sample, as four ints, equal bit for bit.

        The ten attempts are one length-10 numpy computation instead of ten over the batch
        (0.28 ms → ~0.02 ms a sample); the float operations are the same, in the same order.
        """
        u = seeding.uniform_streams(key, _ATTEMPT_MIXES)
        u_area, u_ratio = u[:_ATTEMPTS], u[_ATTEMPTS:]
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        target = float(height * width) * (self.scale[0] + (self.scale[1] - self.scale[0]) * u_area)
        aspect = np.exp(log_lo + (log_hi - log_lo) * u_ratio)
        ws = np.rint(np.sqrt(target * aspect)).astype(np.int64).tolist()
        hs = np.rint(np.sqrt(target / aspect)).astype(np.int64).tolist()
        for w, h in zip(ws, hs, strict=True):
            if 0 < w <= width and 0 < h <= height:
                top = seeding.integer_one(key, _TOP_STREAM, 0, height - h + 1)
                left = seeding.integer_one(key, _LEFT_STREAM, 0, width - w + 1)
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def apply(self, inpt: Any, params: tuple[npt.NDArray[np.int64], ...]) -> Any:
        batch = as_batch(inpt, "RandomResizedCrop")
        top, left, crop_h, crop_w = params
        if batch.kind == "pil":
            t, lf, h, w = int(top[0]), int(left[0]), int(crop_h[0]), int(crop_w[0])
            cropped = inpt.crop((lf, t, lf + w, t + h))
            return cropped.resize((self.size[1], self.size[0]), _PIL_FILTERS[self.interpolation])
        outs = []
        for i in range(batch.size):  # each crop has its own size: one resample per sample
            t, lf, h, w = int(top[i]), int(left[i]), int(crop_h[i]), int(crop_w[i])
            if batch.is_numpy:
                window = batch.data[i : i + 1, t : t + h, lf : lf + w]
            else:
                window = batch.data[i : i + 1, :, t : t + h, lf : lf + w]
            outs.append(
                resize_batch(
                    batch, window, self.size, self.interpolation, self.antialias, self.backend
                )
            )
        out = np.concatenate(outs) if batch.is_numpy else torch.cat(outs)
        return batch.restore(out)

    accepts_undecoded = True
    """An :class:`Undecoded` image is decoded only in the window drawn for it (same pixels)."""

    def __call__(self, inpt: Any) -> Any:
        if isinstance(inpt, PIL.Image.Image):  # crop then resize, as torchvision's PIL path
            width, height = inpt.size
            t, lf, h, w = self.make_params_one(int(sample_keys(1)[0]), height, width)
            cropped = inpt.crop((lf, t, lf + w, t + h))
            return cropped.resize((self.size[1], self.size[0]), _PIL_FILTERS[self.interpolation])
        if isinstance(inpt, Undecoded):  # the same window, and only it decoded
            t, lf, h, w = self.make_params_one(int(sample_keys(1)[0]), inpt.height, inpt.width)
            return self._resize_window(inpt.window(t, lf, h, w), had_channels=True)
        batch = as_batch(inpt, "RandomResizedCrop")
        if batch.single:
            t, lf, h, w = self.make_params_one(int(sample_keys(1)[0]), *batch.hw)
            if batch.kind == "numpy" and inpt.dtype == np.uint8 and batch.channels in (1, 3, 4):
                return self._resize_window(
                    batch.data[0, t : t + h, lf : lf + w], had_channels=batch.had_channels
                )
            params = tuple(np.array([v], np.int64) for v in (t, lf, h, w))
            return self.apply(inpt, params)
        return self.apply(inpt, self.make_params(sample_keys(batch.size), *batch.hw))

    def _resize_window(self, window: npt.NDArray[np.uint8], *, had_channels: bool) -> Any:
        """One uint8 HWC window (a view is fine) resampled to ``size``, no batch copies."""
        if self.backend == "opencv":  # OpenCV reads the view in place: one resample
            resized = _opencv.resize(window, self.size)
            return resized if had_channels else resized[:, :, 0]
        if self.backend == "torch":
            out = resize_with_torch(window, self.size, self.interpolation, self.antialias)[0]
            return out if had_channels else out[:, :, 0]
        # One Pillow resample of the window, as torchvision's PIL path.
        window = np.ascontiguousarray(window)
        channels = window.shape[2]
        pil = PIL.Image.fromarray(window[:, :, 0] if channels == 1 else window)
        size = (self.size[1], self.size[0])
        resized = np.array(pil.resize(size, _PIL_FILTERS[self.interpolation]))
        return resized.reshape((*self.size, channels) if had_channels else self.size)

    def _extra_repr(self) -> str:
        return (
            f"size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"interpolation={self.interpolation!r}, antialias={self.antialias}"
            f"{_backend_repr(self.backend)}"
        )


def _backend_repr(backend: str) -> str:
    return "" if backend == "exact" else f", backend={backend!r}"
