"""`stoker train` under torchrun: the process group, cross-rank reductions, and a lost rank.

torchrun sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous store's
``MASTER_ADDR``/``MASTER_PORT``; with ``WORLD_SIZE`` > 1 each rank joins one process group
(gloo on CPU, nccl on CUDA). Every collective has a timeout, so a rank that vanishes without
closing its sockets (its machine went away) stops the others within ``--dist-timeout``; one
that dies on this or a reachable machine closes its sockets and the others stop at once.
When a collective fails, each survivor knocks at every other rank's liveness socket (a
listening socket each rank opens at start, which the kernel closes when the process dies):
the ranks that refuse, or do not answer within ``_PROBE_TIMEOUT_S``, are named in the error.
No store is asked: torchrun's store lives in one agent, which may exit first.
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from stoker.cli._common import CommandError

__all__ = ["World", "add_arguments", "auto_resume", "join", "lost_rank_error", "run_id"]

_DEFAULT_TIMEOUT_S = 300  # longest a rank may wait for the others in one collective
# A live process's kernel accepts at once (milliseconds, even across a LAN); a dead one's
# refuses at once; only a machine that vanished makes us wait this long.
_PROBE_TIMEOUT_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that only matter under torchrun."""
    parser.add_argument(
        "--dist-timeout",
        type=float,
        metavar="S",
        default=_DEFAULT_TIMEOUT_S,
        help="under torchrun: seconds a rank waits for the others in a collective before the "
        f"job stops with an error naming the missing rank (default {_DEFAULT_TIMEOUT_S})",
    )


@dataclass
class World:
    """This process's place in the job; ``size`` 1 without torchrun (no process group)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    probes: list[tuple[str, int]] = field(default_factory=list)  # every rank's liveness socket
    _listener: socket.socket | None = None

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 prints progress and writes checkpoints; the others only train."""
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """``values`` summed over every rank (the same list everywhere after the call)."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return [float(value) for value in tensor.cpu().tolist()]

    def any(self, flag: bool) -> bool:
        """Whether any rank's ``flag`` is set: every rank then takes the same branch."""
        if not self.active:
            return flag
        return self.sum([float(flag)])[0] > 0

    def close(self, collective: bool = True) -> None:
        """Leave the group (``collective=False`` after a failure: only this rank's sockets)."""
        if collective and self.active and dist.is_initialized():
            dist.destroy_process_group()
        if self._listener is not None:
            self._listener.close()
            self._listener = None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise CommandError(
            f"environment variable {name}={value!r} is not a whole number; "
            "it is set by torchrun, which should be left to set it"
        ) from None


def join(device: torch.device, timeout_s: float) -> tuple[World, torch.device]:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1; the device this rank trains on."""
    size = _env_int("WORLD_SIZE", 1)
    world = World(_env_int("RANK", 0), size, _env_int("LOCAL_RANK", 0))
    if not world.active:
        return world, device
    if not timeout_s > 0:
        raise CommandError(f"--dist-timeout must be > 0 seconds, got {timeout_s}")
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise CommandError(
                f"rank {world.rank} has LOCAL_RANK {world.local_rank} but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s); start torchrun with "
                "--nproc_per_node at most the number of GPUs"
            )
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    world._listener, address = _listen()
    world.probes = [("", 0)] * size
    dist.all_gather_object(world.probes, address)
    return world, device


def _listen() -> tuple[socket.socket, tuple[str, int]]:
    """A listening socket on the interface that reaches torchrun's store, and its address."""
    host = os.environ.get("MASTER_ADDR", "127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as route:  # no packet is sent
        route.connect((host, int(os.environ.get("MASTER_PORT", "29500"))))
        local = str(route.getsockname()[0])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((local, 0))
    listener.listen(64)  # the kernel completes the handshakes; nobody needs to accept()
    return listener, (local, int(listener.getsockname()[1]))


def auto_resume(out_checkpoint: Path) -> bool:
    """Whether torchrun restarted this job (``--max-restarts``) and its checkpoint exists."""
    return _env_int("TORCHELASTIC_RESTART_COUNT", 0) > 0 and out_checkpoint.is_file()


def run_id() -> str:
    """torchrun's id of this job (the same on every node and across its restarts)."""
    return os.environ.get("TORCHELASTIC_RUN_ID", "none")


def _answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _missing_ranks(world: World) -> list[int]:
    """The ranks whose process is gone (or whose machine does not answer)."""
    return [
        rank
        for rank, address in enumerate(world.probes)
        if rank != world.rank and not _answers(address)
    ]


def lost_rank_error(world: World, error: BaseException, where: str) -> CommandError | None:
    """The error naming the ranks that died, if ``error`` came from losing some; else None."""
    missing = _missing_ranks(world)
    if not missing:
        return None
    names = ", ".join(str(rank) for rank in missing)
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    return CommandError(
        f"rank {names} of {world.size} stopped answering {where} ({type(error).__name__}: "
        f"{first_line}); rank {world.rank} stops too. Look at rank {names}'s output for why. "
        "The last checkpoint stands: continue with --resume (torchrun --max-restarts=N does "
        "it by itself)."
    )
