"""Helpers for tests that launch real torchrun jobs (gloo on CPU, on this machine)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_JOB_TIMEOUT_S = 90  # a torchrun job here takes 5-15 s on 2 shared cores; a hang fails


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
    return subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.fixture(autouse=True)
def _gloo_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """gloo picks the interface of the host name, which a sandbox may not route: use lo."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
