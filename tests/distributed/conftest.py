"""Helpers for tests that launch real torchrun jobs (gloo on CPU, on this machine)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A torchrun job takes 5-15 s on 2 idle cores, and was seen at 60 s with the machine's load
# at 15: the bound is for a hang, not for speed.
_JOB_TIMEOUT_S = 240
TEST_TIMEOUT_S = 900  # pytest-timeout for a test of up to three jobs


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
    """Run ``torchrun --nproc_per_node=nproc ... args`` on a free port; its output captured."""
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
        f"--master-port={free_port()}", *extra, *args,
    ]  # fmt: skip
    job = start(command, env)
    try:
        stdout, stderr = job.communicate(timeout=timeout_s)
    finally:
        stop(job)
    return subprocess.CompletedProcess(command, job.returncode, stdout, stderr)


def start(
    command: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``command`` in the repository, in a session of its own (see :func:`stop`).

    Its output is piped, or with ``log`` written there (for jobs run side by side, whose
    pipes nobody reads while waiting for another).
    """
    sink = log.open("w") if log is not None else None
    try:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})},
            stdout=sink or subprocess.PIPE,
            stderr=subprocess.STDOUT if sink else subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    finally:
        if sink is not None:
            sink.close()


def stop(job: subprocess.Popen[str]) -> None:
    """Kill what is left of a torchrun job: the agent and its workers share its session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGKILL)
    job.wait()


@pytest.fixture(autouse=True)
def _gloo_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """gloo picks the interface of the host name, which a sandbox may not route: use lo."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
