"""The thread-worker iterator (worker_mode="thread"): batches made by a pool of threads.

For in-memory datasets whose work releases the GIL (numpy gathers, torch ops, batched
transforms) threads beat processes: nothing is forked, pickled or copied into shared memory,
and a batch is handed over as the very tensors the worker made. Invariants:
* at most ``prefetch_factor * num_workers`` batches are submitted and not yet delivered;
* batches are delivered in sampler order (``in_order=False``: as they finish);
* each thread has its own :class:`BatchFetcher` and worker id, so skipped-sample bookkeeping and
  ``get_worker_info()`` stay per worker; randomness comes from (seed, epoch, index) as always.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from stoker._worker import info
from stoker._worker.fetch import EMPTY_BATCH, BatchFetcher
from stoker.errors import LoaderTimeoutError
from stoker.loader import _pin
from stoker.loader._progress import Progress

if TYPE_CHECKING:
    from stoker.loader.dataloader import DataLoader


def _start_worker(
    local: threading.local, ids: Iterator[int], loader: DataLoader, sample_seed: int
) -> None:
    worker_id = next(ids)
    info._set_thread_worker_info(
        info.WorkerInfo(worker_id, loader.num_workers, loader.seed, loader.dataset)
    )
    local.fetcher = loader._fetcher(sample_seed)
    if loader.worker_init_fn is not None:
        loader.worker_init_fn(worker_id)


def _make_batch(
    local: threading.local, epoch: int, pin: bool, indices: Any
) -> tuple[Any, list[tuple[int, int, str]]]:
    fetcher: BatchFetcher = local.fetcher
    batch = fetcher.fetch(epoch, indices)
    skipped, fetcher.skipped = fetcher.skipped, []
    if pin and batch is not EMPTY_BATCH:
        batch = _pin.pin(batch)  # on the worker thread, off the training loop's
    return batch, skipped


class ThreadWorkerIterator(Iterator[Any]):
    """Feeds a thread pool batches of indices and yields their batches in order."""

    def __init__(self, loader: DataLoader, progress: Progress):
        self._loader = loader
        self.progress = progress
        self._in_order = loader.in_order
        self._timeout = loader.timeout or None
        self._pin = loader.pin_memory and _pin.pinning_available()
        # The threads get module-level functions and plain state, never this iterator: a thread
        # holding the iterator would keep it alive, and `break` could not stop the pool.
        local = threading.local()
        self._pool = ThreadPoolExecutor(
            loader.num_workers,
            thread_name_prefix="stoker-worker",
            initializer=_start_worker,
            initargs=(local, itertools.count(), loader, progress.sample_seed),
        )
        self._make = functools.partial(_make_batch, local, progress.epoch, self._pin)
        self._indices = iter(loader._index_sampler)
        self._pending: deque[Future[Any]] = deque()
        assert loader.prefetch_factor is not None
        self._budget = loader.prefetch_factor * loader.num_workers
        self._fill()

    def _fill(self) -> None:
        while len(self._pending) < self._budget:
            indices = next(self._indices, None)
            if indices is None:
                return
            self._pending.append(self._pool.submit(self._make, indices))

    def __iter__(self) -> ThreadWorkerIterator:
        return self

    def __next__(self) -> Any:
        while True:
            if not self._pending:
                self.close()
                raise StopIteration
            future = self._pending[0] if self._in_order else self._first_done()
            self._pending.remove(future)
            try:
                batch, skipped = future.result(timeout=self._timeout)
            except FutureTimeout:
                self.close()
                raise LoaderTimeoutError(
                    f"DataLoader timed out after {self._timeout} s waiting for a batch from its "
                    "worker threads; the dataset may be stuck (I/O, a lock). Raise timeout= if "
                    "loading a batch legitimately takes longer."
                ) from None
            except BaseException:
                self.close()
                raise
            self._fill()
            if skipped:
                self._loader.skipped.extend(skipped)
                self._loader._check_error_budget()
            if batch is EMPTY_BATCH:
                continue
            self.progress.batches_yielded += 1
            return batch

    def _first_done(self) -> Future[Any]:
        done, _ = wait(self._pending, timeout=self._timeout, return_when=FIRST_COMPLETED)
        return next(iter(done)) if done else self._pending[0]

    def close(self) -> None:
        """Stop the threads; batches being made are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __len__(self) -> int:
        return len(self._loader)
