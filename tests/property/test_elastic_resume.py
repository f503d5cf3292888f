"""Elastic resume: a DistributedSampler state saved on W ranks, loaded on W' ranks, any batch.

Ranks are simulated by one ``stoker.DataLoader`` per rank in this process, stepped in
lockstep as DDP steps them (one batch per rank per step).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import stoker

worlds = st.integers(min_value=1, max_value=5)


def _loaders(n: int, world: int, batch: int, seed: int, drop_last: bool, shuffle: bool) -> list:
    return [
        stoker.DataLoader(
            list(range(n)),
            batch_size=batch,
            sampler=stoker.DistributedSampler(
                range(n), world, rank, shuffle=shuffle, seed=seed, drop_last=drop_last
            ),
            seed=seed,
        )
        for rank in range(world)
    ]


def _run(
    n: int,
    batch: int,
    seed: int,
    drop_last: bool,
    shuffle: bool,
    legs: list[tuple[int, int]],
    rng: random.Random,
) -> tuple[list[list[int]], list[list[int]]]:
    """Run epoch 0 over ``legs`` of (world size, batches before the save); the last to the end.

    Returns the samples of each leg, and every rank's of the epoch after, on the last world.
    A leg that reaches the end of the epoch is the last: a state taken after an epoch's end
    resumes with the next epoch, so the legs after it would be in epoch 1.
    """
    state: dict[str, Any] | None = None
    per_leg: list[list[int]] = []
    for leg, (world, steps) in enumerate(legs):
        loaders = _loaders(n, world, batch, seed, drop_last, shuffle)
        for loader in loaders:
            if state is not None:
                loader.load_state_dict(state)
        iterators = [iter(loader) for loader in loaders]
        seen: list[int] = []
        last = leg == len(legs) - 1
        step = 0
        while last or step < steps:
            got = [next(iterator, None) for iterator in iterators]
            # Lockstep: every rank has a batch at each step, or none has (same counts per rank).
            assert len({b is None for b in got}) == 1, f"ranks out of step at leg {leg}"
            if got[0] is None:
                break
            seen += [int(i) for b in got for i in b]
            step += 1
        states = [json.loads(json.dumps(loader.state_dict())) for loader in loaders]
        for other in states:  # any one rank's state stands for all of them
            other["sampler"]["sampler"]["rank"] = states[0]["sampler"]["sampler"]["rank"]
            assert other == states[0]
        state = states[rng.randrange(world)]
        per_leg.append(seen)
        if state["epoch_done"]:
            break
    # The last leg's loaders, resumed and run to the end of epoch 0, go on to epoch 1.
    after = [[int(i) for b in loader for i in b] for loader in loaders]
    return per_leg, after


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=90),
    batch=st.integers(min_value=1, max_value=9),
    seed=st.integers(min_value=0, max_value=2**31),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    legs=st.lists(st.tuples(worlds, st.integers(0, 12)), min_size=2, max_size=4),
    rng=st.randoms(use_true_random=False),
)
def test_any_world_sizes_see_every_sample_of_the_epoch_once(
    n: int,
    batch: int,
    seed: int,
    drop_last: bool,
    shuffle: bool,
    legs: list[tuple[int, int]],
    rng: random.Random,
) -> None:
    """Over the whole epoch, each sample once: padding repeats (or drop_last drops) < W' of them."""
    per_leg, after = _run(n, batch, seed, drop_last, shuffle, legs, rng)
    counts = Counter(i for seen in per_leg for i in seen)
    bound = max(world for world, _ in legs)
    if drop_last:
        assert max(counts.values(), default=1) == 1
        assert set(counts) <= set(range(n)) and n - len(counts) < bound
    else:
        assert sorted(counts) == list(range(n))
        assert sum(counts.values()) - n < bound
    # The next epoch is W''s ordinary epoch 1, as a fresh sampler deals it (W' of the leg that
    # ended epoch 0).
    world = legs[len(per_leg) - 1][0]
    fresh = [
        stoker.DistributedSampler(range(n), world, rank, shuffle=shuffle, seed=seed,
                                  drop_last=drop_last)
        for rank in range(world)
    ]  # fmt: skip
    for rank, sampler in enumerate(fresh):
        sampler.set_epoch(1)
        assert after[rank] == list(sampler)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=90),
    batch=st.integers(min_value=1, max_value=9),
    world=worlds,
    seed=st.integers(min_value=0, max_value=2**31),
    drop_last=st.booleans(),
    cuts=st.lists(st.integers(0, 12), min_size=1, max_size=3),
    rng=st.randoms(use_true_random=False),
)
def test_same_world_size_resumes_as_the_uninterrupted_run(
    n: int,
    batch: int,
    world: int,
    seed: int,
    drop_last: bool,
    cuts: list[int],
    rng: random.Random,
) -> None:
    """At W' == W the resumed ranks yield what torch's DistributedSampler deals them, in order."""
    legs = [(world, cut) for cut in cuts] + [(world, 0)]
    per_leg, _ = _run(n, batch, seed, drop_last, True, legs, rng)
    uninterrupted, _ = _run(n, batch, seed, drop_last, True, [(world, 0)], rng)
    assert [i for seen in per_leg for i in seen] == uninterrupted[0]
