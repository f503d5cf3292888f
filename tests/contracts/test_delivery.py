"""Delivery contracts, each one check run over every mode and dataset kind.

* every index exactly once per epoch, and batches equal to ``num_workers=0``'s;
* an early end — a peek, a ``break``, a caught sample error, a second iterator — costs nothing:
  the next full epoch is complete and equal to the reference's;
* a worker killed at a random moment (during ``next()``, or while the caller is busy between
  batches, or idle between epochs) is replaced and the epoch is still exactly the reference's.
"""

from __future__ import annotations

import os
import random
import signal
from typing import Any

import pytest

from tests.contracts.modes import (
    PROCESS_MODES,
    as_comparable,
    combinations,
    indices_of,
    make_loader,
    worker_pids,
)
from tests.integration.conftest import is_running, wait_until

EARLY_ENDS = ["peek", "break", "caught-error", "second-iterator"]


def _epoch_catching_errors(loader: Any) -> list[Any]:
    """One epoch, the training loop catching (and skipping) each batch that raises."""
    iterator = iter(loader)
    delivered = []
    while True:
        try:
            delivered.append(next(iterator))
        except StopIteration:
            return delivered
        except ValueError as error:
            assert "corrupt sample 13" in str(error)


def _run_early_end(loader: Any, how: str) -> list[Any]:
    """Do one early end on ``loader``, then return the next epoch, iterated to its end."""
    if how == "peek":
        next(iter(loader))
    elif how == "break":
        for position, _batch in enumerate(loader):
            if position == 2:
                break
    elif how == "caught-error":
        return _epoch_catching_errors(loader)
    elif how == "second-iterator":
        first = iter(loader)
        next(first)
        second = iter(loader)
        return list(second)
    return list(loader)


@pytest.mark.parametrize(("mode", "kind"), combinations(spawn_kinds=("per-sample", "iterable")))
def test_every_index_once_and_batches_equal_the_reference(mode: str, kind: str) -> None:
    loader, reference = make_loader(mode, kind, n=41), make_loader("in-process", kind, n=41)
    for _epoch in range(2):
        batches, expected = list(loader), list(reference)
        assert sorted(indices_of(batches)) == list(range(41))
        assert as_comparable(batches, kind) == as_comparable(expected, kind)
    loader.close()


@pytest.mark.parametrize("how", EARLY_ENDS)
@pytest.mark.parametrize(("mode", "kind"), combinations(spawn_kinds=("getitems",)))
def test_an_early_end_costs_no_batch_of_the_next_epoch(mode: str, kind: str, how: str) -> None:
    fail_at = 13 if how == "caught-error" else None
    loader = make_loader(mode, kind, n=40, fail_at=fail_at)
    reference = make_loader("in-process", kind, n=40, fail_at=fail_at)
    for _epoch in range(2):  # the early end's epoch, then one more
        batches, expected = _run_early_end(loader, how), _run_early_end(reference, how)
        delivered = indices_of(batches)
        if how != "caught-error":
            assert sorted(delivered) == list(range(40))
        elif kind != "iterable":  # the failing batch is lost, whole; every other arrives once
            assert len(set(delivered)) == len(delivered) == 40 - 8 and 13 not in delivered
        else:  # the raising stream ends, as a generator does; the other shard goes on
            assert len(delivered) == len(set(delivered)) and 13 not in delivered
            continue
        assert as_comparable(batches, kind) == as_comparable(expected, kind)
    loader.close()


def _kill(pid: int) -> None:
    """SIGKILL ``pid`` and return once it is dead (a zombie): the loader has yet to notice.

    It slept 0.2-0.3 s for that instead (6 s of the 40 cases); the wait makes it certain.
    """
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not is_running(pid)), f"worker {pid} outlived SIGKILL"


@pytest.mark.parametrize("moment", ["during-next", "between-batches", "idle-between-epochs"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("mode", "kind"), combinations(PROCESS_MODES, spawn_kinds=("augmenting",)))
def test_a_killed_worker_costs_nothing(mode: str, kind: str, moment: str, seed: int) -> None:
    if moment == "idle-between-epochs" and mode == "fresh":
        pytest.skip("fresh workers do not live between epochs")
    if mode == "spawn" and seed:
        pytest.skip("spawn: one seed (each case 7-14 s); its runner is the persistent one")
    rng = random.Random(seed)
    loader = make_loader(mode, kind, n=48, batch_size=4)
    reference = make_loader("in-process", kind, n=48, batch_size=4)
    victim = rng.randrange(2)
    kill_at = rng.randrange(1, 10)
    if moment == "idle-between-epochs":
        assert as_comparable(list(loader), kind) == as_comparable(list(reference), kind)
        iterator = iter(loader)
        _kill(worker_pids(iterator)[victim])  # it is idle: its task was just queued
        batches = list(iterator)
    else:
        iterator = iter(loader)
        batches = []
        for position, batch in enumerate(iterator):
            batches.append(batch)
            if position == kill_at:
                if moment == "between-batches":
                    _kill(worker_pids(iterator)[victim])  # the trainer computes: dead before next()
                else:
                    os.kill(worker_pids(iterator)[victim], signal.SIGKILL)  # dies during next()
    expected = list(reference)
    assert sorted(indices_of(batches)) == list(range(48))
    assert as_comparable(batches, kind) == as_comparable(expected, kind)
    assert as_comparable(list(loader), kind) == as_comparable(
        list(reference), kind
    )  # and the next epoch
    loader.close()
