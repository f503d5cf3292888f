"""The in-process iterator (num_workers=0): the reference every other iterator must equal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from stoker._worker.fetch import EMPTY_BATCH, IterableFetcher
from stoker.loader import _pin
from stoker.loader._progress import Progress

if TYPE_CHECKING:
    from stoker.loader.dataloader import DataLoader


class InProcessIterator(Iterator[Any]):
    """Loads each batch in the calling thread when asked for it."""

    def __init__(self, loader: DataLoader, progress: Progress):
        self._loader = loader
        self.progress = progress
        self.epoch = epoch = progress.epoch
        self.sample_seed = sample_seed = progress.sample_seed
        skip_batches = progress.batches_yielded
        self._fetcher = loader._fetcher(sample_seed)
        self._pin = loader.pin_memory and _pin.pinning_available()
        self._stream: IterableFetcher | None = None
        self._indices: Iterator[Any] | None = None
        if loader._is_iterable:
            self._stream = IterableFetcher(
                loader.dataset, self._fetcher, loader.batch_size, loader.drop_last
            )
            for _ in range(skip_batches):  # an iterable stream can only be replayed
                self._stream.next_batch(epoch)
        else:
            self._indices = iter(loader._index_sampler)

    def __iter__(self) -> InProcessIterator:
        return self

    def __next__(self) -> Any:
        while True:
            if self._stream is not None:
                batch = self._stream.next_batch(self.epoch)
            else:
                assert self._indices is not None
                batch = self._fetcher.fetch(self.epoch, next(self._indices))
            if self._fetcher.skipped:
                self._loader.skipped.extend(self._fetcher.skipped)
                self._fetcher.skipped = []
                self._loader._check_error_budget()
            if batch is not EMPTY_BATCH:
                break
        if self._pin:
            batch = _pin.pin(batch)
        self.progress.batches_yielded += 1
        return batch

    def __len__(self) -> int:
        return len(self._loader)
