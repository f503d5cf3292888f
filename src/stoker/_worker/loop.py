"""The worker process: a plain module-level loop that turns tasks into batches in shared memory.

Invariants:
* a worker handles one task at a time, in the order it receives them, and answers every task
  with exactly one message (:class:`BatchDone`, :class:`TaskFailed` or :class:`StreamEnded`);
* its global RNGs are seeded once, before ``worker_init_fn``, so whatever that function seeds
  stays seeded (torch's order); per-sample randomness never depends on them;
* it writes a batch only into a slot the loader has handed back as free (or a new one), so a
  batch the user still holds is never overwritten;
* it never outlives the loader: on Linux the kernel sends it SIGKILL when the loader's thread
  that started it dies (``PR_SET_PDEATHSIG``), whatever it is doing — holding the GIL, stopped,
  stuck in C; elsewhere a watchdog thread checks the parent every ``_PARENT_CHECK_INTERVAL_S``;
  a forkserver-started worker (the fork server's child) watches the loader's pid instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import faulthandler
import os
import select
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from stoker._fetch import (
    EMPTY_BATCH,
    BatchFetcher,
    IterableFetcher,
    StreamNotReplayable,
    describe_indices,
)
from stoker._transport import messages as msg
from stoker._transport.ring import WorkerRing, pack_inline
from stoker._worker import info, output
from stoker._worker.remote_error import RemoteError
from stoker.errors import WorkerDiedError

_PARENT_CHECK_INTERVAL_S = 0.25  # fallback watchdog where PR_SET_PDEATHSIG does not exist
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs besides its id and the dataset; must pickle for spawn."""

    num_workers: int
    collate_fn: Any
    batch_transform: Any
    auto_collation: bool
    batch_size: int | None
    drop_last: bool
    is_iterable: bool
    worker_init_fn: Any
    base_seed: int  # torch's base_seed of the pass that starts this worker
    slot_prefix: str  # this worker generation's slot names start with it
    use_shm: bool
    slots_per_worker: int
    on_error: str = "raise"
    check_indices: bool = True


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when the loader goes; a watchdog where it cannot.

    A fork- or spawn-started worker is the loader's child. A forkserver-started one is the fork
    server's child, so its parent pid is not the loader's and PR_SET_PDEATHSIG would follow the
    fork server: it watches the loader's pid instead (a pidfd, or a poll where there is none).
    """
    if os.getppid() != parent_pid:
        if not _pid_alive(parent_pid):  # the loader died before this worker got here
            os._exit(0)
        threading.Thread(target=_watch_pid, args=(parent_pid,), daemon=True).start()
        return
    armed = False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(0)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(_PARENT_CHECK_INTERVAL_S)
        if os.getppid() != parent_pid:
            os._exit(0)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else: cannot be the loader, but alive
        return True
    return True


def _watch_pid(pid: int) -> None:
    """Exit when process ``pid`` (the loader, not this worker's parent) ends."""
    try:
        fd = os.pidfd_open(pid)  # Linux >= 5.3: readable once the process has exited
    except (AttributeError, OSError):
        fd = -1
    if fd >= 0:
        try:
            select.select([fd], [], [])
            os._exit(0)
        except OSError:
            pass  # fall back to polling the pid
    while _pid_alive(pid):
        time.sleep(_PARENT_CHECK_INTERVAL_S)
    os._exit(0)


def worker_loop(
    worker_id: int,
    dataset: Any,
    conn: Any,
    config: WorkerConfig,
    parent_pid: int,
    inherited_slots: dict[int, tuple[Any, int]] | None = None,
) -> None:
    """Serve tasks from ``conn`` until told to stop or the loader goes away.

    ``inherited_slots`` are free slots the loader kept from its previous workers, mapped in
    this process by fork: ``{slot id: (mapping, capacity)}``.
    """
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the loader's to handle
    torch.set_num_threads(1)
    ring = (
        WorkerRing(config.slot_prefix, config.slots_per_worker, config.num_workers, inherited_slots)
        if config.use_shm
        else None
    )
    # On SIGUSR1 (sent by the loader when a batch times out) every thread's stack goes to this
    # file, which has no name: nothing is left on disk whatever ends the worker. The loader
    # reads it through /proc/<pid>/fd/<fd>.
    with tempfile.TemporaryFile("w+") as stack_file:
        faulthandler.register(signal.SIGUSR1, file=stack_file, all_threads=True)
        try:
            _serve(worker_id, dataset, conn, config, ring, stack_file.fileno())
        finally:
            faulthandler.unregister(signal.SIGUSR1)
            if ring is not None:
                ring.remove_unannounced()


def _start(worker_id: int, dataset: Any, conn: Any, config: WorkerConfig, stack_fd: int) -> bool:
    # torch's rule (seed = base_seed + worker_id for random and torch, numpy from both),
    # before worker_init_fn, which may seed as it likes.
    seed = info.torch_worker_seed(config.base_seed, worker_id)
    info._set_worker_info(info.WorkerInfo(worker_id, config.num_workers, seed, dataset))
    try:
        if config.worker_init_fn is not None:
            config.worker_init_fn(worker_id)
    except Exception as error:
        error.add_note(f"stoker: raised in worker_init_fn({worker_id})")
        conn.send(msg.InitFailed(RemoteError.capture(error, worker_id)))
        return False
    conn.send(msg.Ready(os.getpid(), stack_fd))
    return True


def _serve(
    worker_id: int,
    dataset: Any,
    conn: Any,
    config: WorkerConfig,
    ring: WorkerRing | None,
    stack_fd: int,
) -> None:
    if not _start(worker_id, dataset, conn, config, stack_fd):
        return
    fetchers: dict[int, BatchFetcher] = {}
    stream: IterableFetcher | None = None
    stream_pass = -1
    slot_output = ring.output_provider() if ring is not None else None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if isinstance(message, msg.Stop):
            return
        if isinstance(message, msg.Free):
            if ring is not None:
                ring.release(message.slots)
            continue
        task: msg.Task = message
        if ring is not None:
            ring.release(task.freed)
        fetcher = fetchers.get(task.sample_seed)
        if fetcher is None:
            fetchers.clear()
            fetcher = fetchers[task.sample_seed] = BatchFetcher(
                dataset,
                config.auto_collation,
                config.collate_fn,
                config.batch_transform,
                task.sample_seed,
                on_error=config.on_error,
                check_indices=config.check_indices,
            )
        try:
            if config.is_iterable:
                if stream_pass != task.pass_id:  # a new pass: a new walk over this worker's shard
                    stream_pass = task.pass_id
                    stream = IterableFetcher(
                        dataset,
                        fetcher,
                        config.batch_size,
                        config.drop_last,
                        position_offset=worker_id,
                        position_stride=config.num_workers,
                    )
                    if task.skip_batches:
                        _replay(stream, task, worker_id, dataset)
                try:
                    if stream is None:  # this shard already ended in this pass
                        raise StopIteration
                    batch = stream.next_batch(task.epoch)
                except StopIteration:
                    stream = None
                    conn.send(msg.StreamEnded(task.pass_id, task.seq))
                    continue
            elif slot_output is not None:
                with output.provided_by(slot_output):
                    batch = fetcher.fetch(task.epoch, task.indices)
            else:
                batch = fetcher.fetch(task.epoch, task.indices)
            skipped, fetcher.skipped = tuple(fetcher.skipped), []
            result: Any = _packed(batch, task, skipped, ring, slot_output)
            if stream is not None:
                result = dataclasses.replace(result, digest=stream.digest)
            del batch
        except Exception as error:
            fetcher.skipped = []
            if slot_output is not None and (lease := slot_output.take()) is not None:
                ring.release([lease])  # type: ignore[union-attr]
            result = msg.TaskFailed(task.pass_id, task.seq, RemoteError.capture(error, worker_id))
        _send_result(conn, result, task, worker_id, ring)


def _replay(stream: IterableFetcher, task: msg.Task, worker_id: int, dataset: Any) -> None:
    """Catch a replacement worker up with its predecessor, or refuse a stream that differs."""
    try:
        stream.skip_batches(task.skip_batches, task.skip_digest)
    except StreamNotReplayable as error:
        # A WorkerDiedError: the engine ends the epoch with it, as it would without a restart.
        raise WorkerDiedError(
            f"DataLoader worker {worker_id} died and its replacement cannot take over: {error}. "
            f"The IterableDataset {type(dataset).__name__} is not deterministic (its __iter__ "
            "depends on more than get_worker_info() and the epoch), so replaying its shard "
            "would deliver duplicates or lose samples. Make its stream deterministic per "
            "worker, or use on_worker_death='raise'"
        ) from None


def _packed(
    batch: Any,
    task: msg.Task,
    skipped: tuple[tuple[int, int, str], ...],
    ring: WorkerRing | None,
    slot_output: Any,
) -> msg.BatchDone:
    lease = slot_output.take() if slot_output is not None else None
    payload: msg.Inline | msg.InSlot | None
    if batch is EMPTY_BATCH:
        payload = None
        if lease is not None:
            ring.release([lease])  # type: ignore[union-attr]
    elif ring is not None:
        payload = ring.pack(batch, lease)
    else:
        payload = pack_inline(batch)
    dropped = ring.take_dropped() if ring is not None else ()
    return msg.BatchDone(task.pass_id, task.seq, payload, skipped, dropped)


def _send_result(
    conn: Any, result: Any, task: msg.Task, worker_id: int, ring: WorkerRing | None
) -> None:
    """Send a task's answer; a batch that cannot be pickled becomes that task's error."""
    try:
        conn.send(result)
    except (OSError, EOFError):
        raise  # the loader is gone: nothing to tell it
    except Exception as error:  # pickling: Connection.send pickles before it writes a byte
        payload = getattr(result, "payload", None)
        if isinstance(payload, msg.InSlot) and ring is not None:
            ring.release([payload.slot])
        where = "from its stream" if task.indices is None else describe_indices(task.indices)
        error.add_note(
            f"stoker: raised while pickling the batch for dataset indices {where} to send it "
            "from the worker process to the loader; return tensors, numpy arrays and plain "
            "Python values from the dataset and collate_fn, or load in threads "
            "(worker_mode='thread') or in the main process (num_workers=0)"
        )
        conn.send(msg.TaskFailed(task.pass_id, task.seq, RemoteError.capture(error, worker_id)))
