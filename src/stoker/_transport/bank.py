"""SlotBank: the free shared-memory slots a loader keeps between epochs, for its next workers.

Without ``persistent_workers`` every epoch forks new workers, and each used to make its ring of
batch slots again: ~2 ms per 3 MiB CIFAR slot in the worker (the kernel reserves, zeroes and
maps every page) and ~0.4 ms in the loader to map it, nine slots an epoch at batch 256 with two
workers. A forked worker inherits the loader's mappings for nothing, so when a pool stops, its
slots come here (once its workers are gone and no tensor views them), and the next pool's worker
of the same id starts with them.

Only fork-started workers can inherit a mapping; other start methods never use a bank.
"""

from __future__ import annotations

import collections
import threading
from typing import Any


class SlotBank:
    """Free slots by worker id: ``{slot id: (mapping, capacity)}``.

    Deposits come from batch finalizers, which run in any thread and even inside a garbage
    collection triggered while this thread holds a lock — so ``deposit`` takes no lock: it
    appends to a deque (atomic, and it allocates nothing a collection could run on). The loader
    thread sorts the deposits into the bank when it reads it (``withdraw``, ``kept``, ``len``).

    At most ``per_worker`` slots are kept for each worker id — a worker's ring — however many
    batches the user held at once; the rest are dropped, which unmaps them.
    """

    def __init__(self, per_worker: int) -> None:
        self.per_worker = per_worker
        self._deposits: collections.deque[tuple[int, int, Any, int]] = collections.deque()
        self._lock = threading.Lock()  # never taken by deposit: see the class docstring
        self._free: dict[int, dict[int, tuple[Any, int]]] = {}

    def deposit(self, worker_id: int, slot: int, mapping: Any, capacity: int) -> None:
        """Keep ``slot`` (no process writes it and no tensor views it any more), room allowing."""
        self._deposits.append((worker_id, slot, mapping, capacity))

    def _sort_deposits(self) -> None:  # with self._lock held
        while self._deposits:
            worker_id, slot, mapping, capacity = self._deposits.popleft()
            kept = self._free.setdefault(worker_id, {})
            if len(kept) < self.per_worker:
                kept[slot] = (mapping, capacity)

    def withdraw(self, worker_id: int) -> dict[int, tuple[Any, int]]:
        """Every slot kept for ``worker_id``, now owned by the caller."""
        with self._lock:
            self._sort_deposits()
            return self._free.pop(worker_id, {})

    def kept(self, worker_id: int) -> int:
        """How many slots are kept for ``worker_id``."""
        with self._lock:
            self._sort_deposits()
            return len(self._free.get(worker_id, {}))

    def __len__(self) -> int:
        with self._lock:
            self._sort_deposits()
            return sum(len(slots) for slots in self._free.values())
