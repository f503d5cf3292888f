"""Fresh workers each epoch inherit the previous epoch's slots, never one a tensor still views."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from stoker import DataLoader
from stoker._transport.bank import SlotBank
from stoker.loader import _pool
from tests.helpers import BatchedDataset
from tests.integration.conftest import is_running, live_children, wait_until


def shm_mappings() -> int:
    """How many of this process's memory mappings are stoker slots (names unlinked or not)."""
    maps = Path("/proc/self/maps").read_text().splitlines()
    return sum("/dev/shm/stoker-" in line for line in maps)


def expected(dataset: BatchedDataset, position: int, size: int) -> torch.Tensor:
    return torch.from_numpy(dataset.images[position * size : (position + 1) * size])


def test_bank_hands_each_slot_to_one_withdrawal_and_keeps_one_ring() -> None:
    bank = SlotBank(per_worker=2)
    bank.deposit(0, 3, "mapping-3", 100)
    bank.deposit(0, 5, "mapping-5", 200)
    bank.deposit(0, 6, "mapping-6", 200)  # beyond the ring: dropped
    bank.deposit(1, 0, "mapping-0", 100)
    assert len(bank) == 3
    assert bank.withdraw(0) == {3: ("mapping-3", 100), 5: ("mapping-5", 200)}
    assert bank.withdraw(0) == {}
    assert len(bank) == 1


def test_next_epoch_workers_inherit_the_slots_and_batches_stay_right() -> None:
    dataset = BatchedDataset(n=400, shape=(3, 32, 32))  # 24 KiB batches: the shm path
    loader = DataLoader(dataset, batch_size=8, num_workers=2, seed=0)
    held = list(loader)  # 50 batches held at once: 50 slots
    del held
    gc.collect()
    banked = len(loader._slot_bank)
    assert 0 < banked <= 2 * loader._slot_bank.per_worker  # kept: one ring per worker
    kept_for_0 = loader._slot_bank.kept(0)
    iterator = iter(loader)
    first = next(iterator)
    assert iterator._runner is not None
    assert loader._slot_bank.kept(0) == 0  # worker 0 took them all at its start
    assert len(iterator._runner.workers[0].ring.slots) >= kept_for_0
    assert torch.equal(first[0], expected(dataset, 0, 8))
    for position, (images, _labels) in enumerate(iterator, start=1):
        assert torch.equal(images, expected(dataset, position, 8))


def test_a_batch_held_across_epochs_is_never_reused_until_dropped() -> None:
    """A tensor from epoch 0 keeps its slot out of the bank while epochs 1 and 2 run."""
    dataset = BatchedDataset(n=160, shape=(3, 32, 32))
    loader = DataLoader(dataset, batch_size=8, num_workers=2, seed=0)
    held = [images for images, _ in loader][::3]  # every third batch of epoch 0
    snapshot = [images.clone() for images in held]
    for _epoch in range(2):
        for position, (images, _labels) in enumerate(loader):
            assert torch.equal(images, expected(dataset, position, 8))
    for images, copy in zip(held, snapshot):
        assert torch.equal(images, copy)
    before = len(loader._slot_bank)
    del held, images
    gc.collect()
    assert len(loader._slot_bank) > before  # the dropped batches' slots came back


def test_slots_are_unmapped_when_the_loader_goes() -> None:
    before = shm_mappings()
    loader = DataLoader(BatchedDataset(n=200, shape=(3, 32, 32)), batch_size=8, num_workers=2)
    for _ in range(2):
        for _batch in loader:
            pass
    del _batch
    gc.collect()
    assert shm_mappings() > before  # kept for the next epoch
    del loader
    gc.collect()
    assert shm_mappings() == before


def test_persistent_and_spawned_workers_use_no_bank() -> None:
    dataset = BatchedDataset(n=64, shape=(3, 32, 32))
    persistent = DataLoader(dataset, batch_size=8, num_workers=1, persistent_workers=True)
    spawned = DataLoader(dataset, batch_size=8, num_workers=1, multiprocessing_context="spawn")
    for loader in (persistent, spawned):
        for _ in range(2):
            assert len(list(loader)) == 8
        assert loader._slot_bank is None
    persistent.close()


def test_an_epoch_that_ends_banks_its_slots_and_its_workers_exit_on_their_own() -> None:
    """At the end of an epoch the loop does not wait for the workers to exit (a helper thread
    joins them), yet none is left behind, and the next epoch runs on the banked slots."""
    dataset = BatchedDataset(n=200, shape=(3, 32, 32))
    loader = DataLoader(dataset, batch_size=8, num_workers=2, seed=0)
    for _batch in loader:
        pass
    del _batch
    gc.collect()
    assert len(loader._slot_bank) > 0
    assert wait_until(lambda: not live_children())
    assert wait_until(lambda: "stoker-reaper" not in {t.name for t in threading.enumerate()})
    for position, (images, _labels) in enumerate(loader):
        assert torch.equal(images, expected(dataset, position, 8))


_EXIT_AFTER_EPOCH = """
import sys
from stoker import DataLoader
from tests.helpers import BatchedDataset

loader = DataLoader(BatchedDataset(n=200, shape=(3, 32, 32)), batch_size=8, num_workers=2)
iterator = iter(loader)
for step, _batch in enumerate(iterator):
    if step == 5:
        print(*(w.process.pid for w in iterator._runner.workers), flush=True)
# the interpreter exits right after the epoch, while the helper thread may still be joining
"""


def test_a_script_that_ends_right_after_an_epoch_leaves_nothing() -> None:
    """Exiting while the helper thread still joins the workers leaves no process, no name."""
    repo = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        [sys.executable, "-c", _EXIT_AFTER_EPOCH],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": f"{repo / 'src'}{os.pathsep}{repo}"},
    ) as script:
        out, err = script.communicate(timeout=60)
    assert script.returncode == 0, err
    pids = [int(p) for p in out.split()]
    assert len(pids) == 2

    def gone() -> bool:
        return not any(is_running(p) for p in pids)

    assert wait_until(gone, 5.0), "workers outlived the script"
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"stoker-{script.pid}-")]


def test_a_deposit_never_waits_for_the_bank_lock() -> None:
    """Finalizers deposit from inside garbage collections, possibly in a thread that already
    holds the bank's lock: a deposit must not take it."""
    bank = SlotBank(per_worker=4)
    with bank._lock:
        bank.deposit(0, 1, "mapping", 10)  # would deadlock if deposit took the lock
    assert bank.kept(0) == 1


def test_no_worker_is_forked_while_the_last_epochs_reaper_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fork copies the locks a running thread holds into the child, locked for good: the next
    epoch's first fork waits for the reaper of the last one."""
    real = _pool._shutdown_processes

    def slow_shutdown(*args: Any) -> None:
        time.sleep(0.3)  # a reaper that is still busy when the next epoch starts
        real(*args)

    monkeypatch.setattr(_pool, "_shutdown_processes", slow_shutdown)
    loader = DataLoader(BatchedDataset(n=64, shape=(3, 32, 32)), batch_size=8, num_workers=2)
    assert len(list(loader)) == 8
    reapers = list(_pool._reapers)
    assert reapers and all(r.is_alive() for r in reapers)
    iterator = iter(loader)  # forks worker 0 of the next epoch
    assert not any(r.is_alive() for r in reapers)
    assert len(list(iterator)) == 8
