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

Each attempt of a job (torchrun ``--max-restarts`` starts the ranks again) forms its group
under keys of its own in torchrun's store. torchrun keeps one store for the whole job and
torch's ``env://`` adds no per-attempt prefix, so a restarted rank's gloo read the dead
attempt's peer addresses (``default_pg/0/...``) and retried them until the collective timeout:
the hang of the restarted job. Rank 0 of each attempt draws a fresh namespace and publishes
it with its liveness address; the other ranks take it only once that address answers, which
no dead attempt's can (see :func:`_attempt_namespace`). ``TORCHELASTIC_RESTART_COUNT`` would
not do: each agent counts its own restarts, and on several machines the counts can differ.
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

# torch documents these as torch.distributed's, but imports them without re-exporting them.
from torch.distributed import PrefixStore, Store, TCPStore  # type: ignore[attr-defined]

from stoker.cli._common import CommandError

__all__ = ["World", "add_arguments", "auto_resume", "join", "lost_rank_error", "run_id"]

_DEFAULT_TIMEOUT_S = 300  # longest a rank may wait for the others in one collective
# A live process's kernel accepts at once (milliseconds, even across a LAN); a dead one's
# refuses at once; only a machine that vanished makes us wait this long.
_PROBE_TIMEOUT_S = 2.0
_NAMESPACE_KEY = "stoker/attempt"  # rank 0's "<namespace> <host> <port>", in torchrun's store
_RETRY_S = 0.05  # between reads of a namespace published by a dead attempt's rank 0
# How long liveness is asked again when every rank answers, before the error is taken as not
# a lost rank's: a dead rank's liveness socket was seen answering a probe 2 ms after its group
# socket closed. Three more probes of each rank, 0.1 s apart: each stays queued on the probed
# socket (nobody accepts), so they must stay few.
_SETTLE_S = 0.3


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
    timeout = datetime.timedelta(seconds=timeout_s)
    host, port = os.environ.get("MASTER_ADDR", "127.0.0.1"), _env_int("MASTER_PORT", 29500)
    store, door = _attempt_namespace(world, _job_store(world, host, port, timeout), timeout_s)
    try:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            store=store,
            rank=world.rank,
            world_size=size,
            timeout=timeout,
        )
        world._listener, address = _listen()  # after the group's sockets: see _listen
        world.probes = [("", 0)] * size
        dist.all_gather_object(world.probes, address)
    finally:
        if door is not None:
            door.close()  # every rank got past it: all are in the all_gather above
    return world, device


def _job_store(world: World, host: str, port: int, timeout: datetime.timedelta) -> Store:
    """torchrun's store (the agent's, under torchrun; else rank 0 hosts it, as env:// does)."""
    hosts = world.rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != str(True)
    try:
        return TCPStore(host, port, world.size, hosts, timeout, multi_tenant=True)
    except RuntimeError as error:
        raise CommandError(
            f"rank {world.rank} of {world.size} could not reach torchrun's store at "
            f"{host}:{port} ({type(error).__name__}: {_first_line(error)}); is the agent of "
            "rank 0's machine running, and is MASTER_ADDR reachable from this one?"
        ) from None


def _attempt_namespace(
    world: World, store: Store, timeout_s: float
) -> tuple[Store, socket.socket | None]:
    """``store`` under keys only this attempt of the job uses (see the module's doc); on rank 0,
    also the socket the other ranks knock at to tell its publication from a dead attempt's.

    Rank 0 binds that socket, publishes a fresh name with its address, then listens; another
    rank takes a published name once the address answers and the name is still the one
    published. A dead attempt's address refuses; and should the new rank 0 listen on the very
    port the dead one had, it published its own name before listening, so the second read
    sees the new one.
    """
    if world.is_main:
        door = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        door.bind((_local_host(), 0))
        namespace = uuid.uuid4().hex
        store.set(_NAMESPACE_KEY, f"{namespace} {door.getsockname()[0]} {door.getsockname()[1]}")
        door.listen(socket.SOMAXCONN)
        return PrefixStore(f"stoker/{namespace}", store), door
    deadline = time.monotonic() + timeout_s
    published = ""
    try:
        while time.monotonic() < deadline:
            published = store.get(_NAMESPACE_KEY).decode()  # waits for the first publication
            namespace, host, port = published.split()
            if _answers((host, int(port))) and store.get(_NAMESPACE_KEY).decode() == published:
                return PrefixStore(f"stoker/{namespace}", store), None
            time.sleep(_RETRY_S)
    except RuntimeError as error:  # the store's own timeout: rank 0 never published
        raise CommandError(
            f"rank {world.rank} of {world.size} found no rank 0 in torchrun's store within "
            f"{timeout_s:.0f} s ({type(error).__name__}: {_first_line(error)}); rank 0 did not "
            "start or died before joining. Look at rank 0's output for why."
        ) from None
    raise CommandError(
        f"rank {world.rank} of {world.size} waited {timeout_s:.0f} s (--dist-timeout) for rank 0 "
        f"of this attempt, but the rank 0 in torchrun's store ({published}) does not answer: "
        "it died, or belongs to an earlier attempt. Look at rank 0's output for why."
    )


def _local_host() -> str:
    """This machine's address on the interface that reaches torchrun's store."""
    host = os.environ.get("MASTER_ADDR", "127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as route:  # no packet is sent
        route.connect((host, _env_int("MASTER_PORT", 29500)))
        return str(route.getsockname()[0])


def _listen() -> tuple[socket.socket, tuple[str, int]]:
    """This rank's liveness socket, and its address.

    The kernel completes the handshakes of the probes; nobody needs to accept(). The backlog
    is SOMAXCONN, not a small number: unaccepted connections stay queued, one from every
    survivor's every probe. Opened after the process group's sockets on purpose: a dying
    process's files are released last-opened first (Linux's exit task work runs in reverse),
    so this one closes before its peers see the group's sockets close. Opened before them,
    it was measured answering a probe sent right after the group's error in 3 runs of 7.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((_local_host(), 0))
    listener.listen(socket.SOMAXCONN)
    return listener, (str(listener.getsockname()[0]), int(listener.getsockname()[1]))


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
    """The error naming the ranks that died, if ``error`` came from losing some; else None.

    With every rank answering, they are asked again for ``_SETTLE_S``: a dying process's
    sockets are not all closed at one instant (see :func:`_listen`), and a peer's group socket
    may close while its liveness socket still answers.
    """
    missing = _missing_ranks(world)
    settled = time.monotonic() + _SETTLE_S
    while not missing and time.monotonic() < settled:
        time.sleep(0.1)
        missing = _missing_ranks(world)
    if not missing:
        return None
    names = ", ".join(str(rank) for rank in missing)
    return CommandError(
        f"rank {names} of {world.size} stopped answering {where} ({type(error).__name__}: "
        f"{_first_line(error)}); rank {world.rank} stops too. Look at rank {names}'s output for "
        "why. The last checkpoint stands: continue with --resume (torchrun --max-restarts=N does "
        "it by itself)."
    )


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
