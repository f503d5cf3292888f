"""Helpers for tests that launch real torchrun jobs (gloo on CPU, on this machine)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A torchrun job takes 5-15 s on 2 idle cores, and was seen at 60 s with the machine's load
# at 15: the bound is for a hang, not for speed.
_JOB_TIMEOUT_S = 240
TEST_TIMEOUT_S = 900  # pytest-timeout for a test of up to three jobs
_MARKER = "STOKER_TEST_JOB"  # in the environment of a job's agent and of every rank it starts
_REAP_TIMEOUT_S = 10.0
_jobs: dict[int, str] = {}  # agent pid -> its job's marker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun(
    *args: str,
    nproc: int = 2,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout_s: float = _JOB_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run ``torchrun --nproc_per_node=nproc ... args`` on a free port; its output captured.

    A job still running after ``timeout_s`` fails the test (with its output so far), and so
    does a process of the job still alive once torchrun has exited; both are killed first.
    """
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
        f"--master-port={free_port()}", *extra, *args,
    ]  # fmt: skip
    job = start(command, env)
    try:
        stdout, stderr = job.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop(job)
        stdout, stderr = job.communicate()  # every writer is dead: the pipes are at their end
        pytest.fail(f"torchrun job still running after {timeout_s:.0f} s (a hang?), killed; "
                    f"its output:\n{stdout}\n{stderr}")  # fmt: skip
    left = stop(job)
    assert not left, f"processes of the job alive after torchrun exited: {left}\n{stderr}"
    return subprocess.CompletedProcess(command, job.returncode, stdout, stderr)


def start(
    command: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``command`` in the repository, in a session of its own (see :func:`stop`).

    Its output is piped, or with ``log`` written there (for jobs run side by side, whose
    pipes nobody reads while waiting for another). The ranks import this checkout's stoker
    (``src`` first on their path), not whichever one is installed.
    """
    marker = uuid.uuid4().hex
    path = os.pathsep.join([str(REPO / "src"), str(REPO)])
    sink = log.open("w") if log is not None else None
    try:
        job = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, _MARKER: marker}
            | (env or {}),
            stdout=sink or subprocess.PIPE,
            stderr=subprocess.STDOUT if sink else subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    finally:
        if sink is not None:
            sink.close()
    _jobs[job.pid] = marker
    return job


def _processes_of(marker: str) -> dict[int, str]:
    """The live processes whose environment holds ``marker``: pid -> command line."""
    found = {}
    needle = f"{_MARKER}={marker}\0".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        # A zombie's environ reads empty: only processes still running match.
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes():
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
    return {pid: line.decode(errors="replace")[:200] for pid, line in found.items()}


def stop(job: subprocess.Popen[str]) -> dict[int, str]:
    """Kill what is left of a job; the ranks that were still running (pid -> command line).

    torchrun starts each rank in a session of its own (``start_new_session``), so killing the
    agent's process group leaves them running, orphaned, holding the job's output pipes: they
    are found by the marker :func:`start` put in the job's environment.
    """
    marker = _jobs.pop(job.pid, "")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    left = _processes_of(marker) if marker else {}
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + _REAP_TIMEOUT_S
    while marker and _processes_of(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture(autouse=True)
def _gloo_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """gloo picks the interface of the host name, which a sandbox may not route: use lo."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
