"""DistributedSampler: each rank's share of a (shuffled) epoch, as torch computes it."""

from __future__ import annotations

import math
from collections.abc import Sized
from typing import Any

import torch

from stoker.samplers.state import StatefulSampler


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class DistributedSampler(StatefulSampler):
    """Rank ``rank``'s indices out of ``num_replicas``; same order as torch's DistributedSampler.

    Epoch ``e`` is shuffled with ``torch.Generator().manual_seed(seed + e)`` — the same as
    torch — then padded (or trimmed with ``drop_last``) to a multiple of ``num_replicas`` and
    strided by rank. Call ``set_epoch`` each epoch, or let ``iter()`` count epochs.
    """

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

    def _epoch_indices(self, epoch: int) -> list[int]:
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + epoch)
            indices = torch.randperm(n, generator=generator).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[: self.total_size]
        return indices[self.rank : self.total_size : self.num_replicas]

    def __len__(self) -> int:
        return self.num_samples

    def _extra_state(self, epoch: int) -> dict[str, Any]:
        return {"seed": self.seed, "num_replicas": self.num_replicas, "rank": self.rank}
