"""The worker process: a plain module-level loop that turns tasks into batches in shared memory.

Invariants:
* a worker handles one task at a time, in the order it receives them;
* it writes a batch only into a slot the loader has handed back as free (or a new one), so a
  batch the user still holds is never overwritten;
* it never outlives the loader: a watchdog thread notices the parent's death within
  ``_PARENT_CHECK_INTERVAL_S`` and exits after removing any slot name the loader has not yet
  claimed.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import math
import os
import random
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stoker._transport import codec, shm
from stoker._worker import info, output
from stoker._worker.fetch import EMPTY_BATCH as _EMPTY
from stoker._worker.fetch import BatchFetcher, IterableFetcher
from stoker._worker.remote_error import RemoteError
from stoker.seeding import sample_key

_PARENT_CHECK_INTERVAL_S = 0.25  # workers must be gone within ~2 s of the loader's death
_INLINE_MAX_BYTES = 16 * 1024  # below this, pickling through the pipe beats slot bookkeeping
_TRAILING_FIELDS_BYTES = 64 * 1024  # slot room after a transform's output, for labels & co.


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
    base_seed: int
    slot_prefix: str
    use_shm: bool
    slots_per_worker: int
    on_error: str = "raise"
    check_indices: bool = True


def seed_globals(base_seed: int, worker_id: int, epoch: int) -> int:
    """Seed Python's, numpy's and torch's global RNGs distinctly per worker and epoch."""
    seed = int(sample_key(base_seed, epoch, [-(worker_id + 2)])[0])
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed % 2**63)
    return seed


class _Slots:
    """This worker's shared-memory slots: which exist, which the loader has handed back."""

    def __init__(
        self,
        prefix: str,
        expected_count: int,
        num_workers: int,
        inherited: dict[int, tuple[Any, int]] | None = None,
    ):
        self.prefix = prefix
        self.maps: dict[int, Any] = {}
        self.capacity: dict[int, int] = {}
        self.address: dict[int, int] = {}
        self.free: set[int] = set()
        self._unannounced: dict[int, str] = {}  # created, but the loader has not seen the name
        self._expected_count = expected_count
        self._expected_total = expected_count * num_workers
        # Slots the loader kept from its previous workers (see _transport/bank.py): mapped in
        # this forked process already, known to the loader, free.
        for slot, (mapping, capacity) in (inherited or {}).items():
            self._add(slot, mapping, capacity)
            self.free.add(slot)
        self._next_id = self._first_new_id = max(self.maps, default=-1) + 1

    def release(self, slot_ids: list[int]) -> None:
        self.free.update(slot_ids)

    def acquire(self, nbytes: int) -> int:
        """A slot that fits ``nbytes``: the smallest free one, or a new one."""
        fitting = [s for s in self.free if self.capacity[s] >= nbytes]
        if fitting:
            slot = min(fitting, key=self.capacity.__getitem__)
            self.free.discard(slot)
            return slot
        capacity = shm.slot_capacity(nbytes)
        if self._next_id == self._first_new_id:  # this worker's first new slot
            if self._first_new_id == 0:  # the loader's first: room for every worker's ring?
                shm.check_room(capacity * self._expected_total, "the loader's ring of batch slots")
            else:  # its slots were inherited, but too small: room for a ring of bigger ones?
                shm.check_room(capacity * self._expected_count, "a worker's ring of batch slots")
        slot, self._next_id = self._next_id, self._next_id + 1
        name = f"{self.prefix}{slot}"
        self._add(slot, shm.create(name, capacity), capacity)
        self._unannounced[slot] = name
        return slot

    def _add(self, slot: int, mapping: Any, capacity: int) -> None:
        self.maps[slot] = mapping
        self.capacity[slot] = capacity
        anchor = ctypes.c_char.from_buffer(mapping)
        self.address[slot] = ctypes.addressof(anchor)
        del anchor  # release the buffer export at once

    def message(self, slot: int, skeleton: Any, nbytes: int) -> tuple[Any, ...]:
        """The payload that sends ``slot``; names it the first time the loader hears of it."""
        name = self._unannounced.pop(slot, None)
        return ("shm", slot, name, self.capacity[slot], skeleton, nbytes)


class _SlotOutput:
    """Gives the first large tensor a task's transform allocates the start of a free slot."""

    def __init__(self, slots: _Slots):
        self.slots = slots
        self.lease: int | None = None

    def __call__(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
        nbytes = math.prod(shape) * dtype.itemsize
        if self.lease is not None or nbytes < _INLINE_MAX_BYTES:
            return None
        # room behind the tensor for the rest of the batch (labels, small fields)
        self.lease = slot = self.slots.acquire(nbytes + _TRAILING_FIELDS_BYTES)
        raw = torch.frombuffer(self.slots.maps[slot], dtype=torch.uint8, count=nbytes)
        return raw.view(dtype).view(shape)

    def take(self) -> int | None:
        lease, self.lease = self.lease, None
        return lease


def _pack(batch: Any, slots: _Slots | None, lease: int | None) -> tuple[Any, ...]:
    if slots is not None:
        skeleton, leaves, nbytes = codec.split(batch)
        if lease is not None:
            born_there = bool(leaves) and leaves[0].ctypes.data == slots.address[lease]
            if born_there and nbytes <= slots.capacity[lease]:
                codec.write_leaves(slots.maps[lease], skeleton, leaves)  # skips leaf 0
                return slots.message(lease, skeleton, nbytes)
            slots.release([lease])  # the transform's output did not end up first in the batch
        if nbytes >= _INLINE_MAX_BYTES:
            slot = slots.acquire(nbytes)
            codec.write_leaves(slots.maps[slot], skeleton, leaves)
            return slots.message(slot, skeleton, nbytes)
    return ("inline", codec.to_inline(batch))


def _watch_parent(parent_pid: int, prefix: str) -> None:
    while True:
        time.sleep(_PARENT_CHECK_INTERVAL_S)
        if os.getppid() != parent_pid:
            shm.unlink_leftovers(prefix)
            with contextlib.suppress(OSError):
                os.unlink(stack_dump_path(prefix))
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
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the loader's to handle
    torch.set_num_threads(1)
    prefix = f"{config.slot_prefix}w{worker_id}-"
    threading.Thread(target=_watch_parent, args=(parent_pid, prefix), daemon=True).start()
    stack_path = stack_dump_path(prefix)
    with open(stack_path, "w") as stack_file:
        # On SIGUSR1 (sent by the loader when a batch times out) every thread's Python stack
        # goes to this file, so the timeout error can show where the worker is stuck.
        faulthandler.register(signal.SIGUSR1, file=stack_file, all_threads=True)
        try:
            _serve(worker_id, dataset, conn, config, prefix, inherited_slots)
        finally:
            faulthandler.unregister(signal.SIGUSR1)
            with contextlib.suppress(OSError):
                os.unlink(stack_path)


def stack_dump_path(prefix: str) -> str:
    """Where worker ``prefix`` writes its stacks on SIGUSR1."""
    return os.path.join(tempfile.gettempdir(), f"{prefix}stack.txt")


def _serve(
    worker_id: int,
    dataset: Any,
    conn: Any,
    config: WorkerConfig,
    prefix: str,
    inherited_slots: dict[int, tuple[Any, int]] | None,
) -> None:

    epoch = -1
    seed = seed_globals(config.base_seed, worker_id, 0)
    info._set_worker_info(info.WorkerInfo(worker_id, config.num_workers, seed, dataset))
    slots = (
        _Slots(prefix, config.slots_per_worker, config.num_workers, inherited_slots)
        if config.use_shm
        else None
    )
    try:
        if config.worker_init_fn is not None:
            config.worker_init_fn(worker_id)
    except Exception as error:
        conn.send(("init-error", -1, RemoteError.capture(error, worker_id)))
        return

    fetchers: dict[int, BatchFetcher] = {}
    stream: IterableFetcher | None = None
    stream_epoch = -1
    slot_output = _SlotOutput(slots) if slots is not None else None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "free":
            if slots is not None:
                slots.release(message[1])
            continue
        _, task_id, task_epoch, sample_seed, indices, freed = message
        if slots is not None:
            slots.release(freed)
        if task_epoch != epoch:
            epoch = task_epoch
            seed_globals(config.base_seed, worker_id, epoch)
        fetcher = fetchers.get(sample_seed)
        if fetcher is None:
            fetchers.clear()
            fetcher = fetchers[sample_seed] = BatchFetcher(
                dataset,
                config.auto_collation,
                config.collate_fn,
                config.batch_transform,
                sample_seed,
                on_error=config.on_error,
                check_indices=config.check_indices,
            )
        try:
            if kind == "next":
                if stream_epoch != epoch:  # a new epoch: a new pass over this worker's shard
                    stream, stream_epoch = (
                        IterableFetcher(
                            dataset,
                            fetcher,
                            config.batch_size,
                            config.drop_last,
                            position_offset=worker_id,
                            position_stride=config.num_workers,
                        ),
                        epoch,
                    )
                try:
                    if stream is None:  # this shard already ended in this epoch
                        raise StopIteration
                    batch = stream.next_batch(epoch)
                except StopIteration:
                    stream = None
                    conn.send(("end", task_id, None))
                    continue
            elif slot_output is not None:
                with output.provided_by(slot_output):
                    batch = fetcher.fetch(epoch, indices)
            else:
                batch = fetcher.fetch(epoch, indices)
            skipped, fetcher.skipped = fetcher.skipped, []
            lease = slot_output.take() if slot_output is not None else None
            payload = None if batch is _EMPTY else _pack(batch, slots, lease)
            del batch
        except Exception as error:
            fetcher.skipped = []
            if slot_output is not None and (lease := slot_output.take()) is not None:
                slots.release([lease])  # type: ignore[union-attr]
            conn.send(("error", task_id, RemoteError.capture(error, worker_id)))
            continue
        conn.send(("batch", task_id, payload, skipped))
