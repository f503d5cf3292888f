"""WorkerPool: starts, feeds, watches, restarts and stops the worker processes of one loader.

Invariants:
* the pool knows, at every moment, which tasks (batch ids and their dataset indices) each worker
  holds — ``in_flight`` — so a dead worker's batches can be sent to its replacement;
* a slot is handed back to its worker only when every tensor viewing it is garbage (a finalizer
  on the batch's buffer owner), and only to the worker generation that made it — or, once the
  pool has stopped and that worker is gone, to the loader's slot bank for its next workers;
* every wait is bounded by ``_POLL_INTERVAL_S`` and checks process sentinels, so a dead worker is
  seen within that interval, never waited on forever.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stoker._transport import codec, shm
from stoker._transport.bank import SlotBank
from stoker._worker.loop import WorkerConfig, stack_dump_path, worker_loop

_POLL_INTERVAL_S = 0.1  # longest wait between liveness checks
_WORKER_JOIN_TIMEOUT_S = 2.0  # grace for a clean exit before terminate, then kill
# A worker's ring holds its undelivered batches (up to 2 * prefetch_factor when the other
# workers lag), the batch being returned, the one the user's loop variable still holds, and
# one freed but not yet handed back.
_SLOT_HEADROOM = 3
_STACK_DUMP_WAIT_S = 1.0  # how long a timeout waits for a stuck worker's stack dump

# Helper threads still joining the workers of pools that ended with an epoch. No worker is
# forked while one runs: a fork copies every lock that thread holds (tempfile's, the import
# lock, ...) into the child, locked for good, and the child hangs on it. By the time the next
# epoch starts they have usually finished, so the join costs nothing.
_reapers: list[threading.Thread] = []
tempfile.gettempdir()  # computed now, under its lock, rather than first in some thread


@dataclass
class Task:
    """One batch to make: its id, the epoch, the seed its samples derive from, its indices."""

    task_id: int
    epoch: int
    sample_seed: int
    indices: Any  # list of indices, one index (batch_size=None), or None (iterable dataset)


@dataclass
class WorkerHandle:
    """The loader's side of one worker process."""

    worker_id: int
    generation: int
    process: Any
    conn: Any
    slots: dict[int, Any] = field(default_factory=dict)
    capacity: dict[int, int] = field(default_factory=dict)
    lent: set[int] = field(default_factory=set)  # slots that tensors the user holds still view
    pending_free: list[int] = field(default_factory=list)
    in_flight: dict[int, Task] = field(default_factory=dict)
    alive: bool = True
    # A poll object on this worker's pipe alone: asks "more to read?" in one syscall, where
    # Connection.poll() builds a selector each time (measured ~10 us, several per batch).
    readable: Any = None
    retired: bool = False  # stopped with nothing left to write: its slots may go to the bank


def resolve_context(context: Any) -> Any:
    """multiprocessing_context as torch accepts it: None (fork on Linux), a name, or a context."""
    if context is None:
        method = "fork" if sys.platform.startswith("linux") else None
        return multiprocessing.get_context(method)
    if isinstance(context, str):
        if context not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"multiprocessing_context={context!r} is not a start method on this platform; "
                f"choose from {multiprocessing.get_all_start_methods()}"
            )
        return multiprocessing.get_context(context)
    if not hasattr(context, "Process"):
        raise TypeError(
            "multiprocessing_context must be None, a start method name or a multiprocessing "
            f"context, got {type(context).__name__}"
        )
    return context


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "is unresponsive"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {exitcode}"


def _shutdown_processes(processes: list[Any], conns: list[Any], prefix: str) -> None:
    """Stop workers and sweep slot names; safe to call twice and at interpreter exit."""
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("stop",))
    deadline = time.monotonic() + _WORKER_JOIN_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(0.5)
        if process.is_alive():
            process.kill()
            process.join(0.5)
    for conn in conns:
        conn.close()
    shm.unlink_leftovers(prefix)
    for stack_file in Path(tempfile.gettempdir()).glob(f"{prefix}*stack.txt"):
        stack_file.unlink(missing_ok=True)  # left by workers that had to be killed


class WorkerPool:
    """The worker processes of a loader, their pipes, and their shared-memory slots."""

    def __init__(self, loader: Any, base_seed: int):
        self.num_workers: int = loader.num_workers
        self.prefetch_factor: int = loader.prefetch_factor
        self._context = resolve_context(loader.multiprocessing_context)
        self._dataset = loader.dataset
        self.prefix = shm.new_pool_token()
        self.config = WorkerConfig(
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            batch_transform=loader.batch_transform,
            auto_collation=loader._auto_collation,
            batch_size=loader.batch_size,
            drop_last=loader.drop_last,
            is_iterable=loader._is_iterable,
            worker_init_fn=loader.worker_init_fn,
            base_seed=base_seed,
            slot_prefix=self.prefix,
            use_shm=shm.available(),
            slots_per_worker=2 * self.prefetch_factor + _SLOT_HEADROOM,
            on_error=loader.on_error,
            check_indices=not loader._owns_sampler,
        )
        self.next_task_id = 0
        self.closed = False
        # Workers forked afresh every epoch inherit the slots of the previous epoch's workers.
        self._bank: SlotBank | None = None
        if (
            not loader.persistent_workers
            and self.config.use_shm
            and getattr(self._context, "get_start_method", lambda: None)() == "fork"
        ):
            if loader._slot_bank is None:
                loader._slot_bank = SlotBank(per_worker=self.config.slots_per_worker)
            self._bank = loader._slot_bank
        self._banked = False  # set once this pool's free slots went to the bank
        self._poller = select.poll()  # every live worker's pipe and process sentinel
        self.workers: list[WorkerHandle] = []
        self._processes: list[Any] = []
        self._conns: list[Any] = []
        self._finalizer = weakref.finalize(
            self, _shutdown_processes, self._processes, self._conns, self.prefix
        )
        # Only worker 0 starts now; the others right after it has its first task, so the first
        # batch is being made while they fork (time to first batch = one fork, not n).
        self.workers.append(self._start(0, generation=0))

    @property
    def all_started(self) -> bool:
        return len(self.workers) == self.num_workers

    def start_remaining(self) -> None:
        while len(self.workers) < self.num_workers:
            self.workers.append(self._start(len(self.workers), generation=0))

    # -- processes ---------------------------------------------------------------------------

    def _start(self, worker_id: int, generation: int) -> WorkerHandle:
        parent_end, child_end = self._context.Pipe(duplex=True)
        config = self.config
        if generation:
            config = _with_prefix(config, f"{self.prefix}g{generation}-")
        inherited = self._bank.withdraw(worker_id) if self._bank and not generation else {}
        while _reapers:
            _reapers.pop().join()
        process = self._context.Process(
            target=worker_loop,
            args=(worker_id, self._dataset, child_end, config, os.getpid(), inherited),
            daemon=True,
            name=f"stoker-worker-{worker_id}",
        )
        process.start()
        child_end.close()
        self._processes.append(process)
        self._conns.append(parent_end)
        handle = WorkerHandle(worker_id, generation, process, parent_end)
        handle.readable = select.poll()
        handle.readable.register(parent_end.fileno(), select.POLLIN)
        self._poller.register(parent_end.fileno(), select.POLLIN)
        self._poller.register(process.sentinel, select.POLLIN)
        for slot, (mapping, capacity) in inherited.items():
            handle.slots[slot], handle.capacity[slot] = mapping, capacity
        return handle

    def restart(self, worker_id: int) -> WorkerHandle:
        """Replace a dead worker by a fresh process; its in-flight tasks are returned to resend."""
        old = self.workers[worker_id]
        self._forget(old)
        old.process.join(0.1)
        shm.unlink_leftovers(
            f"{self.prefix}g{old.generation}-w{worker_id}-"
            if old.generation
            else f"{self.prefix}w{worker_id}-"
        )
        new = self._start(worker_id, old.generation + 1)
        new.in_flight = old.in_flight
        old.in_flight = {}
        self.workers[worker_id] = new
        for task in new.in_flight.values():
            self._send_task(new, task)
        return new

    def stack_of(self, worker: WorkerHandle) -> str:
        """The worker's Python stacks right now (faulthandler), or "" if it cannot tell."""
        prefix = f"{self.prefix}g{worker.generation}-" if worker.generation else self.prefix
        path = stack_dump_path(f"{prefix}w{worker.worker_id}-")
        try:
            os.kill(worker.process.pid, signal.SIGUSR1)
        except OSError:
            return ""
        deadline = time.monotonic() + _STACK_DUMP_WAIT_S
        text = ""
        while time.monotonic() < deadline and "File" not in text:
            time.sleep(0.05)
            with contextlib.suppress(OSError), open(path) as dump:
                text = dump.read()
        return text.strip()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers, and keep their free slots for the loader's next pool.

        With ``wait=False`` and no task outstanding (an epoch that ran to its end) the workers
        are told to stop and joined on a helper thread: a worker takes ~15 ms to exit (the
        kernel tears down its copy of the loader's address space), which the training loop
        need not wait for. An idle worker never writes again, so its slots are banked at once.
        """
        if self.closed:
            return
        self.closed = True
        if wait or any(worker.in_flight for worker in self.workers):
            self._finalizer()
            if self._bank is not None:
                self._deposit_free_slots([w for w in self.workers if not w.process.is_alive()])
            return
        for worker in self.workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("stop",))
        if self._bank is not None:
            self._deposit_free_slots(self.workers)
        reaper = threading.Thread(target=self._finalizer, name="stoker-reaper", daemon=True)
        reaper.start()
        _reapers.append(reaper)

    def _deposit_free_slots(self, retired: list[WorkerHandle]) -> None:
        """Give the bank every slot of the ``retired`` workers (gone, or idle and stopped: they
        write no more) that no tensor views; the rest follow as their last views die."""
        assert self._bank is not None
        # No lock: _release may run at any moment, in any thread; see there why this is safe.
        self._banked = True
        for worker in retired:
            worker.retired = True
            for slot in list(worker.slots):
                if slot not in worker.lent:
                    self._deposit(worker, slot)

    def _deposit(self, worker: WorkerHandle, slot: int) -> None:
        assert self._bank is not None
        mapping = worker.slots.pop(slot, None)  # popped: a slot is deposited at most once
        if mapping is not None:
            self._bank.deposit(worker.worker_id, slot, mapping, worker.capacity[slot])

    # -- tasks -------------------------------------------------------------------------------

    def _send_task(self, worker: WorkerHandle, task: Task) -> None:
        kind = "next" if self.config.is_iterable else "task"
        freed, worker.pending_free = worker.pending_free, []
        worker.conn.send((kind, task.task_id, task.epoch, task.sample_seed, task.indices, freed))

    def submit(self, worker_id: int, task: Task) -> None:
        worker = self.workers[worker_id]
        worker.in_flight[task.task_id] = task
        self._send_task(worker, task)

    def wait(self, timeout: float) -> list[tuple[WorkerHandle, Any]]:
        """Messages that arrived within ``timeout`` s, and ("died", exitcode) for dead workers."""
        live = [w for w in self.workers if w.alive]
        ready = {fd for fd, _ in self._poller.poll(math.ceil(max(timeout, 0.0) * 1000))}
        events: list[tuple[WorkerHandle, Any]] = []
        for worker in live:
            self._drain(worker, events)
            if worker.process.sentinel in ready or not worker.process.is_alive():
                self._drain(worker, events)  # a worker may die right after sending
                worker.process.join(0.05)
                if not worker.process.is_alive():
                    self._forget(worker)
                    events.append((worker, ("died", -1, worker.process.exitcode)))
        return events

    def _forget(self, worker: WorkerHandle) -> None:
        """Stop watching a dead worker: a dead process's sentinel would wake every poll."""
        worker.alive = False
        for fd in (worker.conn.fileno(), worker.process.sentinel):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._poller.unregister(fd)

    @staticmethod
    def _drain(worker: WorkerHandle, events: list[tuple[WorkerHandle, Any]]) -> None:
        """Append every message already in ``worker``'s pipe (none: return at once)."""
        try:
            while worker.readable.poll(0):
                events.append((worker, worker.conn.recv()))
        except (EOFError, OSError):
            pass

    # -- batches -------------------------------------------------------------------------------

    def materialize(self, worker: WorkerHandle, payload: tuple[Any, ...]) -> Any:
        """The batch a worker sent: inline values, or zero-copy views of its slot."""
        if payload[0] == "inline":
            return codec.from_inline(payload[1])
        _, slot, name, capacity, skeleton, nbytes = payload
        if name is not None:
            worker.slots[slot] = shm.open_and_unlink(name, capacity)
            worker.capacity[slot] = capacity
        worker.lent.add(slot)
        owner = (ctypes.c_char * nbytes).from_buffer(worker.slots[slot])
        finalizer = weakref.finalize(owner, self._release, worker, slot)
        finalizer.atexit = False
        return codec.rebuild(skeleton, np.frombuffer(owner, np.uint8))

    def _release(self, worker: WorkerHandle, slot: int) -> None:
        # Runs whenever the user's last view of a batch dies: in any thread, possibly inside a
        # garbage collection that interrupted code holding a lock — so it takes none. Each step
        # is atomic under the GIL, and the order makes it safe against _deposit_free_slots: the
        # slot leaves `lent` before `_banked` is read, that function sets `_banked` and `retired`
        # before it reads `lent`, and `_deposit` claims a slot with one dict.pop, so a slot is
        # banked once, and never while a tensor views it.
        worker.lent.discard(slot)
        if self._banked:
            if worker.retired:
                self._deposit(worker, slot)
        elif worker.alive and not self.closed:
            worker.pending_free.append(slot)

    def flush_frees(self) -> None:
        """Hand freed slots back to idle workers (busy ones get them with their next task)."""
        for worker in self.workers:
            if worker.pending_free and worker.alive and not worker.in_flight:
                freed, worker.pending_free = worker.pending_free, []
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(("free", freed))


def _with_prefix(config: WorkerConfig, prefix: str) -> WorkerConfig:
    from dataclasses import replace

    return replace(config, slot_prefix=prefix)
