"""resnet20 is the CIFAR ResNet-20 of He et al. 2016."""

from __future__ import annotations

import torch

from stoker.models import resnet20

PAPER_PARAMS = 0.27e6  # He et al. 2016, table 6


def test_resnet20_has_027m_parameters() -> None:
    count = sum(p.numel() for p in resnet20().parameters())
    assert abs(count - PAPER_PARAMS) <= 0.01 * PAPER_PARAMS, count


def test_resnet20_has_19_convs_and_option_a_shortcuts_without_weights() -> None:
    model = resnet20()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 19  # + the linear layer = 20 weighted layers
    for block in model.layers:
        assert not list(block.shortcut.parameters())


def test_resnet20_maps_cifar_batches_to_logits() -> None:
    logits = resnet20(num_classes=7)(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 7)
