"""Random parameters have the right distributions (fixed seeds, so these are deterministic)."""

from __future__ import annotations

import numpy as np
import pytest

from stoker import seeding
from stoker import transforms as T

SAMPLES = 10_000


@pytest.mark.parametrize("padding", [1, 4])
def test_crop_offsets_are_uniform_over_0_to_2_padding(padding):
    crop = T.RandomCrop(32, padding=padding)
    params = crop.make_params(seeding.sample_key(0, 0, np.arange(SAMPLES)), 32, 32)
    values = 2 * padding + 1
    expected = SAMPLES / values
    sigma = np.sqrt(SAMPLES * (1 / values) * (1 - 1 / values))
    for offsets in (params.top, params.left):
        counts = np.bincount(offsets, minlength=values)
        assert len(counts) == values  # nothing outside 0..2·padding
        assert np.all(np.abs(counts - expected) <= 3 * sigma), counts
    assert abs(np.corrcoef(params.top, params.left)[0, 1]) < 0.05


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_flip_rate_is_p_within_3_sigma(p):
    flips = T.RandomHorizontalFlip(p).make_params(seeding.sample_key(1, 0, np.arange(SAMPLES)))
    sigma = np.sqrt(SAMPLES * p * (1 - p))
    assert abs(flips.sum() - SAMPLES * p) <= 3 * sigma


def test_flip_extremes():
    keys = seeding.sample_key(1, 0, np.arange(1000))
    assert not T.RandomHorizontalFlip(0.0).make_params(keys).any()
    assert T.RandomHorizontalFlip(1.0).make_params(keys).all()


def test_flip_and_crop_draws_are_independent():
    keys = seeding.sample_key(2, 0, np.arange(SAMPLES))
    flips = T.RandomHorizontalFlip(0.5).make_params(keys)
    tops = T.RandomCrop(32, padding=4).make_params(keys, 32, 32).top
    assert abs(np.corrcoef(flips.astype(float), tops)[0, 1]) < 0.05
