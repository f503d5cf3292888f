"""DeviceLoader: a dataset kept on the device gives stoker.DataLoader's batches, bit for bit.

Every test runs on the CPU and, where torch sees a GPU, on CUDA too (``tests/devices.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import stoker
from stoker import transforms as T
from stoker.datasets import CIFAR10, testdata
from tests.devices import CUDA, DEVICES

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_IMAGES = 300  # with batch 64: four full batches and a short one of 44


def seed_train(crop: Any = None, dtype: torch.dtype = torch.float32) -> T.Compose:
    """The seed's CIFAR train transform (or with another crop / dtype)."""
    return T.Compose(
        [
            crop if crop is not None else T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToImage(),
            T.ToDtype(dtype, scale=True),
            T.Normalize(MEAN, STD),
        ]
    )


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    testdata.write_cifar10(root, train=testdata.random_cifar(_IMAGES, seed=3))
    return root


def cifar(root: Path, transform: Any = None) -> CIFAR10:
    return CIFAR10(root, transform=transform if transform is not None else seed_train())


def assert_same_batches(expected: Any, got: Any, device: str) -> int:
    """Batches equal exactly (values, dtype, labels), the device's on ``device``; count them."""
    count = 0
    for (images, labels), (dev_images, dev_labels) in zip(expected, got, strict=True):
        assert dev_images.device.type == device and dev_labels.device.type == device
        assert dev_images.dtype == images.dtype and dev_labels.dtype == labels.dtype
        assert torch.equal(dev_images.cpu(), images), (
            f"batch {count}: max |difference| {(dev_images.cpu() - images).abs().max().item()}"
        )
        assert torch.equal(dev_labels.cpu(), labels)
        count += 1
    return count


@pytest.mark.parametrize("device", DEVICES)
def test_two_epochs_equal_the_cpu_loader_with_the_seed_transform(
    cifar_root: Path, device: str
) -> None:
    """Invariant: same order, same crop and flip per sample, same float bits, epoch after epoch."""
    dataset = cifar(cifar_root)
    cpu = stoker.DataLoader(dataset, batch_size=64, shuffle=True, seed=11)
    gpu = stoker.DeviceLoader(dataset, batch_size=64, shuffle=True, seed=11, device=device)
    assert len(gpu) == len(cpu) == 5
    for _epoch in range(2):
        assert assert_same_batches(cpu, gpu, device) == 5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "transform",
    [
        seed_train(T.RandomCrop(32, padding=4, padding_mode="reflect")),
        seed_train(T.RandomCrop(32, padding=4, padding_mode="edge")),
        seed_train(T.RandomCrop(32, padding=(2, 5), padding_mode="symmetric")),
        seed_train(T.RandomCrop(32, padding=[1, 2, 3, 4], fill=(10, 200, 30))),
        seed_train(T.RandomCrop(24)),
        seed_train(T.RandomCrop((40, 36), pad_if_needed=True, fill=7)),
        seed_train(dtype=torch.float64),
        T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(MEAN, STD)]),
        T.Compose([T.RandomHorizontalFlip(0.3), T.ToImage(), T.ToDtype(torch.float32, True)]),
    ],
    ids=["reflect", "edge", "symmetric", "fill", "no-pad", "pad-if-needed", "f64", "test", "flip"],
)
def test_every_fusable_transform_equals_the_cpu_loader(
    cifar_root: Path, device: str, transform: T.Compose
) -> None:
    dataset = cifar(cifar_root, transform)
    cpu = stoker.DataLoader(dataset, batch_size=128, shuffle=True, seed=5, drop_last=True)
    gpu = stoker.DeviceLoader(
        dataset, batch_size=128, shuffle=True, seed=5, drop_last=True, device=device
    )
    assert assert_same_batches(cpu, gpu, device) == 2


@pytest.mark.parametrize("device", DEVICES)
def test_generator_without_seed_follows_torchs_order_as_the_cpu_loader_does(
    cifar_root: Path, device: str
) -> None:
    """With generator= and no seed, order and augmentation seed come from the generator."""
    dataset = cifar(cifar_root)
    cpu = stoker.DataLoader(
        dataset, batch_size=100, shuffle=True, generator=torch.Generator().manual_seed(4)
    )
    gpu = stoker.DeviceLoader(
        dataset,
        batch_size=100,
        shuffle=True,
        generator=torch.Generator().manual_seed(4),
        device=device,
    )
    for _epoch in range(2):
        assert assert_same_batches(cpu, gpu, device) == 3


@pytest.mark.parametrize("device", DEVICES)
def test_sequential_order_without_shuffle(cifar_root: Path, device: str) -> None:
    dataset = cifar(cifar_root)
    gpu = stoker.DeviceLoader(dataset, batch_size=64, seed=2, device=device)
    labels = torch.cat([batch[1].cpu() for batch in gpu])
    assert torch.equal(labels, torch.from_numpy(dataset.targets))
    gpu.set_epoch(0)  # the epoch above again: its augmentation too
    assert_same_batches(stoker.DataLoader(dataset, batch_size=64, seed=2), gpu, device)


@pytest.mark.parametrize("device", DEVICES)
def test_set_epoch_picks_that_epochs_order_and_augmentation(cifar_root: Path, device: str) -> None:
    dataset = cifar(cifar_root)
    cpu = stoker.DataLoader(dataset, batch_size=64, shuffle=True, seed=8)
    gpu = stoker.DeviceLoader(dataset, batch_size=64, shuffle=True, seed=8, device=device)
    cpu.set_epoch(3)
    gpu.set_epoch(3)
    assert_same_batches(cpu, gpu, device)
    epoch0 = next(iter(stoker.DataLoader(dataset, batch_size=64, shuffle=True, seed=8)))
    gpu.set_epoch(3)
    assert not torch.equal(next(iter(gpu))[0].cpu(), epoch0[0])  # epoch 3 is not epoch 0


@pytest.mark.parametrize("device", DEVICES)
def test_state_dict_resumes_mid_epoch_with_the_exact_next_batch(
    cifar_root: Path, device: str
) -> None:
    """Invariant: stop after k batches, save, load into a new loader: the rest is unchanged."""
    dataset = cifar(cifar_root)

    def loader() -> stoker.DeviceLoader:
        return stoker.DeviceLoader(dataset, batch_size=64, shuffle=True, seed=6, device=device)

    first = loader()
    uninterrupted = [[t.cpu() for t in b] for _ in range(2) for b in first]  # epochs 0 and 1
    stopped = loader()
    batches = iter(stopped)
    head = [[t.cpu() for t in next(batches)] for _ in range(2)]
    state = json.loads(json.dumps(stopped.state_dict()))  # it travels as JSON
    resumed = loader()
    resumed.load_state_dict(state)
    rest = [[t.cpu() for t in b] for b in resumed]
    following = [[t.cpu() for t in b] for b in resumed]  # then the next epoch, as usual
    got = head + rest + following
    assert len(got) == len(uninterrupted) == 10
    for position, (want, have) in enumerate(zip(uninterrupted, got, strict=True)):
        assert torch.equal(want[0], have[0]) and torch.equal(want[1], have[1]), position


@pytest.mark.parametrize("device", DEVICES)
def test_a_cpu_loaders_state_resumes_in_the_device_loader(cifar_root: Path, device: str) -> None:
    """The state format is DataLoader's: a run started on CPU workers continues on the device."""
    dataset = cifar(cifar_root)
    cpu = stoker.DataLoader(dataset, batch_size=64, shuffle=True, seed=9)
    batches = iter(cpu)
    for _ in range(3):
        next(batches)
    state = cpu.state_dict()
    rest_on_cpu = list(batches)
    gpu = stoker.DeviceLoader(dataset, batch_size=64, shuffle=True, seed=9, device=device)
    gpu.load_state_dict(state)
    assert assert_same_batches(rest_on_cpu, gpu, device) == 2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rank", [0, 1, 2])
def test_distributed_sampler_shards_as_on_the_cpu(cifar_root: Path, device: str, rank: int) -> None:
    dataset = cifar(cifar_root)

    def shard() -> stoker.DistributedSampler:
        return stoker.DistributedSampler(dataset, num_replicas=3, rank=rank, seed=1)

    cpu = stoker.DataLoader(dataset, batch_size=32, sampler=shard(), seed=2)
    gpu = stoker.DeviceLoader(dataset, batch_size=32, sampler=shard(), seed=2, device=device)
    assert len(gpu) == len(cpu) == 4  # 100 samples per rank
    assert assert_same_batches(cpu, gpu, device) == 4


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_changes_the_layout_not_the_values(cifar_root: Path, device: str) -> None:
    dataset = cifar(cifar_root)
    plain = stoker.DeviceLoader(dataset, batch_size=64, seed=1, shuffle=True, device=device)
    nhwc = stoker.DeviceLoader(
        dataset,
        batch_size=64,
        seed=1,
        shuffle=True,
        device=device,
        memory_format=torch.channels_last,
    )
    for (a, _), (b, _) in zip(plain, nhwc, strict=True):
        assert a.is_contiguous() and b.is_contiguous(memory_format=torch.channels_last)
        assert not b.is_contiguous()
        assert torch.equal(a, b)


class _Arrays:
    """The least a DeviceLoader needs: ``data``, ``targets`` and ``transform`` attributes."""

    def __init__(self, data: Any, targets: Any, transform: Any = None, **extra: Any):
        self.data, self.targets, self.transform = data, targets, transform
        self.__dict__.update(extra)

    def __len__(self) -> int:
        return len(self.data)


def test_a_read_only_array_and_list_targets_are_accepted() -> None:
    images = testdata.random_images(20, seed=4)
    images.flags.writeable = False
    dataset = _Arrays(images, list(range(20)), seed_train())
    gpu = stoker.DeviceLoader(dataset, batch_size=8, seed=3, device="cpu")
    with stoker.sample_context(3, 0, np.arange(8)):
        expected = seed_train()(images[:8])
    first = next(iter(gpu))
    assert torch.equal(first[0], expected) and first[1].tolist() == list(range(8))


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (_Arrays(np.zeros((4, 8, 8, 3), np.uint8), [0] * 4, T.Resize(4)), "transform="),
        (_Arrays(np.zeros((4, 8, 8, 3), np.uint8), [0] * 4, None), "transform="),
        (
            _Arrays(np.zeros((4, 8, 8, 3), np.uint8), [0] * 4, seed_train(), target_transform=int),
            "target_transform",
        ),
        (_Arrays(np.zeros((4, 8, 8, 3), np.float32), [0] * 4, seed_train()), "uint8"),
        (_Arrays(np.zeros((4, 8, 8), np.uint8), [0] * 4, seed_train()), "(N, H, W, C)"),
        (_Arrays(np.zeros((4, 8, 8, 3), np.uint8), [0] * 3, seed_train()), "one label per"),
        (stoker.datasets.testdata, "no `data`"),
    ],
    ids=["resize", "none", "target-transform", "float", "3d", "labels", "no-data"],
)
def test_what_it_cannot_run_is_refused_up_front(dataset: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stoker.DeviceLoader(dataset, batch_size=2, device="cpu")


@pytest.mark.parametrize("batch_size", [0, None, True, 2.0])
def test_batch_size_must_be_a_positive_int(batch_size: Any) -> None:
    dataset = _Arrays(np.zeros((4, 8, 8, 3), np.uint8), [0] * 4, seed_train(T.RandomCrop(8)))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        stoker.DeviceLoader(dataset, batch_size=batch_size, device="cpu")


@pytest.mark.skipif(CUDA, reason="checks the message for machines without a GPU")
def test_cuda_without_a_gpu_says_so_and_what_to_pass() -> None:
    dataset = _Arrays(np.zeros((4, 8, 8, 3), np.uint8), [0] * 4, seed_train(T.RandomCrop(8)))
    with pytest.raises(ValueError, match=r"sees no CUDA GPU.*device='cpu'"):
        stoker.DeviceLoader(dataset, batch_size=2)
