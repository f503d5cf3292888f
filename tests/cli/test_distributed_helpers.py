"""The torchrun helpers of `stoker train` that need no process group: liveness and writes."""

from __future__ import annotations

import datetime
import socket
import threading
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from stoker.cli import _distributed
from stoker.cli._checkpoint import load_checkpoint, save_checkpoint
from stoker.cli._common import CommandError
from stoker.cli._distributed import World


def _listening() -> tuple[socket.socket, tuple[str, int]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(socket.SOMAXCONN)  # as a rank's: every probe stays queued
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


def test_a_rank_whose_socket_closes_just_after_the_error_is_named() -> None:
    """A dying process's sockets do not all close at one instant: its liveness socket may still
    answer the first probe after its group socket closed (seen 2 ms after the error)."""
    alive, address0 = _listening()
    dying, address1 = _listening()
    closing = threading.Timer(0.1, dying.close)
    closing.start()
    world = World(rank=0, size=2, probes=[address0, address1])
    try:
        error = _distributed.lost_rank_error(world, RuntimeError("Connection reset by peer"), "x")
    finally:
        closing.join()
        alive.close()
    assert error is not None and str(error).startswith("rank 1 of 2 stopped answering x")


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


def _dead_address() -> tuple[str, int]:
    listener, address = _listening()
    listener.close()  # as a dead process's: connecting is refused
    return address


def test_a_restarted_rank_waits_for_this_attempts_rank_0_not_the_dead_ones() -> None:
    """torchrun keeps its store across restarts: the failed attempt's rank 0 is still published
    there (the hang of the restarted job was gloo reading such a dead attempt's keys)."""
    store = dist.HashStore()
    dead_host, dead_port = _dead_address()
    store.set(_distributed._NAMESPACE_KEY, f"deadattempt {dead_host} {dead_port}")
    views: dict[int, dist.Store] = {}
    doors = []

    def rank_0_starts_later() -> None:
        threading.Event().wait(0.3)  # rank 1 first reads the dead attempt's publication
        views[0], door = _distributed._attempt_namespace(World(rank=0, size=2), store, 5.0)
        doors.append(door)

    later = threading.Thread(target=rank_0_starts_later)
    later.start()
    try:
        views[1], door = _distributed._attempt_namespace(World(rank=1, size=2), store, 5.0)
    finally:
        later.join()
    assert door is None and len(doors) == 1 and doors[0] is not None  # only rank 0 has one
    doors[0].close()
    views[0].set("peer", "rank 0 of this attempt")
    assert views[1].get("peer") == b"rank 0 of this attempt"  # one namespace for both
    assert not dist.PrefixStore("stoker/deadattempt", store).check(["peer"])


def test_a_rank_0_that_never_publishes_is_an_error_naming_the_rank() -> None:
    store = dist.HashStore()
    store.set_timeout(datetime.timedelta(seconds=0.2))
    one = World(rank=1, size=2)
    with pytest.raises(CommandError, match="rank 1 of 2 found no rank 0 in torchrun's store"):
        _distributed._attempt_namespace(one, store, 0.2)
    host, port = _dead_address()
    store.set(_distributed._NAMESPACE_KEY, f"deadattempt {host} {port}")
    with pytest.raises(CommandError, match=r"rank 1 of 2 waited 0 s .* does not answer"):
        _distributed._attempt_namespace(one, store, 0.2)
