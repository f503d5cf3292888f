"""What Lightning and Accelerate rely on, without them: torch's sampler classes, torch's sampler
inside a stoker loader. The real framework runs are in tests/frameworks/."""

from __future__ import annotations

import pytest
import torch.utils.data

import stoker


def test_stoker_samplers_are_torchs_for_frameworks_that_check() -> None:
    data = list(range(10))
    assert isinstance(stoker.RandomSampler(data, seed=0), torch.utils.data.RandomSampler)
    assert isinstance(stoker.SequentialSampler(data), torch.utils.data.SequentialSampler)
    shard = stoker.DistributedSampler(data, num_replicas=2, rank=1)
    assert isinstance(shard, torch.utils.data.DistributedSampler)
    loader = stoker.DataLoader(data, batch_size=2, shuffle=True, seed=0)
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)


def _loader(epoch: int, rank: int = 1, world: int = 2, seed: int = 4) -> stoker.DataLoader:
    """A stoker loader over torch's DistributedSampler, as Lightning's DDP re-creates it."""
    shard = torch.utils.data.DistributedSampler(range(20), num_replicas=world, rank=rank, seed=seed)
    shard.set_epoch(epoch)
    return stoker.DataLoader(list(range(20)), batch_size=3, sampler=shard, seed=1)


def _state_after(loader: stoker.DataLoader, batches: int) -> dict[str, object]:
    it = iter(loader)
    for _ in range(batches):
        next(it)
    return loader.state_dict()


def test_resume_over_torchs_distributed_sampler_replays_its_epoch() -> None:
    """Lightning loads the loader's state before it calls set_epoch on the new sampler: the
    state must carry torch's sampler's epoch, or epoch 3 resumes in epoch 0's order."""
    whole = [b.tolist() for b in _loader(3)]
    first = _loader(3)
    it = iter(first)
    done = [next(it).tolist(), next(it).tolist()]
    state = first.state_dict()
    resumed = _loader(0)  # a new process: the sampler starts at epoch 0
    resumed.load_state_dict(state)
    for k, (a, b) in enumerate(zip(done + [b.tolist() for b in resumed], whole, strict=True)):
        assert a == b, f"batch {k} differs after the resume"


def test_every_rank_resumes_its_own_shard_from_rank_zeros_state() -> None:
    """Lightning checkpoints rank 0's loader state and loads it on every rank: rank 1 goes on
    with its own shard (CI saw it refused, as if the order had changed)."""
    state = _state_after(_loader(2, rank=0), 2)
    for rank in range(2):
        whole = [b.tolist() for b in _loader(2, rank=rank)]
        resumed = _loader(0, rank=rank)
        resumed.load_state_dict(state)
        rest = iter(resumed)
        third = next(rest).tolist()
        again = _loader(0, rank=rank)  # and this rank's own state, saved after the resume
        again.load_state_dict(resumed.state_dict())
        rest_again = [b.tolist() for b in again]
        for k, (a, b) in enumerate(zip([third, *rest_again], whole[2:], strict=True)):
            assert a == b, f"rank {rank}: batch {k + 2} differs after the resume"


def test_another_ranks_state_with_another_order_is_still_refused() -> None:
    state = _state_after(_loader(2, rank=0, seed=4), 2)
    resumed = _loader(0, rank=1, seed=5)  # not the sampler the saved run had
    resumed.load_state_dict(state)
    with pytest.raises(ValueError, match=r"cannot resume epoch 0 exactly.*other indices"):
        iter(resumed)


def test_torchs_sampler_state_from_another_world_size_is_refused() -> None:
    state = _state_after(_loader(2, rank=0, world=2), 2)
    resumed = _loader(0, rank=1, world=4)
    resumed.load_state_dict(state)
    with pytest.raises(
        ValueError, match=r"saved on 2 ranks.*deals over 4.*stoker\.DistributedSampler"
    ):
        iter(resumed)
