"""Per-sample randomness: every random draw is a pure function of (seed, epoch, dataset index).

The loader (in-process or in a worker) opens a :func:`sample_context` around each fetch, naming
the dataset indices being loaded. Code running inside it — ``__getitem__``, ``__getitems__``,
transforms, ``batch_transform`` — asks for randomness here instead of a global RNG:

* :func:`sample_rng` gives a ``numpy.random.Generator`` for the one sample being loaded;
* :func:`current_keys` gives one 64-bit key per sample in the context, and :func:`uniform` /
  :func:`integers` turn keys into draws, vectorised over samples with no Python loop.

Because a draw depends only on (seed, epoch, index, stream), a sample gets the same augmentation
whether it is loaded alone or in a batch, by worker 0 or worker 3, first or after a restart.

Outside any context (a transform called by hand) keys come from a process-wide generator, so
transforms still work, but without that guarantee.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

try:  # the optional C loops (setup.py); without a compiler the numpy code below runs
    from stoker import _cmix  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _cmix = None

__all__ = [
    "SampleContext",
    "context_from_rows",
    "context_rows",
    "current_context",
    "current_keys",
    "each_sample",
    "integer_one",
    "integers",
    "sample_context",
    "sample_key",
    "sample_rng",
    "stream_id",
    "stream_mixes",
    "uniform",
    "uniform_one",
    "uniform_streams",
]

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MASK64 = (1 << 64) - 1


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a bijective, well-avalanched 64-bit hash (wrapping arithmetic).

    Works in place on ``x``, which must be a fresh array: this runs for every batch.
    """
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _mix64_int(x: int) -> int:
    """:func:`_mix64` of one Python int: the same function, without numpy's per-call cost."""
    x &= _MASK64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


_GOLDEN_INT = 0x9E3779B97F4A7C15


def sample_key(seed: int, epoch: int, indices: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """One 64-bit key per dataset index, a pure function of ``(seed, epoch, index)``."""
    base = _mix64_int(_mix64_int(int(seed) + _GOLDEN_INT) ^ (int(epoch) & _MASK64))
    if _cmix is not None:
        index = _c_contiguous(indices, np.int64)
        keys = np.empty(index.shape, np.uint64)
        _cmix.keys(index, base, keys)
        return keys
    idx = np.asarray(indices, dtype=np.int64).astype(np.uint64)
    idx += _GOLDEN
    idx ^= _U64(base)
    return _mix64(idx)


def _c_contiguous(values: npt.ArrayLike, dtype: type) -> npt.NDArray[Any]:
    """``values`` as a C-contiguous array of ``dtype``, keeping its shape (0-d included)."""
    array: npt.NDArray[Any] = np.asarray(values, dtype=dtype)
    return array if array.flags.c_contiguous else array.copy()


def stream_id(name: str) -> int:
    """A stable 64-bit stream number for a named random draw (e.g. ``"RandomCrop.top"``)."""
    return zlib.crc32(name.encode()) * 0x9E3779B1 & _MASK64


def _stream_mix(stream: int) -> int:
    """What a key is xored with before mixing, for draws of ``stream``."""
    return _mix64_int(int(stream) + _GOLDEN_INT)


def _bits(keys: npt.NDArray[np.uint64], stream: int) -> npt.NDArray[np.uint64]:
    mixed = np.asarray(keys, dtype=np.uint64) ^ _U64(_stream_mix(stream))
    return _mix64(mixed)


def uniform(keys: npt.NDArray[np.uint64], stream: int) -> npt.NDArray[np.float64]:
    """One float in [0, 1) per key for the given stream; independent streams for different ids."""
    if _cmix is not None:
        flat = _c_contiguous(keys, np.uint64)
        values = np.empty(flat.shape, np.float64)
        _cmix.uniform(flat, _stream_mix(stream), values)
        return values
    return (_bits(keys, stream) >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def uniform_streams(key: int, streams: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """``uniform([key], s)[0]`` for every stream ``s`` of ``streams`` (from :func:`stream_mixes`).

    One sample's draws on many streams in one call: what a per-sample transform needs, without
    building a one-sample array for each stream.
    """
    mixed = np.asarray(streams, dtype=np.uint64) ^ _U64(int(key) & _MASK64)
    if _cmix is not None:
        values = np.empty(mixed.shape, np.float64)
        _cmix.uniform(mixed, 0, values)
        return values
    return (_mix64(mixed) >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def stream_mixes(streams: Sequence[int]) -> npt.NDArray[np.uint64]:
    """The xor constants of ``streams``, as :func:`uniform_streams` takes them (compute once)."""
    return np.array([_stream_mix(s) for s in streams], dtype=np.uint64)


def integer_one(key: int, stream: int, low: int, high: int) -> int:
    """``integers([key], stream, low, high)[0]`` as a Python int, without numpy."""
    if high <= low:
        raise ValueError(f"integers() needs high > low, got low={low!r}, high={high!r}")
    top = _mix64_int((int(key) & _MASK64) ^ _stream_mix(stream)) >> 32
    return low + ((top * (high - low)) >> 32)


def uniform_one(key: int, stream: int) -> float:
    """``uniform([key], stream)[0]`` as a Python float, without numpy."""
    return (_mix64_int((int(key) & _MASK64) ^ _stream_mix(stream)) >> 11) * (1.0 / (1 << 53))


def integers(
    keys: npt.NDArray[np.uint64], stream: int, low: int | npt.ArrayLike, high: int | npt.ArrayLike
) -> npt.NDArray[np.int64]:
    """One integer in ``[low, high)`` per key (bounds may be per-key arrays)."""
    if _cmix is not None and isinstance(low, int) and isinstance(high, int):
        if high <= low:
            raise ValueError(f"integers() needs high > low, got low={low!r}, high={high!r}")
        flat = _c_contiguous(keys, np.uint64)
        values = np.empty(flat.shape, np.int64)
        _cmix.integers(flat, _stream_mix(stream), low, high - low, values)
        return values
    low_a = np.asarray(low, dtype=np.int64)
    span = np.asarray(high, dtype=np.int64) - low_a
    if np.any(span <= 0):
        raise ValueError(f"integers() needs high > low, got low={low!r}, high={high!r}")
    # Multiply-shift on the top 32 bits: unbiased enough for spans far below 2**32.
    top = (_bits(keys, stream) >> _U64(32)).astype(np.int64)
    return low_a + ((top * span) >> 32)


class SampleContext:
    """The samples being loaded right now: the loader's seed and epoch, and their indices.

    Also the context manager that declares them (``sample_context`` is this class): entering
    makes it the innermost context of the thread. It is cheap to create — the per-sample path
    opens one per sample — so the index array and keys are only built when asked for.
    """

    __slots__ = ("_indices", "_keys", "_raw", "epoch", "seed")

    def __init__(self, seed: int, epoch: int, indices: int | Sequence[int] | npt.ArrayLike):
        self.seed = seed
        self.epoch = epoch
        self._raw = indices
        self._indices: npt.NDArray[np.int64] | None = None
        self._keys: npt.NDArray[np.uint64] | None = None

    @property
    def indices(self) -> npt.NDArray[np.int64]:
        if self._indices is None:
            self._indices = np.atleast_1d(np.asarray(self._raw, dtype=np.int64))
        return self._indices

    @property
    def keys(self) -> npt.NDArray[np.uint64]:
        if self._keys is None:  # each random transform of a pipeline asks: derive them once
            keys = sample_key(self.seed, self.epoch, self.indices)
            keys.flags.writeable = False  # shared by every transform that asks
            self._keys = keys
        return self._keys

    def select(self, position: int | slice) -> SampleContext:
        """The context narrowed to some of its samples (by position in ``indices``)."""
        return SampleContext(self.seed, self.epoch, np.atleast_1d(self.indices[position]))

    def __enter__(self) -> SampleContext:
        _local.stack.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _local.stack.pop()


sample_context = SampleContext
"""Declare which dataset indices are being loaded: ``with sample_context(seed, epoch, idx):``."""


class _Stack(threading.local):
    def __init__(self) -> None:
        self.stack: list[SampleContext] = []


_local = _Stack()
_fallback_lock = threading.Lock()
_fallback_rng = np.random.default_rng()


def current_context() -> SampleContext | None:
    """The innermost active :func:`sample_context`, or ``None`` outside the loader."""
    stack = _local.stack
    return stack[-1] if stack else None


@contextlib.contextmanager
def each_sample(position: int) -> Iterator[SampleContext | None]:
    """Narrow the active context to one sample, e.g. when ``__getitems__`` loops per sample."""
    ctx = current_context()
    if ctx is None:
        yield None
        return
    with ctx.select(position) as narrowed:
        yield narrowed


def context_rows(ctx: SampleContext | None, n: int) -> npt.NDArray[np.int64]:
    """``n`` rows of ``[seed, epoch, index]`` describing ``ctx``: randomness that can travel.

    With the rows, a batch moved elsewhere (to a GPU, say) can be augmented later exactly as a
    worker would have: ``with context_from_rows(rows): images = transform(images)``.
    """
    if ctx is None:
        raise ValueError(
            "no sample context is active: context rows can only be taken inside the loader "
            "(or inside `with stoker.sample_context(seed, epoch, indices)`)"
        )
    indices = ctx.indices
    if len(indices) != n:
        raise ValueError(f"the active context holds {len(indices)} samples, not {n}")
    rows = np.empty((n, 3), dtype=np.int64)
    rows[:, 0] = np.int64(np.uint64(ctx.seed & _MASK64).astype(np.int64))
    rows[:, 1] = ctx.epoch
    rows[:, 2] = indices
    return rows


def context_from_rows(rows: npt.ArrayLike) -> SampleContext:
    """The :class:`SampleContext` that :func:`context_rows` described (a context manager)."""
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    if len(table) == 0:
        raise ValueError("context_from_rows needs at least one row")
    seed = int(np.int64(table[0, 0]).astype(np.uint64))
    return SampleContext(seed, int(table[0, 1]), table[:, 2])


def current_keys(n: int) -> npt.NDArray[np.uint64]:
    """Keys for the ``n`` samples being processed; checks ``n`` against the active context."""
    ctx = current_context()
    if ctx is None:
        with _fallback_lock:
            return _fallback_rng.integers(0, 2**64, size=n, dtype=np.uint64)
    if len(ctx.indices) != n:
        raise ValueError(
            f"a random transform got {n} sample(s) but the loader is loading "
            f"{len(ctx.indices)} (indices {ctx.indices[:8].tolist()}...); apply per-sample "
            "transforms to one sample at a time, or batched transforms to the whole batch"
        )
    return ctx.keys


def sample_rng() -> np.random.Generator:
    """A numpy Generator for the single sample being loaded, seeded from (seed, epoch, index)."""
    ctx = current_context()
    if ctx is None:
        with _fallback_lock:
            return np.random.default_rng(_fallback_rng.integers(0, 2**63))
    if len(ctx.indices) != 1:
        raise ValueError(
            f"sample_rng() is for one sample, but {len(ctx.indices)} are being loaded "
            "together; inside __getitems__ wrap each sample in stoker.seeding.each_sample(i)"
        )
    return np.random.Generator(np.random.PCG64(int(ctx.keys[0])))
