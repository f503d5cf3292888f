"""The demo's embedded dataset: ten learnable classes of drawn shapes and textures, with noise.

Class k is drawn as ``SHAPES[k]`` and stored under CIFAR-10's k-th name, so the CIFAR-trained
model can be scored on VOC images of the mapped classes drawn by the same generator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from stoker.datasets import CIFAR10_CLASSES, DEFAULT_VOC_TO_CIFAR, VOC_CLASSES, testdata

__all__ = ["SHAPES", "draw", "write_demo_cifar", "write_demo_voc"]

SHAPES = (
    "circle",
    "square",
    "triangle",
    "stripes",
    "checker",
    "cross",
    "ring",
    "dots",
    "gradient",
    "diamond",
)
"""What each class looks like, in CIFAR-10 label order (airplane = circle, ...)."""

_NOISE_STD = 30.0  # uint8 levels: heavy grain, so the model has something to learn
_MIN_CONTRAST = 90  # uint8 levels between background and foreground, summed over channels / 3

Floats = npt.NDArray[np.float64]
_Mask = Callable[[Floats, Floats, Floats, np.random.Generator], Floats]


def _circle(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    return (u**2 + v**2 < r**2).astype(float)


def _square(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    return (np.maximum(abs(u), abs(v)) < 0.8 * r).astype(float)


def _triangle(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    return ((v < 0.6 * r) & (abs(u) < 0.6 * (v + r))).astype(float)


def _stripes(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    return (np.sin(u * 8.0 / r) > 0).astype(float)


def _checker(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    return (np.sin(u * 6.0 / r) * np.sin(v * 6.0 / r) > 0).astype(float)


def _cross(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    arm = 0.28 * r
    return (((abs(u) < arm) & (abs(v) < r)) | ((abs(v) < arm) & (abs(u) < r))).astype(float)


def _ring(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    d2 = u**2 + v**2
    return ((d2 < r**2) & (d2 > (0.55 * r) ** 2)).astype(float)


def _dots(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    period = 0.5 * r
    fu, fv = (u / period) % 1.0 - 0.5, (v / period) % 1.0 - 0.5
    return (fu**2 + fv**2 < 0.07).astype(float)


def _gradient(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    return np.clip((u + 1.2) / 2.4, 0.0, 1.0)


def _diamond(u: Floats, v: Floats, r: Floats, rng: np.random.Generator) -> Floats:
    return (abs(u) + abs(v) < r).astype(float)


_MASKS: tuple[_Mask, ...] = (
    _circle,
    _square,
    _triangle,
    _stripes,
    _checker,
    _cross,
    _ring,
    _dots,
    _gradient,
    _diamond,
)


def _colours(n: int, rng: np.random.Generator) -> tuple[Floats, Floats]:
    """Random background and foreground colours far enough apart to see the shape."""
    background = rng.uniform(0, 255, size=(n, 3))
    shift = rng.uniform(_MIN_CONTRAST, 255 - _MIN_CONTRAST, size=(n, 3))
    foreground = (background + shift) % 255
    return background, foreground


def draw(labels: npt.ArrayLike, height: int = 32, width: int = 32, *, seed: int = 0) -> np.ndarray:
    """One uint8 H×W×3 image per label (N×H×W×3), drawn in coordinates relative to the size.

    Shapes are drawn on [-1, 1]² whatever the size, so an image resized to 32×32 looks like
    the 32×32 images of its class.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n = len(labels)
    ys, xs = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    centre = rng.uniform(-0.3, 0.3, size=(n, 2, 1, 1))
    radius = rng.uniform(0.5, 0.8, size=(n, 1, 1))
    # ±0.2 rad keeps a turned square (0°) and a turned diamond (45°) apart.
    angle = rng.uniform(-0.2, 0.2, size=(n, 1, 1))
    # Textures turn freely; objects only a little, so a square stays a square, not a diamond.
    texture = np.isin(labels, (3, 4, 7, 8))[:, None, None]
    angle = np.where(texture, rng.uniform(0, np.pi, size=(n, 1, 1)), angle)
    dx, dy = xs - centre[:, 0], ys - centre[:, 1]
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    mask = np.zeros((n, height, width))
    for label, fn in enumerate(_MASKS):
        chosen = labels == label
        if chosen.any():
            mask[chosen] = fn(u[chosen], v[chosen], radius[chosen], rng)
    background, foreground = _colours(n, rng)
    alpha = mask[..., None]
    pixels = background[:, None, None] * (1 - alpha) + foreground[:, None, None] * alpha
    pixels += rng.normal(0.0, _NOISE_STD, size=pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def write_demo_cifar(root: str | Path, train: int, test: int, *, seed: int = 0) -> Path:
    """Write ``root/cifar-10-batches-py``: ``train`` + ``test`` drawn images, balanced classes."""
    rng = np.random.default_rng(seed)
    splits = []
    for n, offset in ((train, 1), (test, 2)):
        labels = rng.permutation(np.arange(n) % len(SHAPES))
        splits.append((draw(labels, seed=seed * 10 + offset), labels))
    return testdata.write_cifar10(root, train=splits[0], test=splits[1])


def write_demo_voc(root: str | Path, n: int, *, seed: int = 0) -> Path:
    """Write ``root/VOCdevkit/VOC2007`` with ``n`` drawn images, all in the ``val`` split.

    Most images hold one object of a VOC class mapped to CIFAR-10, drawn as that class's
    shape; the rest (a person, or two objects) are there for the filter to drop.
    """
    rng = np.random.default_rng(seed)
    # The seed's mapping also names "frog", which VOC has not: real VOC trees never hold one.
    mapped = sorted(name for name in DEFAULT_VOC_TO_CIFAR if name in VOC_CLASSES)
    samples, labels = [], []
    for number in range(1, n + 1):
        width, height = (int(v) for v in rng.integers(40, 97, size=2))
        box = (1, 1, width, height)
        kind = rng.uniform()
        names = (
            ["person"]
            if kind < 0.1
            else [str(rng.choice(mapped)), "person"]
            if kind < 0.2
            else [str(rng.choice(mapped))]
        )
        objects = tuple(testdata.VOCObject(name, box) for name in names)
        samples.append(testdata.VOCSample(f"{number:06d}", objects, "val", width, height))
        cifar_name = DEFAULT_VOC_TO_CIFAR.get(names[0])
        labels.append(CIFAR10_CLASSES.index(cifar_name) if cifar_name else 0)
    voc_root = testdata.write_voc2007(root, samples, seed=seed)
    # write_voc2007 writes noise pixels; replace them with each object's drawn shape.
    for number, (sample, label) in enumerate(zip(samples, labels)):
        pixels = draw([label], sample.height, sample.width, seed=seed * 100_003 + number)[0]
        Image.fromarray(pixels).save(voc_root / "JPEGImages" / f"{sample.image_id}.jpg", quality=90)
    return voc_root
