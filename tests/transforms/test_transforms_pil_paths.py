"""The per-sample PIL paths: the same parameters as the batched draw, torchvision's pixels."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from stoker import seeding
from stoker import transforms as T
from tests.transforms.conftest import assert_same

SIZES = [(29, 37), (1, 1), (3, 2), (10, 300), (300, 10), (64, 64), (375, 500)]


@pytest.mark.parametrize("cmix", [True, False], ids=["c-loops", "numpy"])
def test_one_sample_draws_equal_the_vectorised_draws(cmix, monkeypatch):
    if not cmix:
        monkeypatch.setattr(seeding, "_cmix", None)
    keys = seeding.sample_key(3, 2, np.arange(500))
    streams = [seeding.stream_id(f"s{i}") for i in range(5)]
    mixes = seeding.stream_mixes(streams)
    for key in keys[:50]:
        per_stream = seeding.uniform_streams(int(key), mixes)
        for stream, value in zip(streams, per_stream, strict=True):
            assert value == seeding.uniform(np.array([key]), stream)[0]
            assert seeding.uniform_one(int(key), stream) == value
            for high in (1, 2, 7, 500, 2**30):
                expected = seeding.integers(np.array([key]), stream, 0, high)[0]
                assert seeding.integer_one(int(key), stream, 0, high) == expected


@pytest.mark.parametrize(
    "rrc",
    [
        T.RandomResizedCrop(16),
        T.RandomResizedCrop(8, scale=(0.2, 0.9), ratio=(0.5, 2.0)),
        T.RandomResizedCrop(8, scale=(0.9, 1.0), ratio=(3.0, 4.0)),  # centre-crop fallbacks
        T.RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0)),
    ],
    ids=["default", "wide", "fallback", "square"],
)
def test_random_resized_crop_one_sample_params_equal_batched(rrc):
    keys = seeding.sample_key(11, 4, np.arange(400))
    for height, width in SIZES:
        batched = np.stack(rrc.make_params(keys, height, width), axis=1)
        ones = np.array([rrc.make_params_one(int(k), height, width) for k in keys])
        np.testing.assert_array_equal(ones, batched, err_msg=f"image {height}x{width}")


def test_random_resized_crop_on_pil_equals_its_batch_row_and_torchvision(rng):
    images = rng.integers(0, 256, (6, 40, 52, 3), dtype=np.uint8)
    rrc = T.RandomResizedCrop((20, 24), interpolation="bicubic")
    with seeding.sample_context(7, 1, np.arange(6)):
        params = rrc.make_params(seeding.current_keys(6), 40, 52)
        batched = rrc(images)
    for i in range(6):
        with seeding.sample_context(7, 1, [i]):
            one = rrc(PIL.Image.fromarray(images[i]))
            one_numpy = rrc(images[i])
        assert isinstance(one, PIL.Image.Image)
        assert_same(np.asarray(one), batched[i])
        assert_same(one_numpy, batched[i])
        p = [int(a[i]) for a in params]
        theirs = TF.resized_crop(
            PIL.Image.fromarray(images[i]),
            *p,
            size=[20, 24],
            interpolation=v2.InterpolationMode.BICUBIC,
        )
        assert_same(one, theirs)


def test_flip_on_pil_is_one_transpose_with_the_batch_coins(rng):
    images = rng.integers(0, 256, (40, 5, 7, 3), dtype=np.uint8)
    flip = T.RandomHorizontalFlip(0.5)
    with seeding.sample_context(1, 0, np.arange(40)):
        coins = flip.make_params(seeding.current_keys(40))
    assert 5 < coins.sum() < 35
    for i in range(40):
        pil = PIL.Image.fromarray(images[i])
        with seeding.sample_context(1, 0, [i]):
            out = flip(pil)
        if coins[i]:
            assert_same(out, TF.horizontal_flip(pil))
        else:
            assert out is pil  # torchvision also hands back the input unflipped


def test_flip_keeps_palette_images_as_they_are():
    pil = PIL.Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).convert("P")
    pil.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    out = T.RandomHorizontalFlip(1.0)(pil)
    assert out.mode == "P" and out.getpalette() == pil.getpalette()
    assert_same(out, TF.horizontal_flip(pil))


@pytest.mark.parametrize(
    ("size", "max_size"), [((32, 32), None), (24, None), ((17, 45), None), (20, 31), (37, None)]
)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_resize_on_pil_equals_torchvision(size, max_size, interpolation, pil_rgb):
    ours = T.Resize(size, interpolation=interpolation, max_size=max_size)(pil_rgb)
    mode = v2.InterpolationMode(interpolation)
    theirs = v2.Resize(size, interpolation=mode, max_size=max_size)(pil_rgb)
    assert isinstance(ours, PIL.Image.Image)
    assert_same(ours, theirs)


@pytest.mark.parametrize("shape", [(40, 52), (40, 52, 1), (40, 52, 3), (40, 52, 4), (90, 70, 3)])
@pytest.mark.parametrize("transform", ["resized-crop", "flip"])
def test_one_numpy_image_equals_its_batch_row(shape, transform, rng):
    make = {
        "resized-crop": lambda: T.RandomResizedCrop((20, 24)),
        "flip": lambda: T.RandomHorizontalFlip(0.5),
    }[transform]
    images = rng.integers(0, 256, (8, *shape), dtype=np.uint8)
    batch = images if len(shape) == 3 else images[..., None]
    with seeding.sample_context(2, 3, np.arange(8)):
        batched = make()(batch)
    for i in range(8):
        with seeding.sample_context(2, 3, [i]):
            one = make()(images[i])
        expected = batched[i] if len(shape) == 3 else batched[i][..., 0]
        assert one.shape == expected.shape and one.flags.writeable
        np.testing.assert_array_equal(one, expected)
        if transform == "flip":
            assert np.array_equal(one, images[i]) or np.array_equal(one, images[i][:, ::-1])


def test_fused_run_on_rgb_pil_equals_the_members_one_by_one(rng):
    steps = [
        T.RandomHorizontalFlip(0.5),
        T.ToImage(),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)),
    ]
    fused, plain = T.Compose(steps), T.Compose(steps, fuse=False)
    images = rng.integers(0, 256, (12, 30, 41, 3), dtype=np.uint8)
    for i, pixels in enumerate(images):
        pil = PIL.Image.fromarray(pixels)
        with seeding.sample_context(9, 0, [i]):
            ours = fused(pil)
        with seeding.sample_context(9, 0, [i]):
            reference = plain(pil)
        assert_same(ours, reference)
    gray = PIL.Image.fromarray(images[0][:, :, 0])
    with pytest.raises(T.TransformError, match="Normalize"):
        fused(gray)  # one channel against three means: refused as the members refuse it
