"""Where a batched transform puts its output: in a worker, straight into a shared-memory slot.

A worker that lets the transform allocate a fresh tensor and then copies it into the slot pays
for the copy (3 MiB per CIFAR batch of float32) and for the fresh pages. Inside a worker,
:func:`empty` instead hands out the start of a free slot, so the batch is born where it will be
read; outside one it is ``torch.empty``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import torch

Provider = Callable[[tuple[int, ...], torch.dtype], "torch.Tensor | None"]

_local = threading.local()


def empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor for a transform's whole-batch output."""
    provide: Provider | None = getattr(_local, "provide", None)
    if provide is not None:
        tensor = provide(tuple(shape), dtype)
        if tensor is not None:
            return tensor
    return torch.empty(shape, dtype=dtype)


@contextlib.contextmanager
def provided_by(provide: Provider) -> Iterator[None]:
    """Route :func:`empty` through ``provide`` in this thread (it may decline with None)."""
    _local.provide = provide
    try:
        yield
    finally:
        _local.provide = None
