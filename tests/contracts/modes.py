"""The loader modes and dataset kinds every delivery contract is checked over.

Every dataset kind returns, for each sample, its dataset index (or stream position) as the
first field, so a check can tell which samples arrived; the second field is a payload large
enough that batches travel through shared memory, not inline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import stoker
from stoker import seeding

PAYLOAD_SHAPE = (3, 16, 16)  # 3 KiB of float32 a sample: a batch of 8 crosses in a slot

MODES: dict[str, dict[str, Any]] = {
    "in-process": {"num_workers": 0},
    "fresh": {"num_workers": 2},
    "persistent": {"num_workers": 2, "persistent_workers": True},
    "threads": {"num_workers": 2, "worker_mode": "thread"},
    "spawn": {"num_workers": 2, "multiprocessing_context": "spawn", "persistent_workers": True},
}
PROCESS_MODES = ["fresh", "persistent", "spawn"]


class PerSample(stoker.Dataset[Any]):
    def __init__(self, n: int, fail_at: int | None = None):
        self.n, self.fail_at = n, fail_at

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        if index == self.fail_at:
            raise ValueError(f"corrupt sample {index}")
        return index, torch.full(PAYLOAD_SHAPE, float(index))


class Batched(PerSample):
    """The same samples, with a whole-batch ``__getitems__``."""

    def __getitems__(self, indices: list[int]) -> Any:
        if self.fail_at in indices:
            raise ValueError(f"corrupt sample {self.fail_at}")
        payload = torch.tensor(indices, dtype=torch.float32)[:, None, None, None]
        return stoker.CollatedSamples(
            (torch.tensor(indices), payload.expand(len(indices), *PAYLOAD_SHAPE).contiguous()),
            len(indices),
        )


class Augmenting(PerSample):
    """Per-sample random augmentation from (seed, epoch, index)."""

    def __getitem__(self, index: int) -> Any:
        if index == self.fail_at:
            raise ValueError(f"corrupt sample {index}")
        noise = seeding.sample_rng().standard_normal(PAYLOAD_SHAPE).astype(np.float32)
        return index, torch.from_numpy(noise)


class Stream(stoker.IterableDataset[Any]):
    """0..n-1 sharded over workers as torch documents; ``fail_at`` raises once per pass."""

    def __init__(self, n: int, fail_at: int | None = None):
        self.n, self.fail_at = n, fail_at

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        info = stoker.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, self.n, step):
            if i == self.fail_at:
                raise ValueError(f"corrupt sample {i}")
            yield i, torch.full(PAYLOAD_SHAPE, float(i))


KINDS: dict[str, Callable[..., Any]] = {
    "per-sample": PerSample,
    "getitems": Batched,
    "augmenting": Augmenting,
    "iterable": Stream,
}


# A spawned worker imports torch afresh: 5-14 s a spawn case on 2 cores, 2.5 minutes of the
# default run in all. Spawn cases are marked slow: CI's `-m slow` step runs them.
_SPAWN_MARKS = (pytest.mark.slow,)


def mode_params(modes: list[str] | None = None) -> list[Any]:
    """Each mode as a pytest param; spawn's marked slow."""
    return [
        pytest.param(mode, id=mode, marks=_SPAWN_MARKS if mode == "spawn" else ())
        for mode in modes or list(MODES)
    ]


def combinations(modes: list[str] | None = None, spawn_kinds: tuple[str, ...] = ()) -> list[Any]:
    """(mode, kind) pairs that make sense: threads need a map-style dataset. A spawned worker
    imports torch afresh (seconds), so spawn runs only with ``spawn_kinds``, marked slow."""
    pairs = []
    for mode in modes or list(MODES):
        for kind in KINDS:
            if mode == "threads" and kind == "iterable":
                continue
            if mode == "spawn" and kind not in spawn_kinds:
                continue
            marks = _SPAWN_MARKS if mode == "spawn" else ()
            pairs.append(pytest.param(mode, kind, id=f"{mode}-{kind}", marks=marks))
    return pairs


def make_loader(mode: str, kind: str, n: int = 40, batch_size: int = 8, **extra: Any) -> Any:
    fail_at = extra.pop("fail_at", None)
    dataset = KINDS[kind](n, fail_at=fail_at)
    shuffle = extra.pop("shuffle", kind != "iterable" and "sampler" not in extra)
    return stoker.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, seed=11, **MODES[mode], **extra
    )


def indices_of(batches: list[Any]) -> list[int]:
    return [int(i) for batch in batches for i in batch[0]]


def as_comparable(batches: list[Any], kind: str) -> Any:
    """What must equal the reference: the batches themselves (map-style), or — for a stream,
    whose batches interleave the workers' shards as torch's do — every sample's content."""
    if kind != "iterable":
        return [(batch[0].tolist(), batch[1].numpy().tobytes()) for batch in batches]
    return sorted(
        (int(index), sample.numpy().tobytes())
        for batch in batches
        for index, sample in zip(batch[0], batch[1], strict=True)
    )


def worker_pids(iterator: Any) -> list[int]:
    """The pids of a process-mode iterator's live workers (test introspection)."""
    return [w.pid for w in iterator._runner.workers if w is not None and w.alive]
