"""The loader-start check finds big Python containers in datasets and their wrappers, cheaply."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pytest
import torch.utils.data

import stoker
from stoker._copy_on_read import LARGE_CONTAINER_ITEMS, large_containers, warn_if_copy_on_read

BIG = LARGE_CONTAINER_ITEMS + 1


class Holder(stoker.Dataset[Any]):
    """A small dataset (4 samples) carrying whatever attributes it is given."""

    def __init__(self, **attributes: Any):
        self.__dict__.update(attributes)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        return index


class Untouchable(list):  # type: ignore[type-arg]
    """A list whose items cannot be read: a check that walks items fails on it."""

    def __iter__(self) -> Any:
        raise AssertionError("the check iterated a long list")

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("the check read an item of a long list")


def test_finds_list_tuple_and_dict_attributes_with_their_lengths() -> None:
    ds = Holder(paths=[""] * BIG, boxes=(0,) * (BIG + 1), meta=dict.fromkeys(range(BIG)))
    assert large_containers(ds) == [
        ("dataset.boxes", "tuple", BIG + 1),
        ("dataset.meta", "dict", BIG),
        ("dataset.paths", "list", BIG),
    ]


def test_threshold_is_more_than_100000_items() -> None:
    assert LARGE_CONTAINER_ITEMS == 100_000
    assert large_containers(Holder(paths=[0] * 100_000)) == []
    assert large_containers(Holder(paths=[0] * 100_001)) == [("dataset.paths", "list", 100_001)]


def test_compact_storage_is_not_reported() -> None:
    ds = Holder(
        paths=stoker.SharedList([f"{i}.jpg" for i in range(BIG)]),
        labels=np.zeros(BIG, dtype=np.int64),
        data=torch.zeros(BIG),
        text="x" * BIG,
    )
    assert large_containers(ds) == []


def test_looks_through_wrappers() -> None:
    inner = Holder(paths=[""] * BIG)
    small = Holder(paths=[""] * 10)
    assert large_containers(stoker.Subset(inner, [0, 1])) == [
        ("dataset.dataset.paths", "list", BIG)
    ]
    assert large_containers(torch.utils.data.Subset(inner, [0])) == [
        ("dataset.dataset.paths", "list", BIG)
    ]
    assert large_containers(inner.map(str)) == [("dataset.dataset.paths", "list", BIG)]
    assert large_containers(stoker.ConcatDataset([small, inner])) == [
        ("dataset.datasets[1].paths", "list", BIG)
    ]
    assert large_containers(torch.utils.data.ConcatDataset([inner, small])) == [
        ("dataset.datasets[0].paths", "list", BIG)
    ]
    nested = stoker.Subset(stoker.ConcatDataset([small, inner.map(str)]), [0])
    assert large_containers(nested) == [("dataset.dataset.datasets[1].dataset.paths", "list", BIG)]


def test_a_list_as_the_dataset_is_reported() -> None:
    assert large_containers(list(range(BIG))) == [("dataset", "list", BIG)]


def test_a_subset_of_a_million_indices_is_compact() -> None:
    assert large_containers(stoker.Subset(Holder(), list(range(BIG)))) == []
    assert large_containers(torch.utils.data.Subset(Holder(), list(range(BIG)))) == [
        ("dataset.indices", "list", BIG)
    ]


def test_reads_lengths_never_items() -> None:
    found = large_containers(Holder(paths=Untouchable([0] * BIG)))
    assert found == [("dataset.paths", "Untouchable", BIG)]


def test_cycles_and_deep_nesting_end() -> None:
    a = Holder()
    b = Holder(other=a)
    a.other = b
    assert large_containers(a) == []
    deep: Any = Holder(paths=[0] * BIG)
    for _ in range(10):
        deep = stoker.Subset(deep, [0])
    assert large_containers(deep) == []  # beyond _MAX_DEPTH wrappers: not followed


def test_warns_on_the_stoker_logger_and_as_user_warning(caplog: pytest.LogCaptureFixture) -> None:
    ds = Holder(paths=[""] * 2_000_000)
    with caplog.at_level(logging.WARNING, logger="stoker"), pytest.warns(UserWarning) as caught:
        assert warn_if_copy_on_read(ds) is True
    (warning,) = caught
    message = str(warning.message)
    assert "dataset.paths is a Python list of 2,000,000 items" in message
    assert "stoker.SharedList" in message and "#13246" in message
    assert [r.getMessage() for r in caplog.records if r.name == "stoker"] == [message]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_copy_on_read(Holder(paths=[""] * 10)) is False


@pytest.mark.parametrize(
    "settings", [{"num_workers": 0}, {"num_workers": 2, "worker_mode": "thread"}]
)
def test_no_warning_without_worker_processes(
    settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    loader = stoker.DataLoader(Holder(paths=[""] * BIG), batch_size=2, **settings)
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="stoker"):
        warnings.simplefilter("error")
        assert [len(b) for b in loader] == [2, 2]
    assert not [r for r in caplog.records if "SharedList" in r.getMessage()]
