"""WorkerInfo and get_worker_info(): what a worker process knows about itself."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["WorkerInfo", "get_worker_info"]


@dataclass(frozen=True)
class WorkerInfo:
    """Inside a worker: its id, the number of workers, its seed and its copy of the dataset."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_current: WorkerInfo | None = None  # set once in a worker process
_thread = threading.local()  # set in each worker thread (worker_mode="thread")


def get_worker_info() -> WorkerInfo | None:
    """The current worker's :class:`WorkerInfo`, or ``None`` in the main process.

    Falls back to torch's ``get_worker_info()`` so code shared with torch's DataLoader works
    under either loader.
    """
    in_thread: WorkerInfo | None = getattr(_thread, "info", None)
    if in_thread is not None:
        return in_thread
    if _current is not None:
        return _current
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    if info is None:
        return None
    return WorkerInfo(info.id, info.num_workers, info.seed, info.dataset)


def _set_worker_info(info: WorkerInfo | None) -> None:
    global _current
    _current = info


def _set_thread_worker_info(info: WorkerInfo | None) -> None:
    _thread.info = info
