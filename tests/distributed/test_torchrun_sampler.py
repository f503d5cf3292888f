"""Real torchrun jobs: stoker's DistributedSampler shards exactly once, and resumes elastically."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch.utils.data

from tests.distributed.conftest import TEST_TIMEOUT_S, torchrun

N = 48  # divisible by 2 and 3 ranks and by 2*4 and 3*4 samples a step: no padding


def _job(out: Path, nproc: int, epochs: int, *options: str) -> dict[int, list[int]]:
    out.mkdir(parents=True, exist_ok=True)
    done = torchrun("tests/distributed/_shard_rank.py", str(out), str(N), str(epochs), *options,
                    nproc=nproc)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return {int(k): v for k, v in json.loads((out / "seen.json").read_text()).items()}


def _torch_epoch(world: int, epoch: int, per_rank: int = N) -> list[int]:
    """The first ``per_rank`` indices of each rank in ``epoch``, as torch's sampler deals them."""
    shards = []
    for rank in range(world):
        sampler = torch.utils.data.DistributedSampler(range(N), world, rank, seed=11)
        sampler.set_epoch(epoch)
        shards.append(list(sampler)[:per_rank])
    return [i for shard in shards for i in shard]  # gathered: rank 0's, then rank 1's, ...


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_two_three_two_ranks_see_each_sample_once_per_epoch(tmp_path: Path) -> None:
    """Epoch 0 on 2 ranks; epoch 1: 3 steps on 2 ranks, the rest on 3; epoch 2: 1 step on 3
    ranks, the rest on 2. Each epoch sees every sample once, sharded as torch shards."""
    a = _job(tmp_path / "a", 2, 2, "--stop", "1:3")
    assert Counter(a[0]) == Counter(range(N))  # each sample once, not once per rank
    assert a[0] == _torch_epoch(2, 0)
    b = _job(tmp_path / "b", 3, 3, "--resume", str(tmp_path / "a" / "state.json"),
             "--stop", "2:1")  # fmt: skip
    assert Counter(a[1] + b[1]) == Counter(range(N)), "resumed 2 -> 3 ranks in epoch 1"
    assert b[2] == _torch_epoch(3, 2, per_rank=4)  # epoch 2 is 3 ranks' own shuffle
    c = _job(tmp_path / "c", 2, 3, "--resume", str(tmp_path / "b" / "state.json"))
    assert Counter(b[2] + c[2]) == Counter(range(N)), "resumed 3 -> 2 ranks in epoch 2"
