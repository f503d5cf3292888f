"""backend="torch": uint8 arrays resampled exactly as torchvision v2 resamples uint8 tensors.

torchvision runs ``interpolate``'s native uint8 kernel on tensors and Pillow on PIL images; the
two differ by at most a level here. stoker's default for arrays is the PIL path; this backend is
the tensor path, bit for bit, from the same windows.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import stoker
from stoker import seeding
from stoker import transforms as T
from stoker.datasets import testdata
from tests.transforms.conftest import assert_same

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """375×500 and 500×333 photo-like images after a JPEG round trip, as a dataset's would be."""
    out = []
    for pixels in testdata.photo_like_images(2, 375, 500, seed=3) + testdata.photo_like_images(
        2, 500, 333, seed=4
    ):
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        out.append(np.array(PIL.Image.open(buffer).convert("RGB")))
    return out


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)


def as_array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("size", [(32, 32), 24, (100, 37), (500, 600), 224])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_resize_equals_torchvision_on_the_tensor(photos, size, interpolation):
    mode = v2.InterpolationMode(interpolation)
    for image in photos:
        ours = T.Resize(size, interpolation=interpolation, backend="torch")(image)
        theirs = as_array(v2.Resize(size, interpolation=mode)(as_tensor(image)))
        assert_same(ours, theirs)
        assert ours.dtype == np.uint8 and ours.flags.c_contiguous


def test_resize_is_within_a_level_of_torchvisions_pil_path(photos):
    diffs = []
    for image in photos:
        ours = T.Resize((32, 32), backend="torch")(image).astype(np.int16)
        theirs = np.asarray(v2.Resize((32, 32))(PIL.Image.fromarray(image))).astype(np.int16)
        diffs.append(np.abs(ours - theirs))
    assert max(int(d.max()) for d in diffs) <= 1
    assert np.mean(np.concatenate([d.ravel() for d in diffs])) < 0.2


def test_random_resized_crop_equals_torchvisions_tensor_crop_of_the_same_window(photos):
    exact = T.RandomResizedCrop(224)
    fast = T.RandomResizedCrop(224, backend="torch")
    for i, image in enumerate(photos * 3):
        height, width, _ = image.shape
        key = int(seeding.sample_key(5, 2, np.array([i]))[0])
        window = exact.make_params_one(key, height, width)
        assert fast.make_params_one(key, height, width) == window
        with seeding.sample_context(5, 2, [i]):
            ours = fast(image)
        theirs = TF.resized_crop(as_tensor(image), *window, size=[224, 224], antialias=True)
        assert_same(ours, as_array(theirs))


@pytest.mark.parametrize("shape", [(40, 52), (40, 52, 1), (40, 52, 3), (40, 52, 4), (3, 40, 52, 3)])
@pytest.mark.parametrize("transform", ["resize", "crop"])
def test_every_array_shape_and_batches_keep_the_exact_backends_shapes(rng, shape, transform):
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    make = (
        (lambda **b: T.Resize((20, 30), **b))
        if transform == "resize"
        else (lambda **b: T.RandomResizedCrop(16, **b))
    )
    with seeding.sample_context(0, 0, np.arange(shape[0] if len(shape) == 4 else 1)):
        ours = make(backend="torch")(image)
    with seeding.sample_context(0, 0, np.arange(shape[0] if len(shape) == 4 else 1)):
        exact = make()(image)
    assert ours.shape == exact.shape and ours.dtype == np.uint8 and ours.flags.c_contiguous
    if transform == "resize":  # noise, so compare with the kernel it promises, not with Pillow
        chw = torch.from_numpy(image if image.ndim != 2 else image[:, :, None])
        chw = chw.movedim(-1, -3)
        theirs = v2.Resize((20, 30))(chw).movedim(-3, -1).numpy()
        assert_same(ours, theirs if image.ndim != 2 else theirs[:, :, 0])


@pytest.mark.parametrize("backend", ["torch", "opencv"])
def test_pil_images_tensors_and_float_arrays_keep_the_exact_path(pil_rgb, backend):
    """Both opt-in backends resample uint8 arrays only; everything else takes the exact path."""
    if backend == "opencv":
        pytest.importorskip("cv2")
    tensor = as_tensor(np.array(pil_rgb))
    for exact, fast in [
        (T.Resize(16), T.Resize(16, backend=backend)),
        (T.RandomResizedCrop(12), T.RandomResizedCrop(12, backend=backend)),
    ]:
        for image in (pil_rgb, tensor, np.array(pil_rgb, np.float32)):
            with seeding.sample_context(0, 0, [3]):
                expected = exact(image)
            with seeding.sample_context(0, 0, [3]):
                assert_same(fast(image), expected)


def test_a_read_only_array_is_resampled_without_a_warning(photos):
    image = photos[0].copy()
    image.flags.writeable = False  # as np.asarray(pil_image) is
    expected = T.Resize((16, 16), backend="torch")(photos[0])
    assert_same(T.Resize((16, 16), backend="torch")(image), expected)  # warnings are errors here


def test_repr_and_pickle(hwc):
    rrc = pickle.loads(pickle.dumps(T.RandomResizedCrop(8, backend="torch")))
    assert rrc.backend == "torch" and "backend='torch'" in repr(rrc)
    assert not T.Resize(8, backend="torch").accepts_undecoded  # the box step is OpenCV's


class _Photos(stoker.Dataset):
    def __init__(self, images: list[np.ndarray]) -> None:
        self.images = images
        self.transform = T.Compose(
            [
                T.RandomResizedCrop(48, backend="torch"),
                T.RandomHorizontalFlip(),
                T.ToImage(),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize(MEAN, STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), index


def test_batches_are_the_same_in_process_in_workers_and_in_threads(photos):
    dataset = _Photos(photos * 3)
    reference = list(stoker.DataLoader(dataset, batch_size=4, shuffle=True, seed=9))
    for workers in ({"num_workers": 2}, {"num_workers": 2, "worker_mode": "thread"}):
        loader = stoker.DataLoader(dataset, batch_size=4, shuffle=True, seed=9, **workers)
        for (x, y), (x_ref, y_ref) in zip(loader, reference, strict=True):
            assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
