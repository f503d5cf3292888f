"""Worker processes read SharedList datasets exactly; big Python lists warn once per loader."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import stoker
from stoker.datasets import ImageFolder, testdata

BIG = 100_001


class PathsDataset(stoker.Dataset[Any]):
    """``(path, label, scale, raw, holder type)`` read from ``items`` (list or SharedList)."""

    def __init__(self, items: Any, extra: Any = None):
        self.items, self.extra = items, extra

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        path, label, scale, raw = self.items[index]
        return path, label, scale, raw.hex(), type(self.items).__name__


def _items(n: int) -> list[tuple[str, int, float, bytes]]:
    return [
        (f"/data/é/{i:05d}\udc80.jpg", i % 7 - 3, i / 8, bytes([i % 256]) * (i % 3))
        for i in range(n)
    ]


# spawn: one worker, since each spawned worker imports torch afresh (seconds on 2 cores)
@pytest.mark.parametrize(("context", "workers"), [("fork", 2), ("spawn", 1)])
def test_workers_read_shared_list_items_exactly(context: str, workers: int) -> None:
    items = _items(300)
    loader = stoker.DataLoader(
        PathsDataset(stoker.SharedList(items)),
        batch_size=32,
        num_workers=workers,
        multiprocessing_context=context,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batches = list(loader)
    paths = [p for b in batches for p in b[0]]
    labels = torch.cat([b[1] for b in batches]).tolist()
    scales = torch.cat([b[2] for b in batches]).tolist()
    raws = [bytes.fromhex(r) for b in batches for r in b[3]]
    assert list(zip(paths, labels, scales, raws, strict=True)) == items
    assert {name for b in batches for name in b[4]} == {"SharedList"}


def test_big_list_warns_once_per_loader(caplog: pytest.LogCaptureFixture) -> None:
    dataset = PathsDataset(stoker.SharedList(_items(8)), extra=[0] * BIG)
    for _ in range(2):  # each loader warns at its own first epoch only
        loader = stoker.DataLoader(dataset, batch_size=4, num_workers=2)
        with caplog.at_level(logging.WARNING, logger="stoker"), pytest.warns(UserWarning) as caught:
            assert len(list(loader)) == 2
        assert [str(w.message) for w in caught if "SharedList" in str(w.message)] == [
            next(str(w.message) for w in caught)
        ]
        assert "dataset.extra is a Python list of 100,001 items" in str(caught[0].message)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(list(loader)) == 2  # second epoch: silent
        logged = [r for r in caplog.records if "SharedList" in r.getMessage()]
        assert len(logged) == 1
        caplog.clear()


def test_persistent_workers_warn_once() -> None:
    dataset = PathsDataset(_items(8), extra=tuple(range(BIG)))
    loader = stoker.DataLoader(dataset, batch_size=4, num_workers=1, persistent_workers=True)
    with pytest.warns(UserWarning, match=r"dataset\.extra is a Python tuple of 100,001 items"):
        list(loader)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(loader)
    loader.close()


def test_shared_list_dataset_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    dataset = PathsDataset(stoker.SharedList(_items(8)), extra=stoker.SharedList(range(BIG)))
    loader = stoker.DataLoader(dataset, batch_size=4, num_workers=2)
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="stoker"):
        warnings.simplefilter("error")
        assert len(list(loader)) == 2
    assert not [r for r in caplog.records if "SharedList" in r.getMessage()]


def test_image_folder_loads_the_same_in_forked_workers(tmp_path: Path) -> None:
    testdata.write_image_folder(
        tmp_path,
        {
            "cat": testdata.random_images(5, 8, 8, seed=1),
            "dog": testdata.random_images(6, 8, 8, seed=2),
        },
    )
    dataset = ImageFolder(tmp_path, transform=np.asarray)
    assert isinstance(dataset.samples, stoker.SharedList)
    reference = list(stoker.DataLoader(dataset, batch_size=4))
    forked = list(stoker.DataLoader(dataset, batch_size=4, num_workers=2))
    assert len(forked) == len(reference) == 3
    for ours, theirs in zip(forked, reference, strict=True):
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
