"""The torchrun helpers of `stoker train` that need no process group: liveness and writes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from stoker.cli import _distributed
from stoker.cli._checkpoint import load_checkpoint, save_checkpoint
from stoker.cli._distributed import World


def _listening() -> tuple[socket.socket, tuple[str, int]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    return listener, ("127.0.0.1", int(listener.getsockname()[1]))


def test_a_rank_whose_process_is_gone_is_named() -> None:
    """Ranks 0 and 2 listen; rank 1's socket closed, as a killed process's is."""
    alive0, address0 = _listening()
    dead, address1 = _listening()
    alive2, address2 = _listening()
    dead.close()
    world = World(rank=0, size=3, probes=[address0, address1, address2])
    try:
        error = _distributed.lost_rank_error(world, RuntimeError("Connection closed by peer"), "x")
    finally:
        alive0.close(), alive2.close()
    assert error is not None
    assert str(error).startswith("rank 1 of 3 stopped answering x (RuntimeError: Connection")


def test_an_error_with_every_rank_alive_is_not_blamed_on_one() -> None:
    listeners = [_listening() for _ in range(2)]
    world = World(rank=1, size=2, probes=[address for _, address in listeners])
    try:
        assert _distributed.lost_rank_error(world, RuntimeError("shape mismatch"), "x") is None
    finally:
        for listener, _ in listeners:
            listener.close()


def test_without_torchrun_there_is_no_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world, device = _distributed.join(torch.device("cpu"), 5.0)
    assert not world.active and world.is_main and device == torch.device("cpu")
    assert world.sum([1.5, 2.0]) == [1.5, 2.0] and world.any(True) and not world.any(False)


def test_a_restart_continues_only_its_own_jobs_checkpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"torchrun_run_id": "job-a"})
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert not _distributed.auto_resume(path)  # the first attempt never resumes by itself
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert _distributed.auto_resume(path)
    assert load_checkpoint(path)["torchrun_run_id"] == "job-a"


def test_a_failed_write_keeps_the_old_checkpoint_and_leaves_no_temporary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2})  # two writes, no shared temporary name left behind
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert load_checkpoint(path)["epoch"] == 2
