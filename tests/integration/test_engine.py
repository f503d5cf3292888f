"""The multi-process engine equals the in-process reference, and cleans up on every exit path."""

from __future__ import annotations

import gc
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data

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
from tests.integration.conftest import is_running, live_children, stoker_segments, wait_until

DATASETS = {
    "per-sample": lambda: TensorDataset(n=45),
    "getitems": lambda: BatchedDataset(n=60, shape=(3, 16, 16)),
    "random-augment": lambda: RandomAugmentDataset(n=41),
}


def epochs(loader: DataLoader, count: int = 2) -> list[Any]:
    return [batch for _ in range(count) for batch in loader]


@pytest.mark.parametrize("name", DATASETS)
def test_batches_identical_for_any_worker_count(name: str) -> None:
    """num_workers = 0, 1, 2, 3 give bit-identical batches, augmentation included."""
    reference = epochs(DataLoader(DATASETS[name](), batch_size=4, shuffle=True, seed=5))
    for workers in (1, 2, 3):
        loader = DataLoader(
            DATASETS[name](), batch_size=4, shuffle=True, seed=5, num_workers=workers
        )
        got = epochs(loader)
        assert len(got) == len(reference)
        for a, b in zip(got, reference):
            assert_batches_equal(a, b)


def test_same_seed_same_batches_across_runs_and_generator_parity_with_torch() -> None:
    ours = DataLoader(
        TensorDataset(),
        batch_size=4,
        shuffle=True,
        num_workers=2,
        generator=torch.Generator().manual_seed(3),
    )
    theirs = torch.utils.data.DataLoader(
        TensorDataset(),
        batch_size=4,
        shuffle=True,
        num_workers=2,
        generator=torch.Generator().manual_seed(3),
    )
    for a, b in zip(epochs(ours), epochs(theirs)):
        assert_batches_equal(a, b)


def test_held_batches_are_never_overwritten() -> None:
    """Batches kept by the user stay intact while later batches reuse the slot ring."""
    dataset = BatchedDataset(n=300, shape=(3, 32, 32))  # 24 KiB batches: the shm path
    kept = list(DataLoader(dataset, batch_size=8, num_workers=2, seed=0))
    for position, (images, _labels) in enumerate(kept):
        expected = torch.from_numpy(dataset.images[position * 8 : position * 8 + 8])
        assert torch.equal(images, expected)


def test_slots_are_reused_when_batches_are_dropped() -> None:
    """A loop that drops each batch keeps each worker's ring at a handful of slots."""
    dataset = BatchedDataset(n=2000, shape=(3, 32, 32))
    loader = DataLoader(dataset, batch_size=16, num_workers=2, seed=0, prefetch_factor=2)
    iterator = iter(loader)
    counts: list[int] = []
    for step, _batch in enumerate(iterator):
        if step == len(loader) - 3:
            assert iterator._runner is not None
            counts = [len(worker.ring.slots) for worker in iterator._runner.workers]
    # dispatched but not delivered (2 per worker on average, up to 4 for one worker) + the
    # batch being returned + the one the loop variable still holds + one freed but not yet
    # handed back: bounded by 2 * prefetch_factor + 3 however long the epoch
    assert counts and max(counts) <= 2 * 2 + 3, counts


def test_early_break_then_new_epoch() -> None:
    dataset = RandomAugmentDataset(n=40)
    reference = DataLoader(dataset, batch_size=4, shuffle=True, seed=1)
    ref_epochs = [list(reference), list(reference)]
    loader = DataLoader(dataset, batch_size=4, shuffle=True, seed=1, num_workers=2)
    for step, _ in enumerate(loader):
        if step == 2:
            break
    second = list(loader)
    for a, b in zip(second, ref_epochs[1]):
        assert_batches_equal(a, b)


def test_two_loaders_at_once() -> None:
    a = DataLoader(TensorDataset(n=30), batch_size=3, num_workers=2, seed=0)
    b = DataLoader(BatchedDataset(n=30), batch_size=5, num_workers=1, seed=0)
    pairs = list(zip(a, b))
    assert len(pairs) == 6
    assert [int(x[0][0, 0, 0, 0]) for x, _ in pairs] == [0, 3, 6, 9, 12, 15]


def test_worker_exception_keeps_type_names_worker_and_index() -> None:
    loader = DataLoader(FailingDataset(n=20, bad=13), batch_size=4, num_workers=2)
    with pytest.raises(ValueError) as info:
        list(loader)
    message = str(info.value)
    assert "Caught ValueError in DataLoader worker process" in message
    assert "dataset index 13" in message and "corrupt sample 13" in message
    assert "Traceback" in message


class _KeyErrorDataset(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> Any:
        raise KeyError("missing-key")


def test_key_error_is_readable() -> None:
    with pytest.raises(KeyError) as info:
        list(DataLoader(_KeyErrorDataset(), batch_size=2, num_workers=1))
    assert "Caught KeyError" in str(info.value)


class _SlowDataset(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> Any:
        if index >= 4:
            time.sleep(30)
        return index


def test_timeout_names_worker_and_indices() -> None:
    loader = DataLoader(_SlowDataset(), batch_size=2, num_workers=1, timeout=1.0)
    with pytest.raises(stoker.LoaderTimeoutError, match=r"indices \[4, 5\] from worker 0") as info:
        list(loader)
    assert "in __getitem__" in str(info.value)  # the stuck worker's stack, via faulthandler
    assert isinstance(stoker.LoaderTimeoutError("x"), RuntimeError)


class _InfoDataset(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> Any:
        info = stoker.get_worker_info()
        assert info is not None and info.dataset is not None
        return torch.tensor(
            [
                info.id,
                info.num_workers,
                random.getrandbits(30),
                int(np.random.randint(2**30)),
                int(torch.randint(2**30, ()).item()),
            ]
        )


def _record_init(worker_id: int) -> None:
    os.environ["STOKER_TEST_INIT"] = str(worker_id)


def test_worker_info_and_global_rngs_differ_per_worker_and_epoch() -> None:
    loader = DataLoader(
        _InfoDataset(),
        batch_size=None,
        num_workers=2,
        seed=0,
        worker_init_fn=_record_init,
        persistent_workers=True,
    )
    first = torch.stack(list(loader))
    second = torch.stack(list(loader))
    assert set(first[:, 0].tolist()) == {0, 1} and set(first[:, 1].tolist()) == {2}
    for column in (2, 3, 4):  # python, numpy, torch global RNGs
        by_worker = {int(w): first[first[:, 0] == w, column][0].item() for w in (0, 1)}
        assert by_worker[0] != by_worker[1]
        assert not torch.equal(first[:, column], second[:, column])
    loader.close()


def test_persistent_workers_keep_their_processes() -> None:
    loader = DataLoader(TensorDataset(n=20), batch_size=5, num_workers=2, persistent_workers=True)
    list(loader)
    pids = {c.pid for c in live_children()}
    list(loader)
    assert {c.pid for c in live_children()} == pids and len(pids) == 2
    loader.close()


def test_iterable_dataset_sharded_like_torch() -> None:
    ours = list(DataLoader(CountingStream(23), batch_size=4, num_workers=2))
    theirs = list(torch.utils.data.DataLoader(CountingStream(23), batch_size=4, num_workers=2))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert_batches_equal(a, b)


def test_in_order_false_delivers_every_batch_once() -> None:
    batches = list(DataLoader(TensorDataset(n=50), batch_size=5, num_workers=3, in_order=False))
    labels = sorted(int(b[0][i, 0, 0, 0]) for b in batches for i in range(len(b[0])))
    assert labels == list(range(50))


def test_spawn_context() -> None:
    loader = DataLoader(
        TensorDataset(n=10), batch_size=5, num_workers=1, multiprocessing_context="spawn"
    )
    reference = list(DataLoader(TensorDataset(n=10), batch_size=5))
    for a, b in zip(loader, reference):
        assert_batches_equal(a, b)


def test_bad_multiprocessing_context() -> None:
    with pytest.raises(ValueError, match="multiprocessing_context"):
        DataLoader(TensorDataset(n=4), num_workers=1, multiprocessing_context="nope")


def test_shm_too_small_fails_at_first_batch_with_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    from stoker._transport import shm

    monkeypatch.setattr(shm, "free_bytes", lambda: 1024 * 1024)  # forked workers inherit it
    loader = DataLoader(BatchedDataset(n=64, shape=(3, 64, 64)), batch_size=32, num_workers=1)
    with pytest.raises(stoker.SharedMemoryError, match=r"--shm-size"):
        list(loader)


@pytest.mark.parametrize("exit_path", ["exhaust", "break", "del", "exception", "interrupt"])
def test_every_exit_path_cleans_up(exit_path: str) -> None:
    """No worker process and no /dev/shm name survive any way of leaving the loop."""
    loader = DataLoader(BatchedDataset(n=400, shape=(3, 32, 32)), batch_size=16, num_workers=2)
    iterator = iter(loader)
    next(iterator)  # worker 0 alone makes the first batch; the rest start at the second
    next(iterator)
    assert len(live_children()) == 2
    if exit_path == "exhaust":
        list(iterator)
    elif exit_path == "break":
        for _ in iterator:
            break
    elif exit_path in ("exception", "interrupt"):
        error = (
            RuntimeError("user code failed") if exit_path == "exception" else KeyboardInterrupt()
        )
        with pytest.raises(type(error)):
            for _ in iterator:
                raise error
    del iterator
    gc.collect()
    assert wait_until(lambda: not live_children(), 5.0)
    assert not stoker_segments()


def test_sigint_during_iteration_raises_keyboard_interrupt_and_cleans_up() -> None:
    """A real SIGINT (Ctrl-C) while waiting on workers: KeyboardInterrupt, then nothing left."""
    import threading

    loader = DataLoader(_SlowDataset(), batch_size=2, num_workers=2)
    iterator = iter(loader)
    next(iterator)
    # Python's own Ctrl-C handler, whatever started this process: a shell's background job
    # (`pytest ... &`) starts with SIGINT ignored, and Python then keeps it ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            list(iterator)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    del iterator
    gc.collect()
    assert wait_until(lambda: not live_children(), 5.0)


_KILLED_PARENT_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import stoker

    class Slow(stoker.Dataset):
        def __len__(self): return 10_000
        def __getitem__(self, i):
            time.sleep(0.01)
            return np.zeros((3, 64, 64), dtype=np.float32)

    loader = stoker.DataLoader(Slow(), batch_size=8, num_workers=2)
    iterator = iter(loader)
    next(iterator)
    next(iterator)
    print(" ".join(str(p.pid) for p in iterator._runner._processes), flush=True)
    time.sleep(60)
    """
)


def test_workers_exit_when_the_main_process_is_sigkilled() -> None:
    """Workers notice their loader's death by SIGKILL and are gone, with their slots, in 5 s."""
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_PARENT_SCRIPT], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        parent.kill()
        parent.wait(5)
        killed_at = time.monotonic()

        def gone() -> bool:
            return not any(is_running(p) for p in pids)

        assert wait_until(gone, 5.0), "workers outlived their SIGKILLed parent"
        assert time.monotonic() - killed_at < 5.0
        # Names the dead loader had not yet claimed are swept by the next loader that starts.
        next(iter(DataLoader(TensorDataset(n=8), batch_size=4, num_workers=1)))
        assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"stoker-{parent.pid}-")]


def test_pin_memory_pins_on_a_helper_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an accelerator, batches are pinned off the main thread, in order."""
    import threading

    from stoker.loader import _pin

    pinned_on: list[int] = []

    def fake_pin(batch: Any) -> Any:
        pinned_on.append(threading.get_ident())
        return batch

    monkeypatch.setattr(_pin, "pinning_available", lambda: True)
    monkeypatch.setattr(_pin, "pin", fake_pin)
    loader = DataLoader(TensorDataset(n=20), batch_size=4, num_workers=2, pin_memory=True)
    batches = list(loader)
    assert [int(b[0][0, 0, 0, 0]) for b in batches] == [0, 4, 8, 12, 16]
    assert len(pinned_on) == 5 and threading.get_ident() not in pinned_on


def test_pin_memory_without_cuda_warns_once_and_works() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.warns(UserWarning, match="no CUDA"):
        batches = list(DataLoader(TensorDataset(n=8), batch_size=4, num_workers=1, pin_memory=True))
    assert len(batches) == 2
