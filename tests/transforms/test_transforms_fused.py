"""The fused CIFAR train path is bit-for-bit the unfused transforms, for any shape and option."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stoker import seeding
from stoker import transforms as T
from stoker.transforms._compose import _FusedRun
from tests.transforms.conftest import CIFAR_MEAN, CIFAR_STD


@st.composite
def pipelines(draw):
    n = draw(st.integers(1, 9))
    # Widths past 16 and 32 reach the C kernel's 16-pixel SIMD runs as well as its tail.
    h, w = draw(st.integers(1, 12)), draw(st.sampled_from([1, 5, 12, 16, 17, 33]))
    c = draw(st.sampled_from([1, 3, 4]))
    members = []
    if draw(st.booleans()):
        padding = draw(st.sampled_from([None, 0, 2, (1, 3), (0, 1, 2, 3)]))
        mode = draw(st.sampled_from(["constant", "edge", "reflect", "symmetric"]))
        fill = draw(st.sampled_from([0, 9, tuple(range(10, 10 + c))]))
        size = (draw(st.integers(1, h + 4)), draw(st.integers(1, w + 4)))
        members.append(
            T.RandomCrop(size, padding=padding, pad_if_needed=True, fill=fill, padding_mode=mode)
        )
    if draw(st.booleans()):
        members.append(T.RandomHorizontalFlip(draw(st.sampled_from([0.0, 0.5, 1.0]))))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    members += [T.ToImage(), T.ToDtype(dtype, scale=True)]
    if draw(st.booleans()):
        members.append(T.Normalize(list(np.linspace(0.3, 0.6, c)), list(np.linspace(0.2, 0.3, c))))
    single = draw(st.booleans())
    return members, (n, h, w, c), single


@settings(max_examples=60, deadline=None)
@given(pipelines(), st.integers(0, 2**32))
def test_fused_equals_unfused(pipeline, seed):
    members, shape, single = pipeline
    x = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    if single:
        x = x[0]
    indices = np.arange(1) if single else np.arange(shape[0])
    fused, unfused = T.Compose(members), T.Compose(members, fuse=False)
    assert any(isinstance(step, _FusedRun) for step in fused._plan)
    with seeding.sample_context(seed, 1, indices):
        a = fused(x)
    with seeding.sample_context(seed, 1, indices):
        b = unfused(x)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert torch.equal(a, b)


def test_fused_output_is_a_contiguous_nchw_float_tensor():
    x = np.zeros((4, 32, 32, 3), np.uint8)
    out = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )(x)
    assert out.shape == (4, 3, 32, 32) and out.is_contiguous() and out.dtype == torch.float32


def test_input_the_fused_path_does_not_take_still_works():
    pipeline = T.Compose(
        [T.RandomCrop(8, padding=1), T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    )
    tensor = torch.zeros((2, 3, 8, 8), dtype=torch.uint8)
    assert pipeline(tensor).shape == (2, 3, 8, 8)
    floats = np.zeros((8, 8, 3), np.float32)
    assert pipeline(floats).shape == (3, 8, 8)


@pytest.mark.parametrize(
    "members",
    [
        [T.RandomHorizontalFlip(), T.RandomCrop(8)],
        [T.ToImage(), T.ToDtype(torch.float32)],
        [T.ToImage(), T.ToDtype(torch.uint8, scale=True)],
        [T.Normalize(0.5, 0.5)],
    ],
)
def test_other_sequences_are_not_fused(members):
    assert not any(isinstance(step, _FusedRun) for step in T.Compose(members)._plan)


def test_fused_input_is_not_modified():
    x = np.random.default_rng(0).integers(0, 256, (5, 10, 10, 3), dtype=np.uint8)
    before = x.copy()
    T.Compose(
        [
            T.RandomCrop(10, padding=2),
            T.RandomHorizontalFlip(1.0),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
        ]
    )(x)
    assert np.array_equal(x, before)


def test_reused_padding_buffer_never_leaks_an_earlier_batch():
    """The padded scratch buffer keeps its border between calls; every call must still see its
    own fill, after other fills, other padding modes and other numbers of flipped samples."""
    x = np.random.default_rng(3).integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    for fill, mode, p_flip, padding in [
        (0, "constant", 0.5, (1, 2, 3, 0)),
        (7, "constant", 0.5, (1, 2, 3, 0)),
        (7, "edge", 1.0, (1, 2, 3, 0)),
        (7, "constant", 1.0, (1, 2, 3, 0)),
        (7, "constant", 0.0, (1, 2, 3, 0)),
        ((1, 2, 3), "constant", 0.5, 2),
        ((1, 2, 3), "constant", 1.0, 2),
    ]:
        members = [
            T.RandomCrop((7, 9), padding=padding, fill=fill, padding_mode=mode),
            T.RandomHorizontalFlip(p_flip),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
        ]
        for seed in range(3):
            with seeding.sample_context(seed, 0, np.arange(6)):
                a = T.Compose(members)(x)
            with seeding.sample_context(seed, 0, np.arange(6)):
                b = T.Compose(members, fuse=False)(x)
            assert torch.equal(a, b), (fill, mode, p_flip, padding, seed)


def test_fused_pipeline_leaves_torch_thread_count_as_it_found_it() -> None:
    """Concurrent pipelines (thread workers) must not leave torch on one thread."""
    import threading

    import torch

    from stoker import transforms as T

    pipeline = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize([0.5] * 3, [0.2] * 3),
        ]
    )
    batch = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads = [
            threading.Thread(target=lambda: [pipeline(batch) for _ in range(20)]) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_c_kernel_and_torch_path_agree_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The optional C kernel (setup.py) and the numpy/torch path give the same tensors."""
    import torch

    from stoker import seeding
    from stoker import transforms as T
    from stoker.transforms import _fused

    if _fused._cfused is None:
        if os.environ.get("CI"):
            pytest.fail("the C kernel was not built; CI must build it (setup.py, gcc)")
        pytest.skip("the optional C kernel is not built here")
    rng = np.random.default_rng(7)
    for channels, padding, fill, size in [
        (3, 4, 0, 32),
        (3, (1, 2, 3, 4), (10, 20, 30), 30),
        (1, 2, 255, 28),
        (4, 0, 0, 24),
    ]:
        batch = rng.integers(0, 256, (17, 32, 32, channels), dtype=np.uint8)
        pipeline = T.Compose(
            [
                T.RandomCrop(size, padding=padding, fill=fill),
                T.RandomHorizontalFlip(),
                T.ToImage(),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize([0.3] * channels, [0.7] * channels),
            ]
        )
        with seeding.sample_context(5, 1, range(17)):
            with_kernel = pipeline(batch)
        monkeypatch.setattr(_fused, "_cfused", None)
        with seeding.sample_context(5, 1, range(17)):
            without = pipeline(batch)
        monkeypatch.undo()
        assert torch.equal(with_kernel, without), (channels, padding, fill, size)


def test_rows_batches_are_gathered_inside_the_fused_pass() -> None:
    """T.Rows(data, indices) gives what data[indices] gives, fused or not, kernel or not."""
    import torch

    from stoker import seeding
    from stoker import transforms as T

    data = np.random.default_rng(3).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    indices = np.array([7, 3, 49, 0, 3])
    members = [
        T.RandomCrop(32, padding=4),
        T.RandomHorizontalFlip(),
        T.ToImage(),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize([0.4] * 3, [0.2] * 3),
    ]
    fused, unfused = T.Compose(members), T.Compose(members, fuse=False)
    assert fused.accepts_rows and not unfused.accepts_rows
    with seeding.sample_context(1, 2, indices):
        expected = unfused(data[indices])
        assert torch.equal(fused(T.Rows(data, indices)), expected)
        assert torch.equal(unfused(T.Rows(data, indices)), expected)
    assert np.array_equal(np.asarray(T.Rows(data, indices)), data[indices])


def test_rows_out_of_range_is_an_index_error() -> None:
    import torch

    from stoker import seeding
    from stoker import transforms as T
    from stoker.transforms import _fused

    if _fused._cfused is None:
        pytest.skip("the optional C kernel is not built here")
    data = np.zeros((4, 8, 8, 3), np.uint8)
    pipeline = T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)])
    with seeding.sample_context(0, 0, [0, 9]), pytest.raises(IndexError, match="row 9"):
        pipeline(T.Rows(data, [0, 9]))


@st.composite
def kernel_batches(draw):
    """Arguments for ``_cfused.crop_flip_normalize`` on three-channel batches of any geometry."""
    n, h, w = draw(st.integers(1, 6)), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    pad_top, pad_left = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    oh, ow = draw(st.integers(1, h + 2 * pad_top)), draw(st.integers(1, w + 2 * pad_left))
    tops = draw(st.lists(st.integers(0, h + 2 * pad_top - oh), min_size=n, max_size=n))
    lefts = draw(st.lists(st.integers(0, w + 2 * pad_left - ow), min_size=n, max_size=n))
    flips = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    source_n = draw(st.integers(n, n + 4))
    picked = st.lists(st.integers(0, source_n - 1), min_size=n, max_size=n)
    rows = draw(st.one_of(st.none(), picked))
    normalize = draw(st.booleans())
    return n, h, w, pad_top, pad_left, oh, ow, tops, lefts, flips, source_n, rows, normalize


@settings(max_examples=150, deadline=None)
@given(kernel_batches(), st.integers(0, 2**32))
def test_c_kernel_simd_path_equals_its_table_path(batch, seed):
    """The SIMD three-channel path (AVX-512 or AVX2) gives the lookup table's bits, for every
    geometry: widths around the 16-pixel runs, windows in and out of the padding, flips, rows."""
    from stoker.transforms import _fused

    if _fused._cfused is None or not hasattr(_fused._cfused, "set_simd"):
        pytest.skip("the C kernel's SIMD path is not built here")
    n, h, w, pad_top, pad_left, oh, ow, tops, lefts, flips, source_n, rows, normalize = batch
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 256, (source_n, h, w, 3), dtype=np.uint8)
    fill = rng.integers(0, 256, 3).astype(np.uint8)
    mean = np.asarray(CIFAR_MEAN if normalize else [], np.float32)
    std = np.asarray(CIFAR_STD if normalize else [], np.float32)
    outputs = []
    for simd in ("avx512", "avx2", "none"):
        out = np.full((n, 3, oh, ow), np.nan, np.float32)
        try:
            was = _fused._cfused.set_simd(simd)
        except ValueError:  # this CPU lacks it
            continue
        try:
            _fused._cfused.crop_flip_normalize(
                source, source_n, np.asarray(rows if rows else [], np.int64), n, h, w, 3,
                np.asarray(tops, np.int64), np.asarray(lefts, np.int64),
                np.asarray(flips, np.uint8), pad_top, pad_left, oh, ow, fill, 1 / 255, mean, std,
                out,
            )  # fmt: skip
        finally:
            _fused._cfused.set_simd(was)
        outputs.append(out)
    assert len(outputs) >= 2 and not np.isnan(outputs[0]).any()
    for out in outputs[1:]:
        assert np.array_equal(outputs[0].view(np.uint32), out.view(np.uint32))


def test_c_kernel_simd_setting_names_what_is_available():
    from stoker.transforms import _fused

    if _fused._cfused is None or not hasattr(_fused._cfused, "set_simd"):
        pytest.skip("the C kernel's SIMD path is not built here")
    with pytest.raises(ValueError, match="'avx512', 'avx2', 'none'"):
        _fused._cfused.set_simd("sse9")
    best = _fused._cfused.set_simd("none")
    assert best in ("avx512", "avx2", "none")
    assert _fused._cfused.set_simd(best) == "none"
