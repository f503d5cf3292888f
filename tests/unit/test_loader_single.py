"""The in-process DataLoader (num_workers=0) gives torch's batches, validates, and resumes."""

from __future__ import annotations

import functools
import json
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
    TensorDataset,
    assert_batches_equal,
)


class DictDataset(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 21

    def __getitem__(self, index: int) -> Any:
        return {"x": np.full(3, index, dtype=np.float32), "name": f"s{index}", "id": index}


class VarLenDataset(stoker.Dataset[Any]):
    def __len__(self) -> int:
        return 19

    def __getitem__(self, index: int) -> Any:
        return torch.arange(index % 5 + 1), index % 3


class Stream(torch.utils.data.IterableDataset[Any]):
    def __iter__(self) -> Any:
        return iter(torch.tensor([i, -i]) for i in range(17))


CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "tensors": (TensorDataset(), {"batch_size": 4}),
    "tensors-shuffle": (TensorDataset(), {"batch_size": 5, "shuffle": True}),
    "tensors-drop-last": (TensorDataset(), {"batch_size": 5, "drop_last": True, "shuffle": True}),
    "numpy-getitems": (BatchedDataset(), {"batch_size": 8, "shuffle": True}),
    "dicts-strings": (DictDataset(), {"batch_size": 6}),
    "list": (list(range(16)), {"batch_size": 8}),
    "tuples": ([(i, float(i), str(i)) for i in range(11)], {"batch_size": 3, "shuffle": True}),
    "pad-collate": (VarLenDataset(), {"batch_size": 4, "collate_fn": stoker.pad_collate}),
    "pad-collate-value": (
        VarLenDataset(),
        {"batch_size": 4, "collate_fn": functools.partial(stoker.pad_collate, padding_value=-1)},
    ),
    "batch-size-none": (DictDataset(), {"batch_size": None, "shuffle": True}),
    "iterable": (Stream(), {"batch_size": 5}),
    "iterable-drop-last": (Stream(), {"batch_size": 5, "drop_last": True}),
    "iterable-unbatched": (Stream(), {"batch_size": None}),
    "replacement-sampler": (
        TensorDataset(),
        {"batch_size": 4, "sampler": "random-replacement"},
    ),
}


def make_sampler(spec: Any, dataset: Any, generator: torch.Generator, ours: bool) -> Any:
    if spec != "random-replacement":
        return spec
    cls = stoker.RandomSampler if ours else torch.utils.data.RandomSampler
    return cls(dataset, replacement=True, num_samples=30, generator=generator)


@pytest.mark.parametrize("case", CASES)
def test_batches_equal_torch(case: str) -> None:
    dataset, kwargs = CASES[case]
    ours_gen, torch_gen = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    ours_kwargs = dict(kwargs, sampler=make_sampler(kwargs.get("sampler"), dataset, ours_gen, True))
    theirs_kwargs = dict(
        kwargs, sampler=make_sampler(kwargs.get("sampler"), dataset, torch_gen, False)
    )
    ours = DataLoader(dataset, generator=ours_gen, **ours_kwargs)
    theirs = torch.utils.data.DataLoader(dataset, generator=torch_gen, **theirs_kwargs)
    for _epoch in range(2):
        ours_batches, theirs_batches = list(ours), list(theirs)
        assert len(ours_batches) == len(theirs_batches)
        for a, b in zip(ours_batches, theirs_batches):
            assert_batches_equal(a, b)
    if not isinstance(dataset, torch.utils.data.IterableDataset) or hasattr(dataset, "__len__"):
        assert len(ours) == len(theirs)


def test_seed_naive_dataloader_example() -> None:
    batches = list(DataLoader(list(range(16)), batch_size=8))
    assert len(batches) == 2
    assert torch.equal(batches[0], torch.arange(8)) and torch.equal(batches[1], torch.arange(8, 16))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_workers": -1}, "num_workers"),
        ({"timeout": -1}, "timeout"),
        ({"prefetch_factor": 2}, "prefetch_factor"),
        ({"num_workers": 1, "prefetch_factor": 0}, "prefetch_factor"),
        ({"persistent_workers": True}, "persistent_workers"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": None, "drop_last": True}, "drop_last"),
        ({"sampler": [0, 1], "shuffle": True}, "mutually exclusive"),
        ({"batch_sampler": [[0, 1]], "batch_size": 2}, "batch_sampler"),
        ({"batch_sampler": [[0, 1]], "shuffle": True}, "batch_sampler"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DataLoader(TensorDataset(), **kwargs)


def test_iterable_dataset_rejects_shuffle_and_sampler() -> None:
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(CountingStream(), shuffle=True)
    with pytest.raises(ValueError, match="sampler"):
        DataLoader(CountingStream(), sampler=[0])


def test_out_of_range_index_names_it() -> None:
    loader = DataLoader(TensorDataset(n=5), sampler=[0, 1, 9], batch_size=2)
    with pytest.raises(IndexError, match=r"index 9.*5 samples"):
        list(loader)


def test_sample_error_keeps_type_and_names_index() -> None:
    loader = DataLoader(FailingDataset(bad=7), batch_size=4)
    with pytest.raises(ValueError, match="corrupt sample 7") as info:
        list(loader)
    assert any("dataset index 7" in note for note in info.value.__notes__)


def test_mismatched_shapes_error_names_position_and_shapes() -> None:
    data = [torch.zeros(3), torch.zeros(3), torch.zeros(4)]
    with pytest.raises(stoker.CollateError, match=r"sample 2 has shape \(4,\)"):
        list(DataLoader(data, batch_size=3))


@pytest.mark.parametrize("stop_after", [0, 1, 3, 7])
@pytest.mark.parametrize("use_generator", [False, True])
def test_state_dict_resume_is_exact(stop_after: int, use_generator: bool) -> None:
    def make() -> DataLoader:
        if use_generator:
            return DataLoader(
                BatchedDataset(),
                batch_size=7,
                shuffle=True,
                generator=torch.Generator().manual_seed(3),
            )
        return DataLoader(BatchedDataset(), batch_size=7, shuffle=True, seed=3)

    reference = make()
    list(reference)  # a completed epoch first: state must record the epoch too
    iterator = iter(reference)
    for _ in range(stop_after):
        next(iterator)
    state = json.loads(json.dumps(reference.state_dict()))
    expected = list(iterator) + list(reference)

    resumed = make()
    resumed.load_state_dict(state)
    got = list(resumed) + list(resumed)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert_batches_equal(a, b)


def test_same_seed_same_batches_new_epoch_new_order() -> None:
    a = DataLoader(TensorDataset(), batch_size=5, shuffle=True, seed=1)
    b = DataLoader(TensorDataset(), batch_size=5, shuffle=True, seed=1)
    first_a, first_b = [x[1].tolist() for x in a], [x[1].tolist() for x in b]
    assert first_a == first_b
    assert [x[1].tolist() for x in a] != first_a


def test_pin_memory_without_cuda_warns_and_works() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.warns(UserWarning, match="no accelerator is found.*no CUDA"):  # torch's, then ours
        batches = list(DataLoader(list(range(4)), batch_size=2, pin_memory=True))
    assert len(batches) == 2


def test_user_sampler_keeps_the_epoch_the_user_sets() -> None:
    ours_sampler = stoker.DistributedSampler(range(20), num_replicas=2, rank=0, seed=1)
    theirs_sampler = torch.utils.data.DistributedSampler(range(20), num_replicas=2, rank=0, seed=1)
    ours = DataLoader(list(range(20)), batch_size=3, sampler=ours_sampler, seed=0)
    theirs = torch.utils.data.DataLoader(list(range(20)), batch_size=3, sampler=theirs_sampler)
    for epoch in (3, 4):
        ours_sampler.set_epoch(epoch)
        theirs_sampler.set_epoch(epoch)
        assert [b.tolist() for b in ours] == [b.tolist() for b in theirs]
