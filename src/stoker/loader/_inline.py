"""InlineRunner: tasks run in the calling thread when the engine polls (num_workers=0).

This is the reference every other runner must equal: the same fetcher builds the same batch
from the same (seed, epoch, index), only here, when asked.
"""

from __future__ import annotations

from collections import deque

from stoker._fetch import EMPTY_BATCH, BatchFetcher, IterableFetcher
from stoker._transport.messages import Task
from stoker.loader import _pin
from stoker.loader._events import END_OF_STREAM, NOTHING, Event, Finished, Raised
from stoker.loader._plan import EpochPlan


class InlineRunner:
    """One "worker", the caller itself; each poll makes the oldest queued batch."""

    def __init__(self, plan: EpochPlan):
        self._fetch = plan.fetch
        self._pin = plan.workers.pin and _pin.pinning_available()
        self._fetcher: BatchFetcher = plan.fetch.fetcher(plan.sample_seed)
        self._stream: IterableFetcher | None = None
        self._queue: deque[Task] = deque()
        self._pass = -1
        self._closed = False

    @property
    def current_pass(self) -> int:
        return self._pass

    @property
    def closed(self) -> bool:
        return self._closed

    def begin(self, plan: EpochPlan) -> None:
        self._pass = plan.pass_id
        self._queue.clear()
        if plan.fetch.is_iterable:
            fetch = plan.fetch
            self._stream = IterableFetcher(
                fetch.dataset, self._fetcher, fetch.batch_size, fetch.drop_last
            )

    def submit(self, worker_id: int, task: Task) -> None:
        self._queue.append(task)

    def poll(self, timeout_s: float) -> list[Event]:
        if not self._queue:
            return []
        task = self._queue.popleft()
        fetcher = self._fetcher
        try:
            if self._stream is not None:
                try:
                    batch = self._stream.next_batch(task.epoch)
                except StopIteration:
                    return [Finished(task.seq, 0, END_OF_STREAM)]
            else:
                batch = fetcher.fetch(task.epoch, task.indices)
        except Exception as error:
            fetcher.skipped = []
            return [Raised(task.seq, 0, error)]
        skipped, fetcher.skipped = tuple(fetcher.skipped), []
        if batch is EMPTY_BATCH:
            return [Finished(task.seq, 0, NOTHING, skipped)]
        if self._pin:
            batch = _pin.pin(batch)
        digest = self._stream.digest if self._stream is not None else ""
        return [Finished(task.seq, 0, batch, skipped, digest)]

    def restart(self, worker_id: int) -> None:  # pragma: no cover - the caller cannot die
        raise AssertionError("the in-process runner has no worker to restart")

    def describe(self, worker_id: int) -> str:
        return "main process"

    def stack_of(self, worker_id: int) -> str:
        return ""

    def end_pass(self) -> None:
        self._stream = None

    def close(self, wait: bool = True) -> None:
        self._closed = True
        self._queue.clear()
        self._stream = None
