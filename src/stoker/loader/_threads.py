"""ThreadRunner: tasks run on worker threads (worker_mode="thread").

For in-memory datasets whose work releases the GIL (numpy gathers, torch ops, batched
transforms) threads beat processes: nothing is forked, pickled or copied into shared memory,
and a batch is handed over as the very tensors the worker made.

Invariants:
* worker ``i`` is one daemon thread with its own task queue, fetcher and ``get_worker_info()``,
  so tasks are assigned exactly as to processes, and a thread stuck in the dataset never keeps
  the interpreter from exiting;
* the threads hold the runner's queues and plain settings, never the runner or the engine: a
  dropped iterator can always be collected and its threads told to stop;
* a task of a pass that is no longer current is skipped unrun, its result never delivered.
"""

from __future__ import annotations

import queue
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from stoker._fetch import EMPTY_BATCH
from stoker._transport.messages import Task
from stoker._worker import info
from stoker.loader import _pin
from stoker.loader._events import NOTHING, Event, Finished, InitFailed, Raised
from stoker.loader._plan import EpochPlan, FetchSettings

_STOP: Any = None  # a thread's queue sentinel


@dataclass
class _Shared:
    """What the threads and the runner both see: the current pass, the results queue."""

    current_pass: int
    results: queue.SimpleQueue[Event]


def _thread_main(
    worker_id: int,
    tasks: queue.SimpleQueue[Task | None],
    shared: _Shared,
    fetch: FetchSettings,
    num_workers: int,
    seed: int,
    worker_init_fn: Any,
    pin: bool,
) -> None:
    info._set_thread_worker_info(info.WorkerInfo(worker_id, num_workers, seed, fetch.dataset))
    try:
        if worker_init_fn is not None:
            worker_init_fn(worker_id)
    except Exception as error:
        error.add_note(f"stoker: raised in worker_init_fn({worker_id}) in a worker thread")
        shared.results.put(InitFailed(worker_id, error))
        return
    fetchers: dict[int, Any] = {}
    while True:
        task = tasks.get()
        if task is None:  # _STOP
            return
        if task.pass_id != shared.current_pass:
            continue  # its pass was abandoned: nobody will read the batch
        fetcher = fetchers.get(task.sample_seed)
        if fetcher is None:
            fetchers.clear()
            fetcher = fetchers[task.sample_seed] = fetch.fetcher(task.sample_seed)
        try:
            batch = fetcher.fetch(task.epoch, task.indices)
        except Exception as error:
            fetcher.skipped = []
            shared.results.put(Raised(task.seq, worker_id, error))
            continue
        skipped, fetcher.skipped = tuple(fetcher.skipped), []
        if batch is EMPTY_BATCH:
            batch = NOTHING
        elif pin:
            batch = _pin.pin(batch)  # on the worker thread, off the training loop's
        if task.pass_id == shared.current_pass:
            shared.results.put(Finished(task.seq, worker_id, batch, skipped))


class ThreadRunner:
    """``num_workers`` daemon threads, each fed its own tasks."""

    def __init__(self, plan: EpochPlan):
        workers = plan.workers
        self._shared = _Shared(-1, queue.SimpleQueue())
        self._queues: list[queue.SimpleQueue[Task | None]] = []
        self._threads: list[threading.Thread] = []
        pin = workers.pin and _pin.pinning_available()
        for worker_id in range(workers.num_workers):
            tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=_thread_main,
                args=(
                    worker_id,
                    tasks,
                    self._shared,
                    plan.fetch,
                    workers.num_workers,
                    workers.base_seed + worker_id,
                    workers.worker_init_fn,
                    pin,
                ),
                name=f"stoker-worker-{worker_id}",
                daemon=True,
            )
            self._queues.append(tasks)
            self._threads.append(thread)
        self._started = False
        self._closed = False

    @property
    def current_pass(self) -> int:
        return self._shared.current_pass

    @property
    def closed(self) -> bool:
        return self._closed

    def begin(self, plan: EpochPlan) -> None:
        self._shared.current_pass = plan.pass_id
        while True:  # outcomes of an abandoned pass
            try:
                self._shared.results.get_nowait()
            except queue.Empty:
                break
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def submit(self, worker_id: int, task: Task) -> None:
        self._queues[worker_id].put(task)

    def poll(self, timeout_s: float) -> list[Event]:
        results = self._shared.results
        try:
            events = [results.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while True:
            try:
                events.append(results.get_nowait())
            except queue.Empty:
                return events

    def restart(self, worker_id: int) -> None:  # pragma: no cover - threads do not die alone
        raise AssertionError("worker threads are not restarted")

    def describe(self, worker_id: int) -> str:
        return f"worker thread {worker_id} ({self._threads[worker_id].name})"

    def stack_of(self, worker_id: int) -> str:
        ident = self._threads[worker_id].ident
        frame = sys._current_frames().get(ident) if ident is not None else None
        return "".join(traceback.format_stack(frame)).strip() if frame is not None else ""

    def end_pass(self) -> None:
        pass

    def close(self, wait: bool = True) -> None:
        """Tell every thread to stop; a thread stuck in the dataset is left behind (daemon)."""
        if self._closed:
            return
        self._closed = True
        self._shared.current_pass = -1  # queued tasks are skipped, late results dropped
        for tasks in self._queues:
            tasks.put(_STOP)
