"""Lightning's DDP on 2 CPU ranks (torchrun, and ddp_spawn; gloo): stoker's loader is sharded as
torch's is.

Each job runs several ``Trainer.fit`` cases in one process group
(tests/frameworks/_lightning_rank.py) and records, per rank and epoch, the dataset indices
``training_step`` saw. torch's ``DataLoader`` in the same setup is the reference: Lightning
injects its ``DistributedSampler`` into both, and stoker's loader must come back with the
very same shards, epoch after epoch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.distributed.conftest import REPO, TEST_TIMEOUT_S, start, stop, torchrun

pytest.importorskip("lightning")

# This checkout's stoker, whichever one the environment has installed
_PATH = {"PYTHONPATH": f"{REPO / 'src'}:{REPO}"}

_RANK = "tests/frameworks/_lightning_rank.py"
_SPAWN = "tests/frameworks/_lightning_spawn.py"
N = 22  # 2 ranks x 11: 3 batches of 4, 4, 3 a rank


def _fit(out: Path, *cases: str, n: int = N) -> dict[str, dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    done = torchrun(_RANK, str(out), *cases, env={"STOKER_TEST_N": str(n), **_PATH})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    names = [case.split(":")[0] for case in cases]
    return {name: json.loads((out / f"{name}.json").read_text()) for name in names}


def _epochs(result: dict[str, Any]) -> list[list[list[int]]]:
    """[epoch][rank] -> indices, as training_step saw them."""
    ranks = [result["ranks"][str(r)] for r in range(2)]
    return [[[i for batch in rank[str(e)] for i in batch] for rank in ranks] for e in range(2)]


def _batches(seen: dict[str, list[list[int]]]) -> list[tuple[int, list[int]]]:
    """One rank's (epoch, indices) per step."""
    return [(int(e), batch) for e in sorted(seen, key=int) for batch in seen[e]]


def _assert_sharded_once(epochs: list[list[list[int]]], n: int) -> None:
    for e, (zero, one) in enumerate(epochs):
        # torch's DistributedSampler pads the epoch to a multiple of the world size with its
        # first items: n + (-n % 2) indices in all, each sample at least once.
        assert len(zero) == len(one) == -(-n // 2), f"epoch {e}: unequal shares"
        counts = Counter(zero + one)
        assert set(counts) == set(range(n)), f"epoch {e}: samples missing"
        assert sum(counts.values()) - n == -n % 2, f"epoch {e}: repeats beyond padding"
        if n % 2 == 0:
            assert not set(zero) & set(one), f"epoch {e}: both ranks saw {set(zero) & set(one)}"
    assert epochs[0] != epochs[1], "epochs 0 and 1 came in the same order"


@pytest.mark.slow  # about 50 s: four DDP fits
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_lightning_ddp_shards_stoker_loader_as_torch_loader(tmp_path: Path) -> None:
    """shuffle=True, Lightning's injected sampler; and a user-passed DistributedSampler."""
    got = _fit(tmp_path, "torch:torch:auto:0", "stoker:stoker:auto:0",
               "torch_dist:torch:dist:0", "stoker_dist:stoker:dist:0")  # fmt: skip
    for name in got:
        _assert_sharded_once(_epochs(got[name]), N)
    # Re-instantiated with Lightning's sampler, still a stoker loader on stoker's engine
    assert got["stoker"]["loader"] == "stoker.loader.dataloader.DataLoader"
    # ... with stoker's own arguments: seed, on_error, max_errors, worker_mode, batch_transform
    assert got["stoker"]["stoker"] == [5, "skip", 3, "thread", "unchanged"]
    assert got["stoker"]["batch_sampler_sampler"] == got["torch"]["batch_sampler_sampler"]
    for e, (torch_epoch, stoker_epoch) in enumerate(
        zip(_epochs(got["torch"]), _epochs(got["stoker"]), strict=True)
    ):
        assert stoker_epoch == torch_epoch, f"epoch {e}: stoker's shards differ from torch's"
    # A user's DistributedSampler is kept as it is, not wrapped into a second sharding
    assert got["stoker_dist"]["sampler"] == "stoker.samplers.distributed.DistributedSampler"
    for e, (torch_epoch, stoker_epoch) in enumerate(
        zip(_epochs(got["torch_dist"]), _epochs(got["stoker_dist"]), strict=True)
    ):
        assert stoker_epoch == torch_epoch, f"epoch {e}: stoker's DistributedSampler differs"


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_lightning_ddp_with_worker_processes_and_padding(tmp_path: Path) -> None:
    """num_workers=2 worker processes on each rank, over a dataset the ranks split unevenly."""
    n = 21
    got = _fit(tmp_path, "torch:torch:auto:2", "stoker:stoker:auto:2",
               "torch_dist:torch:dist:2", "stoker_dist:stoker:dist:2", n=n)  # fmt: skip
    for name in got:
        _assert_sharded_once(_epochs(got[name]), n)
    for reference, mine in (("torch", "stoker"), ("torch_dist", "stoker_dist")):
        for e, (torch_epoch, stoker_epoch) in enumerate(
            zip(_epochs(got[reference]), _epochs(got[mine]), strict=True)
        ):
            assert stoker_epoch == torch_epoch, f"{mine}, epoch {e}: differs from torch's"


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_lightning_ddp_resumes_mid_epoch_from_its_checkpoint(tmp_path: Path) -> None:
    """Lightning saves the loader's state_dict in its checkpoint (rank 0's) and loads it on every
    rank: resumed mid-epoch 0, mid-epoch 1 and at epoch 0's last step, each rank goes on with
    its exact next batch."""
    # 3 steps an epoch: step 3 is epoch 0's last (its checkpoint resumes with epoch 1 in full)
    got = _fit(tmp_path, "auto_2:stoker:auto:0:2", "auto_4:stoker:auto:0:4",
               "dist_4:stoker:dist:0:4", "auto_3:stoker:auto:2:3")  # fmt: skip
    for name, result in got.items():
        step = int(name.split("_")[1])
        for rank in map(str, range(2)):
            whole = _batches(result["ranks"][rank])
            resumed = _batches(result["resumed"][rank])
            for k, (a, b) in enumerate(zip(resumed, whole[step:], strict=True)):
                assert a == b, f"{name}, rank {rank}: batch {step + k} differs after the resume"


def _spawn_fit(out: Path, kind: str, workers: int) -> dict[str, Any]:
    """One ``strategy="ddp_spawn"`` fit (_lightning_spawn.py): each rank's facts."""
    out.mkdir(parents=True)
    command = [sys.executable, _SPAWN, str(out), kind, str(workers)]
    job = start(command, env=_PATH)
    try:
        stdout, stderr = job.communicate(timeout=TEST_TIMEOUT_S / 3)
    except subprocess.TimeoutExpired:
        stop(job)
        pytest.fail(f"ddp_spawn fit of {kind} still running after {TEST_TIMEOUT_S / 3:.0f} s")
    left = stop(job)
    assert not left, f"processes of the fit alive after it exited: {left}"
    assert job.returncode == 0, stdout[-4000:] + stderr[-8000:]
    return {str(r): json.loads((out / f"rank{r}.json").read_text()) for r in range(2)}


@pytest.mark.slow  # about 45 s: two fits, each spawning 2 ranks that import Lightning
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_lightning_ddp_spawn_shards_stoker_loader_as_torch_loader(tmp_path: Path) -> None:
    """Lightning pickles the module into spawned ranks and re-creates the loader there with
    its DistributedSampler: each rank's shard is torch's, with stoker's worker processes."""
    torch_ranks = _spawn_fit(tmp_path / "torch", "torch", 0)
    stoker_ranks = _spawn_fit(tmp_path / "stoker", "stoker", 2)
    for rank in stoker_ranks.values():
        assert rank["loader"] == "stoker.loader.dataloader.DataLoader"
        assert rank["sampler"] == "torch.utils.data.distributed.DistributedSampler"
    for ranks in (torch_ranks, stoker_ranks):
        result = {"ranks": {r: facts["seen"] for r, facts in ranks.items()}}
        _assert_sharded_once(_epochs(result), N)
    for r in map(str, range(2)):
        assert stoker_ranks[r]["seen"] == torch_ranks[r]["seen"], f"rank {r} differs from torch's"
