"""worker_mode="thread": the same batches as in-process, errors as values, threads gone after."""

from __future__ import annotations

import gc
import json
import threading
from typing import Any

import pytest
import torch

import stoker
from stoker import DataLoader
from tests.helpers import (
    BatchedDataset,
    CountingStream,
    FailingDataset,
    RandomAugmentDataset,
    TensorDataset,
    assert_batches_equal,
)
from tests.integration.conftest import wait_until


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stoker-worker")]


@pytest.mark.parametrize("make", [RandomAugmentDataset, BatchedDataset], ids=["augment", "batched"])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_thread_workers_give_in_process_batches(make: Any, workers: int) -> None:
    reference = DataLoader(make(), batch_size=4, shuffle=True, seed=8)
    threaded = DataLoader(
        make(), batch_size=4, shuffle=True, seed=8, num_workers=workers, worker_mode="thread"
    )
    for _ in range(2):
        for a, b in zip(reference, threaded, strict=True):
            assert_batches_equal(a, b)


def test_thread_worker_error_keeps_type_and_index() -> None:
    loader = DataLoader(
        FailingDataset(n=20, bad=9), batch_size=4, num_workers=2, worker_mode="thread"
    )
    with pytest.raises(ValueError, match="corrupt sample 9") as info:
        list(loader)
    assert any("dataset index 9" in note for note in info.value.__notes__)
    del info  # its traceback holds the iterator, which goes on after an error, as torch's does
    gc.collect()
    assert wait_until(lambda: not worker_threads(), 2.0)


def test_break_stops_the_threads() -> None:
    loader = DataLoader(TensorDataset(n=200), batch_size=4, num_workers=2, worker_mode="thread")
    for _ in loader:
        break
    gc.collect()
    assert wait_until(lambda: not worker_threads(), 2.0), worker_threads()


class _WhoLoads(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> Any:
        info = stoker.get_worker_info()
        assert info is not None
        return torch.tensor([info.id, info.num_workers])


def _init(worker_id: int) -> None:
    assert stoker.get_worker_info() is not None


def test_worker_info_and_init_fn_per_thread() -> None:
    loader = DataLoader(
        _WhoLoads(), batch_size=None, num_workers=2, worker_mode="thread", worker_init_fn=_init
    )
    rows = torch.stack(list(loader))
    assert set(rows[:, 0].tolist()) <= {0, 1} and set(rows[:, 1].tolist()) == {2}
    assert stoker.get_worker_info() is None  # the main thread is no worker


def test_skip_policy_and_in_order_false() -> None:
    loader = DataLoader(
        FailingDataset(n=20, bad=3),
        batch_size=4,
        num_workers=2,
        worker_mode="thread",
        on_error="skip",
        max_errors=1,
        in_order=False,
    )
    assert sorted(int(v) for b in loader for v in b) == [i for i in range(20) if i != 3]
    assert [s[1] for s in loader.skipped] == [3]


@pytest.mark.parametrize(("save", "load"), [("thread", "process"), ("process", "thread")])
def test_resume_across_worker_modes(save: str, load: str) -> None:
    def make(mode: str) -> DataLoader:
        return DataLoader(
            RandomAugmentDataset(n=30),
            batch_size=4,
            shuffle=True,
            seed=5,
            num_workers=2,
            worker_mode=mode,
        )

    expected = list(DataLoader(RandomAugmentDataset(n=30), batch_size=4, shuffle=True, seed=5))
    original = make(save)
    iterator = iter(original)
    head = [next(iterator) for _ in range(3)]
    state = json.loads(json.dumps(original.state_dict()))
    del iterator
    resumed = make(load)
    resumed.load_state_dict(state)
    for a, b in zip(head + list(resumed), expected, strict=True):
        assert_batches_equal(a, b)


def test_thread_mode_refuses_iterable_datasets_and_bad_modes() -> None:
    with pytest.raises(ValueError, match="map-style"):
        DataLoader(CountingStream(), num_workers=2, worker_mode="thread")
    with pytest.raises(ValueError, match="worker_mode"):
        DataLoader(TensorDataset(), num_workers=2, worker_mode="fiber")
