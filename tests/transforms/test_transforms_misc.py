"""ToTensor's deprecation, denormalize for display, PIL round trips, pickling and reprs."""

from __future__ import annotations

import pickle

import numpy as np
import PIL.Image
import pytest
import torch

from stoker import seeding
from stoker import transforms as T
from stoker.transforms import _convert
from tests.transforms.conftest import CIFAR_MEAN, CIFAR_STD


def test_to_tensor_warns_once_and_equals_to_image_plus_to_dtype(hwc, monkeypatch):
    monkeypatch.setattr(_convert, "_warned_to_tensor", False)
    with pytest.warns(DeprecationWarning, match="ToDtype"):
        to_tensor = T.ToTensor()
    T.ToTensor()  # a second one is silent (warnings are errors in this suite)
    expected = T.ToDtype(torch.float32, scale=True)(T.ToImage()(hwc))
    assert torch.equal(to_tensor(hwc), expected)
    assert to_tensor(hwc).shape == (3, *hwc.shape[:2])


def test_denormalize_inverts_normalize_and_clips(rng):
    x = torch.from_numpy(rng.random((2, 3, 5, 6), dtype=np.float32))
    normalized = T.Normalize(CIFAR_MEAN, CIFAR_STD)(x)
    back = T.denormalize(normalized, CIFAR_MEAN, CIFAR_STD)
    assert isinstance(back, np.ndarray) and back.shape == (2, 5, 6, 3) and back.dtype == np.float32
    assert np.allclose(back, x.permute(0, 2, 3, 1).numpy(), atol=1e-6)
    single = T.denormalize(normalized[0], CIFAR_MEAN, CIFAR_STD)
    assert single.shape == (5, 6, 3)
    wild = T.denormalize(torch.full((3, 2, 2), 100.0), CIFAR_MEAN, CIFAR_STD)
    assert wild.max() == 1.0
    assert T.denormalize(torch.full((3, 2, 2), -100.0), CIFAR_MEAN, CIFAR_STD).min() == 0.0


def test_denormalize_accepts_channels_last_numpy(rng):
    x = rng.random((4, 4, 3)).astype(np.float32)
    assert T.denormalize(x, 0.0, 1.0).shape == (4, 4, 3)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "YCbCr"])
def test_pil_images_come_back_in_their_mode(mode, hwc):
    image = PIL.Image.fromarray(hwc).convert(mode)
    out = T.RandomCrop(20, padding=2)(image)
    assert isinstance(out, PIL.Image.Image) and out.mode == mode and out.size == (20, 20)
    if mode == "P":
        assert out.getpalette() == image.getpalette()
    flipped = T.RandomHorizontalFlip(1.0)(image)
    assert np.array_equal(np.asarray(flipped), np.asarray(image)[:, ::-1])


def test_grayscale_numpy_and_tensor_without_channel_axis(rng):
    hw = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    assert T.RandomCrop(8)(hw).shape == (8, 8)
    assert T.CenterCrop(8)(torch.from_numpy(hw)).shape == (8, 8)
    assert T.ToImage()(hw).shape == (1, 10, 12)


def test_transforms_pickle_for_worker_processes(rng):
    pipeline = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )
    clone = pickle.loads(pickle.dumps(pipeline))
    x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with seeding.sample_context(0, 0, [1, 2, 3]):
        a = pipeline(x)
    with seeding.sample_context(0, 0, [1, 2, 3]):
        b = clone(x)
    assert torch.equal(a, b)


def test_reprs_name_the_arguments():
    assert repr(T.RandomCrop(32, padding=4)).startswith(
        "RandomCrop(size=(32, 32), padding=(4, 4, 4, 4)"
    )
    assert "p=0.3" in repr(T.RandomHorizontalFlip(0.3))
    assert "RandomCrop" in repr(T.Compose([T.RandomCrop(4)]))


def test_every_transform_declares_supports_batches():
    for transform in (
        T.RandomCrop(4),
        T.RandomHorizontalFlip(),
        T.RandomResizedCrop(4),
        T.CenterCrop(4),
        T.Resize(4),
        T.ToImage(),
        T.ToDtype(torch.float32),
        T.Normalize(0.5, 0.5),
    ):
        assert transform.supports_batches is True


def test_public_names():
    assert sorted(T.__all__) == T.__all__
    assert set(T.__all__) == {
        "CenterCrop",
        "Compose",
        "CropParams",
        "Normalize",
        "RandomCrop",
        "RandomHorizontalFlip",
        "RandomResizedCrop",
        "Resize",
        "Rows",
        "ToDtype",
        "ToImage",
        "ToTensor",
        "Transform",
        "TransformError",
        "Undecoded",
        "denormalize",
    }
