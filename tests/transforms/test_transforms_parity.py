"""Parity with torchvision 0.29 v2 on identical inputs and identical random parameters."""

from __future__ import annotations

import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from stoker import seeding
from stoker import transforms as T
from tests.transforms.conftest import CIFAR_MEAN, CIFAR_STD, assert_same


def chw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(hwc).permute(2, 0, 1).contiguous()


def test_to_image_matches_for_pil_numpy_and_tensor(pil_rgb, hwc):
    assert_same(T.ToImage()(pil_rgb), v2.ToImage()(pil_rgb))
    assert_same(T.ToImage()(hwc), v2.ToImage()(hwc))
    assert_same(T.ToImage()(hwc[:, :, 0]), v2.ToImage()(hwc[:, :, 0]))
    gray = pil_rgb.convert("L")
    assert_same(T.ToImage()(gray), v2.ToImage()(gray))
    tensor = chw(hwc)
    assert T.ToImage()(tensor) is tensor


def test_to_image_turns_an_nhwc_batch_into_nchw(rng):
    batch = rng.integers(0, 256, (5, 8, 9, 3), dtype=np.uint8)
    out = T.ToImage()(batch)
    assert out.shape == (5, 3, 8, 9) and out.is_contiguous()
    for i in range(5):
        assert_same(out[i], v2.ToImage()(batch[i]))


@pytest.mark.parametrize(
    ("src", "dst", "scale"),
    [
        (torch.uint8, torch.float32, True),
        (torch.uint8, torch.float64, True),
        (torch.uint8, torch.float32, False),
        (torch.float32, torch.uint8, True),
        (torch.float32, torch.float64, True),
        (torch.uint8, torch.int16, True),
        (torch.int16, torch.uint8, True),
        (torch.uint16, torch.uint8, True),
        (torch.uint8, torch.uint16, True),
    ],
)
def test_to_dtype_is_bit_identical(src, dst, scale, rng):
    if src.is_floating_point:
        x = torch.from_numpy(rng.random((2, 3, 7, 5))).to(src)
    else:
        hi = torch.iinfo(src).max
        x = torch.from_numpy(rng.integers(0, hi, (2, 3, 7, 5))).to(src)
    assert_same(T.ToDtype(dst, scale=scale)(x), v2.ToDtype(dst, scale=scale)(x))


def test_to_dtype_on_numpy_is_elementwise(hwc):
    out = T.ToDtype(torch.float32, scale=True)(hwc)
    assert isinstance(out, np.ndarray) and out.shape == hwc.shape
    expected = v2.ToDtype(torch.float32, scale=True)(torch.from_numpy(hwc))
    assert_same(out, expected)


@pytest.mark.parametrize("shape", [(3, 11, 13), (4, 3, 11, 13)])
def test_normalize_matches(shape, rng):
    x = torch.from_numpy(rng.random(shape, dtype=np.float32))
    assert_same(T.Normalize(CIFAR_MEAN, CIFAR_STD)(x), v2.Normalize(CIFAR_MEAN, CIFAR_STD)(x))


def test_normalize_on_numpy_is_channels_last(rng):
    x = rng.random((11, 13, 3), dtype=np.float32)
    out = T.Normalize(CIFAR_MEAN, CIFAR_STD)(x)
    expected = v2.Normalize(CIFAR_MEAN, CIFAR_STD)(torch.from_numpy(x).permute(2, 0, 1))
    assert_same(out, expected.permute(1, 2, 0))


@pytest.mark.parametrize("size", [(32, 32), 20, [17], (40, 23)])
def test_resize_pil_is_exact(pil_rgb, size):
    assert_same(T.Resize(size)(pil_rgb), v2.Resize(size)(pil_rgb))


@pytest.mark.parametrize("size", [(32, 32), 20, (40, 23)])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_resize_tensor_matches(hwc, size, interpolation):
    x = chw(hwc)
    mode = v2.InterpolationMode(interpolation)
    ours = T.Resize(size, interpolation=interpolation)(x)
    theirs = v2.Resize(size, interpolation=mode)(x)
    assert_same(ours.int(), theirs.int(), atol=1)
    xf = x.float() / 255
    assert_same(
        T.Resize(size, interpolation=interpolation)(xf),
        v2.Resize(size, interpolation=mode)(xf),
        atol=1e-6,
    )
    batch = torch.stack([x, x.flip(-1)])
    assert_same(
        T.Resize(size, interpolation=interpolation)(batch).int(),
        v2.Resize(size, interpolation=mode)(batch).int(),
        atol=1,
    )


def test_resize_numpy_uint8_goes_through_pillow(hwc):
    ours = T.Resize((32, 32))(hwc)
    theirs = np.asarray(v2.Resize((32, 32))(PIL.Image.fromarray(hwc)))
    assert_same(ours, theirs)
    batch = np.stack([hwc, hwc[::-1]])
    out = T.Resize((16, 20))(batch)
    assert out.shape == (2, 16, 20, 3)
    assert_same(out[1], np.asarray(v2.Resize((16, 20))(PIL.Image.fromarray(hwc[::-1].copy()))))


def test_resize_max_size(pil_rgb):
    assert_same(T.Resize(20, max_size=30)(pil_rgb), v2.Resize(20, max_size=30)(pil_rgb))
    assert_same(T.Resize(None, max_size=30)(pil_rgb), v2.Resize(None, max_size=30)(pil_rgb))


@pytest.mark.parametrize("size", [16, (10, 21), (29, 37), (40, 30), (33, 50), 1])
def test_center_crop_matches(hwc, pil_rgb, size):
    assert_same(T.CenterCrop(size)(chw(hwc)), v2.CenterCrop(size)(chw(hwc)))
    assert_same(T.CenterCrop(size)(pil_rgb), v2.CenterCrop(size)(pil_rgb))
    assert_same(T.CenterCrop(size)(hwc), v2.CenterCrop(size)(chw(hwc)).permute(1, 2, 0))


CROP_CASES = [
    dict(size=32, padding=4),
    dict(size=(20, 25), padding=(2, 5)),
    dict(size=24, padding=(1, 2, 3, 4), fill=7),
    dict(size=30, padding=3, fill=(10, 20, 30)),
    dict(size=32, padding=4, padding_mode="edge"),
    dict(size=32, padding=4, padding_mode="reflect"),
    dict(size=(30, 40), padding=(5, 1), padding_mode="symmetric"),
    dict(size=(35, 45), pad_if_needed=True),
    dict(size=(35, 45), pad_if_needed=True, padding_mode="reflect"),
    dict(size=(12, 12)),
]


@pytest.mark.parametrize("kwargs", CROP_CASES)
def test_random_crop_equals_torchvision_pad_then_crop(kwargs, hwc, pil_rgb):
    crop = T.RandomCrop(**kwargs)
    h, w = hwc.shape[:2]
    keys = seeding.sample_key(3, 0, np.arange(12))
    params = crop.make_params(keys, h, w)
    fill = kwargs.get("fill", 0)
    mode = kwargs.get("padding_mode", "constant")
    for i in range(len(keys)):
        one = T.CropParams(
            params.top[i : i + 1],
            params.left[i : i + 1],
            params.height,
            params.width,
            params.padding,
        )
        top, left = int(params.top[i]), int(params.left[i])
        for image in (chw(hwc), chw(hwc).float() / 255, pil_rgb):
            padded = TF.pad(image, list(params.padding), fill=fill, padding_mode=mode)
            theirs = TF.crop(padded, top, left, params.height, params.width)
            assert_same(crop.apply(image, one), theirs)
        theirs_hwc = TF.crop(
            TF.pad(chw(hwc), list(params.padding), fill=fill, padding_mode=mode),
            top,
            left,
            params.height,
            params.width,
        ).permute(1, 2, 0)
        assert_same(crop.apply(hwc, one), theirs_hwc)


def test_random_crop_batch_equals_torchvision_per_sample(rng):
    batch = torch.from_numpy(rng.integers(0, 256, (16, 3, 32, 32), dtype=np.uint8))
    crop = T.RandomCrop(32, padding=4, fill=(1, 2, 3))
    params = crop.make_params(seeding.sample_key(0, 0, np.arange(16)), 32, 32)
    out = crop.apply(batch, params)
    for i in range(16):
        theirs = TF.crop(
            TF.pad(batch[i], [4], fill=[1, 2, 3]), int(params.top[i]), int(params.left[i]), 32, 32
        )
        assert_same(out[i], theirs)


def test_horizontal_flip_equals_torchvision(rng, pil_rgb):
    batch = torch.from_numpy(rng.integers(0, 256, (6, 3, 5, 7), dtype=np.uint8))
    flips = np.array([True, False, True, True, False, False])
    out = T.RandomHorizontalFlip().apply(batch, flips)
    for i in range(6):
        assert_same(out[i], TF.horizontal_flip(batch[i]) if flips[i] else batch[i])
    nhwc = batch.permute(0, 2, 3, 1).numpy()
    out_np = T.RandomHorizontalFlip().apply(nhwc, flips)
    assert_same(out_np, out.permute(0, 2, 3, 1))
    flip = T.RandomHorizontalFlip()
    assert_same(flip.apply(pil_rgb, np.array([True])), TF.horizontal_flip(pil_rgb))


@pytest.mark.parametrize("size", [16, (12, 20)])
def test_random_resized_crop_equals_torchvision_given_params(hwc, pil_rgb, size):
    rrc = T.RandomResizedCrop(size)
    keys = seeding.sample_key(5, 1, np.arange(8))
    top, left, height, width = rrc.make_params(keys, *hwc.shape[:2])
    batch = torch.stack([chw(hwc)] * 8)
    out = rrc.apply(batch, (top, left, height, width))
    for i in range(8):
        p = (int(top[i]), int(left[i]), int(height[i]), int(width[i]))
        theirs = TF.resized_crop(chw(hwc), *p, size=list(rrc.size), antialias=True)
        assert_same(out[i], theirs)
        one = tuple(a[i : i + 1] for a in (top, left, height, width))
        assert_same(rrc.apply(pil_rgb, one), TF.resized_crop(pil_rgb, *p, size=list(rrc.size)))


def test_random_resized_crop_params_stay_inside_and_in_range():
    rrc = T.RandomResizedCrop(8, scale=(0.2, 0.9), ratio=(0.5, 2.0))
    keys = seeding.sample_key(0, 0, np.arange(2000))
    top, left, h, w = rrc.make_params(keys, 50, 70)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 50).all() and (left + w <= 70).all()
    area = h * w / (50 * 70)
    assert area.min() >= 0.18 and area.max() <= 0.92


def seed_train(lib):
    return [
        lib.RandomCrop(32, padding=4),
        lib.RandomHorizontalFlip(p=0.5),
        lib.ToImage(),
        lib.ToDtype(torch.float32, scale=True),
        lib.Normalize(CIFAR_MEAN, CIFAR_STD),
    ]


def test_seed_test_pipeline_matches(pil_rgb, hwc):
    ours = T.Compose(
        [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
    )
    theirs = v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR_MEAN, CIFAR_STD)]
    )
    assert_same(ours(pil_rgb), theirs(pil_rgb))
    assert_same(ours(hwc), theirs(hwc))


def test_seed_voc_pipeline_matches(pil_rgb):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        theirs = v2.Compose(
            [v2.Resize((32, 32)), v2.ToTensor(), v2.Normalize(CIFAR_MEAN, CIFAR_STD)]
        )
        ours = T.Compose([T.Resize((32, 32)), T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
        expected = theirs(pil_rgb)
    assert_same(ours(pil_rgb), expected, atol=1e-6)


@pytest.mark.parametrize("fuse", [True, False])
def test_seed_train_pipeline_matches_with_the_same_params(rng, fuse):
    batch = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    indices = np.arange(100, 110)
    with seeding.sample_context(7, 3, indices):
        out = T.Compose(seed_train(T), fuse=fuse)(batch)
    crop, flip = seed_train(T)[:2]
    keys = seeding.sample_key(7, 3, indices)
    params, flips = crop.make_params(keys, 32, 32), flip.make_params(keys)
    tail = v2.Compose(seed_train(v2)[2:])
    for i in range(10):
        image = PIL.Image.fromarray(batch[i])
        image = TF.crop(TF.pad(image, [4]), int(params.top[i]), int(params.left[i]), 32, 32)
        if flips[i]:
            image = TF.horizontal_flip(image)
        assert_same(out[i], tail(image), atol=1e-6)
