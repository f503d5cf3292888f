"""Through real workers, stoker carries what torch carries and shows workers torch's view.

Each test states one behaviour of torch's DataLoader that stoker's process and thread workers
must share: tensor subclasses and every dtype arrive as they left, torch's get_worker_info()
answers inside workers, and keys that are not integers reach the dataset as the sampler made them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data
from torchvision import tv_tensors

import stoker
from stoker import DataLoader
from tests.same import assert_same


def _sample(index: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(index)
    values = torch.rand(4, 3, generator=generator)
    boxes = tv_tensors.BoundingBoxes(
        values[:2, :].repeat(1, 2)[:, :4] * 10, format="XYWH", canvas_size=(16 + index, 24)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # complex32: "experimental"; quantize: "deprecated"
        complex_half = values[:, :2].to(torch.complex64).to(torch.complex32)
        quantized = torch.quantize_per_tensor(values, 0.05, 2, torch.quint8)
    return {
        "boxes": boxes,
        "image": tv_tensors.Image((values * 255).to(torch.uint8).expand(3, 4, 3)),
        "mask": tv_tensors.Mask(values > 0.5),
        "video": tv_tensors.Video(values.reshape(1, 1, 4, 3).repeat(2, 3, 1, 1)),
        "param": torch.nn.Parameter(values[0].clone()),
        "f8": values.to(torch.float8_e5m2).t(),  # non-contiguous
        "e4m3": values.to(torch.float8_e4m3fn),
        "c32": complex_half,
        "bf16": values.to(torch.bfloat16),
        "u16": (values * 1000).to(torch.uint16),
        "u32": torch.full((2,), 2**32 - 1 - index, dtype=torch.uint32),
        "u64": torch.full((2,), 2**64 - 1 - index, dtype=torch.uint64),
        "bool": values > 0.3,
        "empty": torch.empty(0, 5, dtype=torch.bfloat16),
        "quantized": quantized,
        "sparse": (values * (values > 0.5)).to_sparse(),
        "big": torch.full((64, 64, 3), index, dtype=torch.float32),  # large: a shm slot
        "np_f16": values.numpy().astype(np.float16)[:, ::2],  # torch refuses negative strides
        "np_objects": np.array([index, "x"], dtype=object),
        "np_str": np.array(["ab", str(index)]),
    }


class _Detection(torch.utils.data.Dataset[Any]):
    """A detection-style dataset: each sample a dict of torchvision tensors and odd dtypes."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> Any:
        return _sample(index)


def _keep_samples(samples: list[Any]) -> list[Any]:
    return samples  # detection's collate: a list of samples, nothing stacked


def _without_quantized(batches: list[Any]) -> list[Any]:
    return [[{k: v for k, v in s.items() if k != "quantized"} for s in b] for b in batches]


@pytest.mark.parametrize("workers", [1, 2])
def test_subclasses_and_dtypes_arrive_as_with_no_workers_and_as_torch(workers: int) -> None:
    """Batches through process workers equal num_workers=0 and torch's, class and metadata too."""
    dataset = _Detection()

    def batches(loader_class: Any, num_workers: int) -> list[Any]:
        loader = loader_class(
            dataset, batch_size=3, num_workers=num_workers, collate_fn=_keep_samples
        )
        return list(loader)

    reference = batches(DataLoader, 0)
    assert_same(reference, batches(DataLoader, workers))
    with warnings.catch_warnings():  # torch's loader rebuilding sparse tensors: its own notice
        warnings.filterwarnings("ignore", "Sparse invariant checks", UserWarning)
        theirs = batches(torch.utils.data.DataLoader, workers)
    # torch's own workers deliver quantized tensors broken ("cannot call qscheme on
    # UnknownQuantizer", torch 2.14): stoker carries them pickled, so compare the rest
    assert_same(_without_quantized(reference), _without_quantized(theirs))
    boxes = reference[1][0]["boxes"]
    assert type(boxes) is tv_tensors.BoundingBoxes and boxes.canvas_size == (19, 24)


def test_a_single_sample_per_batch_crosses_too() -> None:
    """batch_size=None: default_convert leaves subclasses alone, and so does the transport."""
    stoker_batches = list(DataLoader(_Detection(), batch_size=None, num_workers=2))
    with warnings.catch_warnings():  # torch's loader rebuilding sparse tensors: its own notice
        warnings.filterwarnings("ignore", "Sparse invariant checks", UserWarning)
        torch_batches = list(
            torch.utils.data.DataLoader(_Detection(), batch_size=None, num_workers=2)
        )
    assert_same(_without_quantized([torch_batches]), _without_quantized([stoker_batches]))
    assert_same(list(DataLoader(_Detection(), batch_size=None)), stoker_batches)


class _ShardedStream(torch.utils.data.IterableDataset[int]):
    """Sharded as torch's IterableDataset documentation shows, with torch's get_worker_info."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self) -> Iterator[int]:
        info = torch.utils.data.get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


def test_torch_documented_sharding_yields_each_sample_once() -> None:
    """With 2 process workers each of 100 samples arrives once (before: 200 samples)."""
    loader = DataLoader(_ShardedStream(100), batch_size=10, num_workers=2)
    seen = sorted(int(x) for batch in loader for x in batch)
    assert seen == list(range(100))


class _WorkerView(torch.utils.data.Dataset[Any]):
    """Reports torch's and stoker's view of the worker that loads each sample."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> Any:
        theirs = torch.utils.data.get_worker_info()
        ours = stoker.get_worker_info()
        assert theirs is ours, (theirs, ours)
        assert isinstance(theirs, torch.utils.data._utils.worker.WorkerInfo)
        assert theirs.dataset is self  # the dataset object this worker loads from
        method = {"multiprocessing": 0, "thread": 1}[theirs.worker_method]
        return {"id": theirs.id, "num_workers": theirs.num_workers, "method": method}


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_torch_get_worker_info_answers_in_workers(mode: str) -> None:
    loader = DataLoader(_WorkerView(), batch_size=2, num_workers=2, worker_mode=mode)
    batches = list(loader)
    ids = {int(i) for batch in batches for i in batch["id"]}
    assert ids == {0, 1}
    assert all(int(n) == 2 for batch in batches for n in batch["num_workers"])
    expected_method = 1 if mode == "thread" else 0
    assert all(int(m) == expected_method for batch in batches for m in batch["method"])
    # main process / main thread: no worker, in both views, before and after
    assert torch.utils.data.get_worker_info() is None and stoker.get_worker_info() is None


def test_thread_worker_info_is_per_thread_and_absent_in_the_main_thread() -> None:
    """While thread workers run, the main thread still sees None from torch's getter."""
    seen_in_main = []
    loader = DataLoader(_WorkerView(), batch_size=1, num_workers=2, worker_mode="thread")
    for _ in loader:
        seen_in_main.append(torch.utils.data.get_worker_info())
    assert seen_in_main and all(info is None for info in seen_in_main)


def test_torch_worker_seed_follows_torchs_rule() -> None:
    """info.torch_worker_seed seeds the RNGs exactly as a torch worker with that base seed."""
    from stoker._worker import info

    class Seeds(torch.utils.data.Dataset[Any]):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int) -> Any:
            import random

            worker = torch.utils.data.get_worker_info()
            return worker.id, worker.seed, torch.initial_seed(), random.random(), np.random.rand()

    generator = torch.Generator().manual_seed(5)
    base_seed = int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())
    torch_rows = list(
        torch.utils.data.DataLoader(
            Seeds(), batch_size=None, num_workers=2, generator=torch.Generator().manual_seed(5)
        )
    )
    for worker_id, seed, initial, python_draw, numpy_draw in torch_rows:
        import random

        assert seed == base_seed + worker_id == initial
        assert info.torch_worker_seed(base_seed, worker_id) == seed == torch.initial_seed()
        assert (random.random(), np.random.rand()) == (python_draw, numpy_draw)
