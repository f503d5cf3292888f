"""`stoker train` under real torchrun jobs: shards, rank-0 output, elastic resume, lost ranks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

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
    left: dict[int, str] = {}
    hung = False
    try:
        for node in nodes:
            node.wait(timeout=240)
    except subprocess.TimeoutExpired:
        hung = True
    finally:
        for node in nodes:
            left.update(stop(node))
    outputs = [(tmp_path / f"node{node}.log").read_text() for node in range(2)]
    log = "\n".join(outputs)
    assert not hung, f"an agent still running after 240 s (a hang?), killed; the logs:\n{log}"
    assert not left, f"ranks alive after their agent exited: {left}\n{log}"
    assert all(node.returncode != 0 for node in nodes), log
    assert "stoker train: error: rank 1 of 2 stopped answering during training" in log, log


def _same_tensors(a: Any, b: Any) -> bool:
    """Whether two checkpoint fields are equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same_tensors(a[k], b[k]) for k in a)
        )
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same_tensors, a, b))
    return bool(a == b)


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_torchrun_restart_resumes_from_the_last_checkpoint(cifar: Path, tmp_path: Path) -> None:
    """Rank 1 dies in epoch 2 (its 5th step, 3 an epoch); --max-restarts=1 continues from the
    end-of-epoch-1 checkpoint and ends with the weights of an uninterrupted run.

    The restarted rank 0 joins last, 2 s after rank 1, so that rank 1 meets the failed
    attempt's keys in torchrun's store every run (the old code read a dead rank's gloo address
    there and failed or hung, in 3 runs of 7: see _train_rank.py)."""
    out, traces = tmp_path / "out", tmp_path / "traces"
    traces.mkdir()
    done = torchrun(_RANK, *_args(cifar, out, "--epochs", "2"), nproc=2,
                    extra=("--max-restarts=1",),
                    env={"STOKER_TEST_TRACE": str(traces), "STOKER_TEST_DIE": "1:5",
                         "STOKER_TEST_RANK0_LAST": str(traces)})  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    lines = done.stdout.splitlines()
    # Epoch 1 finished (and was checkpointed) once, in the first attempt; the second attempt
    # starts at epoch 2, from its first batch (the checkpoint is an end-of-epoch one).
    assert sum(line.startswith("epoch 1/2  train loss") for line in lines) == 1, log
    assert lines.count(f"resuming {out / 'checkpoint.pt'} at epoch 2/2") == 1, log
    assert sum(line.startswith("epoch 2/2  train loss") for line in lines) == 1, log
    # torchrun saw the first attempt's rank 1 die (_train_rank's exit code) and restarted.
    assert "failed (exitcode: 17) local_rank: 1" in done.stderr, log
    restarted = {name: t for name, t in _traces(traces).items() if name.endswith("restart1")}
    assert sorted(restarted) == ["rank0-restart1", "rank1-restart1"], sorted(_traces(traces))
    assert Counter(i for t in restarted.values() for i in t) == Counter(range(TRAIN)), (
        "the restarted attempt trains epoch 2, each image once, and not epoch 1 again"
    )
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    assert checkpoint["epoch"] == 2 and checkpoint["partial"] is None
    assert [row["epoch"] for row in checkpoint["history"]] == [1, 2]

    # The same job without the failure: the restart must change nothing but timings.
    reference = torchrun(_RANK, *_args(cifar, tmp_path / "ref", "--epochs", "2"), nproc=2)
    assert reference.returncode == 0, reference.stdout + reference.stderr
    uninterrupted = load_checkpoint(tmp_path / "ref" / "checkpoint.pt")
    for field in ("model_state", "optimizer", "scheduler", "loader", "rng", "epoch"):
        assert _same_tensors(checkpoint[field], uninterrupted[field]), field
    scores = [(row["train_loss"], row["test_accuracy"]) for row in checkpoint["history"]]
    assert scores == [(row["train_loss"], row["test_accuracy"])
                      for row in uninterrupted["history"]]  # fmt: skip
