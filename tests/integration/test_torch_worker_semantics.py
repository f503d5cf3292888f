"""Worker processes behave as torch's: start methods, seeds, pickling errors, ``it._workers``.

Each test states one behaviour that code written against ``torch.utils.data.DataLoader`` relies
on, and checks it against torch's loader where torch can answer the same question.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.utils.data

from stoker import DataLoader
from tests.helpers import TensorDataset, assert_batches_equal
from tests.integration.conftest import is_running, wait_until


class _WhoLoads(torch.utils.data.Dataset[Any]):
    """Each sample: (worker id, worker pid, the seed torch's worker info reports, its initial)."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> Any:
        info = torch.utils.data.get_worker_info()
        assert info is not None
        return info.id, os.getpid(), info.seed, torch.initial_seed()


def _seeds_by_worker(loader: Any) -> dict[int, int]:
    seeds: dict[int, int] = {}
    for worker_id, _pid, seed, initial in loader:
        assert seed == initial  # the worker's torch RNG was seeded with what it reports
        seeds[worker_id] = seed
    return seeds


@pytest.mark.parametrize("persistent", [False, True])
def test_forkserver_workers_load_every_batch(persistent: bool) -> None:
    """A forkserver worker is the fork server's child, not the loader's; it must still work."""
    # The server imports what the workers unpickle once, as a user's script (its __main__,
    # preloaded by default) does: each worker otherwise imported torch afresh, 2-3 s apiece.
    # (A server an earlier test started keeps its preload.) The SIGKILL test below runs the
    # default preload.
    multiprocessing.set_forkserver_preload(["torch", "stoker", "tests.helpers"])
    loader = DataLoader(
        TensorDataset(n=12),
        batch_size=4,
        num_workers=2,
        multiprocessing_context="forkserver",
        persistent_workers=persistent,
    )
    reference = list(DataLoader(TensorDataset(n=12), batch_size=4))
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(reference)
        for ours, theirs in zip(batches, reference):
            assert_batches_equal(ours, theirs)
    loader.close()


_FORKSERVER_PARENT_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, time
    import torch
    import stoker

    class Stuck(torch.utils.data.Dataset):
        def __len__(self): return 100
        def __getitem__(self, i):
            if i >= 2:
                time.sleep(120)  # only the loader's death can end this worker now
            return i

    if __name__ == "__main__":
        loader = stoker.DataLoader(
            Stuck(), batch_size=1, num_workers=2, multiprocessing_context="forkserver"
        )
        iterator = iter(loader)
        assert [int(next(iterator)), int(next(iterator))] == [0, 1]
        print(" ".join(str(w.pid) for w in iterator._workers), flush=True)
        time.sleep(120)
    """
)


def test_forkserver_workers_exit_when_the_loader_is_sigkilled(tmp_path: Path) -> None:
    """Busy forkserver workers notice their loader's death (it is not their parent)."""
    script = tmp_path / "loader_main.py"
    script.write_text(_FORKSERVER_PARENT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    ) as parent:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2, "the forkserver loader did not deliver its first batches"
        parent.kill()
        parent.wait(5)

        def gone() -> bool:
            return not any(is_running(p) for p in pids)

        assert wait_until(gone, 5.0), "forkserver workers outlived their SIGKILLed loader"


def test_unpicklable_worker_argument_warns_as_torch_and_raises() -> None:
    """spawn pickles worker_init_fn; a local function cannot be: torch's warning, then the error."""

    def local_init(worker_id: int) -> None:
        pass

    loader = DataLoader(
        TensorDataset(n=4),
        batch_size=2,
        num_workers=2,
        worker_init_fn=local_init,
        multiprocessing_context="spawn",
    )
    with (
        pytest.warns(UserWarning, match="Got pickle error when attempting to start a worker"),
        pytest.raises((AttributeError, TypeError, pickle.PicklingError)) as raised,
    ):
        next(iter(loader))
    assert "pickle" in str(raised.value).lower()


def test_iterator_workers_are_torchs_view_of_the_processes() -> None:
    """``it._workers``: the processes by worker id, right after iter(); gone after ``del``."""
    loader = DataLoader(_WhoLoads(), batch_size=None, num_workers=2)
    it = iter(loader)
    workers = it._workers
    assert len(workers) == 2
    assert all(isinstance(w, multiprocessing.process.BaseProcess) for w in workers)
    pids = [w.pid for w in workers]
    seen = {}
    for _ in range(4):
        worker_id, pid, _seed, _initial = next(it)
        seen[int(worker_id)] = int(pid)
    assert seen == {0: pids[0], 1: pids[1]}
    workers.clear()  # a snapshot: changing it changes nothing in the iterator
    assert len(it._workers) == 2
    processes = it._workers
    del it
    gc.collect()
    for process in processes:
        process.join(5)
        assert not process.is_alive()
    assert iter(DataLoader(TensorDataset(n=4), num_workers=0))._workers == []  # type: ignore[attr-defined]


class _UnevenShards(torch.utils.data.IterableDataset[int]):
    """Worker ``w`` yields ``range(sizes[w])``: torch's WorkerSpecificIterableDataset."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes

    def __iter__(self) -> Any:
        info = torch.utils.data.get_worker_info()
        assert info is not None
        return iter(range(self.sizes[info.id]))


@pytest.mark.parametrize("round_", range(3))
def test_workers_read_after_an_epoch_join_as_exited(round_: int) -> None:
    """torch's test_iterable_style_dataset joins ``it._workers`` after the epoch and checks
    each exited with code 0: stoker's reaper joining them too made that join return at once
    with the process still "alive" (a waitpid race), in 2 of 3 rounds."""
    loader = DataLoader(_UnevenShards([0, 4, 20]), num_workers=3, batch_size=7)
    it = iter(loader)
    assert len(list(it)) == 4
    workers = it._workers
    del it, loader
    for worker in workers:
        worker.join(60)
        assert not worker.is_alive()
        assert worker.exitcode == 0


def test_worker_seeds_equal_torchs_with_a_generator() -> None:
    """torch draws base_seed from the loader's generator at iter(); worker i gets base + i."""
    for persistent in (False, True):
        theirs = torch.utils.data.DataLoader(
            _WhoLoads(),
            batch_size=None,
            num_workers=2,
            generator=torch.Generator().manual_seed(42),
            persistent_workers=persistent,
        )
        ours = DataLoader(
            _WhoLoads(),
            batch_size=None,
            num_workers=2,
            generator=torch.Generator().manual_seed(42),
            persistent_workers=persistent,
        )
        for _epoch in range(2):
            assert _seeds_by_worker(ours) == _seeds_by_worker(theirs)
        ours.close()


def test_worker_seeds_follow_the_global_rng_at_iter_as_torchs_do() -> None:
    """Without seed= or generator, base_seed is drawn from torch's RNG at each iter(): seeding
    the global RNG before each epoch gives the workers the same seeds again, as in torch."""
    loader = DataLoader(_WhoLoads(), batch_size=None, num_workers=2)
    torch.manual_seed(7)
    first = _seeds_by_worker(loader)
    torch.manual_seed(7)
    again = _seeds_by_worker(loader)
    third = _seeds_by_worker(loader)
    assert first == again and len(set(first.values())) == 2
    assert third != first


def test_worker_seeds_with_seed_are_fixed_per_epoch_whatever_the_global_rng() -> None:
    """stoker's seed= decides the worker seeds of every epoch: the same in every run."""
    seeds = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        loader = DataLoader(_WhoLoads(), batch_size=None, num_workers=2, seed=5)
        seeds.append([_seeds_by_worker(loader), _seeds_by_worker(loader)])
    assert seeds[0] == seeds[1]
    assert seeds[0][0] != seeds[0][1]  # a new epoch, new worker seeds


class _Overlong(torch.utils.data.IterableDataset[int]):
    """Reports 4 samples but each of 2 workers yields 4: torch's replica misconfiguration."""

    def __len__(self) -> int:
        return 4

    def __iter__(self) -> Any:
        return iter(range(4))


def test_stream_longer_than_its_len_warns_with_torchs_multiprocess_text() -> None:
    loader = DataLoader(_Overlong(), batch_size=None, num_workers=2)
    assert len(loader) == 4
    it = iter(loader)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            next(it)
    with pytest.warns(UserWarning, match=r"but 5 samples have been fetched\. For multiprocessing"):
        next(it)
    del it
    gc.collect()


class _Terminates(torch.utils.data.Dataset[Any]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        return index


def test_worker_killed_by_a_signal_is_reported_in_torchs_words() -> None:
    """torch: "DataLoader worker (pid N) is killed by signal: Terminated." — a RuntimeError."""
    loader = DataLoader(_Terminates(), batch_size=2, num_workers=1, on_worker_death="raise")
    with pytest.raises(RuntimeError) as raised:
        next(iter(loader))
    message = str(raised.value)
    torchs = r"DataLoader worker \(pid \d+\) is killed by signal: Terminated \(SIGTERM\)"
    assert re.match(torchs, message), message
    assert "dataset indices [0, 1]" in message


@pytest.mark.parametrize("persistent", [False])  # persistent: a deliberate difference, below
def test_shuffle_with_a_generator_equals_torchs_epoch_after_epoch(persistent: bool) -> None:
    """torch draws base_seed from the generator at iter(); the sampler shuffles from what is
    left: the orders only match if stoker draws as torch does. (torch's persistent iterator
    draws once; stoker draws every epoch whatever persistent_workers, so that batches and
    resumes do not depend on it: test_persistent_workers_do_not_change_generator_orders.)"""

    def make(cls: Any) -> Any:
        return cls(
            list(range(10)),
            batch_size=3,
            shuffle=True,
            num_workers=2,
            persistent_workers=persistent,
            generator=torch.Generator().manual_seed(3),
        )

    ours, theirs = make(DataLoader), make(torch.utils.data.DataLoader)
    for _epoch in range(3):
        assert [b.tolist() for b in ours] == [b.tolist() for b in theirs]
    ours.close()


def test_persistent_workers_do_not_change_generator_orders() -> None:
    def make(**options: Any) -> Any:
        return DataLoader(
            list(range(10)), batch_size=3, shuffle=True,
            generator=torch.Generator().manual_seed(3), **options,
        )  # fmt: skip

    loaders = [make(), make(num_workers=2), make(num_workers=2, persistent_workers=True)]
    epochs = [[[b.tolist() for b in loader] for _ in range(3)] for loader in loaders]
    assert epochs[0] == epochs[1] == epochs[2]
    assert len({str(e) for e in epochs[0]}) == 3  # each epoch its own order
    loaders[2].close()


class _FirstWaitsForLast(torch.utils.data.Dataset[Any]):
    """Index 0 blocks until index 9 was loaded: only work moving off a busy worker finishes."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> Any:
        if index == 9:
            self.flag.touch()
        if index == 0:
            deadline = time.monotonic() + 20
            while not self.flag.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("index 9 never came: work stayed queued on worker 0")
                time.sleep(0.01)
        info = torch.utils.data.get_worker_info()
        return info.id if info is not None else -1, index


def test_out_of_order_sends_work_to_workers_with_room_as_torch_does(tmp_path: Path) -> None:
    """in_order=False: torch gives each task to the next worker with < prefetch_factor tasks."""
    outputs = []
    for name, cls in (("torch", torch.utils.data.DataLoader), ("stoker", DataLoader)):
        loader = cls(
            _FirstWaitsForLast(tmp_path / name),
            batch_size=None,
            num_workers=2,
            prefetch_factor=2,
            in_order=False,
        )
        outputs.append([(int(w), int(i)) for w, i in loader])
    theirs, ours = outputs
    # Which worker loaded what is torch's. 9 is sent once 7 was delivered, and 0 waits for 9:
    # 1 to 7 come first; 8 and 9 against 0 and 2 is a race.
    assert sorted(ours, key=lambda row: row[1]) == sorted(theirs, key=lambda row: row[1])
    assert sorted(ours) == [(0, 0), (0, 2)] + [(1, i) for i in (1, 3, 4, 5, 6, 7, 8, 9)]
    assert ours[:6] == [(1, i) for i in (1, 3, 4, 5, 6, 7)]


def test_persistent_workers_outlive_a_loader_only_the_iterator_references() -> None:
    """``for x in DataLoader(..., persistent_workers=True)``: nothing else holds the loader."""
    it = iter(DataLoader(TensorDataset(n=20), batch_size=2, num_workers=2, persistent_workers=True))
    gc.collect()
    assert len(list(it)) == 10
    processes = it._workers  # type: ignore[attr-defined]
    del it
    gc.collect()
    for process in processes:  # the loader went with its iterator, and its workers with it
        process.join(5)
        assert not process.is_alive()


class _SecondStreamWaitsForFirst(torch.utils.data.IterableDataset[Any]):
    """Worker 0 streams 0-4, worker 1 streams 5-9, but 5 blocks until 4 was loaded."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __iter__(self) -> Any:
        info = torch.utils.data.get_worker_info()
        assert info is not None
        for index in range(info.id * 5, info.id * 5 + 5):
            if index == 4:
                self.flag.touch()
            if index == 5:
                deadline = time.monotonic() + 20
                while not self.flag.exists():
                    if time.monotonic() > deadline:
                        raise TimeoutError("4 never came: worker 0 got no room to stream")
                    time.sleep(0.01)
            yield info.id, index


def test_out_of_order_streams_go_on_where_there_is_room_as_torchs_do(tmp_path: Path) -> None:
    """in_order=False with an IterableDataset: a stalled stream does not hold up the others."""
    outputs = []
    for name, cls in (("torch", torch.utils.data.DataLoader), ("stoker", DataLoader)):
        loader = cls(
            _SecondStreamWaitsForFirst(tmp_path / name),
            batch_size=None,
            num_workers=2,
            in_order=False,
        )
        outputs.append([(int(w), int(i)) for w, i in loader])
    theirs, ours = outputs
    assert sorted(ours) == sorted(theirs) == [(i // 5, i) for i in range(10)]
    assert ours[:4] == theirs[:4] == [(0, i) for i in range(4)]  # 4 may race with 5
