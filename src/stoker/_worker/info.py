"""WorkerInfo and get_worker_info(): what a worker knows about itself, in stoker's view and torch's.

``stoker.WorkerInfo`` *is* torch's ``torch.utils.data._utils.worker.WorkerInfo``, and inside a
stoker worker both ``stoker.get_worker_info()`` and ``torch.utils.data.get_worker_info()``
return the same object, so a dataset written for torch (sharding an IterableDataset by
``get_worker_info().id``, seeding a library from ``.seed``) behaves the same under either loader.

Process workers set torch's module global ``_worker_info``, exactly as torch's worker loop does.
Thread workers cannot: torch's ``get_worker_info`` returns that module global, one for all
threads, and the main thread must keep seeing ``None``. So the first thread worker makes torch's
getter thread-aware in place (:func:`_install_thread_aware_getter`: the function object keeps its
identity, so ``from torch.utils.data import get_worker_info`` done earlier sees it too); the new
body returns this thread's worker info if it has one, else torch's global, as before.
"""

from __future__ import annotations

import random
import threading
import types
from typing import Any

import numpy as np
import torch
from torch.utils.data._utils import worker as _torch_worker

__all__ = ["WorkerInfo", "get_worker_info"]

WorkerInfo = _torch_worker.WorkerInfo
"""Inside a worker: its id, the number of workers, its seed and its copy of the dataset."""

_thread = threading.local()  # .info: set in each worker thread (worker_mode="thread")
_install_lock = threading.Lock()
_THREAD_LOCAL_NAME = "_stoker_thread_worker_info"  # the name torch's getter reads it under


def get_worker_info() -> WorkerInfo | None:
    """The current worker's :class:`WorkerInfo`, or ``None`` in the main process.

    The same object ``torch.utils.data.get_worker_info()`` returns, in stoker's workers and in
    torch's alike.
    """
    in_thread: WorkerInfo | None = getattr(_thread, "info", None)
    if in_thread is not None:
        return in_thread
    return _torch_worker._worker_info


def pass_base_seed(seed: int, epoch: int) -> int:
    """torch's per-iterator ``base_seed``, drawn by stoker from (seed, epoch) instead of an RNG,
    so worker seeds are the same for the same seed in every run (63 bits minus room for ids)."""
    from stoker.seeding import sample_key

    return int(sample_key(seed, epoch, [-1])[0]) & (2**62 - 1)


def torch_worker_seed(base_seed: int, worker_id: int) -> int:
    """Seed Python's, numpy's and torch's global RNGs as torch's worker loop does; the seed.

    torch's rule (``torch/utils/data/_utils/worker.py``): ``seed = base_seed + worker_id``
    for ``random`` and ``torch``, numpy from ``_generate_state(base_seed, worker_id)``, where
    ``base_seed`` is drawn once per iterator from the loader's ``generator`` (or torch's global
    RNG): ``torch.empty((), dtype=torch.int64).random_(generator=generator).item()``.
    """
    seed = base_seed + worker_id
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(_torch_worker._generate_state(base_seed, worker_id))  # type: ignore[no-untyped-call]
    return seed


def _set_worker_info(info: WorkerInfo | None) -> None:
    """Make ``info`` this worker process's answer, in stoker's view and torch's."""
    _torch_worker._worker_info = info


def _set_thread_worker_info(info: WorkerInfo | None) -> None:
    """Make ``info`` this worker thread's answer, in stoker's view and torch's."""
    if info is not None and info.worker_method != "thread":
        info = WorkerInfo(
            info.id, info.num_workers, info.seed, info.dataset, worker_method="thread"
        )
    if info is not None:
        _install_thread_aware_getter()
    _thread.info = info


def _thread_aware_body() -> Any:  # the code torch's getter gets; its globals are torch's module
    local = globals()["_stoker_thread_worker_info"]
    info = getattr(local, "info", None)
    return globals()["_worker_info"] if info is None else info


def _install_thread_aware_getter() -> bool:
    """Give torch's ``get_worker_info`` a body that reads this thread's info first; done once.

    Only when the getter is still torch's own (``return _worker_info``, nothing else): a getter
    replaced by someone else is left alone, and thread workers then answer through
    ``stoker.get_worker_info()`` only. Returns whether torch's getter is thread-aware.
    """
    getter: types.FunctionType = _torch_worker.get_worker_info  # type: ignore[assignment]
    with _install_lock:
        if getter.__code__ is _thread_aware_body.__code__:
            return True
        code = getter.__code__
        if code.co_argcount or code.co_names != ("_worker_info",) or getter.__closure__:
            return False
        vars(_torch_worker)[_THREAD_LOCAL_NAME] = _thread
        getter.__code__ = _thread_aware_body.__code__
        return True
