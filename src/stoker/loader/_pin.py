"""Page-locking batches (pin_memory) for fast, asynchronous host-to-GPU copies."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from stoker._tree import map_structure


def pinning_available() -> bool:
    """True when there is an accelerator to pin for; warns once per call site otherwise."""
    if torch.cuda.is_available():
        return True
    warnings.warn(  # torch's words first: code that filters the warning looks for them
        "'pin_memory' argument is set as true but no accelerator is found, then device pinned "
        "memory won't be used. (stoker: no CUDA device is available; batches are left unpinned)",
        UserWarning,
        stacklevel=4,
    )
    return False


def _is_host_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.device.type == "cpu"


def pin(batch: Any) -> Any:
    """``batch`` with every CPU tensor inside it copied to page-locked memory.

    Tensors already pinned are kept as they are (``Tensor.pin_memory`` returns them), and
    tensors already on a device are left there: torch's loader would raise for them ("only
    dense CPU tensors can be pinned"), though there is nothing to pin.
    """
    if hasattr(batch, "pin_memory") and not isinstance(batch, torch.Tensor):
        return batch.pin_memory()  # a custom batch type that knows how to pin itself
    return map_structure(batch, lambda tensor: tensor.pin_memory(), _is_host_tensor)
