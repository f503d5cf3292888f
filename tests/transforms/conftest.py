"""Shared inputs for the transform tests: seeded images in every supported form."""

from __future__ import annotations

from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def as_tensor(x: Any) -> torch.Tensor:
    """Any image result as a plain tensor (PIL and numpy keep their own layout)."""
    if isinstance(x, PIL.Image.Image):
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.array(x))
    return x.as_subclass(torch.Tensor)


def assert_same(ours: Any, theirs: Any, atol: float = 0.0) -> None:
    a, b = as_tensor(ours), as_tensor(theirs)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    if atol == 0.0:
        assert torch.equal(a, b)
    else:
        diff = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
        assert diff <= atol, diff


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def hwc(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (29, 37, 3), dtype=np.uint8)


@pytest.fixture
def pil_rgb(hwc: np.ndarray) -> PIL.Image.Image:
    return PIL.Image.fromarray(hwc)
