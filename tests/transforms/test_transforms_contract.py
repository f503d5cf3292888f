"""One contract for every random transform: per-sample and batched application agree exactly.

Applying a transform to sample ``i`` alone inside ``sample_context(seed, epoch, [index_i])`` must
give the same tensor as row ``i`` of applying it to the whole batch inside
``sample_context(seed, epoch, indices)``. That is what lets a dataset augment a gathered batch in
one call and still give each sample the augmentation it would get alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stoker import seeding
from stoker import transforms as T
from tests.transforms.conftest import CIFAR_MEAN, CIFAR_STD, as_tensor


def seed_train(fuse: bool = True) -> T.Compose:
    return T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(0.5),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(CIFAR_MEAN, CIFAR_STD),
        ],
        fuse=fuse,
    )


RANDOM_TRANSFORMS = {
    "crop-pad4": lambda: T.RandomCrop(32, padding=4),
    "crop-smaller": lambda: T.RandomCrop((20, 28)),
    "crop-reflect-pad-if-needed": lambda: T.RandomCrop(
        40, pad_if_needed=True, padding_mode="reflect"
    ),
    "crop-vector-fill": lambda: T.RandomCrop(32, padding=(2, 6), fill=(1, 2, 3)),
    "crop-edge": lambda: T.RandomCrop(30, padding=(1, 2, 3, 4), padding_mode="edge"),
    "flip": lambda: T.RandomHorizontalFlip(0.5),
    "resized-crop": lambda: T.RandomResizedCrop(16),
    "seed-train-fused": lambda: seed_train(fuse=True),
    "seed-train-unfused": lambda: seed_train(fuse=False),
    "crop-then-flip": lambda: T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]),
}


def inputs(kind: str, rng: np.random.Generator):
    nhwc = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    if kind == "numpy-uint8":
        return nhwc
    nchw = torch.from_numpy(nhwc).permute(0, 3, 1, 2).contiguous()
    return nchw if kind == "tensor-uint8" else nchw.float() / 255


@pytest.mark.parametrize("name", sorted(RANDOM_TRANSFORMS))
@pytest.mark.parametrize("kind", ["numpy-uint8", "tensor-uint8", "tensor-float"])
def test_per_sample_equals_batched(name, kind, rng):
    transform = RANDOM_TRANSFORMS[name]()
    batch = inputs(kind, rng)
    indices = rng.permutation(1000)[: len(batch)]
    with seeding.sample_context(11, 4, indices):
        together = as_tensor(transform(batch))
    assert len(together) == len(batch)
    for i, index in enumerate(indices):
        with seeding.sample_context(11, 4, [index]):
            alone = as_tensor(transform(batch[i]))
        assert torch.equal(alone, together[i]), (name, kind, i)


@pytest.mark.parametrize("name", sorted(RANDOM_TRANSFORMS))
def test_every_random_transform_supports_batches(name):
    assert RANDOM_TRANSFORMS[name]().supports_batches is True


def test_samples_differ_within_a_batch_and_across_epochs(rng):
    batch = inputs("numpy-uint8", rng)
    crop = T.RandomCrop(32, padding=4)
    with seeding.sample_context(0, 0, range(12)):
        first = crop(batch)
    with seeding.sample_context(0, 0, range(12)):
        again = crop(batch)
    with seeding.sample_context(0, 1, range(12)):
        next_epoch = crop(batch)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, next_epoch)
    keys = seeding.sample_key(0, 0, range(12))
    params = crop.make_params(keys, 32, 32)
    assert len(set(zip(params.top.tolist(), params.left.tolist()))) > 1


def test_cifar_style_gather_of_unsorted_indices(rng):
    """``data[indices]`` (a fresh NHWC array) gets the same result as sample-by-sample loading."""
    data = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    indices = np.array([150, 3, 77, 3, 199, 0])
    pipeline = seed_train()
    with seeding.sample_context(5, 2, indices):
        batch = pipeline(data[indices])
    assert batch.shape == (6, 3, 32, 32) and batch.dtype == torch.float32
    for row, index in enumerate(indices):
        with seeding.sample_context(5, 2, [index]):
            assert torch.equal(pipeline(data[index]), batch[row])
    assert torch.equal(batch[1], batch[3])  # the same index twice: the same augmentation


def test_works_outside_any_sample_context(rng):
    batch = inputs("numpy-uint8", rng)
    out = seed_train()(batch)
    assert out.shape == (12, 3, 32, 32)


def test_compose_supports_batches_only_when_every_member_does():
    assert seed_train().supports_batches
    assert not T.Compose([T.ToImage(), lambda x: x]).supports_batches


def test_a_batch_under_a_one_sample_context_is_refused(rng):
    batch = inputs("numpy-uint8", rng)
    with seeding.sample_context(0, 0, [3]), pytest.raises(ValueError, match="12 sample"):
        T.RandomCrop(32, padding=4)(batch)


@pytest.mark.parametrize("shape", [(70, 90, 3), (70, 90, 1), (70, 90), (8, 6, 4)])
def test_one_array_flip_equals_its_row_of_the_batch(shape, rng):
    """The single-array path (one coin, Pillow's mirror) agrees with the batch path and numpy."""
    batch = rng.integers(0, 256, (16, *shape), dtype=np.uint8)
    flip = T.RandomHorizontalFlip(0.5)
    indices = np.arange(100, 116)
    with seeding.sample_context(3, 1, indices):  # a batch of HW images is NHW1 for the batch path
        together = flip(batch[..., None] if len(shape) == 2 else batch).reshape(batch.shape)
    flipped = 0
    for i, index in enumerate(indices):
        with seeding.sample_context(3, 1, [index]):
            alone = flip(batch[i])
        assert alone.shape == batch[i].shape and alone.dtype == np.uint8
        assert np.array_equal(alone, together[i]), (shape, i)
        mirrored = np.array_equal(alone, batch[i][:, ::-1])
        assert mirrored or np.array_equal(alone, batch[i])
        flipped += mirrored and not np.array_equal(batch[i], batch[i][:, ::-1])
    assert 0 < flipped < len(indices)
