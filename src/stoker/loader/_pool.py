"""ProcessPool: the worker processes of one loader — start, feed, watch, replace, stop.

Invariants:
* the pool knows, at every moment, which tasks each worker holds (``in_flight``, by pass and
  position), so a lost worker's tasks of the current pass can be resent to its replacement;
* a worker is found dead at any moment — while the loader sends to it, while it is idle between
  epochs, before its first task, at shutdown — and reported as :class:`WorkerLost` by ``poll``
  (or replaced at ``begin`` when it died idle); a dead worker's pipe and process handles are
  closed at once, so file descriptors stay flat over any number of restarts;
* every wait is bounded by the caller's timeout and checks process sentinels;
* shutting down sends Stop, joins, then terminates and kills, and sweeps the pool's slot names,
  whichever path gets there (an end of epoch, a ``break``, an error, interpreter exit).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import multiprocessing
import os
import pickle
import select
import signal
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from stoker._transport import messages as msg
from stoker._transport import shm
from stoker._transport.bank import SlotBank
from stoker._transport.ring import ConsumerRing, sweep_orphans, worker_prefix
from stoker._worker.loop import WorkerConfig, worker_loop
from stoker.loader import _pin
from stoker.loader._events import (
    END_OF_STREAM,
    NOTHING,
    Event,
    Finished,
    InitFailed,
    Raised,
    WorkerLost,
)
from stoker.loader._plan import EpochPlan, WorkerSettings

_log = logging.getLogger("stoker")
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


def resolve_context(context: Any) -> Any:
    """multiprocessing_context as torch accepts it: None (the global start method), a name, or
    a context."""
    if context is None:
        return multiprocessing.get_context()
    if isinstance(context, str):
        if context not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"multiprocessing_context option should specify a valid start method in "
                f"{multiprocessing.get_all_start_methods()!r}, but got "
                f"multiprocessing_context={context!r}"
            )
        return multiprocessing.get_context(context)
    if not hasattr(context, "Process"):
        raise TypeError(
            "multiprocessing_context option should be a valid context object or a string "
            "specifying the start method, but got multiprocessing_context="
            f"{context!r} ({type(context).__name__})"
        )
    return context


def describe_exit(exitcode: int | None) -> str:
    """How a worker ended, in torch's words ("is killed by signal: Killed"), with the signal's
    name after them, so "DataLoader worker (pid N) " + this reads as torch's message."""
    if exitcode is None:
        return "is unresponsive"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        words = signal.strsignal(-exitcode) or name
        hint = "; the kernel's OOM killer sends SIGKILL" if name == "SIGKILL" else ""
        return f"is killed by signal: {words} ({name}{hint})"
    return f"exited unexpectedly with exit code {exitcode}"


def _shutdown_processes(processes: list[Any], conns: list[Any], token: str) -> None:
    """Stop workers and sweep slot names; safe to call twice and at interpreter exit."""
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):
            conn.send(msg.Stop())
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
    shm.unlink_leftovers(token)


@dataclass
class _Worker:
    """The loader's side of one worker process."""

    worker_id: int
    generation: int
    process: Any
    conn: Any
    ring: ConsumerRing
    readable: Any  # a poll object on this worker's pipe alone: "more to read?" in one syscall
    pid: int = 0
    in_flight: dict[tuple[int, int], msg.Task] = field(default_factory=dict)
    delivered: int = 0  # iterable: outcomes of the current pass that arrived from it
    skip_pending: int = 0  # iterable: a replacement's catch-up, sent with its next task
    digest: str = ""  # iterable: fingerprint chain of the batches it delivered this pass
    skip_digest: str | None = None  # iterable: what the replacement's catch-up must reproduce
    stack_fd: int | None = None
    alive: bool = True
    broken: bool = False  # a send failed: the process is dead or dying


class ProcessPool:
    """The worker processes of a loader, their pipes, and their shared-memory slots."""

    def __init__(self, plan: EpochPlan, bank: SlotBank | None):
        fetch, workers = plan.fetch, plan.workers
        self.num_workers = workers.num_workers
        self._context = resolve_context(workers.context)
        self._start_method = getattr(self._context, "get_start_method", lambda: None)()
        self._dataset = fetch.dataset
        self.token = shm.new_pool_token()
        sweep_orphans()  # names left by loaders that were killed
        use_shm = shm.available()
        self._config = WorkerConfig(
            num_workers=workers.num_workers,
            collate_fn=fetch.collate_fn,
            batch_transform=fetch.batch_transform,
            auto_collation=fetch.auto_collation,
            batch_size=fetch.batch_size,
            drop_last=fetch.drop_last,
            is_iterable=fetch.is_iterable,
            worker_init_fn=workers.worker_init_fn,
            base_seed=workers.base_seed,
            slot_prefix="",
            use_shm=use_shm,
            slots_per_worker=self.slots_per_worker(workers),
            on_error=fetch.on_error,
            check_indices=fetch.check_indices,
        )
        self._bank = bank if self.can_bank(workers) else None
        self._pinner = (
            ThreadPoolExecutor(1, thread_name_prefix="stoker-pin")
            if workers.pin and _pin.pinning_available()
            else None
        )
        self._pass = -1
        self._closed = False
        self._reaper: threading.Thread | None = None  # joining the workers after an epoch
        self._poller = select.poll()  # every live worker's pipe and process sentinel
        self.workers: list[_Worker | None] = [None] * workers.num_workers
        self._processes: list[Any] = []
        self._conns: list[Any] = []
        self._finalizer = weakref.finalize(
            self, _shutdown_processes, self._processes, self._conns, self.token
        )

    @staticmethod
    def can_bank(workers: WorkerSettings) -> bool:
        """Whether this pool's workers can inherit banked slots: fork-started, with /dev/shm."""
        context = resolve_context(workers.context)
        forks = getattr(context, "get_start_method", lambda: None)() == "fork"
        return forks and shm.available() and not workers.persistent

    @staticmethod
    def slots_per_worker(workers: WorkerSettings) -> int:
        return 2 * workers.prefetch_factor + _SLOT_HEADROOM

    @property
    def current_pass(self) -> int:
        return self._pass

    @property
    def processes(self) -> list[Any]:
        """The worker processes started so far, by worker id (the live generation): a worker
        found dead has had its process handle closed, and is left out.

        After an epoch's end the reaper thread is joining them: it finishes first, since two
        threads joining one ``multiprocessing.Process`` race in ``waitpid`` and the loser's
        ``join(60)`` returned at once with the process "alive" (torch's test_dataloader joins
        the iterator's ``_workers`` after the epoch and checks they exited with code 0).
        """
        if self._reaper is not None:
            self._reaper.join()
        return [worker.process for worker in self.workers if worker is not None and worker.alive]

    @property
    def closed(self) -> bool:
        return self._closed

    # -- processes ---------------------------------------------------------------------------

    def _start(self, worker_id: int, generation: int) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        prefix = worker_prefix(self.token, worker_id, generation)
        config = dataclasses.replace(self._config, slot_prefix=prefix)
        inherited = self._bank.withdraw(worker_id) if self._bank and not generation else {}
        while _reapers:
            _reapers.pop().join()
        process = self._context.Process(
            target=worker_loop,
            args=(worker_id, self._dataset, child_end, config, os.getpid(), inherited),
            daemon=True,
            name=f"stoker-worker-{worker_id}",
        )
        try:
            process.start()
        except (TypeError, AttributeError, pickle.PicklingError):
            # spawn and forkserver pickle the dataset, collate_fn and worker_init_fn for the
            # child; torch warns with this text, and code (and its tests) may look for it.
            parent_end.close()
            warnings.warn(
                "Got pickle error when attempting to start a worker Process. This might be "
                "because the worker Process arguments are not picklable. Python 3.14+ changed "
                "the multiprocessing start method in non-Mac POSIX platforms to 'forkserver', "
                "which requires the worker Process arguments to be picklable. You can also try "
                "multiprocessing.set_start_method('fork') (stoker: or "
                "multiprocessing_context='fork', or worker_mode='thread', which pickles nothing; "
                f"start method here: {self._start_method!r}).",
                UserWarning,
                stacklevel=2,
            )
            raise
        finally:
            child_end.close()
        self._processes.append(process)
        self._conns.append(parent_end)
        readable = select.poll()
        readable.register(parent_end.fileno(), select.POLLIN)
        self._poller.register(parent_end.fileno(), select.POLLIN)
        self._poller.register(process.sentinel, select.POLLIN)
        ring = ConsumerRing(worker_id, prefix, self._bank, inherited)
        worker = _Worker(worker_id, generation, process, parent_end, ring, readable, process.pid)
        self.workers[worker_id] = worker
        return worker

    def _forget(self, worker: _Worker) -> None:
        """Stop watching a dead worker and close its handles (its pipe, its sentinel)."""
        if not worker.alive:
            return
        worker.alive = False
        worker.ring.forget()
        for fd in (worker.conn.fileno(), worker.process.sentinel):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._poller.unregister(fd)
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(1.0)
        with contextlib.suppress(ValueError):
            self._conns.remove(worker.conn)
        with contextlib.suppress(ValueError):
            self._processes.remove(worker.process)
        worker.conn.close()
        with contextlib.suppress(ValueError):
            worker.process.close()
        shm.unlink_leftovers(worker.ring.prefix)

    def restart(self, worker_id: int) -> None:
        """Replace a lost worker by a fresh process and resend its tasks of the current pass."""
        old = self.workers[worker_id]
        assert old is not None
        self._forget(old)
        new = self._start(worker_id, old.generation + 1)
        new.delivered = new.skip_pending = old.delivered
        new.digest = old.digest
        new.skip_digest = old.digest
        for key in sorted(old.in_flight):
            task = old.in_flight[key]
            if task.pass_id == self._pass:
                self.submit(worker_id, task)

    # -- the runner's verbs ------------------------------------------------------------------

    def begin(self, plan: EpochPlan) -> None:
        self._pass = plan.pass_id
        for worker in self.workers:
            if worker is None:
                continue
            worker.delivered = worker.skip_pending = 0
            worker.digest, worker.skip_digest = "", None
            if worker.alive and not worker.process.is_alive():  # died idle, between passes
                exitcode = worker.process.exitcode
                _log.warning(
                    "DataLoader worker (pid %s) %s while idle between epochs (worker %d); "
                    "starting a new one",
                    worker.pid,
                    describe_exit(exitcode),
                    worker.worker_id,
                )
                self._forget(worker)
                self._start(worker.worker_id, worker.generation + 1)

    def submit(self, worker_id: int, task: msg.Task) -> None:
        worker = self.workers[worker_id]
        if worker is None:  # torch starts every worker at iter(): the first task starts it
            worker = self._start(worker_id, generation=0)
        if worker.skip_pending:
            task = dataclasses.replace(
                task, skip_batches=worker.skip_pending, skip_digest=worker.skip_digest
            )
            worker.skip_pending = 0
        worker.in_flight[(task.pass_id, task.seq)] = task
        if worker.broken or not worker.alive:
            return  # poll reports the loss; restart resends this task
        task = dataclasses.replace(task, freed=worker.ring.take_freed())
        try:
            worker.conn.send(task)
        except (OSError, ValueError):  # BrokenPipeError: it died, perhaps while idle
            worker.broken = True

    def poll(self, timeout_s: float) -> list[Event]:
        """Outcomes that arrived within ``timeout_s``, and WorkerLost for workers found dead."""
        ready = {fd for fd, _ in self._poller.poll(math.ceil(max(timeout_s, 0.0) * 1000))}
        events: list[Event] = []
        for worker in self.workers:
            if worker is None or not worker.alive:
                continue
            self._drain(worker, events)
            if worker.broken or worker.process.sentinel in ready or not worker.process.is_alive():
                self._drain(worker, events)  # a worker may die right after sending
                worker.process.join(0.05)
                if worker.process.is_alive() and not worker.broken:
                    continue
                exitcode = worker.process.exitcode
                self._forget(worker)
                events.append(WorkerLost(worker.worker_id, describe_exit(exitcode), worker.pid))
        self._flush_frees()
        return events

    def _drain(self, worker: _Worker, events: list[Event]) -> None:
        """Turn every message already in ``worker``'s pipe into events (none: return at once)."""
        try:
            while worker.readable.poll(0):
                event = self._receive(worker, worker.conn.recv())
                if event is not None:
                    events.append(event)
        except (EOFError, OSError):
            worker.broken = True

    def _receive(self, worker: _Worker, message: msg.FromWorker) -> Event | None:
        if isinstance(message, msg.Ready):
            worker.stack_fd = message.stack_fd
            return None
        if isinstance(message, msg.InitFailed):
            return InitFailed(worker.worker_id, message.error)
        worker.in_flight.pop((message.pass_id, message.seq), None)
        current = message.pass_id == self._pass
        if isinstance(message, msg.BatchDone):
            worker.ring.drop(message.dropped_slots)
            if not current:
                worker.ring.discard(message.payload)  # a stale batch: map it, let it go
                return None
            worker.delivered += 1
            worker.digest = message.digest
            if message.payload is None:
                return Finished(message.seq, worker.worker_id, NOTHING, message.skipped)
            value: Any = worker.ring.materialize(message.payload)
            if self._pinner is not None:
                value = self._pinner.submit(_pin.pin, value)
            return Finished(message.seq, worker.worker_id, value, message.skipped, message.digest)
        if not current:
            return None
        if isinstance(message, msg.TaskFailed):
            worker.delivered += 1
            return Raised(message.seq, worker.worker_id, message.error)
        return Finished(message.seq, worker.worker_id, END_OF_STREAM)

    def _flush_frees(self) -> None:
        """Hand freed slots back to idle workers (busy ones get them with their next task)."""
        for worker in self.workers:
            if worker is None or not worker.alive or worker.in_flight or worker.broken:
                continue
            if worker.ring.pending_free:
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(msg.Free(worker.ring.take_freed()))

    def describe(self, worker_id: int) -> str:
        worker = self.workers[worker_id]
        return f"worker {worker_id} (pid {worker.pid if worker is not None else None})"

    def stack_of(self, worker_id: int) -> str:
        """The worker's Python stacks right now (faulthandler), or "" if it cannot tell."""
        worker = self.workers[worker_id]
        if worker is None or worker.stack_fd is None:
            return ""
        path = f"/proc/{worker.pid}/fd/{worker.stack_fd}"
        try:
            os.kill(worker.pid, signal.SIGUSR1)
        except OSError:
            return ""
        deadline = time.monotonic() + _STACK_DUMP_WAIT_S
        text = ""
        while time.monotonic() < deadline and "File" not in text:
            time.sleep(0.05)
            with contextlib.suppress(OSError), open(path) as dump:
                text = dump.read()
        return text.strip()

    def end_pass(self) -> None:
        pass

    def close(self, wait: bool = True) -> None:
        """Stop the workers, and keep their free slots for the loader's next pool.

        With ``wait=False`` and no task outstanding (an epoch that ran to its end) the workers
        are told to stop and joined on a helper thread: a worker takes ~15 ms to exit (the
        kernel tears down its copy of the loader's address space), which the training loop
        need not wait for. An idle worker never writes again, so its slots are banked at once.
        """
        if self._closed:
            return
        self._closed = True
        self._pass = -1
        if self._pinner is not None:
            self._pinner.shutdown(wait=False, cancel_futures=True)
        live = [w for w in self.workers if w is not None and w.alive]
        if wait or any(w.in_flight or w.broken for w in live):
            self._finalizer()
            for worker in live:
                worker.ring.retire()
            return
        for worker in live:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(msg.Stop())
            worker.ring.retire()
        reaper = threading.Thread(target=self._finalizer, name="stoker-reaper", daemon=True)
        reaper.start()
        _reapers.append(reaper)
        self._reaper = reaper
