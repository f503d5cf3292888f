"""The resumable-sampler contract: a reproducible epoch order and a position to skip to."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch.utils.data

from stoker.seeding import sample_key


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit torch seed for one epoch's shuffle, a pure function of (seed, epoch)."""
    return int(sample_key(seed, epoch, [-1])[0]) >> 1


class StatefulSampler(torch.utils.data.Sampler[Any]):
    """Base of stoker's samplers: a counted epoch and a position within it.

    ``state_dict()`` describes where iteration stands — the epoch, how the epoch's order is
    derived, and how many items the current iterator has yielded — as plain JSON-able values.
    ``load_state_dict()`` makes the *next* ``iter()`` produce the rest of that epoch, skipping
    what was already yielded. Subclasses implement ``_epoch_items()`` for the whole epoch and
    may add fields through ``_extra_state`` / ``_load_extra_state``.
    """

    def __init__(self) -> None:
        self.epoch = 0
        # set_epoch calls so far: the loader sees a set_epoch(e) between its iter() and first
        # next() even when ``e`` is the epoch this sampler's own count reached (Lightning's)
        self.epochs_set = 0
        self._resume_position = 0
        self._iter_epoch = 0
        self._base = 0
        self._rest_len = 0
        self._live: Iterator[Any] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order on the next ``iter()`` (later epochs count up from it)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)
        self.epochs_set += 1

    def _epoch_indices(self, epoch: int) -> list[int] | npt.NDArray[np.int64]:
        """Every index of ``epoch``, in order: a list of ints or an int64 array."""
        raise NotImplementedError

    def _epoch_rest(self, epoch: int, skip: int) -> list[int] | npt.NDArray[np.int64]:
        """``epoch``'s indices after the first ``skip`` (a resumed epoch may deal them anew)."""
        return self._epoch_indices(epoch)[skip:]

    def _begin_epoch(self) -> npt.NDArray[np.int64]:
        """Enter the next epoch; return its indices not yet yielded (after a resume's skip).

        An int64 array, not a list: the loader forks its later workers after the epoch's order
        exists, and a list of n int objects that the parent then reads and frees ends up
        private to those workers. For a 2,000,000-sample epoch (benchmarks/bench_memory.py,
        SharedList dataset, 2 workers) their summed peak USS was 80 MB with the list, 14 MB
        with the array.
        """
        epoch, skip = self.epoch, self._resume_position
        self._iter_epoch, self._resume_position = epoch, 0
        self.epoch = epoch + 1
        rest = np.asarray(self._epoch_rest(epoch, skip), dtype=np.int64)
        self._base, self._rest_len, self._live = skip, len(rest), None
        return rest

    def __iter__(self) -> Iterator[Any]:
        # Not a generator function: the epoch moves at iter(), not at the first next(), so a
        # state_dict() taken right after iter() describes the new epoch. The position is read
        # off the list iterator's remaining length, keeping per-index work in C.
        order: list[int] = self._begin_epoch().tolist()
        live = iter(order)
        self._live = live
        return live

    @property
    def position(self) -> int:
        """Items the current epoch has yielded so far."""
        if self._live is None:
            return self._base
        return self._base + self._rest_len - operator.length_hint(self._live)

    def state_dict(self) -> dict[str, Any]:
        """Where the current (or last) epoch stands; JSON-serialisable."""
        return {
            "epoch": self._iter_epoch,
            "position": self.position,
            **self._extra_state(self._iter_epoch),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue the saved epoch from the saved position."""
        self.epoch = int(state["epoch"])
        self._iter_epoch = self.epoch
        self._resume_position = self._base = int(state["position"])
        self._live = None
        self._load_extra_state(state)

    def _extra_state(self, epoch: int) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        return None
