"""CollatedSamples: a batch that a dataset already collated, viewed as a sequence of samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from stoker._tree import map_structure


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, Mapping | tuple | list)


def _row(leaf: Any, position: int) -> Any:
    if not isinstance(leaf, torch.Tensor | np.ndarray):
        raise TypeError(
            f"CollatedSamples leaves must be arrays or tensors, got {type(leaf).__name__}"
        )
    return leaf[position]


def _take(tree: Any, position: int) -> Any:
    return map_structure(tree, lambda leaf: _row(leaf, position), _is_leaf)


class CollatedSamples(Sequence[Any]):
    """What ``__getitems__`` returns when it built the whole batch at once (e.g. one gather).

    ``collated`` is the batch in its final nested form — a tensor/array, or tuples, lists and
    dicts of them, each with the batch on its first axis. stoker's collate functions return it
    as it is (numpy leaves become tensors), skipping per-sample work; everything else, including
    torch's own ``default_collate``, sees an ordinary sequence of ``length`` samples.
    """

    def __init__(self, collated: Any, length: int):
        self.collated = collated
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, position: int) -> Any:  # type: ignore[override]
        if not -self.length <= position < self.length:
            raise IndexError(f"sample position {position} out of range for {self.length}")
        return _take(self.collated, position)
