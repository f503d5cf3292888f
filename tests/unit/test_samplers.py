"""Samplers: torch's orders, every index once per epoch, and state_dict resumes exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.utils.data

from stoker.samplers import BatchSampler, DistributedSampler, RandomSampler, SequentialSampler

N = 23

SAMPLERS: dict[str, Callable[[], Any]] = {
    "sequential": lambda: SequentialSampler(range(N)),
    "random-seed": lambda: RandomSampler(range(N), seed=7),
    "random-generator": lambda: RandomSampler(range(N), generator=torch.Generator().manual_seed(7)),
    "distributed": lambda: DistributedSampler(range(N), num_replicas=1, rank=0, seed=3),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_index_exactly_once_per_epoch(name: str) -> None:
    sampler = SAMPLERS[name]()
    for _ in range(3):
        assert sorted(sampler) == list(range(N))


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("stop_after", [0, 1, 10, N - 1, N])
def test_state_dict_then_load_gives_the_same_continuation(name: str, stop_after: int) -> None:
    reference = SAMPLERS[name]()
    next(iter(reference))  # epoch 0 consumed differently: the state must capture the epoch
    expected_iter = iter(reference)
    head = [next(expected_iter) for _ in range(stop_after)]
    state = json.loads(json.dumps(reference.state_dict()))
    tail = list(expected_iter)
    next_epoch = list(reference)

    resumed = SAMPLERS[name]()
    resumed.load_state_dict(state)
    assert list(resumed) == tail
    assert list(resumed) == next_epoch
    assert sorted(head + tail) == list(range(N))


def test_random_sampler_equals_torch_with_same_generator() -> None:
    ours = RandomSampler(range(N), generator=torch.Generator().manual_seed(5))
    theirs = torch.utils.data.RandomSampler(range(N), generator=torch.Generator().manual_seed(5))
    for _ in range(3):
        assert list(ours) == list(theirs)


@pytest.mark.parametrize("num_samples", [5, 40, 70])
def test_random_sampler_with_replacement_equals_torch(num_samples: int) -> None:
    ours = RandomSampler(range(N), True, num_samples, generator=torch.Generator().manual_seed(1))
    theirs = torch.utils.data.RandomSampler(
        range(N), True, num_samples, generator=torch.Generator().manual_seed(1)
    )
    assert list(ours) == list(theirs)


def test_seeded_random_sampler_is_a_function_of_seed_and_epoch() -> None:
    a = RandomSampler(range(N), seed=1)
    first = list(a)
    second = list(a)
    assert second != first  # a new order each epoch
    jumped = RandomSampler(range(N), seed=1)
    jumped.set_epoch(1)
    assert list(jumped) == second  # epoch 1's order, without replaying epoch 0
    assert list(RandomSampler(range(N), seed=2)) != first


@pytest.mark.parametrize("rank", [0, 1, 2])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_sampler_equals_torch(rank: int, drop_last: bool, shuffle: bool) -> None:
    ours = DistributedSampler(range(N), 3, rank, shuffle=shuffle, seed=4, drop_last=drop_last)
    theirs = torch.utils.data.DistributedSampler(
        range(N), 3, rank, shuffle=shuffle, seed=4, drop_last=drop_last
    )
    for epoch in range(2):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)


@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_equals_torch_and_resumes(drop_last: bool) -> None:
    ours = BatchSampler(SequentialSampler(range(N)), 5, drop_last)
    theirs = torch.utils.data.BatchSampler(range(N), 5, drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)

    shuffled = BatchSampler(RandomSampler(range(N), seed=2), 5, drop_last)
    iterator = iter(shuffled)
    next(iterator)
    state = json.loads(json.dumps(shuffled.state_dict()))
    tail = list(iterator)
    again = BatchSampler(RandomSampler(range(N), seed=99), 5, drop_last)
    again.load_state_dict(state)
    assert list(again) == tail


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"batch_size": 0}, "batch_size"), ({"batch_size": 2, "drop_last": 1}, "drop_last")],
)
def test_batch_sampler_validates(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BatchSampler(range(3), kwargs.pop("batch_size"), kwargs.pop("drop_last", False))


def test_distributed_sampler_validates_rank() -> None:
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
