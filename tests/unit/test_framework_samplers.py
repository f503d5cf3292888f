"""What Lightning and Accelerate rely on, without them: torch's sampler classes, torch's sampler
inside a stoker loader. The real framework runs are in tests/frameworks/."""

from __future__ import annotations

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


def _loader(epoch: int) -> stoker.DataLoader:
    """A stoker loader over torch's DistributedSampler, as Lightning's DDP re-creates it."""
    shard = torch.utils.data.DistributedSampler(range(20), num_replicas=2, rank=1, seed=4)
    shard.set_epoch(epoch)
    return stoker.DataLoader(list(range(20)), batch_size=3, sampler=shard, seed=1)


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
