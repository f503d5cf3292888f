"""BatchFetcher: load one batch — fetch samples, collate, batch-transform — under per-sample seeds.

This is the one place a batch is built, in the main process (``num_workers=0``) and in every
worker alike, which is why batches do not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch.utils.data

from stoker.seeding import SampleContext, sample_context, sample_key

Collate = Callable[[Any], Any]

EMPTY_BATCH: Any = object()
"""Returned by ``fetch`` when on_error="skip" dropped every sample of a batch."""


def _is_integer(key: Any) -> bool:
    """An index the range check applies to: int, numpy integer or 0-d integer tensor."""
    if isinstance(key, bool):
        return False
    if isinstance(key, int | np.integer):
        return True
    return (
        isinstance(key, torch.Tensor)
        and key.ndim == 0
        and not key.dtype.is_floating_point
        and not key.dtype.is_complex
        and key.dtype != torch.bool
    )


def _index_array(key: Any) -> np.ndarray[Any, Any]:
    """The int64 indices a sample's seeds derive from: the key itself when it is integral
    (an index, or a list of them for bulk loading), else a stable 63-bit digest of its repr
    (a string key of a dict-like dataset), the same in every process and run."""
    if _is_integer(key):
        return np.array([int(key)], dtype=np.int64)
    if isinstance(key, list | tuple | np.ndarray) and all(_is_integer(k) for k in key):
        return np.array([int(k) for k in key], dtype=np.int64)
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return np.array([int.from_bytes(digest, "little") >> 1], dtype=np.int64)


def describe_indices(indices: Any) -> str:
    """Up to eight of a batch's indices, for error messages."""
    if not isinstance(indices, list | tuple):
        return f"[{indices}]"
    shown = ", ".join(str(i) for i in list(indices)[:8])
    return f"[{shown}{', ...' if len(indices) > 8 else ''}]"


class _OneSample(SampleContext):
    """A sample context re-pointed at each index of a per-sample loop (one attribute set)."""

    __slots__ = ()

    @property
    def indices(self) -> Any:
        return _index_array(self._raw)

    @property
    def keys(self) -> Any:
        return sample_key(self.seed, self.epoch, self.indices)  # _raw moves: never cached


class BatchFetcher:
    """Builds the batch for some dataset indices in a given epoch; the same everywhere.

    ``auto_collation``: ``indices`` is a list and the samples are collated; otherwise it is one
    index and the sample goes through ``collate_fn`` alone (torch's ``batch_size=None``).
    """

    def __init__(
        self,
        dataset: Any,
        auto_collation: bool,
        collate_fn: Collate,
        batch_transform: Callable[[Any], Any] | None,
        seed: int,
        on_error: str = "raise",
        check_indices: bool = True,
    ):
        self.dataset = dataset
        self.on_error = on_error
        self.skipped: list[tuple[int, Any, str]] = []  # (epoch, index or key, repr of the error)
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.batch_transform = batch_transform
        self.seed = seed
        self._getitems = getattr(dataset, "__getitems__", None)
        # A sampler the loader built from len(dataset) cannot leave the range; only indices
        # from a user's sampler are checked (min/max of each batch: ~4 µs per 256 indices).
        self._length: int | None = (
            len(dataset) if check_indices and hasattr(dataset, "__len__") else None
        )

    def _check_range(self, indices: Sequence[Any]) -> None:
        """IndexError for an integer index outside the dataset; other keys are its business.

        As in torch, a key that is not an integer (a string for a dict-like dataset, a tuple,
        a list of indices for bulk loading with ``batch_size=None``) goes to ``__getitem__`` as
        the sampler yielded it.
        """
        n = self._length
        if n is None or not indices:
            return
        try:  # the common case, all integers: min/max only
            low, high = min(indices), max(indices)
            integral = _is_integer(low) and _is_integer(high)
        except TypeError:  # keys that do not compare with each other: not all integers
            integral = False
        if not integral:
            integers = [key for key in indices if _is_integer(key)]
            if not integers:
                return
            low, high = min(integers), max(integers)
        if low < 0 or high >= n:
            bad = low if low < 0 else high
            raise IndexError(
                f"the sampler yielded dataset index {bad}, but the dataset "
                f"({type(self.dataset).__name__}) has {n} samples (valid indices: 0..{n - 1})"
            )

    def _load_samples(self, epoch: int, indices: Sequence[int]) -> list[Any]:
        # The hot per-sample loop: one context object re-pointed at each index, instead of a
        # context manager per sample, keeps stoker's overhead per sample to a few attribute sets.
        dataset, samples = self.dataset, []
        context = _OneSample(self.seed, epoch, 0)
        skip = self.on_error == "skip"
        with context:
            index = -1
            for index in indices:
                context._raw = index
                try:
                    samples.append(dataset[index])
                except Exception as error:
                    if skip:
                        self.skipped.append(
                            (epoch, int(index) if _is_integer(index) else index, repr(error))
                        )
                        continue
                    error.add_note(f"stoker: raised while loading dataset index {index}")
                    raise
        return samples

    def fetch(self, epoch: int, indices: Any) -> Any:
        """The batch (or single sample) for ``indices`` in ``epoch``."""
        if not self.auto_collation:
            self._check_range([indices])
            single = self._load_samples(epoch, [indices])
            return self.collate_fn(single[0]) if single else EMPTY_BATCH
        self._check_range(indices)
        samples = self._fetch_batched(epoch, indices) if self._getitems is not None else None
        if samples is None:
            samples = self._load_samples(epoch, indices)
            if not samples:
                return EMPTY_BATCH
            if len(samples) < len(indices):
                dropped = {skipped[1] for skipped in self.skipped}
                indices = [i for i in indices if i not in dropped]
        return self.finish(epoch, indices, samples)

    def _fetch_batched(self, epoch: int, indices: Sequence[int]) -> Any:
        """``__getitems__``'s result; None if it raised under on_error="skip".

        The caller then loads the samples one by one, to find and drop the failing ones.
        """
        assert self._getitems is not None
        with sample_context(self.seed, epoch, indices):
            try:
                return self._getitems(indices)
            except Exception as error:
                if self.on_error == "skip":
                    return None
                where = describe_indices(indices)
                error.add_note(f"stoker: raised in __getitems__ for dataset indices {where}")
                raise

    def finish(self, epoch: int, indices: Sequence[int], samples: Any) -> Any:
        """Collate fetched samples and apply the batch transform."""
        return self.transform(epoch, indices, self.collate(indices, samples))

    def collate(self, indices: Sequence[int], samples: Any) -> Any:
        try:
            return self.collate_fn(samples)
        except Exception as error:
            error.add_note(
                f"stoker: raised while collating dataset indices {describe_indices(indices)}"
            )
            raise

    def transform(self, epoch: int, indices: Sequence[int], batch: Any) -> Any:
        if self.batch_transform is not None:
            with sample_context(self.seed, epoch, indices):
                batch = self.batch_transform(batch)
        return batch


_STREAM_END: Any = object()
_FINGERPRINT_ELEMENTS = 64  # elements of each tensor or array a stream batch's fingerprint reads


class StreamNotReplayable(Exception):
    """A replacement worker's replay of its shard differs from what its predecessor delivered."""


def _fingerprint_parts(value: Any, out: list[bytes]) -> None:
    # Cheap on purpose (it runs for every stream batch): a tensor or array contributes its
    # dtype, shape and 64 evenly spaced elements, containers their items, scalars their repr.
    if isinstance(value, torch.Tensor | np.ndarray):
        flat = value.reshape(-1)  # a view of a contiguous batch: nothing is copied
        step = max(1, flat.shape[0] // _FINGERPRINT_ELEMENTS)
        sample = flat[::step][:_FINGERPRINT_ELEMENTS]
        data = sample.numpy(force=True) if isinstance(sample, torch.Tensor) else sample
        out.append(f"{value.dtype}{tuple(value.shape)}".encode())
        out.append(np.ascontiguousarray(data).tobytes())
    elif isinstance(value, dict):
        for key in value:
            out.append(repr(key).encode())
            _fingerprint_parts(value[key], out)
    elif isinstance(value, list | tuple):
        out.append(b"(%d" % len(value))
        for item in value:
            _fingerprint_parts(item, out)
    elif isinstance(value, int | float | str | bytes | bool | None):
        out.append(repr(value).encode())
    else:
        out.append(type(value).__qualname__.encode())
        fields = getattr(value, "__dict__", None)
        if isinstance(fields, dict):
            _fingerprint_parts(fields, out)


def chain_fingerprint(digest: str, batch: Any) -> str:
    """``digest`` extended by a fingerprint of one stream batch (16 hex digits)."""
    parts: list[bytes] = []
    _fingerprint_parts(batch, parts)
    return hashlib.blake2b(digest.encode() + b"".join(parts), digest_size=8).hexdigest()


class IterableFetcher:
    """Batches from an iterable dataset's stream; sample positions in the stream act as indices.

    ``digest`` chains a fingerprint of every batch made so far (before ``batch_transform``), so
    a replacement worker that replays the shard can check it gets the same batches back.
    """

    def __init__(
        self,
        dataset: torch.utils.data.IterableDataset[Any],
        batch_fetcher: BatchFetcher,
        batch_size: int | None,
        drop_last: bool,
        position_offset: int = 0,
        position_stride: int = 1,
    ):
        self._stream: Iterator[Any] = iter(dataset)
        self._fetcher = batch_fetcher
        self._batch_size = batch_size
        self._drop_last = drop_last
        self._position = position_offset
        self._stride = position_stride
        self._name = type(dataset).__name__
        self.digest = ""

    def skip_batches(self, count: int, expected: str | None = None) -> None:
        """Walk past ``count`` batches (a replacement worker's catch-up); with ``expected``, the
        predecessor's digest, rebuild them and raise StreamNotReplayable if they differ."""
        if expected is not None:
            for _ in range(count):
                try:
                    self._collated()
                except StopIteration:
                    break
            if self.digest != expected:
                raise StreamNotReplayable(
                    f"replaying the {count} batches the dead worker had delivered from its "
                    f"shard of {self._name} gave other batches"
                )
            return
        size = 1 if self._batch_size is None else self._batch_size
        for _ in range(count * size):
            if next(self._stream, _STREAM_END) is _STREAM_END:
                return
            self._position += self._stride

    def _collated(self) -> tuple[Any, list[int], list[Any]]:
        """The next batch collated, its positions and samples; StopIteration at the end."""
        fetcher = self._fetcher
        if self._batch_size is None:
            sample = next(self._stream)
            self._position += self._stride
            batch = fetcher.collate_fn(sample)
            self.digest = chain_fingerprint(self.digest, batch)
            return batch, [], []
        samples, positions = [], []
        for sample in self._stream:
            samples.append(sample)
            positions.append(self._position)
            self._position += self._stride
            if len(samples) == self._batch_size:
                break
        if not samples or (self._drop_last and len(samples) < self._batch_size):
            raise StopIteration
        batch = fetcher.collate(positions, samples)
        self.digest = chain_fingerprint(self.digest, batch)
        return batch, positions, samples

    def next_batch(self, epoch: int) -> Any:
        """The next batch, or raise StopIteration when the stream ends."""
        batch, positions, _ = self._collated()
        if self._batch_size is None:
            return batch
        return self._fetcher.transform(epoch, positions, batch)
