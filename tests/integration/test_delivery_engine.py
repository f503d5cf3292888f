"""One test per way the wave-1 loader lost data or hung; each failed before the delivery engine.

(Early ends, kills at any moment and errors that the loop catches are the contracts in
``tests/contracts``; these are the remaining cases, each with one invariant.)
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import stoker
from stoker.errors import LoaderClosedError, LoaderTimeoutError, TooManyErrorsError
from stoker.loader import _engine
from tests.contracts.modes import worker_pids
from tests.helpers import FailingDataset, TensorDataset
from tests.integration.conftest import is_running, wait_until


class _WhoLoads(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 24

    def __getitem__(self, index: int) -> Any:
        info = torch.utils.data.get_worker_info() or stoker.get_worker_info()
        return torch.tensor([index, -1 if info is None else info.id])


def test_all_workers_start_at_iter_and_batch_i_goes_to_worker_i_mod_n() -> None:
    loader = stoker.DataLoader(_WhoLoads(), batch_size=2, num_workers=3)
    iterator = iter(loader)
    assert len(worker_pids(iterator)) == 3  # before the first next(), as torch
    workers = [int(batch[0, 1]) for batch in iterator]
    assert workers == [i % 3 for i in range(12)]


_BARRIER: Any = None


def _wait_for_all(worker_id: int) -> None:
    _BARRIER.wait(timeout=20)


def test_workers_that_wait_for_each_other_in_worker_init_fn_do_not_hang() -> None:
    global _BARRIER
    _BARRIER = multiprocessing.get_context("fork").Barrier(3)
    loader = stoker.DataLoader(
        TensorDataset(n=12), batch_size=2, num_workers=3, worker_init_fn=_wait_for_all, timeout=30
    )
    assert len(list(loader)) == 6


def _seed_torch(worker_id: int) -> None:
    torch.manual_seed(1000 + worker_id)


class _TorchRandom(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> Any:
        return torch.randint(0, 2**30, (1,))


def test_torch_manual_seed_in_worker_init_fn_stays_in_force() -> None:
    loader = stoker.DataLoader(
        _TorchRandom(), batch_size=None, num_workers=2, worker_init_fn=_seed_torch
    )
    got = [int(x) for x in loader]
    expected = []
    for worker in range(2):
        torch.manual_seed(1000 + worker)
        expected.append([int(torch.randint(0, 2**30, (1,))) for _ in range(2)])
    assert got == [expected[0][0], expected[1][0], expected[0][1], expected[1][1]]


def test_the_global_start_method_is_honoured() -> None:
    script = textwrap.dedent("""
        import multiprocessing, torch, stoker
        if __name__ == "__main__":
            multiprocessing.set_start_method("spawn")
            loader = stoker.DataLoader(torch.arange(4), batch_size=2, num_workers=1)
            iterator = iter(loader)
            print(iterator._runner._context.get_start_method(), [b.tolist() for b in iterator])
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out.strip() == "spawn [[0, 1], [2, 3]]"


def test_next_after_too_many_errors_raises_again_instead_of_hanging() -> None:
    loader = stoker.DataLoader(
        FailingDataset(n=20, bad=3),
        batch_size=2,
        num_workers=2,
        on_error="skip",
        max_errors=0,
        timeout=20,
    )
    iterator = iter(loader)
    with pytest.raises(TooManyErrorsError) as first:
        list(iterator)
    with pytest.raises(TooManyErrorsError) as again:
        next(iterator)
    assert again.value is first.value


_RELEASE = threading.Event()


class _Forever(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> Any:
        if index == 5:
            _RELEASE.wait()  # stuck until the test lets it go
        return torch.tensor([index])


def test_a_thread_timeout_names_index_worker_and_stack() -> None:
    loader = stoker.DataLoader(
        _Forever(), batch_size=2, num_workers=2, worker_mode="thread", timeout=1.0
    )
    try:
        with pytest.raises(LoaderTimeoutError) as info:
            list(loader)
    finally:
        _RELEASE.set()  # the stuck thread finishes: no thread outlives the test
    text = str(info.value)
    assert "timed out after 1.0 seconds" in text and "dataset indices [4, 5]" in text
    assert "worker thread 0" in text and "in __getitem__" in text


def test_a_stuck_thread_does_not_keep_the_process_from_exiting() -> None:
    script = textwrap.dedent("""
        import threading, torch, stoker
        class Forever(stoker.Dataset):
            def __len__(self): return 4
            def __getitem__(self, i): threading.Event().wait()
        loader = stoker.DataLoader(Forever(), num_workers=1, worker_mode="thread", timeout=0.5)
        try:
            next(iter(loader))
        except stoker.LoaderTimeoutError:
            print("timed out")
    """)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    ).stdout
    assert out.strip() == "timed out"
    assert time.monotonic() - started < 30


class _InitError(Exception):
    pass


def _failing_init(worker_id: int) -> None:
    raise _InitError(f"no GPU for worker {worker_id}")


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_worker_init_fn_errors_keep_their_type(mode: str) -> None:
    loader = stoker.DataLoader(
        TensorDataset(n=8), num_workers=2, worker_mode=mode, worker_init_fn=_failing_init
    )
    with pytest.raises(_InitError, match="no GPU for worker"):
        list(loader)


class _Unpicklable(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> Any:
        return threading.Lock() if index == 3 else index


def test_an_unpicklable_sample_is_a_pickling_error_with_no_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader = stoker.DataLoader(
        _Unpicklable(), batch_size=2, num_workers=2, collate_fn=lambda samples: samples
    )
    with caplog.at_level(logging.WARNING, logger="stoker"), pytest.raises(TypeError) as info:
        list(loader)
    assert "pickle" in str(info.value) and "dataset indices [2, 3]" in str(info.value)
    assert not [r for r in caplog.records if "restarting" in r.getMessage()]


class _BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str is broken too")


class _RaisesBadStr(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> Any:
        raise _BadStr()


def test_an_exception_whose_str_raises_keeps_its_type() -> None:
    loader = stoker.DataLoader(_RaisesBadStr(), num_workers=1)
    with pytest.raises(_BadStr):
        list(loader)


@pytest.mark.parametrize(
    "options",
    [
        {"num_workers": 2},
        {"num_workers": 2, "persistent_workers": True},
        {"num_workers": 2, "worker_mode": "thread"},
        {},
    ],
)
def test_next_after_close_says_the_loader_was_closed(options: dict[str, Any]) -> None:
    loader = stoker.DataLoader(TensorDataset(n=40), batch_size=2, **options)
    iterator = iter(loader)
    next(iterator)
    loader.close()
    with pytest.raises(LoaderClosedError, match="closed"):
        next(iterator)


def test_growing_batches_do_not_keep_every_smaller_slot() -> None:
    sizes = list(range(1, 41))  # 40 batches, each bigger than the last: 3 KiB .. 120 KiB
    batches, start = [], 0
    for size in sizes:
        batches.append(list(range(start, start + size)))
        start += size
    dataset = TensorDataset(n=start, shape=(3, 16, 16))
    loader = stoker.DataLoader(dataset, batch_sampler=batches, num_workers=1)
    iterator = iter(loader)
    most = 0
    for _batch in iterator:
        most = max(most, len(iterator._runner.workers[0].ring.slots))
    del _batch
    assert most <= 2 * 2 + 3  # one ring: in flight plus headroom, not one per size


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_file_descriptors_stay_flat_over_worker_restarts() -> None:
    loader = stoker.DataLoader(
        TensorDataset(n=400),
        batch_size=4,
        num_workers=2,
        persistent_workers=True,
        max_worker_restarts=100,
    )
    counts = []
    for _epoch in range(4):
        iterator = iter(loader)
        for position, _batch in enumerate(iterator):
            if position in (3, 30):
                os.kill(worker_pids(iterator)[0], signal.SIGKILL)
        counts.append(_fd_count())
    loader.close()
    assert counts[-1] <= counts[0]


def test_a_stopped_worker_is_reported_once_when_there_is_no_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stopped for four stall periods (each 2.5 polls): one warning, not four
    monkeypatch.setattr(_engine, "STALL_WARNING_S", 0.25)
    loader = stoker.DataLoader(TensorDataset(n=16), batch_size=2, num_workers=1)
    iterator = iter(loader)
    next(iterator)
    pid = worker_pids(iterator)[0]
    os.kill(pid, signal.SIGSTOP)
    threading.Timer(1.0, os.kill, (pid, signal.SIGCONT)).start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rest = list(iterator)
    assert len(rest) == 7
    stalls = [w for w in caught if "no progress" in str(w.message)]
    assert len(stalls) == 1 and f"pid {pid}" in str(stalls[0].message)


_GROUP_SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import stoker

    class Slow(stoker.Dataset):
        def __len__(self): return 10_000
        def __getitem__(self, i):
            time.sleep(0.002)
            return np.zeros((3, 64, 64), dtype=np.float32)

    loader = stoker.DataLoader(Slow(), batch_size=16, num_workers=2, timeout=5)
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    print(" ".join(str(p) for p in [os.getpid()] + [w.pid for w in iterator._runner.workers]),
          flush=True)
    time.sleep(60)
""")


def _names_of(pid: int) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"stoker-{pid}-")]


def test_a_process_group_sigkill_leaves_nothing_once_the_next_loader_starts() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _GROUP_SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as parent:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(10)
    assert wait_until(lambda: not any(is_running(p) for p in pids))
    next(iter(stoker.DataLoader(TensorDataset(n=4), num_workers=1)))  # sweeps the dead's names
    assert _names_of(pids[0]) == []
    assert not list(Path(tempfile.gettempdir()).glob(f"stoker-{pids[0]}-*"))


_STOPPED_WORKER_SCRIPT = textwrap.dedent("""
    import os, signal, time
    import stoker, torch
    loader = stoker.DataLoader(torch.arange(1000), batch_size=2, num_workers=1)
    iterator = iter(loader)
    next(iterator)
    pid = iterator._runner.workers[0].pid
    os.kill(pid, signal.SIGSTOP)
    print(pid, flush=True)
    time.sleep(60)
""")


def test_a_stopped_worker_dies_with_its_sigkilled_loader() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _STOPPED_WORKER_SCRIPT], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        parent.kill()
        parent.wait(10)
    assert wait_until(
        lambda: not is_running(worker),
        5.0,
    ), "a stopped worker outlived its loader"


def test_more_workers_than_cores_gives_torchs_warning() -> None:
    loader = stoker.DataLoader(TensorDataset(n=4), num_workers=(os.cpu_count() or 1) + 1)
    with pytest.warns(UserWarning, match="This DataLoader will create"):
        iterator = iter(loader)
    del iterator
