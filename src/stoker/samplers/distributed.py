"""DistributedSampler: each rank's share of a (shuffled) epoch, as torch computes it, elastic.

How an epoch is dealt, and why a state saved on W ranks resumes on W' ranks exactly:

* Epoch ``e``'s order is ``perm`` (``randperm(n)`` seeded with ``seed + e``, as torch). The
  epoch's *deal* from ``offset`` is ``perm[offset:]`` padded (with ``perm``'s first items,
  cycling, as torch pads) or trimmed (``drop_last``) to a multiple of the world size ``W``;
  rank ``r`` takes every ``W``-th item from ``r``. A fresh epoch is the deal from 0, which is
  torch's DistributedSampler item for item.
* Ranks advance in lockstep (DDP: one batch per rank per step), so after each rank consumed
  ``c`` items of a deal from ``offset``, the consumed items are exactly ``perm[offset :
  offset + W*c]``: a prefix. The state is that count — ``position`` (items per rank this
  epoch), ``segment_start`` (the position at which the current deal began) and
  ``segment_offset`` (its ``offset``) — never a list of samples.
* Loading at world size W' re-deals the rest: ``offset' = offset + W*c`` (at most ``n``), a
  new deal over W' ranks starting at the saved position. At W' == W that is the very
  continuation of the uninterrupted run; at W' != W every sample the epoch had left is dealt
  once, with padding (fewer than W' repeats) or trimming (fewer than W' dropped) to keep the
  ranks' counts equal, as torch does for a fresh epoch. Later epochs are W''s normal deal.
"""

from __future__ import annotations

import math
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any

import torch
import torch.utils.data

from stoker.samplers.state import StatefulSampler


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _deal(order: list[int], offset: int, world: int, drop_last: bool) -> list[int]:
    """``order[offset:]`` trimmed or padded to a multiple of ``world`` as torch does."""
    rest = order[offset:]
    if drop_last:
        return rest[: len(rest) - len(rest) % world]
    short = -len(rest) % world
    if short:  # torch pads with the epoch's first items, cycling through them if it is short
        rest += [order[i % len(order)] for i in range(short)]
    return rest


@dataclass(frozen=True)
class _Segment:
    """A resumed epoch's deal: from ``offset`` of the order, begun at per-rank ``start``."""

    epoch: int
    start: int
    offset: int


def _state_int(state: dict[str, Any], name: str, default: int | None = None) -> int:
    value = state.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"DistributedSampler state {name!r} must be a whole number >= 0, got {value!r}; "
            "the state is damaged or was not written by stoker's DistributedSampler"
        )
    return value


class DistributedSampler(StatefulSampler, torch.utils.data.DistributedSampler):
    """Rank ``rank``'s indices out of ``num_replicas``; same order as torch's DistributedSampler.

    Epoch ``e`` is shuffled with ``torch.Generator().manual_seed(seed + e)`` — the same as
    torch — then padded (or trimmed with ``drop_last``) to a multiple of ``num_replicas`` and
    strided by rank. Call ``set_epoch`` each epoch, or let ``iter()`` count epochs.

    Its state resumes at any world size: save any one rank's state (the ranks' states differ
    only in ``rank``) and load it on every rank of the new world; the epoch's remaining
    samples are dealt over the new ranks, each exactly once (see the module docstring).

    A ``torch.utils.data.DistributedSampler`` subclass, so frameworks that check for one
    (Lightning's sampler injection) keep it as the loader's sharding instead of adding theirs.
    """

    dataset: Sized  # type: ignore[assignment]  # torch's says Dataset; any sized one works

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ):
        super().__init__()
        world, my_rank = _world()
        self.num_replicas = world if num_replicas is None else num_replicas
        self.rank = my_rank if rank is None else rank
        if self.num_replicas <= 0:
            raise ValueError(f"num_replicas must be positive, got {self.num_replicas}")
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank must be in [0, {self.num_replicas - 1}], got {self.rank}")
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self._segment: _Segment | None = None  # the deal of the epoch being resumed, if any

    def _order(self, epoch: int) -> list[int]:
        n = len(self.dataset)
        if not self.shuffle:
            return list(range(n))
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        return torch.randperm(n, generator=generator).tolist()

    def _epoch_indices(self, epoch: int) -> list[int]:
        dealt = _deal(self._order(epoch), 0, self.num_replicas, self.drop_last)
        return dealt[self.rank :: self.num_replicas]

    def _epoch_rest(self, epoch: int, skip: int) -> list[int]:
        segment = self._segment
        if segment is None or segment.epoch != epoch:
            self._segment = None
            return self._epoch_indices(epoch)[skip:]
        dealt = _deal(self._order(epoch), segment.offset, self.num_replicas, self.drop_last)
        return dealt[self.rank :: self.num_replicas][max(skip - segment.start, 0) :]

    def __len__(self) -> int:
        """Samples per rank in a fresh epoch (an epoch resumed at another world size differs)."""
        return self.num_samples

    def _extra_state(self, epoch: int) -> dict[str, Any]:
        segment = self._segment if self._segment and self._segment.epoch == epoch else None
        return {
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "dataset_len": len(self.dataset),
            "segment_start": segment.start if segment else 0,
            "segment_offset": segment.offset if segment else 0,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        saved_world = _state_int(state, "num_replicas")
        if saved_world == 0:
            raise ValueError("DistributedSampler state 'num_replicas' is 0; the state is damaged")
        n = len(self.dataset)
        if "dataset_len" not in state:
            # Written before elastic resume: without the dataset size and drop_last the saved
            # position cannot be checked against this deal, so only the same world resumes.
            if saved_world != self.num_replicas:
                raise ValueError(
                    f"this DistributedSampler state was saved on {saved_world} ranks by a stoker "
                    "without elastic resume (no 'dataset_len'), and this sampler has "
                    f"num_replicas={self.num_replicas}; it resumes exactly only on "
                    f"{saved_world} ranks. Resume on {saved_world} ranks, or start the epoch over."
                )
            self._check_same(state, n)
            self.seed = int(state["seed"])
            self._segment = None
            return
        self._check_same(state, n)
        self.seed = int(state["seed"])
        position = _state_int(state, "position")
        start = _state_int(state, "segment_start", 0)
        offset = _state_int(state, "segment_offset", 0)
        if start > position or offset > n:
            raise ValueError(
                f"DistributedSampler state has segment_start={start}, segment_offset={offset} "
                f"with position={position} over {n} samples: a deal cannot begin after the "
                "position or past the dataset; the state is damaged"
            )
        # Items each old rank consumed in its deal; the last batch may have run past its end.
        dealt = len(_deal(self._order(self.epoch), offset, saved_world, self.drop_last))
        consumed = min(position - start, dealt // saved_world)
        self._segment = _Segment(self.epoch, position, min(offset + saved_world * consumed, n))

    def _check_same(self, state: dict[str, Any], n: int) -> None:
        """Refuse a state whose epoch order or dataset differs from this sampler's."""
        for name, mine in (
            ("dataset_len", n),
            ("shuffle", self.shuffle),
            ("drop_last", self.drop_last),
        ):
            if name in state and state[name] != mine:
                raise ValueError(
                    f"this DistributedSampler state was saved with {name}={state[name]!r}, this "
                    f"sampler has {name}={mine!r}; the saved position does not map onto this "
                    f"epoch's order. Construct the sampler with {name}={state[name]!r} to resume."
                )
        if isinstance(state.get("seed"), bool) or not isinstance(state.get("seed"), int):
            raise ValueError(
                f"DistributedSampler state 'seed' must be an integer, got {state.get('seed')!r}"
            )
