"""`stoker train` under real torchrun jobs: shards, rank-0 output, elastic resume, lost ranks."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from stoker.cli._checkpoint import load_checkpoint
from stoker.cli._shapes import write_demo_cifar
from tests.distributed.conftest import TEST_TIMEOUT_S, free_port, start, stop, torchrun

TRAIN = 48  # per epoch: 3 ranks x 2 steps x 8, or 2 ranks x 3 steps x 8
_RANK = "tests/distributed/_train_rank.py"


@pytest.fixture(scope="module")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_demo_cifar(root, TRAIN, 16, seed=0)
    return root


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--data", str(data), "--out", str(out), "--workers", "0", "--device", "cpu",
        "--batch-size", "8", "--seed", "3", "--threads", "1", "--test-limit", "16", *extra,
    ]  # fmt: skip


def _traces(folder: Path) -> dict[str, list[int]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_three_ranks_stopped_then_two_resume_and_see_the_epoch_once(
    cifar: Path, tmp_path: Path
) -> None:
    out, first, second = tmp_path / "out", tmp_path / "t1", tmp_path / "t2"
    first.mkdir(), second.mkdir()
    stopped = torchrun(_RANK, *_args(cifar, out, "--epochs", "1", "--max-batches", "1"),
                       nproc=3, env={"STOKER_TEST_TRACE": str(first)})  # fmt: skip
    # The ranks exit 130, "interrupted", as one process would; torchrun reports the first to
    # exit and may stop the others with SIGTERM before they do (a race), so at least one.
    assert stopped.stderr.count("exitcode  : 130") >= 1, stopped.stdout + stopped.stderr
    log = stopped.stdout
    assert log.count("training ResNet-20") == 1 and "3 ranks (torchrun)" in log, log
    assert log.count("stopped after 0 epoch(s) and 1 batch(es)") == 1, log
    part = [i for trace in _traces(first).values() for i in trace]
    assert len(_traces(first)) == 3 and len(part) == 3 * 8 == len(set(part)), "one shard a rank"
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    assert checkpoint["partial"]["seen"] == 24  # reduced over the 3 ranks
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]  # no temporaries left

    resumed = torchrun(_RANK, *_args(cifar, out, "--resume", str(out / "checkpoint.pt")),
                       nproc=2, env={"STOKER_TEST_TRACE": str(second)})  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.count("resuming") == 1 and "2 ranks (torchrun)" in resumed.stdout
    rest = [i for trace in _traces(second).values() for i in trace]
    assert Counter(part + rest) == Counter(range(TRAIN)), "3 -> 2 ranks: each image once"
    finished = load_checkpoint(out / "checkpoint.pt")
    assert finished["epoch"] == 1 and finished["partial"] is None
    assert resumed.stdout.count("epoch 1/1  train loss") == 1


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_a_rank_killed_on_another_machine_stops_the_job_naming_it(
    cifar: Path, tmp_path: Path
) -> None:
    """Two machines simulated by two torchrun agents; rank 1 dies at its 2nd step."""
    port = free_port()
    nodes = []
    for node in range(2):
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node}",
            "--nproc_per_node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
            "--rdzv-id=stoker-test", _RANK,
            # A collective timeout longer than the wait below: the job must stop on the closed
            # socket, not on the timeout.
            *_args(cifar, tmp_path / "out", "--epochs", "1", "--dist-timeout", "600"),
        ]  # fmt: skip
        nodes.append(start(command, {"STOKER_TEST_DIE": "1:2"}, tmp_path / f"node{node}.log"))
    try:
        for node in nodes:
            node.wait(timeout=240)
    finally:
        for node in nodes:
            stop(node)
    outputs = [(tmp_path / f"node{node}.log").read_text() for node in range(2)]
    log = "\n".join(outputs)
    assert all(node.returncode != 0 for node in nodes), log
    assert "stoker train: error: rank 1 of 2 stopped answering during training" in log, log


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.skip(
    reason="known bug: after the merge into the one delivery engine, the ranks torchrun restarts "
    "hang before resuming (reproduced on a quiet machine, 2026-12-01); open in issue 14"
)
def test_torchrun_restart_resumes_from_the_last_checkpoint(cifar: Path, tmp_path: Path) -> None:
    """Rank 1 dies in epoch 2 (its 5th step of 3 a epoch); --max-restarts=1 continues it."""
    out, traces = tmp_path / "out", tmp_path / "traces"
    traces.mkdir()
    done = torchrun(_RANK, *_args(cifar, out, "--epochs", "2"), nproc=2,
                    extra=("--max-restarts=1",),
                    env={"STOKER_TEST_TRACE": str(traces), "STOKER_TEST_DIE": "1:5"})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming {out / 'checkpoint.pt'} at epoch 2/2" in done.stdout, done.stdout
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    assert [row["epoch"] for row in checkpoint["history"]] == [1, 2]
    restarted = [i for name, t in _traces(traces).items() if name.endswith("restart1") for i in t]
    assert Counter(restarted) == Counter(range(TRAIN)), "epoch 2 once, after the restart"
