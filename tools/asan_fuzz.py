"""Fuzz stoker's C modules under AddressSanitizer: `python3 dev.py asan` builds and runs this.

Loads ``_cfused``, ``_cmix`` and ``_cjpeg`` built with ``-fsanitize=address`` from the folder
given as the first argument (with libasan preloaded, so every numpy buffer has poisoned red
zones around it), then runs thousands of random batches through every code path of the fused
kernel — AVX-512, AVX2 and table, 1/3/4 channels, windows inside and across the padding, flips,
row gathers, with and without normalisation — checking that the paths agree bit for bit; then
decodes windows (inside, across and outside the image) and box means of random, cut and
bit-flipped JPEGs.
An out-of-bounds read or write anywhere aborts with AddressSanitizer's report.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import numpy as np


def load(name: str, folder: Path) -> ModuleType:
    path = next(folder.glob(f"{name}.*.so"))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fuzz_fused(fused: ModuleType, rng: np.random.Generator, batches: int) -> None:
    paths = []
    for name in ("avx512", "avx2", "none"):
        try:
            fused.set_simd(name)
            paths.append(name)
        except (ValueError, AttributeError):  # not on this CPU / a build without SIMD
            pass
    for batch in range(batches):
        c = int(rng.choice([1, 3, 3, 3, 4]))
        n, h, w = int(rng.integers(1, 5)), int(rng.integers(1, 41)), int(rng.integers(1, 41))
        pad_top, pad_left = int(rng.integers(0, 7)), int(rng.integers(0, 7))
        oh, ow = (
            int(rng.integers(1, h + 2 * pad_top + 1)),
            int(rng.integers(1, w + 2 * pad_left + 1)),
        )
        tops = rng.integers(0, h + 2 * pad_top - oh + 1, n).astype(np.int64)
        lefts = rng.integers(0, w + 2 * pad_left - ow + 1, n).astype(np.int64)
        flips = rng.integers(0, 2, n).astype(np.uint8)
        source_n = n + int(rng.integers(0, 3))
        source = rng.integers(0, 256, (source_n, h, w, c), dtype=np.uint8)
        gather = rng.random() < 0.5
        rows = rng.integers(0, source_n, n) if gather else np.empty(0)
        fill = rng.integers(0, 256, c).astype(np.uint8)
        normalize = rng.random() < 0.5
        mean = rng.uniform(0.3, 0.6, c).astype(np.float32) if normalize else np.empty(0, np.float32)
        std = rng.uniform(0.2, 0.3, c).astype(np.float32) if normalize else np.empty(0, np.float32)
        results = []
        for name in paths:
            fused.set_simd(name)
            out = np.empty((n, c, oh, ow), np.float32)  # exactly sized: red zones right after
            fused.crop_flip_normalize(
                source, source_n, rows.astype(np.int64), n, h, w, c, tops, lefts, flips,
                pad_top, pad_left, oh, ow, fill, np.float32(1 / 255), mean, std, out,
            )  # fmt: skip
            results.append(out.view(np.uint32))
        for name, result in zip(paths[1:], results[1:]):
            assert np.array_equal(results[0], result), f"batch {batch}: {name} != {paths[0]}"
    print(f"_cfused: {batches} random batches through {', '.join(paths)}: same bits, no error")


def fuzz_mix(mix: ModuleType, rng: np.random.Generator, batches: int) -> None:
    for _ in range(batches):
        n = int(rng.integers(0, 300))
        index = rng.integers(-(2**40), 2**40, n)
        keys = np.empty(n, np.uint64)
        mix.keys(index, int(rng.integers(0, 2**63)), keys)
        draws = np.empty(n, np.int64)
        mix.integers(keys, int(rng.integers(0, 2**63)), -5, int(rng.integers(1, 2**40)), draws)
        floats = np.empty(n, np.float64)
        mix.uniform(keys, 7, floats)
        assert ((floats >= 0) & (floats < 1)).all()
    print(f"_cmix: {batches} random batches: no error")


def _jpeg(rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """A random small JPEG (mode, subsampling, progressive) and Pillow's RGB decode of it."""
    from PIL import Image

    h, w = int(rng.integers(1, 70)), int(rng.integers(1, 70))
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(str(rng.choice(["RGB", "RGB", "L", "CMYK"])))
    buffer = io.BytesIO()
    image.save(
        buffer,
        "JPEG",
        quality=int(rng.integers(30, 100)),
        subsampling=int(rng.integers(0, 3)),
        progressive=bool(rng.random() < 0.3),
    )
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        return data, np.asarray(decoded.convert("RGB"))


def fuzz_jpeg(cjpeg: ModuleType, rng: np.random.Generator, files: int) -> None:
    """Windows in and out of bounds, and box means of any size, of intact, cut and bit-flipped
    files (with outputs sometimes too large): no stray access."""
    decoded = refused = 0
    for _ in range(files):
        data, full = _jpeg(rng)
        damage = rng.random()
        if damage < 0.3:
            data = data[: int(rng.integers(0, len(data)))]
        elif damage < 0.6:
            flipped = bytearray(data)
            for at in rng.integers(0, len(data), int(rng.integers(1, 8))):
                flipped[at] ^= 1 << int(rng.integers(0, 8))
            data = bytes(flipped)
        height, width = full.shape[:2]
        for _ in range(4):
            h, w = int(rng.integers(0, height + 2)), int(rng.integers(0, width + 2))
            # mostly inside the image, sometimes one row or column past an edge
            top = int(rng.integers(0, max(height - h, 0) + 1 + int(rng.random() < 0.2)))
            left = int(rng.integers(0, max(width - w, 0) + 1 + int(rng.random() < 0.2)))
            out = np.empty((h, w, 3), np.uint8)  # exactly sized: red zones right after
            try:
                cjpeg.decode_into(data, out, top, left, h, w)
            except ValueError:
                refused += 1
                continue
            decoded += 1
            if damage >= 0.6:
                assert np.array_equal(out, full[top : top + h, left : left + w])
        with contextlib.suppress(ValueError):
            cjpeg.header(data)
        ky, kx = int(rng.integers(0, height + 2)), int(rng.integers(0, width + 2))
        means = np.empty(
            (height // max(ky, 1) + int(rng.random() < 0.2), width // max(kx, 1), 3), np.uint8
        )
        try:
            cjpeg.box_means_into(data, means, ky, kx)
        except ValueError:
            refused += 1
        else:
            decoded += 1
    print(f"_cjpeg: {files} files, {decoded} windows decoded, {refused} refused: no error")


def main() -> None:
    folder = Path(sys.argv[1])
    rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    fuzz_fused(load("_cfused", folder), rng, batches=3000)
    fuzz_mix(load("_cmix", folder), rng, batches=500)
    if list(folder.glob("_cjpeg.*.so")):
        fuzz_jpeg(load("_cjpeg", folder), rng, files=1500)
    else:
        print("_cjpeg: not built (no libjpeg-turbo headers here): skipped")


if __name__ == "__main__":
    main()
