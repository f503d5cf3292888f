"""Both sides of a worker's ring of shared-memory batch slots, and the one place slots are named.

The worker side (:class:`WorkerRing`) picks a free slot for each batch, creates one when none
fits, and drops free slots that have become too small; the loader side (:class:`ConsumerRing`)
maps what the worker announces, lends slots to the batches the user holds and hands them back
when the last view dies.

Invariants:
* a slot is written only by its worker, and only while it is free: handed back by the loader
  (every tensor viewing it has been garbage-collected) or just created;
* a worker's ring holds at most the slots in use plus one: when a batch needs a bigger slot than
  any free one, the free slots smaller than the new one are unmapped on both sides
  (``BatchDone.dropped_slots``), so growing batches do not accumulate every smaller slot;
* a slot's name exists in /dev/shm only between its creation and the loader's first map
  (:func:`stoker._transport.shm.open_and_unlink`); names carry the loader's pid, so a name
  left by a loader that died in that window is swept by the next one (:func:`sweep_orphans`).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import re
import weakref
from typing import Any

import numpy as np
import torch

from stoker._transport import codec, shm
from stoker._transport.bank import SlotBank
from stoker._transport.messages import Inline, InSlot

_INLINE_MAX_BYTES = 16 * 1024  # below this, pickling through the pipe beats slot bookkeeping
_TRAILING_FIELDS_BYTES = 64 * 1024  # slot room after a transform's output, for labels & co.
_OWNER_PID = re.compile(r"^stoker-(\d+)-")


def worker_prefix(pool_token: str, worker_id: int, generation: int) -> str:
    """The name prefix of every slot of one worker process (a restart is a new generation)."""
    return f"{pool_token}w{worker_id}g{generation}-"


def slot_name(prefix: str, slot: int) -> str:
    """The /dev/shm name of slot ``slot`` of the worker whose prefix is ``prefix``."""
    return f"{prefix}{slot}"


def sweep_orphans() -> list[str]:
    """Remove slot names whose loader process no longer exists; returns what was removed."""
    removed: list[str] = []
    for name in shm.list_names():
        match = _OWNER_PID.match(name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shm.unlink(name)
            removed.append(name)
        except PermissionError:  # alive, another user's
            pass
    return removed


# -- worker side --------------------------------------------------------------------------------


class WorkerRing:
    """The worker's slots: which exist, which are free, which the loader has not yet heard of."""

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
        self._dropped: list[int] = []  # unmapped here; the loader hears with the next batch
        self._expected_count = expected_count
        self._expected_total = expected_count * num_workers
        # Slots the loader kept from its previous workers (see bank.py): mapped in this forked
        # process already, known to the loader, free.
        for slot, (mapping, capacity) in (inherited or {}).items():
            self._add(slot, mapping, capacity)
            self.free.add(slot)
        self._next_id = self._first_new_id = max(self.maps, default=-1) + 1

    def release(self, slot_ids: tuple[int, ...] | list[int]) -> None:
        self.free.update(s for s in slot_ids if s in self.maps)

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
        for small in [s for s in self.free if self.capacity[s] < capacity]:
            self._drop(small)
        slot, self._next_id = self._next_id, self._next_id + 1
        name = slot_name(self.prefix, slot)
        self._add(slot, shm.create(name, capacity), capacity)
        self._unannounced[slot] = name
        return slot

    def _add(self, slot: int, mapping: Any, capacity: int) -> None:
        self.maps[slot] = mapping
        self.capacity[slot] = capacity
        anchor = ctypes.c_char.from_buffer(mapping)
        self.address[slot] = ctypes.addressof(anchor)
        del anchor  # release the buffer export at once

    def _drop(self, slot: int) -> None:
        self.free.discard(slot)
        mapping = self.maps.pop(slot)
        del self.capacity[slot], self.address[slot]
        name = self._unannounced.pop(slot, None)
        if name is not None:  # never announced: the loader never mapped it
            shm.unlink(name)
        else:
            self._dropped.append(slot)
        with contextlib.suppress(BufferError):
            mapping.close()

    def take_dropped(self) -> tuple[int, ...]:
        dropped, self._dropped = tuple(self._dropped), []
        return dropped

    def payload(self, slot: int, skeleton: Any, nbytes: int) -> InSlot:
        """The payload that sends ``slot``; names it the first time the loader hears of it."""
        name = self._unannounced.pop(slot, None)
        return InSlot(slot, name, self.capacity[slot], skeleton, nbytes)

    def output_provider(self) -> SlotOutput:
        return SlotOutput(self)

    def pack(self, batch: Any, lease: int | None) -> Inline | InSlot:
        """Put ``batch`` into a slot (the transform's leased one if it is there) or inline."""
        skeleton, leaves, nbytes = codec.split(batch)
        if lease is not None:
            born_there = bool(leaves) and leaves[0].ctypes.data == self.address[lease]
            if born_there and nbytes <= self.capacity[lease]:
                codec.write_leaves(self.maps[lease], skeleton, leaves)  # skips leaf 0
                return self.payload(lease, skeleton, nbytes)
            self.release([lease])  # the transform's output did not end up first in the batch
        if nbytes >= _INLINE_MAX_BYTES:
            slot = self.acquire(nbytes)
            codec.write_leaves(self.maps[slot], skeleton, leaves)
            return self.payload(slot, skeleton, nbytes)
        return Inline(codec.to_inline(batch))

    def remove_unannounced(self) -> None:
        """Unlink the names the loader never mapped (the worker is going away)."""
        for name in self._unannounced.values():
            shm.unlink(name)
        self._unannounced.clear()


class SlotOutput:
    """Gives the first large tensor a task's transform allocates the start of a free slot."""

    def __init__(self, ring: WorkerRing):
        self.ring = ring
        self.lease: int | None = None

    def __call__(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
        nbytes = math.prod(shape) * dtype.itemsize
        if self.lease is not None or nbytes < _INLINE_MAX_BYTES:
            return None
        # room behind the tensor for the rest of the batch (labels, small fields)
        self.lease = slot = self.ring.acquire(nbytes + _TRAILING_FIELDS_BYTES)
        raw = torch.frombuffer(self.ring.maps[slot], dtype=torch.uint8, count=nbytes)
        return raw.view(dtype).view(shape)

    def take(self) -> int | None:
        lease, self.lease = self.lease, None
        return lease


def pack_inline(batch: Any) -> Inline:
    """The payload of a batch sent without shared memory."""
    return Inline(codec.to_inline(batch))


# -- loader side --------------------------------------------------------------------------------


class ConsumerRing:
    """The loader's view of one worker process's slots.

    A slot is *lent* while a batch the user holds views it; when the last view dies a finalizer
    returns it — to ``pending_free`` (sent back with the worker's next task) while the worker
    lives, or to the loader's :class:`SlotBank` once the worker has retired.
    """

    def __init__(
        self,
        worker_id: int,
        prefix: str,
        bank: SlotBank | None,
        inherited: dict[int, tuple[Any, int]] | None = None,
    ):
        self.worker_id = worker_id
        self.prefix = prefix
        self._bank = bank
        self.slots: dict[int, Any] = {}
        self.capacity: dict[int, int] = {}
        self.lent: set[int] = set()
        self.pending_free: list[int] = []
        self.alive = True  # the worker may still use the slots
        self.retired = False  # the worker writes no more: free slots may go to the bank
        for slot, (mapping, capacity) in (inherited or {}).items():
            self.slots[slot], self.capacity[slot] = mapping, capacity

    def materialize(self, payload: Inline | InSlot) -> Any:
        """The batch a worker sent: inline values, or zero-copy views of its slot."""
        if isinstance(payload, Inline):
            return codec.from_inline(payload.data)
        slot = payload.slot
        if payload.name is not None:
            self.slots[slot] = shm.open_and_unlink(payload.name, payload.capacity)
            self.capacity[slot] = payload.capacity
        self.lent.add(slot)
        owner = (ctypes.c_char * payload.nbytes).from_buffer(self.slots[slot])
        finalizer = weakref.finalize(owner, _release, self, slot)
        finalizer.atexit = False
        return codec.rebuild(payload.skeleton, np.frombuffer(owner, np.uint8))  # type: ignore[call-overload]

    def discard(self, payload: Inline | InSlot | None) -> None:
        """A batch nobody will see (its pass was abandoned): map it so its slot comes back."""
        if payload is not None:
            self.materialize(payload)

    def drop(self, slots: tuple[int, ...]) -> None:
        """The worker unmapped these free slots: unmap them here too."""
        for slot in slots:
            mapping = self.slots.pop(slot, None)
            self.capacity.pop(slot, None)
            with contextlib.suppress(ValueError):
                self.pending_free.remove(slot)
            if mapping is not None:
                with contextlib.suppress(BufferError):
                    mapping.close()

    def take_freed(self) -> tuple[int, ...]:
        freed, self.pending_free = tuple(self.pending_free), []
        return freed

    def retire(self) -> None:
        """The worker is gone or stopped idle: bank every slot no tensor views."""
        # No lock: _release may run at any moment, in any thread. The order makes it safe:
        # `retired` is set before `lent` is read, _release removes from `lent` before it reads
        # `retired`, and _deposit claims a slot with one dict.pop, so a slot is banked once.
        self.alive = False
        self.retired = True
        if self._bank is None:
            return
        for slot in list(self.slots):
            if slot not in self.lent:
                self.deposit(slot)

    def forget(self) -> None:
        """The worker died: its slots go to no one (they unmap as their last views die)."""
        self.alive = False

    def deposit(self, slot: int) -> None:
        mapping = self.slots.pop(slot, None)  # popped: a slot is deposited at most once
        if mapping is not None and self._bank is not None:
            self._bank.deposit(self.worker_id, slot, mapping, self.capacity[slot])


def _release(ring: ConsumerRing, slot: int) -> None:
    # Runs whenever the user's last view of a batch dies: in any thread, possibly inside a
    # garbage collection that interrupted code holding a lock — so it takes none; each step is
    # atomic under the GIL (see ConsumerRing.retire for the order). The finalizer holds the
    # ring (not the pool), so a slot reaches the bank even after its pool is gone.
    ring.lent.discard(slot)
    if ring.retired:
        ring.deposit(slot)
    elif ring.alive:
        ring.pending_free.append(slot)
