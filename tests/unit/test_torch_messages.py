"""stoker's loader refuses what torch's refuses, with torch's exception type and torch's words;
it warns where torch warns, in torch's words, and is generic as torch's is.

Each case is run through ``torch.utils.data.DataLoader`` first: the test takes torch's exception
as the reference, so it checks stoker against the installed torch, not against a copy of its
messages. stoker may add to the message (the value, what to do) but only after torch's text.
No case here starts a worker: every check happens in the constructor.
"""

from __future__ import annotations

import typing
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.utils.data

from stoker import DataLoader


class _Stream(torch.utils.data.IterableDataset[int]):
    def __init__(self, n: int, reported: int | None = None) -> None:
        self.n, self.reported = n, n if reported is None else reported

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.reported


_MAP = list(range(10))
_STREAM = _Stream(10)
_SAMPLER = torch.utils.data.SequentialSampler(_MAP)
_BATCHES = torch.utils.data.BatchSampler(_SAMPLER, 3, False)
_CONTEXT = torch.multiprocessing.get_all_start_methods()[-1]
_NOT_A_CONTEXT = object()

_REFUSED: dict[str, tuple[Any, dict[str, Any]]] = {
    "negative num_workers": (_MAP, {"num_workers": -1}),
    "negative timeout": (_MAP, {"timeout": -1}),
    "prefetch_factor without workers": (_MAP, {"prefetch_factor": 2}),
    "negative prefetch_factor": (_MAP, {"num_workers": 1, "prefetch_factor": -1}),
    "persistent_workers without workers": (_MAP, {"persistent_workers": True}),
    "context without workers": (_MAP, {"multiprocessing_context": _CONTEXT}),
    "unknown start method": (_MAP, {"num_workers": 1, "multiprocessing_context": "bad"}),
    "not a context": (_MAP, {"num_workers": 1, "multiprocessing_context": _NOT_A_CONTEXT}),
    "batch_size=None and drop_last": (_MAP, {"batch_size": None, "drop_last": True}),
    "zero batch_size": (_MAP, {"batch_size": 0}),
    "bool batch_size": (_MAP, {"batch_size": True}),
    "non-bool drop_last": (_MAP, {"batch_size": 2, "drop_last": 3}),
    "sampler and shuffle": (_MAP, {"batch_size": 11, "sampler": _SAMPLER, "shuffle": True}),
    "sampler before batch_sampler": (
        _MAP,
        {"batch_sampler": _BATCHES, "sampler": _SAMPLER, "shuffle": 3},
    ),
    "batch_sampler and batch_size": (_MAP, {"batch_sampler": _BATCHES, "batch_size": 11}),
    "batch_sampler and shuffle": (_MAP, {"batch_sampler": _BATCHES, "shuffle": True}),
    "batch_sampler and drop_last": (_MAP, {"batch_sampler": _BATCHES, "drop_last": 3}),
    "stream and shuffle": (_STREAM, {"shuffle": True}),
    "stream and shuffle=3": (_STREAM, {"shuffle": 3}),
    "stream and sampler": (_STREAM, {"sampler": _SAMPLER}),
    "stream and batch_sampler": (_STREAM, {"batch_sampler": 3}),
    "stream and zero batch_size": (_STREAM, {"batch_size": 0}),
    "num_workers before the stream": (_STREAM, {"num_workers": -1, "shuffle": True}),
}


@pytest.mark.parametrize("case", list(_REFUSED))
def test_refused_like_torch_with_torchs_message_first(case: str) -> None:
    dataset, kwargs = _REFUSED[case]
    with pytest.raises((ValueError, TypeError)) as theirs:  # torch's is the reference
        torch.utils.data.DataLoader(dataset, **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        DataLoader(dataset, **kwargs)
    assert str(ours.value).startswith(str(theirs.value)), (str(ours.value), str(theirs.value))


def test_prefetch_factor_zero_is_refused_where_torch_yields_nothing() -> None:
    """A deliberate difference: torch accepts it and then sends no task (an empty epoch)."""
    with pytest.raises(ValueError, match=r"prefetch_factor should be a positive integer.*got 0"):
        DataLoader(_MAP, num_workers=1, prefetch_factor=0)


def test_too_many_workers_warns_at_construction_as_torch_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch._utils, "cpu_count", lambda: 2)
    with pytest.warns(UserWarning, match="This DataLoader will create 3 worker processes") as ours:
        DataLoader(_MAP, num_workers=3)
    with pytest.warns(UserWarning) as theirs:
        torch.utils.data.DataLoader(_MAP, num_workers=3)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DataLoader(_MAP, num_workers=2)
        DataLoader(_MAP, num_workers=3, worker_mode="thread")  # threads are not processes


def test_pin_memory_device_is_deprecated_as_in_torch() -> None:
    with pytest.warns(UserWarning, match="pin_memory_device is deprecated.*'cuda'"):
        DataLoader(_MAP, pin_memory=True, pin_memory_device="cuda")


class TestIterableLengthWarning:
    """torch's NOTE [ IterableDataset and __len__ ]: warn once a stream outgrows len()."""

    def test_no_warning_until_len_was_asked(self) -> None:
        loader = DataLoader(_Stream(8, reported=4), batch_size=None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert list(loader) == list(range(8))

    def test_every_batch_past_the_reported_length_warns_with_torchs_text(self) -> None:
        dataset = _Stream(7, reported=4)
        loader = DataLoader(dataset, batch_size=None)
        assert len(loader) == 4
        it = iter(loader)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert [next(it) for _ in range(4)] == [0, 1, 2, 3]
        for fetched in (5, 6, 7):
            with pytest.warns(UserWarning) as caught:
                next(it)
            assert str(caught[0].message) == (
                f"Length of IterableDataset {dataset} was reported to be 4(when accessing "
                f"len(dataloader)), but {fetched} samples have been fetched. "
            )

    def test_len_counts_batches_against_samples_as_torch_does(self) -> None:
        """torch compares batches yielded with len(dataset); stoker keeps that rule."""
        loader = DataLoader(_Stream(12, reported=2), batch_size=4)
        assert len(loader) == 1
        it = iter(loader)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            next(it), next(it)
        with pytest.warns(UserWarning, match="but 3 samples have been fetched"):
            next(it)


def test_loader_is_generic_like_torchs() -> None:
    """``DataLoader[list[torch.Tensor]]`` in an annotation works with torch's; so with stoker's."""
    alias = DataLoader[list[torch.Tensor]]
    assert typing.get_origin(alias) is DataLoader
    assert typing.get_args(alias) == (list[torch.Tensor],)
