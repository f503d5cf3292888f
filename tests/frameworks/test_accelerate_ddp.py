"""Accelerate on 2 CPU ranks (torchrun, gloo): prepare, save_state/load_state, resume.

tests/frameworks/_accelerate_rank.py runs the training loop. Two ways to use a stoker loader:

* ``accelerator.prepare(..., loader)``: Accelerate rebuilds every ``torch.utils.data.DataLoader``
  (stoker's included) as its own ``DataLoaderShard`` over a *torch* loader; the shards and a
  ``skip_first_batches`` resume then equal those of a torch loader prepared the same way — and
  stoker's per-loader features (``batch_transform``, ``sample_rng`` seeding, workers) are
  gone, as docs/getting-started.md says.
* the recommended way: not prepared, sharded by ``stoker.DistributedSampler`` and registered
  with ``accelerator.register_for_checkpointing``: stoker's engine, seeding and exact resume.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.distributed.conftest import REPO, TEST_TIMEOUT_S, torchrun

pytest.importorskip("accelerate")

# This checkout's stoker, whichever one the environment has installed
_PATH = {"PYTHONPATH": f"{REPO / 'src'}:{REPO}"}

_RANK = "tests/frameworks/_accelerate_rank.py"
N, OFFSET = 24, 1000


def _job(out: Path, mode: str, *options: str) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    done = torchrun(_RANK, str(out), mode, *options, env=_PATH)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    result: dict[str, Any] = json.loads((out / "seen.json").read_text())
    return result


def _batches(result: dict[str, Any], rank: int) -> list[tuple[int, list[int], list[int]]]:
    return [(e, i, x) for e, i, x in result["ranks"][str(rank)]]


def _assert_each_sample_once_per_epoch(result: dict[str, Any], offset: int) -> None:
    for epoch in range(2):
        shares = [
            [i - offset for e, batch, _ in _batches(result, r) if e == epoch for i in batch]
            for r in range(2)
        ]
        assert len(shares[0]) == len(shares[1]) == N // 2, f"epoch {epoch}: unequal shares"
        assert Counter(shares[0] + shares[1]) == Counter(range(N)), f"epoch {epoch}: not once"
    orders = [[b for e, b, _ in _batches(result, 0) if e == epoch] for epoch in range(2)]
    assert orders[0] != orders[1], "epochs 0 and 1 came in the same order"


def _resumed(first: dict[str, Any], second: dict[str, Any], rank: int) -> list[Any]:
    return _batches(first, rank) + _batches(second, rank)


@pytest.mark.slow  # about 2 minutes: four jobs
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_prepare_shards_and_resumes_a_stoker_loader_as_a_torch_one(tmp_path: Path) -> None:
    torch_run = _job(tmp_path / "torch", "prepare-torch")
    whole = _job(tmp_path / "whole", "prepare-stoker")
    _assert_each_sample_once_per_epoch(whole, offset=0)
    # What prepare returns: Accelerate's DataLoaderShard over a torch DataLoader, which
    # reports torch's class; stoker's batch_transform is not run there.
    assert whole["types"]["prepared"] == "accelerate.data_loader.DataLoaderShard"
    assert whole["types"]["base"] == "DataLoader"
    assert whole["types"]["class"] == "torch.utils.data.dataloader.DataLoader"
    for rank in range(2):
        mine = [(e, i) for e, i, _ in _batches(whole, rank)]
        torch_mine = [(e, i) for e, i, _ in _batches(torch_run, rank)]
        for k, (a, b) in enumerate(zip(mine, torch_mine, strict=True)):
            assert a == b, f"rank {rank}, batch {k}: prepared stoker loader differs from torch's"
    # Stopped after 1 step of epoch 0, resumed in new processes with skip_first_batches
    stopped = _job(tmp_path / "a", "prepare-stoker", "--stop", "1")
    resumed = _job(tmp_path / "b", "prepare-stoker", "--resume", str(tmp_path / "a" / "state"),
                   "--skip", "1")  # fmt: skip
    for rank in range(2):
        indices = [(e, i) for e, i, _ in _resumed(stopped, resumed, rank)]
        expected = [(e, i) for e, i, _ in _batches(whole, rank)]
        for k, (a, b) in enumerate(zip(indices, expected, strict=True)):
            assert a == b, f"rank {rank}, batch {k}: resumed run differs from the whole run"


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_unprepared_stoker_loader_resumes_exactly_through_save_state(tmp_path: Path) -> None:
    whole = _job(tmp_path / "whole", "native")
    _assert_each_sample_once_per_epoch(whole, offset=OFFSET)  # batch_transform ran
    stopped = _job(tmp_path / "a", "native", "--stop", "2")
    resumed = _job(tmp_path / "b", "native", "--resume", str(tmp_path / "a" / "state"))
    for rank in range(2):
        # Indices, batch_transform and sample_rng noise: the same batches, bit for bit
        for k, (a, b) in enumerate(
            zip(_resumed(stopped, resumed, rank), _batches(whole, rank), strict=True)
        ):
            assert a == b, f"rank {rank}, batch {k}: resumed run differs from the whole run"
