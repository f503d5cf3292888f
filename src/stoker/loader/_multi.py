"""The multi-process iterator: dispatches batches of indices, reorders results, survives deaths.

Invariants:
* at most ``prefetch_factor`` tasks are in flight per worker, and at most
  ``prefetch_factor * num_workers`` batches are dispatched but not yet delivered, finished
  ones waiting in the reorder buffer included;
* task ids of one epoch are consecutive; ``_reorder`` holds finished batches whose turn has
  not come (in_order=True), so the user sees them in sampler order whatever finishes first;
* a task is dropped from ``_pending`` only when its batch (or error) has been delivered;
  a dead worker's tasks are resent to its replacement and recomputed identically, since every
  sample's randomness depends only on (seed, epoch, index).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from stoker._worker.remote_error import RemoteError
from stoker.errors import LoaderTimeoutError, WorkerDiedError
from stoker.loader import _pin
from stoker.loader._pool import _POLL_INTERVAL_S, Task, WorkerHandle, WorkerPool, describe_exit
from stoker.loader._progress import Progress

if TYPE_CHECKING:
    from stoker.loader.dataloader import DataLoader

_log = logging.getLogger("stoker")
_END = object()  # an iterable dataset's worker ran out of samples for this task
_SKIPPED = object()  # every sample of the batch was skipped under on_error="skip"


def _indices_text(task: Task) -> str:
    if task.indices is None:
        return f"batch {task.task_id} of its stream"
    indices = task.indices if isinstance(task.indices, list) else [task.indices]
    shown = ", ".join(map(str, indices[:8]))
    return f"dataset indices [{shown}{', ...' if len(indices) > 8 else ''}]"


class MultiProcessIterator(Iterator[Any]):
    """Feeds worker processes batches of indices and yields their batches in order."""

    def __init__(self, loader: DataLoader, progress: Progress):
        self._loader = loader
        self.progress = progress
        self.epoch = progress.epoch
        self.sample_seed = progress.sample_seed
        skip_batches = progress.batches_yielded
        self._skip_stream_batches = skip_batches if loader._is_iterable else 0
        self._in_order = loader.in_order
        self._timeout = loader.timeout
        # Pinning (a copy into page-locked memory) runs on a helper thread as batches arrive,
        # so the training loop never pays for it.
        self._pinner = (
            ThreadPoolExecutor(1, thread_name_prefix="stoker-pin")
            if loader.pin_memory and _pin.pinning_available()
            else None
        )
        self._restarts = 0
        pool = loader._workers if loader.persistent_workers else None
        if pool is None or pool.closed:
            pool = WorkerPool(loader, base_seed=loader.seed)
            if loader.persistent_workers:
                loader._workers = pool
        self._pool: WorkerPool | None = pool
        self._owns_pool = not loader.persistent_workers
        self._indices: Iterator[Any] | None = (
            None if loader._is_iterable else iter(loader._index_sampler)
        )
        if loader._is_iterable:  # streams are read round robin from the start, as torch does
            pool.start_remaining()
        self._streaming = list(range(len(pool.workers))) if loader._is_iterable else []
        self._rr = 0
        self._pending: dict[int, Task] = {}  # dispatched, not yet delivered, by task id
        self._reorder: dict[int, Any] = {}
        self._next_id = pool.next_task_id
        self._first_id = self._next_id
        self._sampler_done = False
        self._fill()

    # -- dispatch ----------------------------------------------------------------------------

    def _pick_worker(self, pool: WorkerPool) -> WorkerHandle | None:
        limit = pool.prefetch_factor
        if self._loader._is_iterable:  # round robin, as torch: deterministic stream order
            for _ in range(len(self._streaming)):
                worker = pool.workers[self._streaming[self._rr % len(self._streaming)]]
                self._rr += 1
                if len(worker.in_flight) < limit:
                    return worker
            return None
        candidates = [w for w in pool.workers if len(w.in_flight) < limit]
        return min(candidates, key=lambda w: len(w.in_flight), default=None)

    def _fill(self) -> None:
        pool = self._pool
        assert pool is not None
        budget = pool.prefetch_factor * pool.num_workers
        while not self._sampler_done and len(self._pending) < budget:
            if self._loader._is_iterable and not self._streaming:
                self._sampler_done = True
                break
            worker = self._pick_worker(pool)
            if worker is None:
                break
            if self._indices is not None:
                try:
                    indices = next(self._indices)
                except StopIteration:
                    self._sampler_done = True
                    break
            else:
                indices = None
            task = Task(self._next_id, self.epoch, self.sample_seed, indices)
            self._next_id += 1
            pool.next_task_id = self._next_id
            self._pending[task.task_id] = task
            pool.submit(worker.worker_id, task)

    # -- receive -----------------------------------------------------------------------------

    def _handle(self, worker: WorkerHandle, message: tuple[Any, ...]) -> None:
        pool = self._pool
        assert pool is not None
        kind, task_id = message[0], message[1]
        if kind == "died":
            self._on_death(worker, message[2])
            return
        if kind == "init-error":
            self._close()
            message[2].reraise()
        task = worker.in_flight.pop(task_id, None)
        if task is None or task_id not in self._pending:
            if kind == "batch" and message[2] is not None:
                pool.materialize(worker, message[2])  # a stale batch: map it, let it go
            return
        if kind == "batch":
            if message[3]:
                self._record_skipped(message[3])
            value = _SKIPPED if message[2] is None else pool.materialize(worker, message[2])
            if self._pinner is not None and value is not _SKIPPED:
                value = self._pinner.submit(_pin.pin, value)
        elif kind == "end":
            value = _END
            if worker.worker_id in self._streaming:
                self._streaming.remove(worker.worker_id)
        else:
            value = message[2]  # a RemoteError, raised when its turn comes
        self._reorder[task_id] = value

    def _record_skipped(self, skipped: list[tuple[int, int, str]]) -> None:
        loader = self._loader
        loader.skipped.extend(skipped)
        loader._check_error_budget()

    def _on_death(self, worker: WorkerHandle, exitcode: int | None) -> None:
        loader, pool = self._loader, self._pool
        assert pool is not None
        held = sorted(worker.in_flight)
        tasks_text = "; ".join(_indices_text(worker.in_flight[t]) for t in held) or "no batch"
        what = (
            f"DataLoader worker {worker.worker_id} (pid {worker.process.pid}) "
            f"{describe_exit(exitcode)} while holding {tasks_text}"
        )
        if loader.on_worker_death != "restart" or self._restarts >= loader.max_worker_restarts:
            self._close()
            budget = (
                f" after {self._restarts} restart(s) this epoch (max_worker_restarts="
                f"{loader.max_worker_restarts})"
                if loader.on_worker_death == "restart"
                else " (on_worker_death='raise')"
            )
            raise WorkerDiedError(
                f"{what}{budget}. If it was killed for memory, lower batch_size, "
                "prefetch_factor or num_workers; if a sample crashes it, load that index alone "
                "with num_workers=0 to see why."
            )
        self._restarts += 1
        _log.warning(
            "%s; restarting it and resending its batches (restart %d of %d this epoch)",
            what,
            self._restarts,
            loader.max_worker_restarts,
        )
        pool.restart(worker.worker_id)

    def _wait_for(self, task_id: int | None) -> None:
        """Block until some message arrives (or timeout), staying responsive to deaths."""
        pool = self._pool
        assert pool is not None
        started = time.monotonic()
        while True:
            events = pool.wait(_POLL_INTERVAL_S)
            for worker, message in events:
                self._handle(worker, message)
            if events:
                return
            if self._timeout and time.monotonic() - started > self._timeout:
                self._raise_timeout(task_id)

    def _raise_timeout(self, task_id: int | None) -> None:
        pool = self._pool
        assert pool is not None
        holder = next((w for w in pool.workers if task_id in w.in_flight), None)
        task = self._pending.get(task_id) if task_id is not None else None
        who = f"worker {holder.worker_id} (pid {holder.process.pid})" if holder else "no worker"
        what = _indices_text(task) if task is not None else "the next batch"
        stack = pool.stack_of(holder) if holder is not None else ""
        self._close()
        raise LoaderTimeoutError(
            f"DataLoader timed out after {self._timeout} s waiting for {what} from {who}; "
            "the dataset may be stuck (I/O, a lock, a deadlock in a C extension). Raise "
            "timeout= if loading a batch legitimately takes longer."
            + (f"\nThe worker's stack when it timed out:\n{stack}" if stack else "")
        )

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self) -> MultiProcessIterator:
        return self

    def __next__(self) -> Any:
        while True:
            value = self._next_value()
            if value is _END or value is _SKIPPED:
                continue
            if self._skip_stream_batches:
                self._skip_stream_batches -= 1
                continue
            if isinstance(value, RemoteError):
                self._close()
                value.reraise()
            self.progress.batches_yielded += 1
            return value.result() if isinstance(value, Future) else value

    def _next_value(self) -> Any:
        pool = self._pool
        if pool is None:
            raise StopIteration
        if not pool.all_started and self.progress.batches_yielded > 0:
            # The other workers fork now, after the first batch reached the user: the first
            # batch costs one fork, not num_workers of them.
            pool.start_remaining()
            self._fill()
        while True:
            if self._in_order:
                expected = self._first_id
                if expected in self._reorder:
                    return self._take(expected)
            elif self._reorder:
                return self._take(next(iter(self._reorder)))
            if not self._pending:
                self._finish(end_of_epoch=True)
                raise StopIteration
            self._wait_for(self._first_id if self._in_order else None)

    def _take(self, task_id: int) -> Any:
        value = self._reorder.pop(task_id)
        del self._pending[task_id]
        while self._first_id not in self._pending and self._first_id < self._next_id:
            self._first_id += 1
        self._fill()
        assert self._pool is not None
        self._pool.flush_frees()
        return value

    def _finish(self, end_of_epoch: bool = False) -> None:
        if self._owns_pool:
            self._close(wait=not end_of_epoch)
        else:
            self._pool = None

    def _close(self, wait: bool = True) -> None:
        pinner = getattr(self, "_pinner", None)
        if pinner is not None:
            pinner.shutdown(wait=False, cancel_futures=True)
        pool, self._pool = getattr(self, "_pool", None), None  # __init__ may have failed
        if pool is not None and self._owns_pool:
            pool.shutdown(wait=wait)

    def close(self) -> None:
        """Stop this iterator's workers now (also done on exhaustion and garbage collection)."""
        self._close()

    def __del__(self) -> None:
        if getattr(self, "_owns_pool", False):
            self._close()

    def __len__(self) -> int:
        return len(self._loader)
