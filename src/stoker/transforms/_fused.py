"""The seed's CIFAR train pipeline in one pass over a uint8 NHWC batch: crop, flip, convert, scale.

``RandomCrop → RandomHorizontalFlip → ToImage → ToDtype(float, scale=True) → Normalize`` costs five
full passes and a transpose when run one transform at a time. Here the uint8 batch is padded and
transposed to planar (N, C, H, W) once — flipped samples are written mirrored by that same copy,
so flipping costs nothing extra — every sample's crop window is gathered straight from it, and the
float conversion and normalisation run block by block while the block is still in cache.

Where the time goes (one core, 256 CIFAR images, fastest of 300 runs per step, loaded machine):
sort by flip + transposing pad copy ~240 µs (uint8 at stride 3: numpy and torch have no SIMD
shuffle for it), window gather ~70 µs, uint8→float cast ~50 µs, then multiply ~35, subtract ~40,
divide ~65. A float lookup table (``np.take`` of a 768-entry table) was measured and loses: the
gather alone runs ~300 µs and the uint8→intp index conversion ~150 µs more; and no float32
reciprocal reproduces the CIFAR std division bit for bit (14-48 of 256 values differ per channel,
for every candidate within ±50 ulp), so the division stays.

The arithmetic is the unfused transforms' own torch operations in the same order, so the result
is bit-for-bit the unfused one; a test holds it to that.

That is the path without a C compiler. With one, float32 output and constant padding go through
``_cfused.c`` instead (``_with_kernel``): one pass, SIMD on AVX2/AVX-512 CPUs, ~110 µs for the
same batch, bit-identical too.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from stoker._worker import output

try:  # the optional C kernel (setup.py); without a compiler the torch/numpy path below runs
    from stoker.transforms import _cfused  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _cfused = None
from stoker.transforms._convert import max_value
from stoker.transforms._crop import CropParams
from stoker.transforms._indexing import fill_values, source_index
from stoker.transforms._rows import Rows

# Samples converted per block: 64 CIFAR images are 768 KiB of float32, which stays in a 1-2 MiB
# L2 cache through the three in-place passes; whole 256-image batches spill to L3.
_BLOCK_SAMPLES = 64


# Intermediate uint8 buffers are kept per thread and reused: allocating a few MiB per batch lets
# glibc hand the memory back to the kernel on free, and every batch then pays ~1,000 page faults
# (measured: 3-4x slower in such processes).
_scratch = threading.local()


def _buffer(role: str, shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    """A reusable uint8 array of ``shape`` for ``role``; its contents are garbage."""
    buffers: dict[str, npt.NDArray[np.uint8]] = getattr(_scratch, "buffers", None) or {}
    _scratch.buffers = buffers
    buf = buffers.get(role)
    if buf is None or buf.shape != shape:
        buf = buffers[role] = np.empty(shape, np.uint8)
    return buf


def _planar_padded(
    x: npt.NDArray[np.uint8],
    padding: tuple[int, int, int, int],
    fill: Any,
    mode: str,
    mirrored: int,
) -> npt.NDArray[np.uint8]:
    """``x`` (N, H, W, C) as (N, C, H + pads, W + pads), padded per ``mode``.

    The last ``mirrored`` samples are written left-right mirrored (with the left and right
    padding swapped, so each is exactly the mirror of its padded image): the transposing copy
    happens anyway, and reading it backwards costs nothing.
    """
    n, h, w, c = x.shape
    left, top, right, bottom = padding
    planar = x.transpose(0, 3, 1, 2)
    keep = n - mirrored
    if mode != "constant":
        rows = source_index(np.arange(-top, h + bottom), h, mode)
        cols = source_index(np.arange(-left, w + right), w, mode)
        out = _buffer("padded", (n, c, len(rows), len(cols)))
        _scratch.padded_layout = None  # the border is overwritten here
        out[:keep] = planar[:keep, :, rows][:, :, :, cols]
        out[keep:] = planar[keep:, :, rows][:, :, :, cols[::-1]]
        return out
    values = fill_values(fill, c, x.dtype)
    shape = (n, c, h + top + bottom, w + left + right)
    out = _buffer("padded", shape)
    # The copies below rewrite only the interior, so the border keeps its fill from the last
    # call with the same layout; mirrored samples' interior moves when left != right padding.
    layout = (shape, padding, values.tobytes(), keep if left != right else None)
    if getattr(_scratch, "padded_layout", None) != layout:
        out[...] = values[:, None, None]
        _scratch.padded_layout = layout
    out[:keep, :, top : top + h, left : left + w] = planar[:keep]
    out[keep:, :, top : top + h, right : right + w] = planar[keep:, :, :, ::-1]
    return out


def _crop_windows(
    x: npt.NDArray[np.uint8],
    params: CropParams | None,
    fill: Any,
    mode: str,
    flips: npt.NDArray[np.bool_] | None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], tuple[int, int]]:
    """The padded planar batch, each sample's window start in it (flat), and the window size.

    Reading ``(h, w)`` windows at those starts gives the planar (N, C, h, w) crops, mirrored
    where ``flips``.
    """
    n, h, w, _ = x.shape
    padding = params.padding if params is not None else (0, 0, 0, 0)
    crop_h, crop_w = (params.height, params.width) if params is not None else (h, w)
    tops = params.top if params is not None else np.zeros(n, np.int64)
    lefts = params.left if params is not None else np.zeros(n, np.int64)
    if flips is None or not flips.any():
        rows, mirrored, source = np.arange(n), 0, x
    else:
        # Unflipped samples first, flipped last, so each group is one strided copy.
        order = np.argsort(flips, kind="stable")
        rows = np.empty(n, np.int64)
        rows[order] = np.arange(n)
        mirrored = int(flips.sum())
        source = np.take(x, order, axis=0, out=_buffer("sorted", x.shape))
        padded_w = w + padding[0] + padding[2]
        # The mirror of the window at `left` is the window at `padded_w - crop_w - left`.
        lefts = np.where(flips, padded_w - crop_w - lefts, lefts)
    padded = _planar_padded(source, padding, fill, mode, mirrored)
    _, c, padded_h, padded_w = padded.shape
    starts = (rows * c * padded_h + tops) * padded_w + lefts
    return padded, starts.astype(np.int64, copy=False), (crop_h, crop_w)


def _gather_crops(
    padded: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], size: tuple[int, int]
) -> torch.Tensor:
    """The (N, C, h, w) windows of ``padded`` at flat ``starts``, as a C-contiguous uint8 tensor.

    ``padded`` is seen as one window at every byte offset (an overlapping strided view) and
    ``index_select`` picks one per sample into a reused buffer: measured ~70 µs for 256 CIFAR
    crops against ~100-140 µs for numpy advanced indexing of a sliding-window view, which also
    returns a fresh 768 KiB array per batch (page faults, see the scratch note above).
    """
    n, c, padded_h, padded_w = padded.shape
    crop_h, crop_w = size
    plane = padded_h * padded_w
    extent = (c - 1) * plane + (crop_h - 1) * padded_w + crop_w  # bytes one window spans
    windows = torch.as_strided(
        torch.from_numpy(padded),
        (padded.size - extent + 1, c, crop_h, crop_w),
        (1, plane, padded_w, 1),
    )
    out = torch.from_numpy(_buffer("crops", (n, c, crop_h, crop_w)))
    return torch.index_select(windows, 0, torch.from_numpy(starts), out=out)


def fused_pipeline(
    x: npt.NDArray[np.uint8] | Rows,
    params: CropParams | None,
    fill: Any,
    padding_mode: str,
    flips: npt.NDArray[np.bool_] | None,
    dtype: torch.dtype,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> torch.Tensor:
    """Run crop/flip/convert/normalize on a uint8 NHWC batch, returning an NCHW ``dtype`` tensor."""
    if _cfused is not None and dtype == torch.float32 and padding_mode == "constant":
        return _with_kernel(x, params, fill, flips, mean, std)
    x = np.asarray(x)  # a Rows batch is gathered here on this path
    with _one_torch_thread():
        crops = _gather_crops(*_crop_windows(x, params, fill, padding_mode, flips))
        n = crops.shape[0]
        out = output.empty(tuple(crops.shape), dtype)  # in a worker: inside the batch's slot
        mean_t = std_t = None
        if mean is not None and std is not None:
            mean_t = torch.as_tensor(mean, dtype=dtype).view(-1, 1, 1)
            std_t = torch.as_tensor(std, dtype=dtype).view(-1, 1, 1)
        for start in range(0, n, _BLOCK_SAMPLES):  # blocks of samples, for the cache
            picked = slice(start, start + _BLOCK_SAMPLES)
            convert_into(out[picked], crops[picked], mean_t, std_t)
    return out


def convert_into(
    out: torch.Tensor,
    crops: torch.Tensor,
    mean: torch.Tensor | None,
    std: torch.Tensor | None,
) -> torch.Tensor:
    """Write uint8 ``crops`` into float ``out`` as ToDtype(scale=True) then Normalize compute it.

    The same torch operations in the same order as the unfused transforms — cast, multiply by
    1/255, subtract the mean, divide by the std — so the same bits, on any device (each is one
    correctly rounded IEEE operation; no step is fused into another). ``mean``/``std`` are
    (C, 1, 1) tensors of ``out``'s dtype on ``out``'s device, or both None.
    """
    out.copy_(crops)
    out.mul_(1.0 / max_value(torch.uint8))
    if mean is not None and std is not None:
        out.sub_(mean).div_(std)
    return out


def _with_kernel(
    x: npt.NDArray[np.uint8] | Rows,
    params: CropParams | None,
    fill: Any,
    flips: npt.NDArray[np.bool_] | None,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> torch.Tensor:
    """The pipeline in one C pass (``_cfused.c``): SIMD on AVX2/AVX-512 CPUs, else a table."""
    n, h, w, c = x.shape
    if isinstance(x, Rows):  # the kernel reads each image from the dataset's array itself
        source, rows = np.ascontiguousarray(x.data), x.indices
    else:
        source, rows = np.ascontiguousarray(x), np.empty(0, np.int64)
    if params is None:
        tops = lefts = np.zeros(n, np.int64)
        padding, crop_h, crop_w = (0, 0, 0, 0), h, w
    else:
        tops, lefts = params.top.astype(np.int64), params.left.astype(np.int64)
        padding, crop_h, crop_w = params.padding, params.height, params.width
    flip_bytes = np.zeros(n, np.uint8) if flips is None else flips.astype(np.uint8)
    no_norm = np.empty(0, np.float32)
    out = output.empty((n, c, crop_h, crop_w), torch.float32)  # in a worker: in the batch's slot
    _cfused.crop_flip_normalize(
        source, len(source), rows, n, h, w, c, tops, lefts, flip_bytes, padding[1], padding[0],
        crop_h, crop_w, fill_values(fill, c, np.dtype(np.uint8)),
        1.0 / max_value(torch.uint8),
        no_norm if mean is None else _per_channel(mean, c),
        no_norm if std is None else _per_channel(std, c),
        out.numpy(),
    )  # fmt: skip
    return out


def _per_channel(values: tuple[float, ...], channels: int) -> npt.NDArray[np.float32]:
    """One float32 per channel: the kernel reads ``channels`` values (Normalize broadcasts one)."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(values, np.float32), (channels,)))


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run the pipeline's torch ops on one thread, restoring the caller's setting after.

    A 64-image block is just big enough for torch to split it over its OpenMP threads, and
    when another process holds a core (a worker, the training step) those threads wait on each
    other: measured 170,000 vs 289,000 images/s with one competing process, and as low as
    4,100 vs 304,000 on a loaded machine. On an idle machine one thread costs ~13 %.

    torch's thread count is process-wide and thread workers run pipelines concurrently, so the
    first pipeline in saves the setting and the last one out restores it.
    """
    global _saved_threads, _pipelines_running
    with _threads_lock:
        if _pipelines_running == 0:
            _saved_threads = torch.get_num_threads()
            if _saved_threads != 1:
                torch.set_num_threads(1)
        _pipelines_running += 1
    try:
        yield
    finally:
        with _threads_lock:
            _pipelines_running -= 1
            if _pipelines_running == 0 and _saved_threads != 1:
                torch.set_num_threads(_saved_threads)


_threads_lock = threading.Lock()
_saved_threads = 1
_pipelines_running = 0
