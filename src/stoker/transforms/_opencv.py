"""OpenCV for uint8 HWC arrays: the opt-in fast resampler (``backend="opencv"``) and the flip.

``cv2.resize(INTER_LINEAR)`` on a crop view costs ~0.16 ms for a 224×224 output where Pillow's
antialiased bilinear costs ~1.1 ms (one thread, 375×500 photos), but it samples 2×2 source pixels
whatever the scale: no antialiasing, so it differs from torchvision more as the downscale grows
(measured in docs/transforms.md). From 2× down, a whole-box average by the integer factor first
(OpenCV's fast integer INTER_AREA) keeps it below the difference of a 1.5× bilinear step.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from stoker.transforms._errors import fail
from stoker.transforms._undecoded import Undecoded

BACKENDS = ("exact", "opencv", "torch")
"""How uint8 arrays are resampled: Pillow (torchvision's PIL path, the default), OpenCV
(opt-in, a few levels off), torch's kernel (opt-in, torchvision's tensor path)."""
_INSTALL = "pip install 'stoker[opencv]' (opencv-python-headless), or use backend='exact'"

_lock = threading.Lock()
_cv2: Any = None
_imported = False  # tried once: Python does not cache a failed import, it searches again
_one_thread = False


def check_backend(backend: Any, interpolation: str, transform: str) -> str:
    """``backend`` checked: one of :data:`BACKENDS`; ``"opencv"`` needs bilinear and OpenCV."""
    if backend not in BACKENDS:
        raise fail(transform, f"`backend` in {BACKENDS}", repr(backend))
    if backend == "opencv":
        if interpolation != "bilinear":
            raise fail(
                transform,
                "interpolation='bilinear' with backend='opencv'",
                repr(interpolation),
                "OpenCV's other filters differ from torchvision's; use backend='exact' for them",
            )
        if not installed():  # fail now, in the constructor, rather than in a worker
            raise fail(transform, "OpenCV (cv2) for backend='opencv'", "no module cv2", _INSTALL)
    return str(backend)


def installed() -> bool:
    """Whether ``cv2`` imports here (imported once, at the first question)."""
    global _cv2, _imported
    if not _imported:
        with _lock:
            if not _imported:
                try:
                    import cv2

                    _cv2 = cv2
                except ImportError:
                    _cv2 = None
                _imported = True
    return _cv2 is not None


def _resizer(transform: str) -> Any:
    """The ``cv2`` module, set to one thread the first time a resize asks for it."""
    global _one_thread
    if not installed():
        raise fail(transform, "OpenCV (cv2) for backend='opencv'", "no module cv2", _INSTALL)
    if not _one_thread:
        # OpenCV's own thread pool splits even a 224×224 resize across every core: in a loader
        # that already runs one worker per core that oversubscribes the machine and starts a
        # pool in each worker. One thread per call; the parallelism is the loader's workers'.
        # (Process-wide, so it also holds for the caller's own cv2 calls; cv2.flip needs none.)
        _cv2.setNumThreads(1)
        _one_thread = True
    return _cv2


def resize(image: npt.NDArray[np.uint8], hw: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """uint8 ``image`` (HWC, 1 to 4 channels; a view is fine) resized to ``hw`` by OpenCV.

    Bilinear (``INTER_LINEAR``, half-pixel centres as torchvision's). Where an axis shrinks by
    k = 2× or more, it is first averaged over whole k-pixel boxes and the rest resampled with
    the exact geometry: plain bilinear there skips source pixels (mean difference to
    torchvision 6.25 levels at 3×, 1.90 with the box step: benchmarks/bench_resample.py).
    """
    cv2 = _resizer("resize")
    height, width, channels = image.shape
    if (height, width) == hw:
        return image.copy()
    if min(hw) == 0:
        return np.empty((*hw, channels), np.uint8)
    ky, kx = box_factors(height, width, hw)
    if ky == 1 and kx == 1:
        out = cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
        return out.reshape(hw[0], hw[1], channels)  # type: ignore[no-any-return]
    return _resample_boxes(box_means(image, ky, kx), hw, height, width, ky, kx)


def resize_undecoded(image: Undecoded, hw: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """:func:`resize` of ``image.decode()``, bit for bit, with the box step done while decoding.

    The box means come from :meth:`Undecoded.box_means` (for a JPEG: summed row by row as
    libjpeg-turbo decodes, so the full image is never written out and read back).
    """
    _resizer("resize")
    ky, kx = box_factors(image.height, image.width, hw)
    if (ky == 1 and kx == 1) or min(hw) == 0:
        return resize(image.decode(), hw)
    return _resample_boxes(image.box_means(ky, kx), hw, image.height, image.width, ky, kx)


def box_factors(height: int, width: int, hw: tuple[int, int]) -> tuple[int, int]:
    """The whole-box factors (rows, columns) of the box step from ``height``×``width`` to ``hw``."""
    return max(1, height // max(hw[0], 1)), max(1, width // max(hw[1], 1))


def box_means(image: npt.NDArray[np.uint8], ky: int, kx: int) -> npt.NDArray[np.uint8]:
    """The means of ``image``'s whole ``ky``×``kx`` boxes (its last rows/columns left out).

    OpenCV's integer-factor INTER_AREA is a cheap mean (any other factor takes its general
    area path, 0.9 ms, no faster than Pillow).
    """
    cv2 = _resizer("resize")
    height, width, channels = image.shape
    boxes = image[: height - height % ky, : width - width % kx]
    reduced = cv2.resize(boxes, (width // kx, height // ky), interpolation=cv2.INTER_AREA)
    return reduced.reshape(height // ky, width // kx, channels)  # type: ignore[no-any-return]


def _resample_boxes(
    reduced: npt.NDArray[np.uint8], hw: tuple[int, int], height: int, width: int, ky: int, kx: int
) -> npt.NDArray[np.uint8]:
    """The bilinear step after the boxes, mapped onto the whole ``height``×``width`` window.

    The last size % k rows or columns drop out of the boxes, so output pixels are mapped onto
    the window's full extent (warpAffine) instead of resize's stretch of the reduced image,
    whose shift of up to k - 1 pixels doubled the difference at 2×.
    """
    cv2 = _cv2
    channels = reduced.shape[2]
    sx, sy = width / hw[1] / kx, height / hw[0] / ky  # output pixel → reduced pixels
    matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
    out = cv2.warpAffine(
        reduced,
        matrix,
        (hw[1], hw[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(hw[0], hw[1], channels)  # type: ignore[no-any-return]


def mirror(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """uint8 HWC ``image`` mirrored left-right into a new contiguous array (``cv2.flip``).

    0.009 ms for 224×224×3, against 0.13 ms through Pillow and 0.43 ms for numpy's reversed copy;
    only called where :func:`installed` said yes.
    """
    out = _cv2.flip(image, 1)
    return out.reshape(image.shape)  # type: ignore[no-any-return]
