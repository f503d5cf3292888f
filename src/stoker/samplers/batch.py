"""BatchSampler: groups another sampler's indices into lists of batch_size."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt
import torch.utils.data

from stoker.samplers.state import StatefulSampler


class BatchSampler(torch.utils.data.Sampler[list[int]]):
    """Lists of ``batch_size`` indices from ``sampler``; the last one shorter unless ``drop_last``.

    Its state is the inner sampler's, plus how many batches the current epoch has yielded.
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last must be a bool, got {drop_last!r}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._batches = 0
        self._resume_batches = 0

    def __iter__(self) -> Iterator[list[int]]:
        # Eager like StatefulSampler: the inner sampler enters its new epoch at iter().
        skip, self._resume_batches = self._resume_batches, 0
        self._batches = skip
        if isinstance(self.sampler, StatefulSampler):
            return self._sliced(self.sampler._begin_epoch())
        indices = iter(self.sampler)
        if skip and not hasattr(self.sampler, "load_state_dict"):
            for _ in islice(indices, skip * self.batch_size):  # replay a stateless order
                pass
        return self._batched(indices)

    def _sliced(self, indices: npt.NDArray[np.int64]) -> Iterator[list[int]]:
        size = self.batch_size
        stop = len(indices) - len(indices) % size if self.drop_last else len(indices)
        for start in range(0, stop, size):
            self._batches += 1
            yield indices[start : start + size].tolist()

    def _batched(self, indices: Iterator[int]) -> Iterator[list[int]]:
        while batch := list(islice(indices, self.batch_size)):
            if len(batch) < self.batch_size and self.drop_last:
                return
            self._batches += 1
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The inner sampler's state and the number of batches yielded this epoch.

        A stateless inner sampler with an epoch (torch's ``DistributedSampler``, which Lightning
        injects) has its epoch kept, so a resume replays that epoch's order, not epoch 0's.
        """
        if hasattr(self.sampler, "state_dict"):
            inner = self.sampler.state_dict()
        elif isinstance(getattr(self.sampler, "epoch", None), int):
            inner = {"epoch": self.sampler.epoch}  # type: ignore[attr-defined]
        else:
            inner = {}
        return {"batches": self._batches, "sampler": inner}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue the saved epoch after the saved batch."""
        self._resume_batches = self._batches = int(state["batches"])
        if hasattr(self.sampler, "load_state_dict"):
            inner = dict(state["sampler"])
            inner["position"] = self._batches * self.batch_size
            self.sampler.load_state_dict(inner)
        elif "epoch" in state["sampler"] and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(int(state["sampler"]["epoch"]))
