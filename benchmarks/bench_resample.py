"""How far backend="opencv" is from torchvision, and what it saves: uint8 differences and CPU ms.

Run: PYTHONPATH=src python benchmarks/bench_resample.py [--images N]   (not a test; ~1 min)

Photo-like 375×500 images (``testdata.photo_like_images``, JPEG quality 90 round trip, as
bench_images.py writes them). For each downscale factor f, crop windows of a random side in
300..375 at random places, resized to side/f; and RandomResizedCrop(224) with its default scale
and ratio on 375×500 and 500×333 images, windows drawn per sample exactly as the exact backend
draws them. Each output is compared, pixel by pixel and channel by channel, with
``torchvision.transforms.v2.functional.resized_crop(PIL image, same window, antialias=True)``
(the exact backend's result, bit for bit): the mean, 99th percentile and maximum absolute
difference in uint8 levels, for stoker's opencv backend and for a plain ``cv2.resize`` INTER_LINEAR
(the reason the backend box-averages first from 2×). Then one-thread CPU ms per sample.
The latest table goes to ``benchmarks/results/resample.md``.
"""

from __future__ import annotations

import argparse
import io
import statistics
from typing import Any

import cv2
import numpy as np
import PIL.Image
import torch
from torchvision.transforms.v2 import functional as TF

from _common import _version, per_sample_ms, write_results
from stoker import seeding
from stoker import transforms as T
from stoker.datasets import testdata
from stoker.transforms import _opencv

FACTORS = (0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)
SEED = 0


def photos(n: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """``n`` photo-like images after a quality-90 JPEG round trip (bench_images.py's files)."""
    out = []
    for pixels in testdata.photo_like_images(n, height, width, seed=seed):
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        out.append(np.array(PIL.Image.open(buffer).convert("RGB")))
    return out


def reference(image: np.ndarray, window: tuple[int, int, int, int], hw: tuple[int, int]) -> Any:
    """torchvision's antialiased bilinear resized crop of ``window`` (top, left, h, w)."""
    out = TF.resized_crop(PIL.Image.fromarray(image), *window, size=list(hw), antialias=True)
    return np.asarray(out)


def plain_linear(view: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    out = cv2.resize(view, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return out.reshape(hw[0], hw[1], view.shape[2])  # type: ignore[no-any-return]


def stats(diffs: list[np.ndarray]) -> tuple[float, float, int]:
    """(mean, 99th percentile, max) of all absolute differences."""
    flat = np.concatenate([d.ravel() for d in diffs])
    return float(flat.mean()), float(np.percentile(flat, 99)), int(flat.max())


def factor_rows(images: list[np.ndarray], rng: np.random.Generator) -> list[str]:
    """One table row per downscale factor: both OpenCV paths against torchvision."""
    rows = []
    for factor in FACTORS:
        ours: list[np.ndarray] = []
        plain: list[np.ndarray] = []
        for image in images:
            for _ in range(3):
                side = int(rng.integers(300, 376))
                top = int(rng.integers(0, image.shape[0] - side + 1))
                left = int(rng.integers(0, image.shape[1] - side + 1))
                hw = (round(side / factor), round(side / factor))
                theirs = reference(image, (top, left, side, side), hw).astype(np.int16)
                view = image[top : top + side, left : left + side]
                ours.append(np.abs(_opencv.resize(view, hw) - theirs).astype(np.uint8))
                plain.append(np.abs(plain_linear(view, hw) - theirs).astype(np.uint8))
        (m, p, x), (pm, pp, px) = stats(ours), stats(plain)
        rows.append(f"| {factor:g}× | {m:.2f} | {p:.0f} | {x} | {pm:.2f} | {pp:.0f} | {px} |")
    return rows


def rrc_rows(n: int) -> tuple[list[str], list[float]]:
    """RandomResizedCrop(224) rows per image shape, and the crops' downscale factors."""
    rrc = T.RandomResizedCrop(224, backend="opencv")
    rows, factors = [], []
    for height, width in ((375, 500), (500, 333)):
        images = photos(n, height, width, seed=height)
        diffs = []
        for i, image in enumerate(images * 3):
            key = int(seeding.sample_key(SEED, 0, np.array([i]))[0])
            window = rrc.make_params_one(key, height, width)
            with seeding.sample_context(SEED, 0, [i]):
                ours = rrc(image)
            diffs.append(np.abs(ours - reference(image, window, (224, 224)).astype(np.int16)))
            factors.append(max(window[2], window[3]) / 224)
        m, p, x = stats(diffs)
        rows.append(f"| RandomResizedCrop(224), {height}×{width} | {m:.2f} | {p:.0f} | {x} |")
    return rows, factors


def cpu_rows(images: list[np.ndarray]) -> list[str]:
    """One-thread CPU ms per sample, exact backend against opencv, on the same arrays."""
    small = [np.ascontiguousarray(image[:224, :224]) for image in images]
    cases = [
        ("RandomResizedCrop(224)", T.RandomResizedCrop(224), "opencv", images),
        ("Resize(224) (shorter edge)", T.Resize(224), "opencv", images),
    ]
    rows = []
    for name, exact, backend, data in cases:
        fast = type(exact)(224, backend=backend)
        a, b = per_sample_ms(exact, data), per_sample_ms(fast, data)
        rows.append(f"| {name}, 375×500 array | {a:.3f} | {b:.3f} | {a / b:.1f}× |")
    flip = T.RandomHorizontalFlip(1.0)
    with_cv2 = per_sample_ms(flip, small)
    saved = _opencv._cv2
    _opencv._cv2 = None  # the Pillow path, as without OpenCV installed
    try:
        without = per_sample_ms(flip, small)
    finally:
        _opencv._cv2 = saved
    rows.append(
        f"| RandomHorizontalFlip(p=1), 224×224 array (Pillow / cv2.flip) | {without:.3f} | "
        f"{with_cv2:.3f} | {without / with_cv2:.1f}× |"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40, help="images per shape (40)")
    parser.add_argument("--no-write", action="store_true", help="do not write results/resample.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = photos(args.images, 375, 500, seed=SEED)
    lines = [
        f"OpenCV {cv2.__version__}, Pillow {PIL.__version__}, torchvision "
        f"{_version('torchvision')}; {args.images} photo-like images per shape, JPEG q90.",
        "",
        "Absolute difference to torchvision's `resized_crop(antialias=True)` on the same window, "
        "uint8 levels over every pixel and channel; windows of side 300-375 resized to side / f.",
        "",
        "| downscale f | opencv backend: mean | p99 | max | plain INTER_LINEAR: mean | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *factor_rows(images, np.random.default_rng(SEED)),
        "",
    ]
    rows, factors = rrc_rows(args.images)
    lines += [
        "| windows drawn as the exact backend draws them | mean | p99 | max |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"RandomResizedCrop(224) crops: downscale factor (longer side / 224) median "
        f"{statistics.median(factors):.2f}, 90th percentile {np.percentile(factors, 90):.2f}, "
        f"max {max(factors):.2f}; {np.mean(np.array(factors) < 1):.0%} are upscaled.",
        "",
        "| per sample, one thread (CPU ms) | exact | opencv | exact / opencv |",
        "|---|---:|---:|---:|",
        *cpu_rows(images),
    ]
    print("\n".join(lines), flush=True)
    if not args.no_write:
        write_results("resample", "backend='opencv' against the exact resampler", "\n".join(lines))


if __name__ == "__main__":
    main()
