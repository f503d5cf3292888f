"""Real images at the decode limit: JPEG ImageFolder pipelines, stoker vs torch.

Run: PYTHONPATH=src python benchmarks/bench_images.py [--quick]   (samples/s; not a test)

Generates (and caches) an ImageFolder of photo-like JPEGs (``testdata.photo_like_images``:
smooth regions, edges and grain; half 375×500, half 500×333; quality 90, ~60-120 KB each),
then runs, interleaved, every loader over two pipelines with 2 workers:

* A: decode → RandomResizedCrop(224) → RandomHorizontalFlip → ToImage/ToDtype/Normalize, batch 64
* B: decode → Resize((32, 32)) → ToImage/ToDtype/Normalize, batch 256 (the seed's VOC eval)

Loaders: torch DataLoader + torchvision ImageFolder + v2 (fresh and persistent workers, the
reference), stoker (process workers fresh / persistent, thread workers; PIL images as torchvision
or uint8 arrays decoded by simplejpeg — in A only RandomResizedCrop's window of each JPEG, where
stoker's libjpeg-turbo module is built; on the arrays also the OpenCV resampler, opt-in, when
OpenCV is installed, whose box step in B then runs as the JPEG is decoded; for B also
reduced-size decoding, opt-in), and, when importable, torchdata.nodes and SPDL mapping the same
stoker dataset. The decode ceiling is a one-core loop reading and decoding every file (Pillow,
simplejpeg, torchvision.io, A's windows, B's box means; Pillow with DCT reduction for B), times
2 for 2 cores: no loader can beat it. Every rate is a whole epoch with its first batch; the
table gives the median over ``--repeats`` interleaved epochs. Before the epochs, a per-sample
CPU profile (one thread) of each transform, stoker vs torchvision.

torchdata and SPDL are optional; install them without letting pip replace torch:
``python -m pip install --no-deps --target /tmp/competitors torchdata spdl spdl-core spdl-io``
and add ``/tmp/competitors`` to ``PYTHONPATH``. The latest table goes to
``benchmarks/results/jpeg.md``.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import PIL.Image
import torch
import torchvision
from torchvision.transforms import v2

import stoker
from _common import _version, one_torch_thread, per_sample_ms, write_results
from stoker import transforms as T
from stoker.datasets import ImageFolder, _undecoded_jpeg, decode_image, testdata
from stoker.datasets._undecoded_jpeg import UndecodedJpeg, open_undecoded
from stoker.transforms import _opencv

WORKERS = 2
SEED = 0
CLASSES = 10
SHAPES = ((375, 500), (500, 333))
JPEG_QUALITY = 90
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
BATCH_A, BATCH_B = 64, 256
SMALL = (32, 32)
_OPENCV = {p: f"pipeline {p} after decode, opencv backend" for p in "AB"}
_TORCH = {p: f"pipeline {p} after decode, torch backend" for p in "AB"}


# ---------------------------------------------------------------------------------- data set


def _write_chunk(args: tuple[Path, int, int]) -> list[int]:
    """Write images ``start..stop-1`` of the folder; returns their file sizes in bytes."""
    root, start, stop = args
    sizes = []
    for i in range(start, stop):
        height, width = SHAPES[i % 2]
        pixels = testdata.photo_like_images(1, height, width, seed=1000 + i)[0]
        folder = root / f"class_{i % CLASSES:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img_{i:05d}.jpg"
        PIL.Image.fromarray(pixels).save(path, "JPEG", quality=JPEG_QUALITY)
        sizes.append(path.stat().st_size)
    return sizes


def image_folder(n: int, cache: Path) -> Path:
    """``cache/photos-n``: n generated JPEGs in 10 class folders, written once (2 processes)."""
    root = cache / f"photos-{n}"
    done = root / ".complete"
    if done.is_file():
        return root
    print(f"generating {n:,} JPEGs in {root} (once; ~{n * 0.025:.0f} s)", flush=True)
    chunks = [(root, s, min(s + 100, n)) for s in range(0, n, 100)]
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        sizes = [s for part in pool.map(_write_chunk, chunks) for s in part]
    done.write_text(f"{n} images, {min(sizes)}-{max(sizes)} bytes\n")
    return root


# --------------------------------------------------------------------------------- pipelines


def pipeline_a(lib: Any) -> Any:
    return lib.Compose(
        [
            lib.RandomResizedCrop(224),
            lib.RandomHorizontalFlip(),
            lib.ToImage(),
            lib.ToDtype(torch.float32, scale=True),
            lib.Normalize(MEAN, STD),
        ]
    )


def pipeline_a_backend(backend: str) -> Any:
    """Pipeline A with one of stoker's opt-in resamplers for uint8 arrays."""
    return T.Compose(
        [
            T.RandomResizedCrop(224, backend=backend),
            T.RandomHorizontalFlip(),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(MEAN, STD),
        ]
    )


def pipeline_opencv(pipeline: str) -> Any:
    """A or B with stoker's opt-in OpenCV resampler (uint8 arrays only; a few levels off)."""
    return pipeline_with(pipeline, "opencv")


def pipeline_with(pipeline: str, backend: str) -> Any:
    """A or B resampling arrays with ``backend``: "exact" (Pillow, the default), "opencv" (a
    few levels off) or "torch" (torchvision's tensor kernel, within a level of its PIL path)."""
    return pipeline_a_backend(backend) if pipeline == "A" else pipeline_b(T, backend=backend)


def pipeline_b(lib: Any, **resize: Any) -> Any:
    return lib.Compose(
        [
            lib.Resize(SMALL, **resize),
            lib.ToImage(),
            lib.ToDtype(torch.float32, scale=True),
            lib.Normalize(MEAN, STD),
        ]
    )


# ------------------------------------------------------------------------------ competitors


def torchdata_loader(dataset: Any, batch: int, method: str) -> Any:
    from torchdata import nodes

    sampler = torch.utils.data.RandomSampler(range(len(dataset)))
    node: Any = nodes.SamplerWrapper(sampler)
    node = nodes.ParallelMapper(node, dataset.__getitem__, num_workers=WORKERS, method=method)
    node = nodes.Batcher(node, batch_size=batch, drop_last=False)
    node = nodes.Mapper(node, torch.utils.data.default_collate)
    node = nodes.Prefetcher(node, prefetch_factor=2)
    return nodes.Loader(node)


def spdl_loader(dataset: Any, batch: int) -> Iterator[Any]:
    from spdl.pipeline import PipelineBuilder

    order = np.random.default_rng(SEED).permutation(len(dataset)).tolist()
    pipeline = (
        PipelineBuilder()
        .add_source(order)
        .pipe(dataset.__getitem__, concurrency=WORKERS, output_order="completion")
        .aggregate(batch)
        .pipe(torch.utils.data.default_collate)
        .add_sink(3)
        .build(num_threads=WORKERS + 1)
    )
    with pipeline.auto_stop():
        yield from pipeline


def available(module: str) -> bool:
    try:
        __import__(module)
    except Exception:  # an optional package that is missing or does not load here
        return False
    return True


# ------------------------------------------------------------------------------ measurement


def epoch(make: Callable[[], Iterable[Any]]) -> tuple[float, float]:
    """(samples/s over one epoch with its first batch, seconds to the first batch)."""
    start = time.perf_counter()
    first, seen = 0.0, 0
    for step, batch in enumerate(make()):
        if step == 0:
            first = time.perf_counter() - start
        seen += len(batch[0])
    return seen / (time.perf_counter() - start), first


def decode_rate(paths: list[Path], decode: Callable[[bytes], Any]) -> float:
    """Images/s of reading and decoding every file on this one core (the ceiling's unit)."""
    start = time.perf_counter()
    for path in paths:
        decode(path.read_bytes())
    return len(paths) / (time.perf_counter() - start)


def _pil(data: bytes) -> Any:
    with PIL.Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _torchvision_io(data: bytes) -> Any:
    return torchvision.io.decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))


_WINDOWS = "JPEG windows (A)"
_WINDOW_ROW = "decode, RandomResizedCrop(224)'s JPEG window → array"
_CROP_WINDOWS = T.RandomResizedCrop(224)


def _decode_window(data: bytes) -> Any:
    """What pipeline A's dataset decodes of one file: the header, then RandomResizedCrop's window.

    The window is drawn for a key fixed per file (its length), so every run decodes the same.
    """
    height, width, _ = _undecoded_jpeg._cjpeg.header(data)
    window = _CROP_WINDOWS.make_params_one(len(data), height, width)
    return UndecodedJpeg(data, height, width, "").window(*window)


_BOXES = "JPEG box means (B)"
_BOX_ROW = "decode, Resize((32, 32), backend='opencv')'s box means while decoding"
_B_WHOLE = "pipeline B, opencv backend, from the file (box means while decoding)"


def _decode_box_means(data: bytes) -> Any:
    """What pipeline B's OpenCV resize gets of one file: its box means, summed as it decodes."""
    height, width, _ = _undecoded_jpeg._cjpeg.header(data)
    ky, kx = _opencv.box_factors(height, width, SMALL)
    return UndecodedJpeg(data, height, width, "").box_means(ky, kx)


def ceilings(paths: list[Path]) -> dict[str, float]:
    """One-core decode rates ×2 (2 cores), each decoder measured on the same files."""
    rates = {
        "Pillow": decode_rate(paths, _pil),
        "torchvision.io": decode_rate(paths, _torchvision_io),
        "1/8 DCT decode (B)": decode_rate(paths, lambda d: decode_image(d, decode_size=SMALL)),
    }
    if _has_simplejpeg():
        rates["simplejpeg"] = decode_rate(paths, decode_image)
    if _undecoded_jpeg.available():
        rates[_WINDOWS] = decode_rate(paths, _decode_window)
        if available("cv2"):
            rates[_BOXES] = decode_rate(paths, _decode_box_means)
    return {name: WORKERS * rate for name, rate in rates.items()}


def _has_simplejpeg() -> bool:
    from stoker.datasets import _images

    return _images.simplejpeg is not None


# -------------------------------------------------------------------------- per-sample CPU


def pipeline_costs(paths: list[Path], pipeline: str) -> dict[str, float]:
    """The per-sample costs :func:`cpu_ceilings` needs for ``pipeline``, measured again.

    Taken between repetitions, as the decode ceilings are: one profile taken while the
    machine was briefly busy once put a ceiling below what a loader then reached.
    """
    torch.set_num_threads(1)
    pils = [_pil(p.read_bytes()) for p in paths]
    arrays = [np.array(p) for p in pils]
    make = pipeline_a if pipeline == "A" else pipeline_b
    after = f"pipeline {pipeline} after decode"
    costs = {
        "decode, Pillow → PIL": per_sample_ms(lambda p: _pil(p.read_bytes()), paths),
        "decode, decode_image → array": per_sample_ms(decode_image, paths),
        f"{after}, stoker PIL": per_sample_ms(make(T), pils),
        f"{after}, stoker array": per_sample_ms(make(T), arrays),
        f"{after}, torchvision": per_sample_ms(make(v2), pils),
    }
    if available("cv2"):
        costs[f"{_OPENCV[pipeline]}, stoker array"] = per_sample_ms(
            pipeline_opencv(pipeline), arrays
        )
    costs[f"{_TORCH[pipeline]}, stoker array"] = per_sample_ms(
        pipeline_with(pipeline, "torch"), arrays
    )
    if _undecoded_jpeg.available():
        costs[_WINDOW_ROW] = per_sample_ms(lambda p: _decode_window(p.read_bytes()), paths)
        if pipeline == "B" and available("cv2"):
            whole = pipeline_opencv("B")
            costs[_B_WHOLE] = per_sample_ms(lambda p: whole(open_undecoded(p)), paths)
    return costs


def profile_transforms(paths: list[Path]) -> tuple[list[str], dict[str, float]]:
    """Median ms per sample (one thread, thread CPU time) for each transform, both libraries.

    Returns the table's lines and the ms per sample by row and path (``"A", "stoker PIL"``...),
    from which the pipelines' CPU ceilings are computed.
    """
    torch.set_num_threads(1)
    pils = [_pil(p.read_bytes()) for p in paths]
    arrays = [np.array(p) for p in pils]
    # (row, stoker's, torchvision's): the opt-in backends only change how arrays are resampled
    transforms: list[tuple[str, Any, Any]] = [
        ("RandomResizedCrop(224)", T.RandomResizedCrop(224), v2.RandomResizedCrop(224)),
        (
            "RandomResizedCrop(224, backend='torch')",
            T.RandomResizedCrop(224, backend="torch"),
            v2.RandomResizedCrop(224),
        ),
        ("RandomHorizontalFlip", T.RandomHorizontalFlip(), v2.RandomHorizontalFlip()),
        ("Resize((32, 32))", T.Resize(SMALL), v2.Resize(SMALL)),
        ("Resize((32, 32), backend='torch')", T.Resize(SMALL, backend="torch"), v2.Resize(SMALL)),
    ]
    pipelines: list[tuple[str, Any, Any]] = []
    backends = ["exact", "torch", *(["opencv"] if available("cv2") else [])]
    for pipeline, theirs in (("A", pipeline_a(v2)), ("B", pipeline_b(v2))):
        for backend in backends:
            row = f"pipeline {pipeline} after decode" + (
                "" if backend == "exact" else f", {backend} backend"
            )
            pipelines.append((row, pipeline_with(pipeline, backend), theirs))
    if available("cv2"):
        transforms.insert(
            1,
            (
                "RandomResizedCrop(224, backend='opencv')",
                T.RandomResizedCrop(224, backend="opencv"),
                v2.RandomResizedCrop(224),
            ),
        )
    cases = transforms + pipelines

    decode_rows = [
        ("decode, Pillow → PIL", per_sample_ms(lambda p: _pil(p.read_bytes()), paths)),
        ("decode, decode_image → array", per_sample_ms(lambda p: decode_image(p), paths)),
        ("decode, torchvision.io", per_sample_ms(lambda p: _torchvision_io(p.read_bytes()), paths)),
    ]
    if _undecoded_jpeg.available():
        decode_rows.append(
            (_WINDOW_ROW, per_sample_ms(lambda p: _decode_window(p.read_bytes()), paths))
        )
        if available("cv2"):
            decode_rows.append(
                (_BOX_ROW, per_sample_ms(lambda p: _decode_box_means(p.read_bytes()), paths))
            )
    lines = [
        "| per sample, one thread (CPU ms) | stoker on PIL | stoker on array | torchvision on PIL |"
        " stoker PIL / torchvision |",
        "|---|---:|---:|---:|---:|",
    ]
    costs: dict[str, float] = {}
    for name, ours, theirs in cases:
        on_pil, on_array = per_sample_ms(ours, pils), per_sample_ms(ours, arrays)
        reference = per_sample_ms(theirs, pils)
        costs |= {f"{name}, stoker PIL": on_pil, f"{name}, stoker array": on_array}
        costs[f"{name}, torchvision"] = reference
        lines.append(
            f"| {name} | {on_pil:.3f} | {on_array:.3f} | {reference:.3f} | "
            f"{on_pil / reference:.2f}× |"
        )
    for name, ms in decode_rows:
        costs[name] = ms
        lines.append(f"| {name} | | {ms:.3f} | | |")
    return lines, costs


def cpu_ceilings(costs: dict[str, float], pipeline: str) -> list[tuple[str, float, float]]:
    """(path, ms per sample, samples/s) when 2 cores do nothing but decode and transform.

    No loader can beat this on this machine: it leaves out collation, transport and the
    training process's own share of the cores.
    """
    after = f"pipeline {pipeline} after decode"
    paths: list[tuple[str, float, str | None]] = [
        ("torch + torchvision (Pillow)", costs["decode, Pillow → PIL"], f"{after}, torchvision"),
        ("stoker on PIL (Pillow)", costs["decode, Pillow → PIL"], f"{after}, stoker PIL"),
        ("stoker on arrays (decode_image)", costs["decode, decode_image → array"],
         f"{after}, stoker array"),
    ]  # fmt: skip
    if f"{_OPENCV[pipeline]}, stoker array" in costs:
        paths.append(
            (
                "stoker on arrays, opencv backend",
                costs["decode, decode_image → array"],
                f"{_OPENCV[pipeline]}, stoker array",
            )
        )
    paths.append(
        (
            "stoker on arrays, torch backend",
            costs["decode, decode_image → array"],
            f"{_TORCH[pipeline]}, stoker array",
        )
    )
    if pipeline == "A" and _WINDOW_ROW in costs:  # what A's array datasets decode
        paths = [
            (label.replace("arrays", "arrays, JPEG windows"), costs[_WINDOW_ROW], key)
            if "arrays" in label
            else (label, decode_ms, key)
            for label, decode_ms, key in paths
        ]
    if pipeline == "B" and _B_WHOLE in costs:  # what B's OpenCV array dataset does
        paths = [
            ("stoker, opencv backend, box means while decoding", costs[_B_WHOLE], None)
            if "opencv" in label
            else (label, decode_ms, key)
            for label, decode_ms, key in paths
        ]
    out = []
    for label, decode_ms, transform_key in paths:
        ms = decode_ms + (costs[transform_key] if transform_key is not None else 0.0)
        out.append((label, ms, WORKERS * 1e3 / ms))
    return out


# ------------------------------------------------------------------------------------ main


def systems(root: Path, name: str) -> list[tuple[str, Callable[[], Iterable[Any]], bool]]:
    """(label, loader factory, persistent) for one pipeline; the torch reference comes first."""
    is_a = name == "A"
    batch = BATCH_A if is_a else BATCH_B
    make_pipeline = pipeline_a if is_a else pipeline_b
    theirs = torchvision.datasets.ImageFolder(str(root), transform=make_pipeline(v2))
    ours_pil = ImageFolder(root, transform=make_pipeline(T))
    ours = ImageFolder(root, transform=make_pipeline(T), image_type="numpy")
    common: dict[str, Any] = {"batch_size": batch, "shuffle": True, "seed": SEED}

    def torch_loader(persistent: bool) -> Any:
        return torch.utils.data.DataLoader(
            theirs, batch, shuffle=True, num_workers=WORKERS, persistent_workers=persistent
        )

    torch_persistent = torch_loader(True)
    out: list[tuple[str, Callable[[], Iterable[Any]], bool]] = [
        ("torch + torchvision, fresh workers", lambda: torch_loader(False), False),
        ("torch + torchvision, persistent workers", lambda: torch_persistent, True),
    ]

    def stoker_systems(label: str, dataset: Any) -> None:
        fresh = stoker.DataLoader(dataset, num_workers=WORKERS, **common)
        persistent = stoker.DataLoader(
            dataset, num_workers=WORKERS, persistent_workers=True, **common
        )
        threads = stoker.DataLoader(dataset, num_workers=WORKERS, worker_mode="thread", **common)
        out.extend(
            [
                (f"stoker {label}, fresh workers", lambda: fresh, False),
                (f"stoker {label}, persistent workers", lambda: persistent, True),
                (f"stoker {label}, 2 threads", lambda: one_torch_thread(threads), False),
            ]
        )

    stoker_systems("PIL", ours_pil)
    stoker_systems("arrays (decode_image)", ours)
    if available("cv2"):
        fast = ImageFolder(root, transform=pipeline_opencv(name), image_type="numpy")
        stoker_systems("arrays (decode_image), opencv backend", fast)
    kernel = ImageFolder(root, transform=pipeline_with(name, "torch"), image_type="numpy")
    stoker_systems("arrays (decode_image), torch backend", kernel)
    if not is_a:
        reduced = ImageFolder(
            root, transform=make_pipeline(T), image_type="numpy", decode_size=SMALL
        )
        stoker_systems("arrays, reduced-size decode", reduced)
    if available("torchdata.nodes"):
        # Threads only: its process mode's iterators, inherited by stoker's forked workers,
        # fail an assertion in __del__ there (noise, not a measurement).
        out.append(
            (
                "torchdata.nodes (2 threads), stoker arrays",
                lambda: torchdata_loader(ours, batch, "thread"),
                False,
            )
        )
    if available("spdl.pipeline"):
        out.append(
            ("SPDL pipeline (threads), stoker arrays", lambda: spdl_loader(ours, batch), False)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="400 images, 2 repetitions, fewer stoker variants"
    )
    parser.add_argument("--images", type=int, default=None, help="JPEGs in the folder (4,000)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved epochs (3)")
    parser.add_argument("--pipelines", default="AB", help="which pipelines to run (A, B or AB)")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "stoker-bench", help="image cache"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write results/jpeg.md")
    args = parser.parse_args()
    n = args.images or (400 if args.quick else 4000)
    repeats = args.repeats or (2 if args.quick else 3)
    root = image_folder(n, args.cache)
    paths = sorted(root.glob("*/*.jpg"))
    sizes = [p.stat().st_size for p in paths]
    header = (
        f"{n:,} JPEGs ({SHAPES[0][0]}×{SHAPES[0][1]} and {SHAPES[1][0]}×{SHAPES[1][1]}, "
        f"{min(sizes) / 1e3:.0f}-{max(sizes) / 1e3:.0f} KB), {WORKERS} workers, median of "
        f"{repeats} interleaved epochs; simplejpeg {'installed' if _has_simplejpeg() else 'absent'}"
        + (
            "; pipeline A's array datasets decode only RandomResizedCrop's window (_cjpeg)"
            if _undecoded_jpeg.available()
            else ""
        )
    )
    print(header, flush=True)
    lines = [
        f"Pillow {PIL.__version__}; simplejpeg "
        f"{_version('simplejpeg') if _has_simplejpeg() else 'absent (decode_image uses Pillow)'}.",
        "",
        header + ".",
        "",
    ]
    profile, costs = profile_transforms(paths[:200])
    print("\n".join(profile), flush=True)
    lines += [*profile, ""]

    ceiling = ceilings(paths[: min(len(paths), 1000)])
    for name in args.pipelines:
        table = run_pipeline(root, name, repeats, ceiling, paths, args.quick, costs)
        print("\n".join(table), flush=True)
        lines += [*table, ""]
        ceiling = ceilings(paths[: min(len(paths), 1000)])  # again, between pipelines
    if not args.no_write:
        write_results("jpeg", "JPEG pipelines", "\n".join(lines))


_QUICK_SKIP = frozenset(
    {
        "stoker PIL, fresh workers",
        "stoker PIL, 2 threads",
        "stoker arrays (decode_image), opencv backend, fresh workers",
        "stoker arrays (decode_image), torch backend, fresh workers",
        "stoker arrays, reduced-size decode, fresh workers",
    }
)


def run_pipeline(
    root: Path,
    name: str,
    repeats: int,
    ceiling: dict[str, float],
    paths: list[Path],
    quick: bool,
    costs: dict[str, float],
) -> list[str]:
    # No warm-up for persistent workers: on the engine of 89c75be an abandoned epoch left a
    # persistent stoker loader yielding nothing afterwards (fixed on main by ef84504), so their
    # first repetition includes the worker start, as a training run's first epoch does.
    candidates = [c for c in systems(root, name) if not quick or c[0] not in _QUICK_SKIP]
    rates: dict[str, list[float]] = {label: [] for label, _, _ in candidates}
    firsts: dict[str, list[float]] = {label: [] for label, _, _ in candidates}
    ceil_runs: dict[str, list[float]] = {k: [v] for k, v in ceiling.items()}
    cost_runs: dict[str, list[float]] = {}
    for rep in range(repeats):
        for label, make, _ in candidates:
            rate, first = epoch(make)
            rates[label].append(rate)
            firsts[label].append(first)
            print(f"  {name} rep {rep + 1}: {label:52s} {rate:8,.0f} samples/s", flush=True)
        for key, value in ceilings(paths[:400]).items():
            ceil_runs[key].append(value)
        for key, value in pipeline_costs(paths[:100], name).items():
            cost_runs.setdefault(key, []).append(value)
    ceil = {k: statistics.median(v) for k, v in ceil_runs.items()}
    reference = statistics.median(rates[candidates[0][0]])
    full_decoder = "simplejpeg" if "simplejpeg" in ceil else "Pillow"
    array_decoder = _WINDOWS if name == "A" and _WINDOWS in ceil else full_decoder
    decoder_for = {
        "PIL": "Pillow",
        "reduced": "1/8 DCT decode (B)",
    }
    if name == "B" and _BOXES in ceil:
        decoder_for["opencv backend"] = _BOXES
    decoder_for["arrays (decode_image)"] = array_decoder
    title = (
        "A: decode → RandomResizedCrop(224) → flip → ToImage/ToDtype/Normalize, batch 64"
        if name == "A"
        else "B: decode → Resize((32, 32)) → ToImage/ToDtype/Normalize, batch 256"
    )
    table = [
        f"## Pipeline {title}",
        "",
        "2-core decode ceilings (2 × one-core read+decode rate, median of the runs between "
        "epochs): " + ", ".join(f"{k} {v:,.0f}/s" for k, v in ceil.items()),
        "",
        "| loader | samples/s (median) | vs torch fresh | share of its decoder's ceiling |"
        " first batch (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, _, _ in candidates:
        rate = statistics.median(rates[label])
        decoder = next(
            (dec for key, dec in decoder_for.items() if key in label and "stoker" in label),
            "Pillow" if "torch +" in label else array_decoder,
        )
        share = rate / ceil[decoder] if decoder in ceil else float("nan")
        table.append(
            f"| {label} | {rate:,.0f} | {rate / reference:.2f}× | {share:.0%} of {decoder} | "
            f"{statistics.median(firsts[label]):.2f} |"
        )
    for decoder in dict.fromkeys([array_decoder, full_decoder]):
        table.append(
            f"| *decode-only ceiling, {decoder}* | {ceil[decoder]:,.0f} | "
            f"{ceil[decoder] / reference:.2f}× | {'100%' if decoder == array_decoder else ''} | |"
        )
    measured = costs | {key: statistics.median(runs) for key, runs in cost_runs.items()}
    for label, ms, rate in cpu_ceilings(measured, name):
        table.append(
            f"| *CPU ceiling, {label}: 2 cores / {ms:.2f} ms decode + transform (median of "
            f"{len(cost_runs.get('decode, Pillow → PIL', []))} profiles)* | {rate:,.0f} | "
            f"{rate / reference:.2f}× | | |"
        )
    return table


if __name__ == "__main__":
    main()
