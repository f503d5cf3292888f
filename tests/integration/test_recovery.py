"""Never lose a batch: dead workers replaced, failing samples skipped on request, exact resume."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import stoker
from stoker import DataLoader, seeding
from tests.helpers import BatchedDataset, FailingDataset, RandomAugmentDataset, assert_batches_equal


class KillOnce(stoker.Dataset[Any]):
    """Augmented samples; loading ``victim`` SIGKILLs the worker the first ``times`` times."""

    def __init__(self, marker_dir: Path, victim: int, n: int = 64, times: int = 1):
        self.marker_dir, self.victim, self.n, self.times = marker_dir, victim, n, times

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        if index == self.victim and stoker.get_worker_info() is not None:
            deaths = len(list(self.marker_dir.glob("death-*")))
            if deaths < self.times:
                (self.marker_dir / f"death-{deaths}").touch()
                os.kill(os.getpid(), signal.SIGKILL)
        return torch.from_numpy(seeding.sample_rng().standard_normal(3)) + index, index


def run_epoch(dataset: Any, **kwargs: Any) -> list[Any]:
    return list(DataLoader(dataset, batch_size=4, shuffle=True, seed=7, **kwargs))


def order_of(batches: list[Any]) -> list[int]:
    return [int(i) for batch in batches for i in batch[1]]


@pytest.mark.parametrize("where", ["first-batch", "mid-epoch", "last-batch"])
def test_sigkilled_worker_is_replaced_and_the_epoch_completes(
    where: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each index exactly once, in order, with the values of an undisturbed run."""
    reference = run_epoch(KillOnce(tmp_path, victim=-1))
    order = order_of(reference)
    victim = {"first-batch": order[0], "mid-epoch": order[30], "last-batch": order[-1]}[where]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="stoker"):
        got = run_epoch(KillOnce(tmp_path, victim), num_workers=2)
    assert time.monotonic() - started < 5.0 + 2.0  # recovery costs well under 5 s extra
    assert len(list(tmp_path.glob("death-*"))) == 1  # the worker really died once
    assert sorted(order_of(got)) == list(range(64)) and order_of(got) == order
    for a, b in zip(got, reference):
        assert_batches_equal(a, b)
    restarts = [r for r in caplog.records if "restarting it" in r.getMessage()]
    assert len(restarts) == 1 and "SIGKILL" in restarts[0].getMessage()


def test_restart_budget_exceeded_names_pid_signal_and_indices(tmp_path: Path) -> None:
    dataset = KillOnce(tmp_path, victim=10, times=100)  # kills every worker that loads it
    loader = DataLoader(dataset, batch_size=4, num_workers=1, max_worker_restarts=2)
    with pytest.raises(stoker.WorkerDiedError) as info:
        list(loader)
    message = str(info.value)
    assert "SIGKILL" in message and "pid" in message and "indices [8, 9, 10, 11]" in message
    assert "max_worker_restarts=2" in message
    assert isinstance(info.value, RuntimeError)
    assert len(list(tmp_path.glob("death-*"))) == 3  # first try + 2 restarts


def test_on_worker_death_raise(tmp_path: Path) -> None:
    loader = DataLoader(
        KillOnce(tmp_path, victim=5), batch_size=4, num_workers=1, on_worker_death="raise"
    )
    with pytest.raises(stoker.WorkerDiedError, match="on_worker_death='raise'"):
        list(loader)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_skip_policy_drops_bad_samples_and_records_them(num_workers: int) -> None:
    loader = DataLoader(
        FailingDataset(n=20, bad=7),
        batch_size=4,
        num_workers=num_workers,
        on_error="skip",
        max_errors=1,
    )
    values = [int(v) for batch in loader for v in batch]
    assert values == [i for i in range(20) if i != 7]
    assert len(loader.skipped) == 1
    epoch, index, error = loader.skipped[0]
    assert (epoch, index) == (0, 7) and "corrupt sample 7" in error


class ManyFailures(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 40

    def __getitem__(self, index: int) -> Any:
        if index % 5 == 0:
            raise OSError(f"unreadable file for sample {index}")
        return index


@pytest.mark.parametrize("num_workers", [0, 2])
def test_skip_budget_count_and_fraction(num_workers: int) -> None:
    with pytest.raises(stoker.TooManyErrorsError, match="max_errors=3"):
        list(
            DataLoader(
                ManyFailures(), batch_size=4, num_workers=num_workers, on_error="skip", max_errors=3
            )
        )
    # 8 failures in 40 samples is 20%: inside a 25% budget
    loader = DataLoader(
        ManyFailures(), batch_size=4, num_workers=num_workers, on_error="skip", max_errors=0.25
    )
    assert sum(len(b) for b in loader) == 32


class BatchedFailing(BatchedDataset):
    def __getitems__(self, indices: list[int]) -> Any:
        if 3 in indices:
            raise ValueError("batch containing 3 is corrupt")
        return super().__getitems__(indices)

    def __getitem__(self, index: int) -> Any:
        if index == 3:
            raise ValueError("sample 3 is corrupt")
        return super().__getitem__(index)


def test_skip_with_getitems_falls_back_per_sample() -> None:
    loader = DataLoader(
        BatchedFailing(n=12), batch_size=4, num_workers=1, on_error="skip", max_errors=2
    )
    labels = [b[1] for b in loader]
    assert sum(len(x) for x in labels) == 11
    assert [s[1] for s in loader.skipped] == [3]


@pytest.mark.parametrize(("save_workers", "load_workers"), [(0, 2), (2, 0), (2, 3), (2, 2)])
@pytest.mark.parametrize("stop_after", [1, 4])
def test_resume_is_bit_identical_across_worker_counts(
    save_workers: int, load_workers: int, stop_after: int
) -> None:
    def make(workers: int) -> DataLoader:
        return DataLoader(
            RandomAugmentDataset(n=45), batch_size=4, shuffle=True, seed=11, num_workers=workers
        )

    undisturbed = make(0)
    expected_epoch0 = list(undisturbed)
    expected_epoch1 = list(undisturbed)

    original = make(save_workers)
    iterator = iter(original)
    head = [next(iterator) for _ in range(stop_after)]
    state = json.loads(json.dumps(original.state_dict()))  # small and JSON-serialisable
    assert len(json.dumps(state)) < 1000
    del iterator, original

    resumed = make(load_workers)
    resumed.load_state_dict(state)
    got = head + list(resumed)
    for a, b in zip(got, expected_epoch0, strict=True):
        assert_batches_equal(a, b)
    for a, b in zip(list(resumed), expected_epoch1, strict=True):
        assert_batches_equal(a, b)


def test_resume_distributed_sampler() -> None:
    def make(workers: int) -> DataLoader:
        sampler = stoker.DistributedSampler(range(50), num_replicas=2, rank=1, seed=3)
        return DataLoader(
            RandomAugmentDataset(n=50), batch_size=4, sampler=sampler, seed=3, num_workers=workers
        )

    expected = list(make(0))
    original = make(2)
    iterator = iter(original)
    head = [next(iterator) for _ in range(3)]
    state = original.state_dict()
    del iterator
    resumed = make(1)
    resumed.load_state_dict(state)
    for a, b in zip(head + list(resumed), expected, strict=True):
        assert_batches_equal(a, b)


def test_state_dict_is_small() -> None:
    loader = DataLoader(BatchedDataset(n=5000), batch_size=8, shuffle=True, seed=0)
    iterator = iter(loader)
    next(iterator)
    assert len(json.dumps(loader.state_dict())) < 500


def test_resume_needs_in_order_delivery() -> None:
    loader = DataLoader(RandomAugmentDataset(n=8), batch_size=2, num_workers=2, in_order=False)
    with pytest.raises(ValueError, match="in_order=True"):
        loader.load_state_dict(DataLoader(RandomAugmentDataset(n=8)).state_dict())


@pytest.mark.parametrize("workers", [0, 2])
def test_iterable_dataset_resume_replays_the_stream(workers: int) -> None:
    from tests.helpers import CountingStream

    expected = list(DataLoader(CountingStream(30), batch_size=4, num_workers=workers))
    original = DataLoader(CountingStream(30), batch_size=4, num_workers=workers)
    iterator = iter(original)
    head = [next(iterator) for _ in range(3)]
    state = original.state_dict()
    del iterator
    resumed = DataLoader(CountingStream(30), batch_size=4, num_workers=workers)
    resumed.load_state_dict(state)
    for a, b in zip(head + list(resumed), expected, strict=True):
        assert_batches_equal(a, b)
