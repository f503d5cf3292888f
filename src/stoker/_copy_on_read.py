"""Loader-start check for datasets whose big Python containers every forked worker would copy."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch.utils.data

__all__ = ["LARGE_CONTAINER_ITEMS", "large_containers", "warn_if_copy_on_read"]

_log = logging.getLogger("stoker")

# No gc.freeze() before forking: measured with benchmarks/bench_memory.py (2,000,000 items, 2
# fork workers, one epoch), the workers' peak USS was the same with and without it — list of
# str 399 vs 399 MB, list of (str, int) tuples 658 vs 658 MB. The copying comes from reference
# counts written on every read; the collector rarely runs a full collection in a worker (3.11
# waits until new long-lived objects exceed a quarter of those inherited), so freezing spares
# nothing. Only compact storage (SharedList, numpy) helps.

LARGE_CONTAINER_ITEMS = 100_000
"""A list, tuple or dict attribute longer than this is reported. At ~100 bytes an item that is
~10 MB that each worker copies as it reads; below it the copy is noise next to the interpreter."""

_MAX_DEPTH = 4
"""Wrappers followed from the loader's dataset: Subset → Mapped → Concat → the data, say."""

_MAX_DATASET_LIST = 64
"""A short list or tuple attribute (ConcatDataset.datasets) is looked into for datasets."""


def _is_dataset(value: object) -> bool:
    return isinstance(value, torch.utils.data.Dataset)


def large_containers(dataset: Any) -> list[tuple[str, str, int]]:
    """``(where, container type, length)`` of each list/tuple/dict over the threshold.

    ``where`` is an attribute path from the dataset (``dataset.dataset.paths``). It looks at the
    dataset and the datasets it wraps — attributes that are datasets, or short lists of them —
    and only at the attributes' types and lengths: no item of a long container is read, so the
    check costs microseconds whatever the dataset's size.
    """
    found: list[tuple[str, str, int]] = []
    seen: set[int] = set()
    stack: list[tuple[Any, str, int]] = [(dataset, "dataset", 0)]
    while stack:
        obj, where, depth = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, list | tuple | dict):
            if len(obj) > LARGE_CONTAINER_ITEMS:
                found.append((where, type(obj).__name__, len(obj)))
            continue
        attributes = getattr(obj, "__dict__", None)
        if not isinstance(attributes, dict) or depth >= _MAX_DEPTH:
            continue
        for name, value in attributes.items():
            path = f"{where}.{name}"
            if isinstance(value, list | tuple | dict):
                length = len(value)
                if length > LARGE_CONTAINER_ITEMS:
                    found.append((path, type(value).__name__, length))
                elif length <= _MAX_DATASET_LIST and not isinstance(value, dict):
                    stack.extend(
                        (item, f"{path}[{k}]", depth + 1)
                        for k, item in enumerate(value)
                        if _is_dataset(item)
                    )
            elif _is_dataset(value):
                stack.append((value, path, depth + 1))
    return sorted(found)


def copy_on_read_message(found: list[tuple[str, str, int]]) -> str:
    """The warning text for what :func:`large_containers` found."""
    listed = "; ".join(
        f"{where} is a Python {kind} of {length:,} items" for where, kind, length in found
    )
    return (
        f"{listed}. Worker processes read it through reference counts, so every forked worker "
        "slowly copies all of it (torch issue #13246: memory grows by the list's size per "
        "worker). Hold per-sample metadata as stoker.SharedList(items) (str, bytes, int, "
        "float, bool and tuples of them) or a numpy array, which workers read without copying"
    )


def warn_if_copy_on_read(dataset: Any) -> bool:
    """Warn (``stoker`` logger and ``UserWarning``) when workers would copy ``dataset``'s lists.

    Called once per loader before process workers start; returns whether it warned.
    """
    found = large_containers(dataset)
    if not found:
        return False
    message = copy_on_read_message(found)
    _log.warning("%s", message)
    # stacklevel 3: past this function and DataLoader.__iter__, to the user's `for` line
    warnings.warn(message, UserWarning, stacklevel=3)
    return True
