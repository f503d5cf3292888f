"""Generated CIFAR-format data shared by the CLI tests, and a guard for torch's global switches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stoker.cli._shapes import write_demo_cifar, write_demo_voc


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with cifar-10-batches-py/ (512 train, 128 test) and VOCdevkit/ (40 images)."""
    root = tmp_path_factory.mktemp("shapes")
    write_demo_cifar(root, 512, 128, seed=0)
    write_demo_voc(root, 40, seed=1)
    return root


@pytest.fixture(autouse=True)
def _torch_globals() -> Iterator[None]:
    """`train --deterministic` flips process-wide switches; put them back after each test.

    One torch thread: on a shared 2-core machine, two OpenMP threads that wait for each other
    at every barrier ran these tests up to 50× slower when a neighbour took a core.
    """
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)
