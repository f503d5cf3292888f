"""DistributedSampler states across world sizes: exact continuation, or a ValueError saying why."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

import stoker
from stoker import DataLoader, DistributedSampler

N = 60


def _ranks(world: int, **kwargs: Any) -> list[DataLoader]:
    return [
        DataLoader(
            list(range(N)),
            batch_size=4,
            sampler=DistributedSampler(range(N), world, rank, seed=5, **kwargs),
            seed=5,
        )
        for rank in range(world)
    ]


def _state_after(world: int, steps: int, **kwargs: Any) -> tuple[dict[str, Any], list[int]]:
    loaders = _ranks(world, **kwargs)
    iterators = [iter(loader) for loader in loaders]
    seen = [int(i) for _ in range(steps) for it in iterators for i in next(it)]
    return json.loads(json.dumps(loaders[0].state_dict())), seen


@pytest.mark.parametrize(("old", "new"), [(2, 3), (3, 2), (2, 5), (4, 1)])
def test_resume_on_another_world_size_sees_the_epoch_once(old: int, new: int) -> None:
    """The issue's case: 2 -> 3 ranks used to lose 12 of the 60 samples, without a word."""
    state, seen = _state_after(old, 3)
    padding = -(N - len(seen)) % new  # torch's: the rest is padded to a multiple of the ranks
    for loader in _ranks(new):
        loader.load_state_dict(state)
        seen += [int(i) for batch in loader for i in batch]
    assert sorted(set(seen)) == list(range(N)) and len(seen) == N + padding
    if padding == 0:
        assert Counter(seen) == Counter(range(N))


def test_every_rank_of_the_new_world_gets_as_many_batches() -> None:
    """DDP needs equal batch counts per rank: the rest is padded as torch pads an epoch."""
    state, seen = _state_after(2, 1)  # 52 left: 3 ranks get 18, two samples repeated
    counts = []
    for loader in _ranks(3):
        loader.load_state_dict(state)
        batches = list(loader)
        counts.append(len(batches))
        seen += [int(i) for batch in batches for i in batch]
    assert len(set(counts)) == 1
    assert sorted(set(seen)) == list(range(N)) and len(seen) == N + 2


def test_drop_last_trims_the_rest_instead() -> None:
    state, seen = _state_after(2, 1, drop_last=True)
    for loader in _ranks(3, drop_last=True):
        loader.load_state_dict(state)
        seen += [int(i) for batch in loader for i in batch]
    assert len(seen) == len(set(seen)) == N - 1  # 52 left, 51 dealt over 3 ranks


def test_a_state_saved_right_after_loading_keeps_the_position() -> None:
    """Save on 3 ranks before any batch of the resumed epoch, load on 2: still exactly once."""
    state, seen = _state_after(2, 2)
    sampler = DistributedSampler(range(N), 3, 0, seed=5)
    sampler.load_state_dict(state["sampler"]["sampler"] | {"position": 8})
    again = json.loads(json.dumps(sampler.state_dict()))
    for rank in range(2):
        resumed = DistributedSampler(range(N), 2, rank, seed=5)
        resumed.load_state_dict(again)
        seen += list(resumed)
    assert Counter(seen) == Counter(range(N))


def test_the_saved_seed_wins_over_the_constructor_seed() -> None:
    state, seen = _state_after(2, 2)
    for rank in range(4):
        sampler = DistributedSampler(range(N), 4, rank, seed=99)
        sampler.load_state_dict(state["sampler"]["sampler"] | {"position": 8})
        seen += list(sampler)
    assert Counter(seen) == Counter(range(N))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"dataset_len": 61}, "dataset_len=61"),
        ({"shuffle": False}, "shuffle=False"),
        ({"drop_last": True}, "drop_last=True"),
        ({"segment_start": 99}, "segment_start=99"),
        ({"num_replicas": 0}, "num_replicas"),
        ({"seed": "x"}, "seed"),
        ({"segment_offset": -1}, "segment_offset"),
    ],
)
def test_a_state_that_does_not_fit_is_refused(change: dict[str, Any], match: str) -> None:
    state, _ = _state_after(2, 1)
    state["sampler"]["sampler"].update(change)
    loader = _ranks(3)[0]
    with pytest.raises(ValueError, match=match):
        loader.load_state_dict(state)
        iter(loader)


def test_a_state_from_before_elastic_resume_loads_only_on_its_world_size() -> None:
    old = {"epoch": 0, "position": 8, "seed": 5, "num_replicas": 2, "rank": 0}
    same = DistributedSampler(range(N), 2, 1, seed=5)
    same.load_state_dict(old)
    expected = DistributedSampler(range(N), 2, 1, seed=5)
    assert list(same) == list(expected)[8:]
    with pytest.raises(ValueError, match=r"saved on 2 ranks.*num_replicas=3.*Resume on 2 ranks"):
        DistributedSampler(range(N), 3, 0, seed=5).load_state_dict(old)


def test_later_epochs_are_the_new_world_sizes_own() -> None:
    state, _ = _state_after(2, 3)
    for rank, loader in enumerate(_ranks(3)):
        loader.load_state_dict(state)
        list(loader)
        fresh = DistributedSampler(range(N), 3, rank, seed=5)
        fresh.set_epoch(1)
        assert [int(i) for b in loader for i in b] == list(fresh)


def test_the_state_is_small() -> None:
    big = DistributedSampler(range(100_000), 4, 1, seed=0)
    iterator = iter(big)
    for _ in range(5000):
        next(iterator)
    assert len(json.dumps(big.state_dict())) < 300


def test_public_name() -> None:
    assert stoker.DistributedSampler is DistributedSampler
