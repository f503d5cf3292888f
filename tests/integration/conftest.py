"""Fixtures for tests with real worker processes: every test must leave no child or segment."""

from __future__ import annotations

import gc
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest


def stoker_segments() -> set[str]:
    """Shared-memory names and stack-dump files of this process's loaders still on disk."""
    pattern = f"stoker-{os.getpid()}-*"
    return {p.name for p in Path("/dev/shm").glob(pattern)} | {
        p.name for p in Path(tempfile.gettempdir()).glob(pattern)
    }


def wait_until(condition, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _is_helper(process: psutil.Process) -> bool:
    # multiprocessing's own long-lived helpers (spawn's resource tracker, the forkserver)
    # belong to the interpreter, not to a loader
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return True
    return "resource_tracker" in command or "forkserver" in command


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process: a zombie, or one that exits while we look, is not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        # CI saw a worker exit between children() listing it and status() reading its stat
        return False


def live_children() -> list[psutil.Process]:
    return [
        c
        for c in psutil.Process().children(recursive=True)
        if is_running(c.pid) and not _is_helper(c)
    ]


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """After each test: no worker processes left, no stoker shared-memory names left.

    The heap as it stands before the test (torch, Lightning, every collected module: ~400k
    objects) is frozen, so the ``gc.collect()`` that finalizes the test's unreachable loaders
    walks only what the test allocated. A full collection cost 0.3-0.7 s a test on 2 cores:
    79 of the 170 s the contract tests took. A loader the test made is allocated after the
    freeze and is collected as before; the heap is thawed again after the check.
    """
    gc.freeze()
    try:
        yield
        gc.collect()
    finally:
        gc.unfreeze()
    assert wait_until(lambda: not live_children()), f"orphan workers: {live_children()}"
    assert not stoker_segments(), f"leaked /dev/shm segments: {stoker_segments()}"
