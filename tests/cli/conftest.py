"""Generated CIFAR-format data shared by the CLI tests, and a guard for torch's global switches."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stoker.cli import train
from stoker.cli._shapes import write_demo_cifar, write_demo_voc


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with cifar-10-batches-py/ (512 train, 128 test) and VOCdevkit/ (40 images)."""
    root = tmp_path_factory.mktemp("shapes")
    write_demo_cifar(root, 512, 128, seed=0)
    write_demo_voc(root, 40, seed=1)
    return root


@contextlib.contextmanager
def torch_switches() -> Iterator[None]:
    """One torch thread inside; torch's process-wide switches as they were, after.

    `train --deterministic` flips ``torch.use_deterministic_algorithms``; it is put back.
    One torch thread: on a shared 2-core machine, two OpenMP threads that wait for each other
    at every barrier ran these tests up to 50× slower when a neighbour took a core. `train`
    without ``--threads`` sets its own count (the free cores: 2 here with ``--workers 0``), and
    `demo` has no ``--threads`` to pass, so that default is held at one thread too: a 3-batch
    run took 9-10 s with two threads beside a busy neighbour, 0.9 s with one.
    """
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(train, "default_threads", lambda workers: 1)
            yield
    finally:
        # Only when changed: the first call imports torch._inductor's config (2-3 s)
        if torch.are_deterministic_algorithms_enabled() != deterministic:
            torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _torch_globals() -> Iterator[None]:
    """Each test runs inside :func:`torch_switches` (a module fixture that trains uses it too)."""
    with torch_switches():
        yield
