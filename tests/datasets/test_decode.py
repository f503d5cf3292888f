"""decode_image and the datasets' decode options: Pillow's pixels, or a stated bound."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from stoker import transforms as T
from stoker.datasets import ImageFolder, _images, decode_image, testdata
from stoker.errors import DatasetError

BACKENDS = ["simplejpeg", "pillow"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test once with simplejpeg and once with the Pillow fallback (as if not installed)."""
    if request.param == "simplejpeg":
        if _images.simplejpeg is None:
            pytest.skip("simplejpeg is not installed")
    else:
        monkeypatch.setattr(_images, "simplejpeg", None)
    return str(request.param)


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return testdata.photo_like_images(3, 75, 100, seed=3) + testdata.photo_like_images(
        3, 100, 67, seed=4
    )


def jpeg(pixels: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def pillow_rgb(data: bytes) -> np.ndarray:
    with PIL.Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("subsampling", [0, 1, 2], ids=["444", "422", "420"])
@pytest.mark.parametrize("quality", [60, 95])
def test_jpeg_pixels_equal_pillow(backend, photos, subsampling, quality, tmp_path):
    for i, pixels in enumerate(photos):
        data = jpeg(pixels, quality=quality, subsampling=subsampling)
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(data)
        out = decode_image(path)
        assert out.dtype == np.uint8 and out.shape == (*pixels.shape[:2], 3)
        assert out.flags.writeable
        np.testing.assert_array_equal(out, pillow_rgb(data))
        np.testing.assert_array_equal(decode_image(data), out)
        np.testing.assert_array_equal(decode_image(str(path)), out)


@pytest.mark.parametrize(
    "mode", ["L", "CMYK", "RGBA-png", "P-png", "L-png", "RGB-webp", "I;16-png"]
)
def test_other_modes_and_formats_convert_as_pillow(backend, photos, mode):
    pixels = photos[0]
    image = PIL.Image.fromarray(pixels)
    buffer = io.BytesIO()
    if mode in ("L", "CMYK"):
        image.convert(mode).save(buffer, "JPEG", quality=90)
    elif mode == "RGB-webp":
        image.save(buffer, "WEBP")
    elif mode == "I;16-png":
        PIL.Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 250).save(buffer, "PNG")
    else:
        image.convert(mode.split("-")[0]).save(buffer, "PNG")
    data = buffer.getvalue()
    np.testing.assert_array_equal(decode_image(data), pillow_rgb(data))


@pytest.mark.parametrize("cut", [0.3, 0.8, 0.99])
def test_truncated_jpeg_is_a_dataset_error_naming_the_file(backend, photos, tmp_path, cut):
    data = jpeg(photos[1], quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(DatasetError, match=r"cut\.jpg.*truncated or corrupt"):
        decode_image(path)
    (tmp_path / "cls").mkdir()
    path.rename(tmp_path / "cls" / "cut.jpg")
    for image_type in ("pil", "numpy"):
        with pytest.raises(DatasetError, match=r"cut\.jpg"):
            ImageFolder(tmp_path, image_type=image_type)[0]


def test_garbage_and_missing_files_are_dataset_errors(backend, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    with pytest.raises(DatasetError, match=r"bad\.jpg.*cannot decode"):
        decode_image(bad)
    with pytest.raises(DatasetError, match=r"gone\.jpg.*missing"):
        decode_image(tmp_path / "gone.jpg")
    with pytest.raises(DatasetError, match=r"<image bytes>.*cannot decode"):
        decode_image(b"plain text")


def test_decompression_bomb_guard_holds_for_jpeg(backend, photos, tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg(photos[0], quality=90))  # 75 × 100 = 7,500 pixels
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 3_000)  # error above twice this
    with pytest.raises(DatasetError, match=r"big\.jpg.*DecompressionBombError"):
        decode_image(path)
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 5_000)  # between: only a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
        with pytest.raises(DatasetError, match=r"big\.jpg.*DecompressionBombWarning"):
            decode_image(path)


@pytest.mark.parametrize(
    ("decode_size", "denominator"),
    [
        ((32, 32), 2),
        ((10, 10), 8),
        ((13, 12), 4),
        ((13, 13), 4),
        ((38, 50), 2),
        ((39, 10), 1),
        (None, 1),
    ],
)
def test_reduced_size_decoding_picks_the_largest_reduction_that_keeps_the_size(
    backend, photos, decode_size, denominator
):
    data = jpeg(photos[0], quality=90)  # 75 × 100
    out = decode_image(data, decode_size=decode_size)
    assert out.shape == (math.ceil(75 / denominator), math.ceil(100 / denominator), 3)
    if decode_size is not None:
        assert out.shape[0] >= decode_size[0] and out.shape[1] >= decode_size[1]


def test_reduced_size_decoding_is_the_same_with_either_backend(photos, monkeypatch):
    if _images.simplejpeg is None:
        pytest.skip("simplejpeg is not installed")
    for pixels in photos:
        data = jpeg(pixels, quality=90)
        fast = decode_image(data, decode_size=12)
        with monkeypatch.context() as patch:
            patch.setattr(_images, "simplejpeg", None)
            np.testing.assert_array_equal(decode_image(data, decode_size=12), fast)


def test_reduced_size_decoding_stays_within_the_documented_difference(backend):
    """After Resize((32, 32)): mean |diff| ≤ 7 and p99 ≤ 30 uint8 levels (measured 4.7 / 21)."""
    resize = T.Resize((32, 32))
    diffs = []
    for pixels in testdata.photo_like_images(6, 375, 500, seed=5):
        data = jpeg(pixels, quality=90)
        full = np.asarray(resize(PIL.Image.fromarray(decode_image(data)))).astype(int)
        small = decode_image(data, decode_size=(32, 32))
        assert small.shape == (47, 63, 3)  # 1/8 scale
        reduced = np.asarray(resize(PIL.Image.fromarray(small))).astype(int)
        diffs.append(np.abs(full - reduced).ravel())
    d = np.concatenate(diffs)
    assert 0 < d.mean() <= 7 and np.percentile(d, 99) <= 30


def test_image_folder_numpy_and_pil_agree_and_decode_size_is_opt_in(backend, photos, tmp_path):
    testdata.write_image_folder(tmp_path, {"a": photos[:3], "b": photos[3:]}, ext=".jpg")
    as_pil = ImageFolder(tmp_path)
    as_numpy = ImageFolder(tmp_path, image_type="numpy")
    reduced = ImageFolder(tmp_path, image_type="numpy", decode_size=(10, 10))
    reduced_pil = ImageFolder(tmp_path, decode_size=10)
    for i in range(len(as_pil)):
        image, label = as_pil[i]
        assert isinstance(image, PIL.Image.Image) and image.size == photos[i].shape[1::-1]
        array, label_numpy = as_numpy[i]
        assert label_numpy == label
        np.testing.assert_array_equal(array, np.asarray(image))
        small = reduced[i][0]
        h, w = photos[i].shape[:2]
        d = next(d for d in (8, 4, 2, 1) if math.ceil(h / d) >= 10 and math.ceil(w / d) >= 10)
        assert small.shape == (math.ceil(h / d), math.ceil(w / d), 3) and d > 1
        np.testing.assert_array_equal(np.asarray(reduced_pil[i][0]), small)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_type": "tensor"}, r"image_type.*'tensor'"),
        ({"decode_size": 0}, r"decode_size.*0"),
        ({"decode_size": (3, 4, 5)}, r"decode_size"),
        ({"decode_size": True}, r"decode_size"),
    ],
)
def test_bad_options_are_refused_with_the_rule(kwargs, match, tmp_path: Path):
    testdata.write_image_folder(tmp_path)
    with pytest.raises(ValueError, match=match):
        ImageFolder(tmp_path, **kwargs)
