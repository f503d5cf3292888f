"""Review of the re-plan at the first ``next()``: an epoch set after ``iter()`` is the epoch run.

Each check compares a loader whose epoch (or sampler epoch) is set between ``iter()`` and the
first ``next()`` with the in-process loader that had it set before ``iter()``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.utils.data

import stoker
from tests.contracts.modes import MODES, Augmenting, as_comparable, make_loader, mode_params

NOT_SPAWN = mode_params(["in-process", "fresh", "persistent", "threads"])


def _sequential() -> torch.utils.data.SequentialSampler:
    return torch.utils.data.SequentialSampler(range(40))


def _seeded_random() -> torch.utils.data.RandomSampler:
    return torch.utils.data.RandomSampler(range(40), generator=torch.Generator().manual_seed(7))


def _two_epochs(loader: Any, first: int, after_iter: bool, kind: str = "augmenting") -> Any:
    if not after_iter:
        loader.set_epoch(first)
    iterator = iter(loader)
    if after_iter:
        loader.set_epoch(first)
    return as_comparable(list(iterator), kind), as_comparable(list(loader), kind)


@pytest.mark.parametrize("mode", NOT_SPAWN)
def test_loader_set_epoch_to_the_following_epoch_after_iter_with_a_plain_sampler(
    mode: str,
) -> None:
    """iter() plans epoch 0 and the loader's next epoch becomes 1; loader.set_epoch(1) then
    must still make this iterator epoch 1 (it was ignored: no sampler epoch moved)."""
    expected = _two_epochs(make_loader("in-process", "augmenting", sampler=_sequential()), 1, False)
    loader = make_loader(mode, "augmenting", sampler=_sequential())
    assert _two_epochs(loader, 1, True) == expected


class _SeededStream(stoker.IterableDataset[Any]):
    """Each sample a draw from torch's RNG, which stoker seeds in each worker from the epoch."""

    def __len__(self) -> int:
        return 16

    def __iter__(self) -> Any:
        info = stoker.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, 16, step):
            yield i, torch.rand(())


@pytest.mark.parametrize("mode", mode_params(["fresh", "persistent"]))
def test_a_stream_loader_set_to_the_following_epoch_after_iter(mode: str) -> None:
    def loader() -> Any:
        return stoker.DataLoader(_SeededStream(), batch_size=4, seed=5, **MODES[mode])

    def draws(batches: list[Any]) -> list[tuple[int, float]]:
        return sorted((int(i), float(v)) for b in batches for i, v in zip(*b, strict=True))

    before = loader()
    before.set_epoch(1)
    expected = draws(list(before))
    after = loader()
    iterator = iter(after)
    after.set_epoch(1)
    assert draws(list(iterator)) == expected


@pytest.mark.parametrize("factory", ["torch-random-sampler", "loader-generator"])
@pytest.mark.parametrize("mode", NOT_SPAWN)
def test_a_re_plan_draws_a_generator_sampler_s_order_once(mode: str, factory: str) -> None:
    """The planned pass drew its order from the generator at iter(); the re-plan must draw
    the same one, not the generator's next, and the epochs after follow as without it."""

    def loader(mode: str) -> Any:
        if factory == "torch-random-sampler":
            return make_loader(mode, "augmenting", sampler=_seeded_random())
        return stoker.DataLoader(
            Augmenting(40),
            batch_size=8,
            shuffle=True,
            generator=torch.Generator().manual_seed(3),
            **MODES[mode],
        )

    assert _two_epochs(loader(mode), 3, True) == _two_epochs(loader("in-process"), 3, False)


@pytest.mark.parametrize("mode", NOT_SPAWN)
def test_loader_set_epoch_then_its_own_sampler_set_epoch_after_iter(mode: str) -> None:
    """Before iter() the loader's epoch wins over its own sampler's (iter() sets the sampler
    to it); after iter() the order was the sampler's epoch and sample_rng the loader's."""
    reference = make_loader("in-process", "augmenting")
    reference.set_epoch(3)
    reference.sampler.set_epoch(6)
    expected = as_comparable(list(reference), "augmenting")
    loader = make_loader(mode, "augmenting")
    iterator = iter(loader)
    loader.set_epoch(3)
    loader.sampler.set_epoch(6)
    assert as_comparable(list(iterator), "augmenting") == expected


@pytest.mark.parametrize("mode", NOT_SPAWN)
def test_an_iterator_of_a_closed_loader_stays_closed_when_the_epoch_moves(mode: str) -> None:
    """loader.close() ends its iterators; a set_epoch after it re-planned a new pass (new
    workers after close) instead of raising LoaderClosedError."""
    loader = make_loader(mode, "augmenting")
    iterator = iter(loader)
    loader.close()
    loader.set_epoch(2)
    with pytest.raises(stoker.LoaderClosedError):
        next(iterator)


@pytest.mark.parametrize("setter", ["loader", "sampler"])
@pytest.mark.parametrize("mode", NOT_SPAWN)
def test_a_state_taken_after_an_epoch_set_after_iter_resumes_that_epoch(
    mode: str, setter: str
) -> None:
    """iter(), set_epoch(3), state_dict() before next(): the iterator runs epoch 3, so the
    state must be of epoch 3 (it was of the epoch planned at iter(), epoch 0)."""
    three, four = _two_epochs(make_loader("in-process", "augmenting"), 3, False)
    loader = make_loader(mode, "augmenting")
    iterator = iter(loader)
    (loader if setter == "loader" else loader.sampler).set_epoch(3)
    state = loader.state_dict()
    resumed = make_loader(mode, "augmenting")
    resumed.load_state_dict(state)
    assert as_comparable(list(resumed), "augmenting") == three
    assert as_comparable(list(resumed), "augmenting") == four
    assert as_comparable(list(iterator), "augmenting") == three, "the state moved the iterator"


@pytest.mark.parametrize("mode", NOT_SPAWN)
def test_a_state_taken_before_the_epoch_is_set_after_iter_leaves_the_re_plan(mode: str) -> None:
    """iter(), state_dict(), set_epoch(3), next(): the state_dict() does not use up the check."""
    three, _ = _two_epochs(make_loader("in-process", "augmenting"), 3, False)
    loader = make_loader(mode, "augmenting")
    iterator = iter(loader)
    loader.state_dict()
    loader.set_epoch(3)
    assert as_comparable(list(iterator), "augmenting") == three


def test_a_state_of_torchs_distributed_sampler_set_after_iter_resumes_on_every_rank() -> None:
    """Lightning's order on rank 0: iter(), sampler.set_epoch(2), checkpoint before the first
    batch; loaded on each of 3 ranks, each deals its shard of epoch 2, as torch's loader."""

    def shard(rank: int) -> torch.utils.data.DistributedSampler[int]:
        return torch.utils.data.DistributedSampler(
            range(31), num_replicas=3, rank=rank, seed=2, drop_last=True
        )

    saver = make_loader("in-process", "per-sample", n=31, batch_size=3, sampler=shard(0))
    iterator = iter(saver)
    saver.sampler.set_epoch(2)
    state = saver.state_dict()
    del iterator
    for rank in range(3):
        torch_sampler = shard(rank)
        torch_loader = torch.utils.data.DataLoader(
            list(range(31)), batch_size=3, sampler=torch_sampler
        )
        torch_iterator = iter(torch_loader)
        torch_sampler.set_epoch(2)
        expected = [int(i) for batch in torch_iterator for i in batch]
        loader = make_loader("in-process", "per-sample", n=31, batch_size=3, sampler=shard(rank))
        loader.load_state_dict(state)
        assert [int(i) for batch in loader for i in batch[0]] == expected, f"rank {rank}"


@pytest.mark.parametrize("mode", NOT_SPAWN)
def test_a_state_after_the_last_batch_then_loader_set_epoch_with_a_plain_sampler(
    mode: str,
) -> None:
    """Resumed from a state after epoch 0's last batch, the loader's next epoch is already 1:
    loader.set_epoch(1) after iter() must still run epoch 1 in full, not the empty rest."""

    def loader(mode: str) -> Any:
        return make_loader(mode, "augmenting", sampler=_sequential())

    reference = loader("in-process")
    reference.set_epoch(1)
    one = as_comparable(list(reference), "augmenting")
    saver = loader(mode)
    iterator = iter(saver)
    for _ in range(len(saver)):
        next(iterator)
    state = saver.state_dict()
    resumed = loader(mode)
    resumed.load_state_dict(state)
    iterator = iter(resumed)
    resumed.set_epoch(1)
    assert as_comparable(list(iterator), "augmenting") == one
