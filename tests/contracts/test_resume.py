"""Resume is exact or refused, never silent: each case of issue 14, over the loader's modes."""

from __future__ import annotations

import json
import os
import random
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.utils.data

import stoker
from tests.contracts.modes import (
    MODES,
    Augmenting,
    PerSample,
    Stream,
    as_comparable,
    worker_pids,
)
from tests.helpers import assert_batches_equal

MAP_MODES = ["in-process", "fresh", "persistent", "threads"]
STREAM_MODES = ["in-process", "fresh", "persistent"]


def _json(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state))  # every state must survive JSON


def _same(got: list[Any], expected: list[Any]) -> None:
    for a, b in zip(got, expected, strict=True):
        assert_batches_equal(a, b)


def _interrupted(
    make: Callable[[], Any],
    epoch: int,
    stop_after: int,
    epochs_after: int = 2,
    reference: Callable[[], Any] | None = None,
) -> tuple[list[Any], list[Any]]:
    """(uninterrupted run, run saved at ``stop_after`` batches of ``epoch`` and resumed).

    The uninterrupted run is ``reference()``'s where given: the in-process loader, whose
    batches every mode must equal for a map-style dataset (a stream's interleave its
    workers' shards, so its reference is ``make()``). A fresh-workers reference started its
    workers once an epoch: 4 of the 9 worker starts of a case.
    """
    reference = (reference or make)()
    expected = [batch for _ in range(epoch + 1 + epochs_after) for batch in reference]
    original = make()
    head = [batch for _ in range(epoch) for batch in original]
    iterator = iter(original)
    head += [next(iterator) for _ in range(stop_after)]
    state = _json(original.state_dict())
    del iterator, original
    resumed = make()
    resumed.load_state_dict(state)
    tail = [batch for _ in range(1 + epochs_after) for batch in resumed]
    return expected, head + tail


# -- 1. on_error="skip" drops a whole batch --------------------------------------------------


@pytest.mark.parametrize("mode", ["in-process", "fresh"])
@pytest.mark.parametrize("stop_after", [3, 4, 6])
def test_a_batch_skipped_whole_counts_as_consumed(mode: str, stop_after: int) -> None:
    def make(mode: str = mode) -> Any:
        return stoker.DataLoader(
            PerSample(20, fail_at=3), batch_size=1, on_error="skip", max_errors=1, **MODES[mode]
        )

    expected, got = _interrupted(
        make, epoch=0, stop_after=stop_after, epochs_after=0, reference=lambda: make("in-process")
    )
    _same(got, expected)
    indices = [int(batch[0]) for batch in got]
    assert indices == [i for i in range(20) if i != 3]


# -- 2. samplers without state_dict ------------------------------------------------------------


def _torch_random(n: int) -> Any:
    return torch.utils.data.RandomSampler(range(n), generator=torch.Generator().manual_seed(7))


class _Listed(torch.utils.data.Sampler[int]):
    """A user's plain, deterministic sampler: no state_dict, no generator."""

    def __init__(self, n: int):
        self.order = random.Random(3).sample(range(n), n)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


class _Unseeded(_Listed):
    """A user's sampler that draws a new order at every iter() from an unseeded RNG."""

    def __iter__(self) -> Iterator[int]:
        return iter(random.Random().sample(self.order, len(self.order)))


STATELESS: dict[str, Callable[[int], dict[str, Any]]] = {
    "torch-random-generator": lambda n: {"sampler": _torch_random(n), "batch_size": 4},
    "torch-sequential": lambda n: {
        "sampler": torch.utils.data.SequentialSampler(range(n)),
        "batch_size": 4,
    },
    "torch-batch-sampler": lambda n: {
        "batch_sampler": torch.utils.data.BatchSampler(_torch_random(n), 4, drop_last=True)
    },
    "torch-batch-over-stoker": lambda n: {
        "batch_sampler": torch.utils.data.BatchSampler(
            stoker.RandomSampler(range(n), seed=2), 3, drop_last=False
        )
    },
    "plain-list": lambda n: {"sampler": random.Random(1).sample(range(n), n), "batch_size": 5},
    "user-sampler": lambda n: {"sampler": _Listed(n), "batch_size": 4},
    "no-batching": lambda n: {"sampler": _torch_random(n), "batch_size": None},
}


@pytest.mark.parametrize("mode", MAP_MODES)
@pytest.mark.parametrize("sampler", sorted(STATELESS))
@pytest.mark.parametrize(("epoch", "stop_after"), [(0, 2), (1, 3)])
def test_a_sampler_without_state_is_replayed_exactly(
    mode: str, sampler: str, epoch: int, stop_after: int
) -> None:
    def make(mode: str = mode) -> Any:
        return stoker.DataLoader(Augmenting(23), seed=4, **STATELESS[sampler](23), **MODES[mode])

    expected, got = _interrupted(make, epoch, stop_after, reference=lambda: make("in-process"))
    _same(got, expected)


@pytest.mark.parametrize(
    "sampler",
    [
        torch.utils.data.RandomSampler(range(20)),
        torch.utils.data.SubsetRandomSampler(list(range(20))),
        torch.utils.data.WeightedRandomSampler([1.0] * 20, 20),
    ],
    ids=["random", "subset-random", "weighted-random"],
)
def test_a_torch_sampler_on_the_global_rng_is_refused_at_load(sampler: Any) -> None:
    def make() -> Any:
        return stoker.DataLoader(PerSample(20), sampler=sampler, batch_size=4, seed=0)

    original = make()
    iterator = iter(original)
    next(iterator)
    state = _json(original.state_dict())
    with pytest.raises(ValueError, match=r"has no generator.*generator=torch.Generator"):
        make().load_state_dict(state)


def test_a_sampler_that_replays_another_order_is_refused_at_iter() -> None:
    def make() -> Any:
        return stoker.DataLoader(PerSample(20), sampler=_Unseeded(20), batch_size=4, seed=0)

    original = make()
    iterator = iter(original)
    next(iterator), next(iterator)
    state = _json(original.state_dict())
    resumed = make()
    resumed.load_state_dict(state)
    with pytest.raises(ValueError, match=r"_Unseeded has no state_dict\(\).*first 2 batches"):
        iter(resumed)


def test_a_state_from_a_stateful_sampler_is_refused_by_a_replayed_one() -> None:
    original = stoker.DataLoader(PerSample(20), batch_size=4, shuffle=True, seed=0)
    iterator = iter(original)
    next(iterator)
    with pytest.raises(ValueError, match=r"records a replay|resumes itself"):
        stoker.DataLoader(PerSample(20), sampler=_Listed(20), batch_size=4).load_state_dict(
            original.state_dict()
        )


# -- 3. in_order=False --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fresh", "threads"])
def test_a_mid_epoch_state_of_an_out_of_order_loader_is_refused(mode: str) -> None:
    loader = stoker.DataLoader(PerSample(40), batch_size=4, seed=0, in_order=False, **MODES[mode])
    iterator = iter(loader)
    next(iterator), next(iterator)
    state = _json(loader.state_dict())
    assert state["in_order"] is False
    del iterator
    ordered = stoker.DataLoader(PerSample(40), batch_size=4, seed=0, **MODES[mode])
    with pytest.raises(ValueError, match=r"in_order=False and num_workers=2.*not as a prefix"):
        ordered.load_state_dict(state)


def test_an_out_of_order_state_at_an_epoch_end_resumes() -> None:
    loader = stoker.DataLoader(
        Augmenting(40), batch_size=4, shuffle=True, seed=0, in_order=False, num_workers=2
    )
    list(loader)
    state = _json(loader.state_dict())
    expected = stoker.DataLoader(Augmenting(40), batch_size=4, shuffle=True, seed=0)
    list(expected)
    resumed = stoker.DataLoader(Augmenting(40), batch_size=4, shuffle=True, seed=0)
    resumed.load_state_dict(state)
    _same(list(resumed), list(expected))


# -- 4. seeds drawn from generator= each epoch ---------------------------------------------------


@pytest.mark.parametrize("mode", MAP_MODES)
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(("epoch", "stop_after"), [(0, 1), (1, 4), (0, 10)])
def test_generator_seeded_epochs_after_the_resumed_one_match(
    mode: str, shuffle: bool, epoch: int, stop_after: int
) -> None:
    def make(mode: str = mode) -> Any:
        generator = torch.Generator().manual_seed(5)
        return stoker.DataLoader(
            Augmenting(40), batch_size=4, shuffle=shuffle, generator=generator, **MODES[mode]
        )

    expected, got = _interrupted(
        make, epoch, stop_after, epochs_after=3, reference=lambda: make("in-process")
    )
    _same(got, expected)


# -- 5. an IterableDataset and num_workers -------------------------------------------------------


@pytest.mark.parametrize("mode", STREAM_MODES)
@pytest.mark.parametrize("stop_after", [1, 5])
def test_a_stream_resumes_exactly_with_the_same_num_workers(mode: str, stop_after: int) -> None:
    def make() -> Any:
        return stoker.DataLoader(Stream(37), batch_size=4, **MODES[mode])

    expected, got = _interrupted(make, epoch=1, stop_after=stop_after)
    _same(got, expected)


@pytest.mark.parametrize(("saved", "loaded"), [(2, 0), (0, 2), (2, 3)])
def test_a_stream_state_is_refused_under_another_num_workers(saved: int, loaded: int) -> None:
    original = stoker.DataLoader(Stream(37), batch_size=4, num_workers=saved)
    iterator = iter(original)
    next(iterator), next(iterator)
    state = _json(original.state_dict())
    del iterator
    other = stoker.DataLoader(Stream(37), batch_size=4, num_workers=loaded)
    with pytest.raises(ValueError, match=f"num_workers={saved}.*Resume with num_workers={saved}"):
        other.load_state_dict(state)


@pytest.mark.parametrize(("saved", "loaded"), [(2, 0), (0, 3)])
def test_a_stream_state_at_an_epoch_end_resumes_under_any_num_workers(
    saved: int, loaded: int
) -> None:
    original = stoker.DataLoader(Stream(37), batch_size=4, num_workers=saved)
    list(original)
    state = _json(original.state_dict())
    resumed = stoker.DataLoader(Stream(37), batch_size=4, num_workers=loaded)
    resumed.load_state_dict(state)
    reference = stoker.DataLoader(Stream(37), batch_size=4, num_workers=loaded)
    assert as_comparable(list(resumed), "iterable") == as_comparable(list(reference), "iterable")
    assert resumed.state_dict()["epoch"] == 1


# -- 6. a state at the end of an epoch, a stream state past the end ------------------------------


@pytest.mark.parametrize("mode", MAP_MODES)
@pytest.mark.parametrize("how", ["seed", "generator", "torch-sampler"])
def test_a_state_at_an_epoch_end_goes_on_with_the_next_epoch(mode: str, how: str) -> None:
    def make(mode: str = mode) -> Any:
        options: dict[str, Any] = {"seed": 2, "shuffle": True}
        if how == "generator":
            options = {"generator": torch.Generator().manual_seed(2), "shuffle": True}
        elif how == "torch-sampler":
            options = {"seed": 2, "sampler": _torch_random(30)}
        return stoker.DataLoader(Augmenting(30), batch_size=4, **options, **MODES[mode])

    reference = make("in-process")
    epochs = [list(reference) for _ in range(4)]
    expected, got = _interrupted(
        make, epoch=1, stop_after=0, epochs_after=2, reference=lambda: make("in-process")
    )
    _same(got, expected)  # a state taken right after iter(), before any batch
    original = make()
    list(original), list(original)
    state = _json(original.state_dict())
    assert state["epoch_done"] is True and state["epoch"] == 1
    resumed = make()
    resumed.load_state_dict(state)
    next_epoch = list(resumed)
    assert len(next_epoch) == 8
    _same(next_epoch + list(resumed), epochs[2] + epochs[3])


@pytest.mark.parametrize("mode", STREAM_MODES)
def test_a_stream_state_at_an_epoch_end_goes_on_with_the_next_epoch(mode: str) -> None:
    original = stoker.DataLoader(Stream(30), batch_size=4, **MODES[mode])
    list(original)
    state = _json(original.state_dict())
    resumed = stoker.DataLoader(Stream(30), batch_size=4, **MODES[mode])
    resumed.load_state_dict(state)
    assert as_comparable(list(resumed), "iterable") == as_comparable(
        list(stoker.DataLoader(Stream(30), batch_size=4)), "iterable"
    )


@pytest.mark.parametrize("mode", STREAM_MODES)
def test_a_stream_state_past_the_end_of_the_stream_says_so(mode: str) -> None:
    original = stoker.DataLoader(Stream(30), batch_size=4, **MODES[mode])
    iterator = iter(original)
    next(iterator)
    state = _json(original.state_dict())
    del iterator
    state["batches_yielded"] = 50
    resumed = stoker.DataLoader(Stream(30), batch_size=4, **MODES[mode])
    resumed.load_state_dict(state)
    iterator = iter(resumed)
    with pytest.raises(ValueError, match=r"50 batches of epoch 0 were consumed.*ended after 8"):
        next(iterator)


# -- 7. state_dict() between load_state_dict() and the first batch -------------------------------


@pytest.mark.parametrize("kind", ["map", "stream"])
def test_state_dict_after_load_is_the_loaded_position(kind: str) -> None:
    def make() -> Any:
        if kind == "stream":
            return stoker.DataLoader(Stream(30), batch_size=4, num_workers=2)
        return stoker.DataLoader(Augmenting(30), batch_size=4, shuffle=True, seed=1)

    original = make()
    iterator = iter(original)
    for _ in range(3):
        next(iterator)
    state = _json(original.state_dict())
    rest = list(iterator)
    del iterator
    resumed = make()
    resumed.load_state_dict(state)
    assert _json(resumed.state_dict()) == state  # load, then save: the position stays
    again = make()
    again.load_state_dict(_json(resumed.state_dict()))
    probe = iter(again)  # a framework's probe that is never iterated
    assert again.state_dict()["batches_yielded"] == 3  # iter() alone consumes nothing
    del probe
    _same(list(again), rest)  # the resume still stands for the next iter()


# -- 8. a stream's worker killed mid-epoch -------------------------------------------------------


class _Reshuffled(Stream):
    """Each pass over a shard comes in a new order: replaying it gives other batches."""

    def __iter__(self) -> Any:
        samples = list(super().__iter__())
        return iter(random.Random().sample(samples, len(samples)))


def _kill_after(loader: Any, position: int) -> list[Any]:
    batches = []
    for at, batch in enumerate(iterator := iter(loader)):
        batches.append(batch)
        if at == position:
            os.kill(worker_pids(iterator)[0], signal.SIGKILL)
    return batches


@pytest.mark.parametrize("mode", ["fresh", "persistent"])
def test_a_killed_stream_worker_is_replayed_exactly_once(mode: str) -> None:
    loader = stoker.DataLoader(Stream(60), batch_size=4, **MODES[mode])
    batches = _kill_after(loader, 4)
    loader.close()
    expected = list(stoker.DataLoader(Stream(60), batch_size=4))
    assert as_comparable(batches, "iterable") == as_comparable(expected, "iterable")


@pytest.mark.parametrize("mode", ["fresh", "persistent"])
def test_a_killed_worker_of_a_stream_that_is_not_deterministic_raises(mode: str) -> None:
    loader = stoker.DataLoader(_Reshuffled(60), batch_size=4, **MODES[mode])
    with pytest.raises(stoker.WorkerDiedError, match=r"_Reshuffled is not deterministic"):
        _kill_after(loader, 4)
    loader.close()


@pytest.mark.parametrize("mode", STREAM_MODES)
def test_a_resumed_stream_that_replays_other_batches_is_refused(mode: str) -> None:
    original = stoker.DataLoader(_Reshuffled(40), batch_size=4, **MODES[mode])
    iterator = iter(original)
    next(iterator), next(iterator), next(iterator)
    state = _json(original.state_dict())
    del iterator
    original.close()
    resumed = stoker.DataLoader(_Reshuffled(40), batch_size=4, **MODES[mode])
    resumed.load_state_dict(state)
    with pytest.raises(ValueError, match=r"replaying the 3 batches.*_Reshuffled.*other batches"):
        list(resumed)
    resumed.close()


# -- state versions -----------------------------------------------------------------------------

_V1_KEYS = ("epoch", "batches_yielded", "sample_seed", "sampler", "fresh")


def _as_version_1(state: dict[str, Any]) -> dict[str, Any]:
    """The state as stoker's version 1 wrote it: the same counters, none of version 2's fields."""
    return {"version": 1, **{key: state[key] for key in _V1_KEYS}}


def test_a_version_1_state_of_a_stoker_sampler_still_resumes() -> None:
    def make() -> Any:
        return stoker.DataLoader(Augmenting(30), batch_size=4, shuffle=True, seed=3)

    original = make()
    iterator = iter(original)
    head = [next(iterator) for _ in range(3)]
    state = _as_version_1(_json(original.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    _same(head + list(resumed), list(make()))


@pytest.mark.parametrize("kind", ["stream", "stateless-sampler"])
def test_a_version_1_state_that_cannot_be_checked_is_refused(kind: str) -> None:
    def make() -> Any:
        if kind == "stream":
            return stoker.DataLoader(Stream(30), batch_size=4)
        return stoker.DataLoader(PerSample(30), sampler=_Listed(30), batch_size=4)

    original = make()
    iterator = iter(original)
    next(iterator), next(iterator)
    state = _as_version_1(_json(original.state_dict()))
    with pytest.raises(ValueError, match=r"version 1"):
        make().load_state_dict(state)


def test_an_unknown_state_version_is_refused() -> None:
    state = stoker.DataLoader(PerSample(8)).state_dict()
    with pytest.raises(ValueError, match=r"version 3; this stoker writes version 2"):
        stoker.DataLoader(PerSample(8)).load_state_dict({**state, "version": 3})
