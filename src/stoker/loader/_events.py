"""What a runner reports to the delivery engine: a task's outcome, or a worker's fate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stoker._worker.remote_error import RemoteError

END_OF_STREAM: Any = object()
"""A task's value when an iterable dataset's stream in that worker had no batch left."""

NOTHING: Any = object()
"""A task's value when on_error="skip" dropped every sample of the batch."""


@dataclass(frozen=True)
class Finished:
    """Task ``seq`` produced ``value`` (a batch, a Future of one, END_OF_STREAM or NOTHING)."""

    seq: int
    worker_id: int
    value: Any
    skipped: tuple[tuple[int, int, str], ...] = ()
    digest: str = ""  # a stream's: its worker's fingerprint chain up to this batch


@dataclass(frozen=True)
class Raised:
    """Task ``seq`` raised: the exception itself (same process) or a worker's RemoteError."""

    seq: int
    worker_id: int
    error: BaseException | RemoteError


@dataclass(frozen=True)
class WorkerLost:
    """Worker ``worker_id`` (process ``pid``) is gone; ``how`` says why, in torch's words
    ("is killed by signal: Killed (SIGKILL)", "exited unexpectedly with exit code 1")."""

    worker_id: int
    how: str
    pid: int | None = None


@dataclass(frozen=True)
class InitFailed:
    """``worker_init_fn`` raised in worker ``worker_id``."""

    worker_id: int
    error: BaseException | RemoteError


Event = Finished | Raised | WorkerLost | InitFailed
