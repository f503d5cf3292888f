"""SequentialSampler: indices 0..n-1 in order."""

from __future__ import annotations

from collections.abc import Sized

from stoker.samplers.state import StatefulSampler


class SequentialSampler(StatefulSampler):
    """Yields ``0, 1, ..., len(data_source) - 1`` every epoch."""

    def __init__(self, data_source: Sized):
        super().__init__()
        self.data_source = data_source

    def _epoch_indices(self, epoch: int) -> list[int]:
        return list(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)
