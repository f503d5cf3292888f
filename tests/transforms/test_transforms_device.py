"""The fused pipeline on uint8 tensors (the device pass) equals the CPU pass and the unfused one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import stoker
from stoker import transforms as T
from tests.devices import DEVICES


def pipeline(crop: Any, flip: float | None, normalize: bool, fuse: bool = True) -> T.Compose:
    steps: list[Any] = [crop] if crop is not None else []
    if flip is not None:
        steps.append(T.RandomHorizontalFlip(flip))
    steps += [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    if normalize:
        steps.append(T.Normalize([0.3, 0.5, 0.7, 0.4][:3], [0.2, 0.25, 0.3]))
    return T.Compose(steps, fuse=fuse)


CASES = [
    (T.RandomCrop(32, padding=4), 0.5, True),
    (T.RandomCrop(32, padding=4, padding_mode="reflect"), 0.5, True),
    (T.RandomCrop(30, padding=(1, 3), padding_mode="edge"), 1.0, True),
    (T.RandomCrop(28, padding=[0, 2, 5, 1], padding_mode="symmetric"), 0.5, False),
    (T.RandomCrop(32, padding=2, fill=(9, 99, 199)), 0.5, True),
    (T.RandomCrop((36, 40), pad_if_needed=True), None, True),
    (None, 0.5, True),
    (None, None, False),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("crop", "flip", "normalize"), CASES)
def test_a_uint8_tensor_batch_on_the_device_equals_the_numpy_pass(
    device: str, crop: Any, flip: float | None, normalize: bool
) -> None:
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    on_device = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    with stoker.sample_context(3, 1, np.arange(100, 140)):
        expected = pipeline(crop, flip, normalize)(images)
    with stoker.sample_context(3, 1, np.arange(100, 140)):
        unfused = pipeline(crop, flip, normalize, fuse=False)(on_device.cpu())
    with stoker.sample_context(3, 1, np.arange(100, 140)):
        got = pipeline(crop, flip, normalize)(on_device)
    assert got.device.type == device and got.is_contiguous()
    assert torch.equal(unfused, expected)
    assert torch.equal(got.cpu(), expected), (got.cpu() - expected).abs().max().item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [1, 4])
def test_one_chw_image_and_other_channel_counts(device: str, channels: int) -> None:
    image = np.random.default_rng(1).integers(0, 256, (20, 24, channels), dtype=np.uint8)
    transform = T.Compose(
        [
            T.RandomCrop(20, padding=3),
            T.RandomHorizontalFlip(1.0),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize([0.5], [0.25]),
        ]
    )
    with stoker.sample_context(0, 0, [7]):
        expected = transform(image)
    tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous().to(device)
    with stoker.sample_context(0, 0, [7]):
        got = transform(tensor)
    assert got.shape == (channels, 20, 20)
    assert torch.equal(got.cpu(), expected)


def test_tensors_the_device_pass_does_not_take_still_run_unfused() -> None:
    """A float tensor, or one whose channels Normalize cannot take, goes member by member."""
    transform = pipeline(T.RandomCrop(8, padding=1), 0.5, True)
    floats = torch.rand(2, 3, 8, 8)
    with stoker.sample_context(0, 0, [0, 1]):
        got = transform(floats)
    with stoker.sample_context(0, 0, [0, 1]):
        expected = pipeline(T.RandomCrop(8, padding=1), 0.5, True, fuse=False)(floats)
    assert torch.equal(got, expected)
    with pytest.raises(stoker.TransformError, match="channel"):
        transform(torch.zeros(2, 2, 8, 8, dtype=torch.uint8))
