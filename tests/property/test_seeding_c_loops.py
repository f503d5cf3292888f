"""stoker.seeding's optional C loops (``_cmix.c``) give the numpy arithmetic's bits exactly."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoker import seeding

if seeding._cmix is None:
    if os.environ.get("CI"):
        pytest.fail("the _cmix module was not built; CI must build it (setup.py, gcc)")
    pytest.skip("the optional _cmix module is not built here", allow_module_level=True)

int64s = st.integers(-(2**63), 2**63 - 1)
indices = st.lists(st.integers(-(2**40), 2**40), max_size=40)


def numpy_only(monkeypatch: pytest.MonkeyPatch, fn, *args):  # type: ignore[no-untyped-def]
    with monkeypatch.context() as patch:
        patch.setattr(seeding, "_cmix", None)
        return fn(*args)


@settings(max_examples=200, deadline=None)
@given(seed=int64s, epoch=st.integers(0, 2**40), index=indices)
def test_keys_equal_numpy(seed: int, epoch: int, index: list[int]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        expected = numpy_only(monkeypatch, seeding.sample_key, seed, epoch, index)
    got = seeding.sample_key(seed, epoch, index)
    assert got.dtype == np.uint64 and got.shape == expected.shape
    assert np.array_equal(got, expected)


@settings(max_examples=200, deadline=None)
@given(
    seed=int64s,
    index=indices,
    stream=st.integers(0, 2**64 - 1),
    low=st.integers(-(2**40), 2**40),
    span=st.one_of(st.integers(1, 64), st.integers(1, 2**31), st.integers(1, 2**62)),
)
def test_draws_equal_numpy(seed: int, index: list[int], stream: int, low: int, span: int) -> None:
    keys = seeding.sample_key(seed, 3, index)
    with pytest.MonkeyPatch.context() as monkeypatch:
        uniform = numpy_only(monkeypatch, seeding.uniform, keys, stream)
        integers = numpy_only(monkeypatch, seeding.integers, keys, stream, low, low + span)
    got_uniform = seeding.uniform(keys, stream)
    got_integers = seeding.integers(keys, stream, low, low + span)
    assert got_uniform.dtype == np.float64 and np.array_equal(got_uniform, uniform)
    assert got_integers.dtype == np.int64 and np.array_equal(got_integers, integers)


def test_one_index_keeps_its_shape() -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        expected = numpy_only(monkeypatch, seeding.sample_key, 1, 2, 5)
    got = seeding.sample_key(1, 2, 5)
    assert got.shape == expected.shape == () and got == expected


def test_strided_keys_and_bad_bounds() -> None:
    keys = seeding.sample_key(0, 0, np.arange(20))[::3]  # not contiguous
    with pytest.MonkeyPatch.context() as monkeypatch:
        expected = numpy_only(monkeypatch, seeding.integers, keys, 7, 0, 9)
    assert np.array_equal(seeding.integers(keys, 7, 0, 9), expected)
    with pytest.raises(ValueError, match="high > low"):
        seeding.integers(keys, 7, 5, 5)
