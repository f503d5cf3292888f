"""On a CUDA GPU: pinned batches, asynchronous copies, and `stoker train` with its GPU options.

Skipped where torch sees no GPU. The device-side augmentation and DeviceLoader equality tests
live beside their CPU twins (``tests/unit/test_device_loader.py``,
``tests/transforms/test_transforms_device.py``, ``tests/integration/test_batch_transform.py``)
and run on CUDA there too. ``benchmarks/gpu_check.sh`` runs all of them on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import stoker
from stoker.cli import main
from stoker.cli._checkpoint import load_checkpoint
from stoker.loader._pin import pin
from tests.devices import needs_cuda
from tests.helpers import BatchedDataset

pytestmark = needs_cuda


def _leaves(batch: Any) -> list[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, dict):
        return [leaf for value in batch.values() for leaf in _leaves(value)]
    if isinstance(batch, list | tuple):
        return [leaf for value in batch for leaf in _leaves(value)]
    return []


@pytest.mark.parametrize(("num_workers", "mode"), [(0, "process"), (2, "thread"), (2, "process")])
def test_pinned_batches_are_pinned_and_equal_the_unpinned_ones(num_workers: int, mode: str) -> None:
    def loader(pin_memory: bool) -> stoker.DataLoader:
        return stoker.DataLoader(
            BatchedDataset(n=64),
            batch_size=16,
            shuffle=True,
            seed=3,
            num_workers=num_workers,
            worker_mode=mode,
            pin_memory=pin_memory,
        )

    count = 0
    for plain, pinned in zip(loader(False), loader(True), strict=True):
        plain_leaves, pinned_leaves = _leaves(plain), _leaves(pinned)
        assert len(plain_leaves) == len(pinned_leaves) == 2
        for a, b in zip(plain_leaves, pinned_leaves, strict=True):
            assert b.is_pinned() and not a.is_pinned()
            assert torch.equal(a, b)
        count += 1
    assert count == 4


def test_non_blocking_copies_from_pinned_batches_arrive_intact() -> None:
    """Copies queued with non_blocking=True, then one sync: every batch equals its host copy."""
    loader = stoker.DataLoader(BatchedDataset(n=96), batch_size=32, seed=1, pin_memory=True)
    host, device = [], []
    for images, labels in loader:
        host.append((images.clone(), labels.clone()))
        device.append((images.to("cuda", non_blocking=True), labels.to("cuda", non_blocking=True)))
    torch.cuda.synchronize()
    for (images, labels), (on_gpu, labels_gpu) in zip(host, device, strict=True):
        assert torch.equal(on_gpu.cpu(), images) and torch.equal(labels_gpu.cpu(), labels)


def test_pin_keeps_pinned_and_device_tensors_as_they_are() -> None:
    pinned = torch.ones(3).pin_memory()
    on_gpu = torch.ones(3, device="cuda")
    host = torch.arange(3)
    out = pin([pinned, on_gpu, host])
    assert out[0] is pinned and out[1] is on_gpu
    assert out[2].is_pinned() and torch.equal(out[2], host)


def _train(data: Path, out: Path, *extra: str) -> int:
    common = ["--device", "cuda", "--batch-size", "64", "--seed", "3", "--epochs", "1"]
    limits = ["--train-limit", "256", "--test-limit", "64", "--workers", "2"]
    return main(["train", "--data", str(data), "--out", str(out), *common, *limits, *extra])


def test_train_on_cuda_augmenting_on_the_device_equals_the_workers(
    shapes_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same batches reach the model either way, so deterministic runs end with equal weights."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode
    flags = ["--deterministic"]
    assert _train(shapes_data, tmp_path / "w", *flags, "--augment-on", "workers") == 0
    assert _train(shapes_data, tmp_path / "d", *flags, "--augment-on", "device") == 0
    in_workers = load_checkpoint(tmp_path / "w" / "checkpoint.pt")["model_state"]
    on_device = load_checkpoint(tmp_path / "d" / "checkpoint.pt")["model_state"]
    for name, tensor in in_workers.items():
        assert torch.equal(tensor, on_device[name]), name


def test_train_on_cuda_with_bf16_and_channels_last(
    shapes_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(shapes_data, tmp_path, "--bf16", "--channels-last") == 0
    output = capsys.readouterr().out
    assert "bf16 autocast, channels-last" in output and "data wait" in output
    history = load_checkpoint(tmp_path / "checkpoint.pt")["history"]
    assert history[0]["train_loss"] == history[0]["train_loss"]  # not NaN
    assert all(t.dtype == torch.float32 for t in _weights(tmp_path))


def _weights(out: Path) -> list[torch.Tensor]:
    state = load_checkpoint(out / "checkpoint.pt")["model_state"]
    return [t for t in state.values() if t.is_floating_point()]
