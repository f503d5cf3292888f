"""The devices the device-side tests run on: the CPU always, CUDA where torch sees a GPU."""

from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (run benchmarks/gpu_check.sh)")

DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
"""Parametrize a test with ``@pytest.mark.parametrize("device", DEVICES)``."""
