"""The messages between the loader and a worker process: small frozen dataclasses, one per kind.

Loader → worker: :class:`Task`, :class:`Free`, :class:`Stop`.
Worker → loader: :class:`Ready`, :class:`InitFailed`, :class:`BatchDone`, :class:`TaskFailed`,
:class:`StreamEnded`. Each result names the task by ``(pass_id, seq)``: the pass is one
``iter(loader)``, so results of an abandoned pass are recognised and dropped, never delivered.
Batches themselves travel as a :class:`Inline` payload (pickled through the pipe) or an
:class:`InSlot` payload (a shared-memory slot, see :mod:`stoker._transport.ring`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stoker._worker.remote_error import RemoteError


@dataclass(frozen=True)
class Task:
    """One batch to make: which pass and position, its epoch and seed, its dataset indices."""

    pass_id: int
    seq: int
    epoch: int
    sample_seed: int
    indices: Any  # list of indices, one index (batch_size=None), or None (iterable dataset)
    freed: tuple[int, ...] = ()  # slots the loader hands back with this task
    skip_batches: int = 0  # iterable: batches of this pass's stream a predecessor delivered
    skip_digest: str | None = None  # iterable: the fingerprint chain of those batches


@dataclass(frozen=True)
class Free:
    """Slots the loader hands back to an idle worker."""

    slots: tuple[int, ...]


@dataclass(frozen=True)
class Stop:
    """Exit now."""


@dataclass(frozen=True)
class Ready:
    """The worker started and ran ``worker_init_fn``; ``stack_fd`` receives its stack dumps."""

    pid: int
    stack_fd: int


@dataclass(frozen=True)
class InitFailed:
    """``worker_init_fn`` raised; the worker exits."""

    error: RemoteError


@dataclass(frozen=True)
class Inline:
    """A batch pickled through the pipe (small batches, or no shared memory)."""

    data: Any


@dataclass(frozen=True)
class InSlot:
    """A batch written into slot ``slot``; ``name`` is set the first time the loader hears of it."""

    slot: int
    name: str | None
    capacity: int
    skeleton: Any
    nbytes: int


@dataclass(frozen=True)
class BatchDone:
    """Task ``seq`` of pass ``pass_id`` is made; ``payload`` None: every sample was skipped."""

    pass_id: int
    seq: int
    payload: Inline | InSlot | None
    skipped: tuple[tuple[int, int, str], ...]  # (epoch, index, repr of error) under on_error
    dropped_slots: tuple[int, ...] = ()  # free slots the worker unmapped: too small to keep
    digest: str = ""  # iterable: the fingerprint chain of this worker's stream up to this batch


@dataclass(frozen=True)
class TaskFailed:
    """Task ``seq`` raised; the error is re-raised in the loader when its turn comes."""

    pass_id: int
    seq: int
    error: RemoteError


@dataclass(frozen=True)
class StreamEnded:
    """An iterable dataset's stream in this worker has no batch left for task ``seq``."""

    pass_id: int
    seq: int


ToWorker = Task | Free | Stop
FromWorker = Ready | InitFailed | BatchDone | TaskFailed | StreamEnded
