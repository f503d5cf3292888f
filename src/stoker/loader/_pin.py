"""Page-locking batches (pin_memory) for fast, asynchronous host-to-GPU copies."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch


def pinning_available() -> bool:
    """True when there is an accelerator to pin for; warns once per call site otherwise."""
    if torch.cuda.is_available():
        return True
    warnings.warn(
        "pin_memory=True but no CUDA device is available; batches are left unpinned",
        UserWarning,
        stacklevel=4,
    )
    return False


def pin(batch: Any) -> Any:
    """``batch`` with every CPU tensor inside it copied to page-locked memory."""
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, Mapping):
        return type(batch)({key: pin(value) for key, value in batch.items()})  # type: ignore[call-arg]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(pin(value) for value in batch))
    if isinstance(batch, tuple | list):
        return type(batch)(pin(value) for value in batch)
    if hasattr(batch, "pin_memory"):
        return batch.pin_memory()
    return batch
