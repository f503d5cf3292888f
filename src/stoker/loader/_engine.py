"""The delivery engine: one iterator for every mode — in-process, thread and process workers.

It takes an :class:`EpochPlan` and a runner (which runs tasks and reports :mod:`events`), and
owns everything about delivery: the in-flight budget, the dispatch order, the reorder buffer,
the timeout, the skip/error budget, worker deaths and the end of the epoch. Runners differ only
in how a task runs and how its result comes back.

Invariants:
* at most ``plan.workers.max_in_flight`` tasks are dispatched and not yet delivered, finished
  ones waiting in the reorder buffer included;
* task ``seq`` goes to worker ``seq % num_workers`` (map-style), or round robin over the workers
  whose stream has not ended (iterable) — torch's assignment, so code that depends on which
  worker loads what behaves as under torch; with ``in_order=False`` it goes, as in torch, to
  the next worker in turn (whose stream goes on) that holds fewer than ``prefetch_factor``
  undelivered tasks, so a slow worker's share moves to the others;
* with ``in_order`` the user sees tasks in ``seq`` order whatever finishes first; a task leaves
  ``_pending`` only when its outcome has been delivered (a batch, an error, or nothing);
* a lost worker's tasks are resent to its replacement and recomputed identically (every
  sample's randomness depends only on (seed, epoch, index));
* an iterator ends in exactly one way — exhausted, closed, or failed — and says which on
  every later ``next()``: StopIteration, a "closed" error, or the failure again.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, Protocol

from stoker._fetch import describe_indices
from stoker._transport.messages import Task
from stoker._worker.remote_error import RemoteError
from stoker.errors import LoaderClosedError, LoaderTimeoutError, WorkerDiedError
from stoker.loader._events import (
    END_OF_STREAM,
    NOTHING,
    Event,
    Finished,
    InitFailed,
    Raised,
    WorkerLost,
)
from stoker.loader._plan import EpochPlan
from stoker.loader._progress import Progress
from stoker.loader._resume import chain_digest

_log = logging.getLogger("stoker")
_POLL_INTERVAL_S = 0.1  # longest wait between liveness checks of the workers
# With timeout=0 a worker that delivers nothing for this long is reported once: a stopped
# (SIGSTOP) or deadlocked worker otherwise waits silently forever.
STALL_WARNING_S = 300.0
_NO_ROOM = -1  # _next_worker: every worker that may take a task holds prefetch_factor already


class Runner(Protocol):
    """Runs tasks on workers and reports what happened; knows nothing about delivery order."""

    @property
    def current_pass(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def begin(self, plan: EpochPlan) -> None:
        """Start serving ``plan``'s pass: outcomes of earlier passes are dropped from now on."""

    def submit(self, worker_id: int, task: Task) -> None:
        """Queue ``task`` on worker ``worker_id`` (a send to a dead worker is reported by poll)."""

    def poll(self, timeout_s: float) -> list[Event]:
        """Outcomes and worker losses, waiting up to ``timeout_s`` for the first."""

    def restart(self, worker_id: int) -> None:
        """Replace a lost worker and resend its tasks of the current pass."""

    def describe(self, worker_id: int) -> str:
        """'worker 1 (pid 4242)' or the like, for messages."""

    def stack_of(self, worker_id: int) -> str:
        """The worker's stacks right now, or '' when they cannot be had."""

    def end_pass(self) -> None:
        """The pass ran to its end (persistent runners stay up for the next)."""

    def close(self, wait: bool = True) -> None:
        """Stop every worker; ``wait=False`` at a clean end of epoch may reap them later."""


def describe_task(task: Task) -> str:
    if task.indices is None:
        return f"batch {task.seq} of its stream"
    return f"dataset indices {describe_indices(task.indices)}"


class Delivery(Iterator[Any]):
    """Dispatches a plan's tasks to a runner and yields their batches in order."""

    def __init__(
        self,
        plan: EpochPlan,
        runner: Runner,
        progress: Progress,
        owns_runner: bool,
        keepalive: object = None,
    ):
        # What must outlive this iterator, never read: the loader of persistent workers, so
        # that `for x in DataLoader(..., persistent_workers=True)` (the loader referenced by
        # nothing else) does not close the workers under it when the loader is collected.
        self._keepalive = keepalive
        self._plan = plan
        self._runner = runner
        self._owns_runner = owns_runner
        self.progress = progress
        workers = plan.workers
        self._in_order = plan.in_order
        self._num_workers = workers.runner_count
        self._streams: list[int] | None = (
            list(range(self._num_workers)) if plan.fetch.is_iterable else None
        )
        self._rr = 0
        self._load = [0] * self._num_workers  # undelivered tasks per worker
        self._pending: dict[int, tuple[Task, int]] = {}  # seq -> (task, worker), in seq order
        self._done: dict[int, Event] = {}  # the reorder buffer: outcomes not yet delivered
        self._next_seq = 0
        self._exhausted = False
        self._restarts = 0
        self._to_skip = plan.skip_batches
        self._replayed: dict[int, str] = {}  # a resumed stream's replay, checked at its end
        self._ended: BaseException | None = None  # why this iterator ended, once it has
        self._stall_warned: set[int] = set()
        self._yielded = 0  # batches this iterator returned (torch's _num_yielded)
        runner.begin(plan)
        self._fill()

    # -- dispatch ----------------------------------------------------------------------------

    def _next_worker(self) -> int | None:
        """The worker for the next task; None when every stream has ended; _NO_ROOM when no
        worker may take one now (in_order=False: all of them hold prefetch_factor tasks)."""
        if self._streams is None and self._in_order:
            return self._next_seq % self._num_workers
        if self._streams is not None and not self._streams:
            return None
        if self._in_order:
            assert self._streams is not None
            worker = self._streams[self._rr % len(self._streams)]
            self._rr += 1
            return worker
        # torch's _try_put_index for in_order=False: the next worker of the cycle over all
        # worker ids whose stream goes on and that holds fewer than prefetch_factor tasks.
        room = self._plan.workers.prefetch_factor
        for _ in range(self._num_workers):
            worker = self._rr % self._num_workers
            self._rr += 1
            live = self._streams is None or worker in self._streams
            if live and self._load[worker] < room:
                return worker
        return _NO_ROOM

    def _fill(self) -> None:
        plan = self._plan
        while not self._exhausted and len(self._pending) < plan.workers.max_in_flight:
            worker = self._next_worker()
            if worker is None:
                self._exhausted = True
                return
            if worker == _NO_ROOM:  # a delivery frees room and calls _fill again
                return
            indices = None
            if plan.indices is not None:
                try:
                    indices = next(plan.indices)
                except StopIteration:
                    self._exhausted = True
                    return
            task = Task(plan.pass_id, self._next_seq, plan.epoch, plan.sample_seed, indices)
            self._next_seq += 1
            self._pending[task.seq] = (task, worker)
            self._load[worker] += 1
            self._runner.submit(worker, task)

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self) -> Delivery:
        return self

    def __next__(self) -> Any:
        if self._ended is not None:
            if isinstance(self._ended, StopIteration):
                raise StopIteration
            raise self._ended
        if self._runner.current_pass != self._plan.pass_id or self._runner.closed:
            self._end(
                LoaderClosedError(
                    "this DataLoader iterator can no longer be used: "
                    + (
                        "the loader was closed (loader.close())"
                        if self._runner.closed
                        else "a newer iter(loader) took over the loader's persistent workers"
                    )
                    + "; start a new pass with iter(loader)"
                ),
                close=False,
            )
        self.progress.started = True
        while True:
            event = self._next_outcome()
            if event is None:
                if self._to_skip:
                    self._end(self._past_the_end())
                self._finish()
                raise StopIteration
            batch = self._deliver(event)
            if batch is not NOTHING:
                self.progress.batches_yielded += 1
                self._yielded += 1
                if self._plan.reported_length is not None:
                    self._warn_past_length()
                return batch

    def _next_outcome(self) -> Event | None:
        """The next outcome to deliver, waiting for it; None at the end of the epoch."""
        while True:
            if self._in_order:
                head = next(iter(self._pending), None)
                if head is not None and head in self._done:
                    return self._take(head)
            elif self._done:
                return self._take(next(iter(self._done)))
            if not self._pending:
                return None
            self._wait(next(iter(self._pending)) if self._in_order else None)

    def _take(self, seq: int) -> Event:
        event = self._done.pop(seq)
        task, worker = self._pending.pop(seq)
        self._load[worker] -= 1
        progress = self.progress
        if progress.order_digest is not None:  # a replayed sampler: track what was consumed
            progress.order_digest = chain_digest(progress.order_digest, task.indices)
        self._fill()
        return event

    def _deliver(self, event: Event) -> Any:
        """The batch to hand out for one outcome, NOTHING to go on, or raise the task's error."""
        if isinstance(event, Finished) and event.value is END_OF_STREAM:
            return NOTHING
        if self._to_skip:  # resuming a stream: this batch was consumed before the save
            self._to_skip -= 1
            if isinstance(event, Finished):
                self._replayed[event.worker_id] = event.digest
            if not self._to_skip and self._replayed != self.progress.stream_digests:
                self._end(self._not_replayable())
            return NOTHING
        self.progress.positions_done += 1
        if isinstance(event, Finished) and self._streams is not None:
            self.progress.stream_digests[event.worker_id] = event.digest
        if isinstance(event, Raised):
            error = event.error
            if isinstance(error, BaseException):
                raise error
            try:
                error.reraise()
            except WorkerDiedError as died:  # a replacement could not take over: the end
                self._end(died)
                raise
        assert isinstance(event, Finished)
        if event.skipped:
            self._plan.skipped.extend(event.skipped)
            try:
                self._plan.budget.check(self._plan.skipped)
            except BaseException as error:
                self._end(error)
        value = event.value
        return value.result() if isinstance(value, Future) else value

    def _warn_past_length(self) -> None:
        """torch's warning, word for word: a stream yields more than its reported length.

        Like torch, it compares batches returned with the dataset's len() (samples) recorded
        when ``len(loader)`` was last called, and warns on every batch past it.
        """
        reported = self._plan.reported_length
        assert reported is not None
        if self._yielded <= reported:
            return
        message = (
            f"Length of IterableDataset {self._plan.fetch.dataset} was reported to be "
            f"{reported}(when accessing len(dataloader)), but {self._yielded} samples have been "
            "fetched. "
        )
        if self._plan.workers.num_workers > 0:
            message += (
                "For multiprocessing data-loading, this could be caused by not properly "
                "configuring the IterableDataset replica at each worker. Please see "
                "https://pytorch.org/docs/stable/data.html#torch.utils.data.IterableDataset for "
                "examples."
            )
        warnings.warn(message, UserWarning, stacklevel=3)

    # -- waiting -------------------------------------------------------------------------------

    def _wait(self, seq: int | None) -> None:
        """Block until some outcome arrives, handling worker losses; bounded by the timeout."""
        started = time.monotonic()
        timeout = self._plan.workers.timeout_s
        while True:
            events = self._runner.poll(_POLL_INTERVAL_S)
            for event in events:
                self._handle(event)
            if events:
                return
            waited = time.monotonic() - started
            if timeout and waited > timeout:
                self._raise_timeout(seq, waited)
            if not timeout and waited > STALL_WARNING_S:
                self._warn_stalled(seq, waited)

    def _handle(self, event: Event) -> None:
        if isinstance(event, WorkerLost):
            self._on_lost(event)
        elif isinstance(event, InitFailed):
            error = event.error
            self._end(error if isinstance(error, BaseException) else _reraised(error), close=True)
        elif event.seq in self._pending and event.seq not in self._done:
            self._done[event.seq] = event
            ended = isinstance(event, Finished) and event.value is END_OF_STREAM
            if ended and self._streams is not None and event.worker_id in self._streams:
                self._streams.remove(event.worker_id)

    def _held_by(self, worker_id: int) -> list[Task]:
        return [
            task
            for seq, (task, worker) in self._pending.items()
            if worker == worker_id and seq not in self._done
        ]

    def _on_lost(self, event: WorkerLost) -> None:
        workers = self._plan.workers
        held = "; ".join(describe_task(t) for t in self._held_by(event.worker_id)) or "no batch"
        # torch's words first ("DataLoader worker (pid N) is killed by signal: ..."), which code
        # that inspects worker deaths matches; then which worker it was and what it held.
        what = (
            f"DataLoader worker (pid {event.pid}) {event.how}: worker {event.worker_id}, while "
            f"holding {held}"
        )
        if workers.on_worker_death != "restart" or self._restarts >= workers.max_worker_restarts:
            budget = (
                f" after {self._restarts} restart(s) this epoch (max_worker_restarts="
                f"{workers.max_worker_restarts})"
                if workers.on_worker_death == "restart"
                else " (on_worker_death='raise')"
            )
            self._end(
                WorkerDiedError(
                    f"{what}{budget}. If it was killed for memory, lower batch_size, "
                    "prefetch_factor or num_workers; if a sample crashes it, load that index "
                    "alone with num_workers=0 to see why."
                )
            )
        self._restarts += 1
        _log.warning(
            "%s; restarting it and resending its batches (restart %d of %d this epoch)",
            what,
            self._restarts,
            workers.max_worker_restarts,
        )
        self._runner.restart(event.worker_id)

    def _awaited(self, seq: int | None) -> tuple[Task | None, int | None]:
        if seq is None or seq not in self._pending:
            return None, None
        return self._pending[seq]

    def _raise_timeout(self, seq: int | None, waited: float) -> None:
        task, worker = self._awaited(seq)
        who = self._runner.describe(worker) if worker is not None else "its workers"
        what = describe_task(task) if task is not None else "the next batch"
        stack = self._runner.stack_of(worker) if worker is not None else ""
        self._end(
            LoaderTimeoutError(
                f"DataLoader timed out after {self._plan.workers.timeout_s} seconds "
                f"(waited {waited:.1f} s) for {what} from {who}; the dataset may be stuck (I/O, "
                "a lock, a deadlock in a C extension). Raise timeout= if loading a batch "
                "legitimately takes longer."
                + (f"\nThe worker's stack when it timed out:\n{stack}" if stack else "")
            )
        )

    def _warn_stalled(self, seq: int | None, waited: float) -> None:
        task, worker = self._awaited(seq)
        if worker is None or worker in self._stall_warned:
            return
        self._stall_warned.add(worker)
        message = (
            f"DataLoader {self._runner.describe(worker)} has made no progress for "
            f"{waited:.0f} s on {describe_task(task) if task else 'its batch'}; it may be "
            "stopped (SIGSTOP) or stuck. Set timeout= to turn this into an error with its stack."
        )
        _log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)

    # -- ending --------------------------------------------------------------------------------

    def _not_replayable(self) -> ValueError:
        return ValueError(
            f"cannot resume epoch {self._plan.epoch} exactly: replaying the "
            f"{self._plan.skip_batches} batches of the IterableDataset "
            f"{type(self._plan.fetch.dataset).__name__} consumed before the save gave other "
            "batches than the saved run had (its __iter__ depends on more than "
            "get_worker_info() and the epoch, or the data changed), so the rest would repeat "
            "and lose samples. Make the stream deterministic per worker, or start the epoch "
            "over without load_state_dict"
        )

    def _past_the_end(self) -> ValueError:
        replayed = self._plan.skip_batches - self._to_skip
        return ValueError(
            f"the loader state says {self._plan.skip_batches} batches of epoch "
            f"{self._plan.epoch} were consumed, but this IterableDataset's stream "
            f"({type(self._plan.fetch.dataset).__name__}) ended after {replayed}: the stream is "
            "not the one the state was saved from (other data, another batch_size or "
            "drop_last). Resume with the same dataset and loader arguments, or start the epoch "
            "over without load_state_dict"
        )

    def _finish(self) -> None:
        self._ended = StopIteration()
        self.progress.finished = True
        if self._owns_runner:
            self._runner.close(wait=False)
        elif self._runner.current_pass == self._plan.pass_id:
            self._runner.end_pass()

    def _end(self, error: BaseException, close: bool = True) -> None:
        """End this iterator with ``error``, raised now and on every later ``next()``."""
        self._ended = error
        if close and self._owns_runner:
            self._runner.close()
        raise error

    @property
    def ended(self) -> bool:
        """Whether this iterator has ended (exhausted, closed, failed) or its loader closed."""
        return self._ended is not None or self._runner.closed

    def close(self) -> None:
        """Stop this iterator's workers now (also done on exhaustion and garbage collection)."""
        if self._ended is None:
            self._ended = LoaderClosedError(
                "this DataLoader iterator was closed; start a new pass with iter(loader)"
            )
        if self._owns_runner:
            self._runner.close()

    def __del__(self) -> None:
        if getattr(self, "_owns_runner", False):
            self._runner.close()

    @property
    def _workers(self) -> list[Any]:
        """torch's private ``_workers``: the worker processes (``multiprocessing.Process``), by
        worker id, as code written against torch's iterator reads them (pids, join, is_alive).

        A read-only snapshot: a new list on each access, of the processes running now (a
        replaced worker's new process); empty for threads and in-process loading.
        """
        processes = getattr(self._runner, "processes", None)
        return list(processes) if processes is not None else []

    def __len__(self) -> int:
        if self._plan.length is None:
            raise TypeError("this DataLoader's dataset has no len()")
        return self._plan.length


def _reraised(error: RemoteError) -> BaseException:
    try:
        error.reraise()
    except BaseException as raised:
        return raised
