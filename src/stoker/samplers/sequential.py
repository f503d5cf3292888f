"""SequentialSampler: indices 0..n-1 in order."""

from __future__ import annotations

from collections.abc import Sized

import numpy as np
import numpy.typing as npt
import torch.utils.data

from stoker.samplers.state import StatefulSampler


class SequentialSampler(StatefulSampler, torch.utils.data.SequentialSampler):
    """Yields ``0, 1, ..., len(data_source) - 1`` every epoch; a torch ``SequentialSampler``."""

    def __init__(self, data_source: Sized):
        super().__init__()
        self.data_source = data_source

    def _epoch_indices(self, epoch: int) -> npt.NDArray[np.int64]:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.data_source)
