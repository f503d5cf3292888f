"""Decoding less of a JPEG: RandomResizedCrop's window, the OpenCV resize's box means.

Each is checked against decoding the whole image first: the same pixels (the window) or the
same bits as OpenCV's INTER_AREA of it (the box means), the same errors, the same fallbacks.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stoker
from stoker import transforms as T
from stoker.datasets import ImageFolder, _undecoded_jpeg, decode_image, testdata
from stoker.datasets._undecoded_jpeg import UndecodedJpeg, open_undecoded, takes_undecoded
from stoker.errors import DatasetError

if not _undecoded_jpeg.available():
    if os.environ.get("CI"):
        pytest.fail("the _cjpeg module was not built; CI must build it (setup.py, libjpeg-dev)")
    pytest.skip("the optional libjpeg-turbo module is not built here", allow_module_level=True)
cjpeg = _undecoded_jpeg._cjpeg

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# 4:4:4, 4:2:2 and 4:2:0 (iMCUs of 8, 16 and 16 pixels), baseline and progressive.
ENCODINGS = [
    {"subsampling": s, "progressive": p, "quality": q}
    for s in (0, 1, 2)
    for p in (False, True)
    for q in (75,)
]


def jpeg(pixels: np.ndarray, mode: str = "RGB", **options: object) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).convert(mode).save(buffer, "JPEG", **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return testdata.photo_like_images(1, 83, 131, seed=5)[0]  # no side a multiple of 8


def window(data: bytes, top: int, left: int, height: int, width: int) -> np.ndarray:
    out = np.empty((height, width, 3), np.uint8)
    cjpeg.decode_into(data, out, top, left, height, width)
    return out


@pytest.mark.parametrize("encoding", ENCODINGS, ids=str)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_every_window_edge_equals_the_full_decode(photo, encoding, mode):
    """Windows starting and ending on, beside and between iMCU edges, and the whole image."""
    data = jpeg(photo, mode, **encoding)
    full = decode_image(data)
    height, width, _ = full.shape
    assert cjpeg.header(data)[:2] == (height, width)
    edges = sorted({0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 64})
    checked = 0
    for top in [e for e in edges if e < height]:
        for left in [e for e in edges if e < width]:
            for h in {1, 2, 16, 17, height - top}:
                for w in {1, 8, 33, width - left}:
                    if h <= height - top and w <= width - left:
                        np.testing.assert_array_equal(
                            window(data, top, left, h, w), full[top : top + h, left : left + w]
                        )
                        checked += 1
    assert checked > 500


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 70),
    st.integers(1, 90),
    st.sampled_from(ENCODINGS),
    st.data(),
)
def test_random_windows_of_random_sizes(height, width, encoding, data):
    pixels = testdata.photo_like_images(1, height, width, seed=height * 1000 + width)[0]
    encoded = jpeg(pixels, **encoding)
    full = decode_image(encoded)
    h = data.draw(st.integers(1, height))
    w = data.draw(st.integers(1, width))
    top = data.draw(st.integers(0, height - h))
    left = data.draw(st.integers(0, width - w))
    np.testing.assert_array_equal(
        window(encoded, top, left, h, w), full[top : top + h, left : left + w]
    )


def test_bad_windows_buffers_and_bytes_raise_value_errors(photo):
    data = jpeg(photo)
    with pytest.raises(ValueError, match=r"not inside the 83x131 image"):
        window(data, 80, 0, 4, 10)
    with pytest.raises(ValueError, match=r"not inside"):
        window(data, 0, 0, 0, 10)
    with pytest.raises(ValueError, match=r"holds 299 bytes where this image needs 300"):
        cjpeg.decode_into(data, np.empty(299, np.uint8), 0, 0, 10, 10)
    with pytest.raises(TypeError, match=r"read-write bytes-like"):  # a strided view
        cjpeg.decode_into(data, np.empty((10, 20, 3), np.uint8)[:, ::2], 0, 0, 10, 10)
    with pytest.raises(ValueError, match=r"JPEG header: Not a JPEG file"):
        cjpeg.header(b"PNG not a jpeg")
    with pytest.raises(ValueError, match=r"JPEG"):
        window(data[: len(data) // 2], 60, 0, 20, 20)  # libjpeg's warning is an error here
    cmyk = jpeg(photo, "CMYK")
    with pytest.raises(ValueError, match=r"colour space (CMYK|YCCK) has no RGB"):
        window(cmyk, 0, 0, 4, 4)


def box_means(data: bytes, ky: int, kx: int) -> np.ndarray:
    height, width, _ = cjpeg.header(data)
    out = np.empty((height // ky, width // kx, 3), np.uint8)
    cjpeg.box_means_into(data, out, ky, kx)
    return out


@pytest.mark.parametrize("encoding", ENCODINGS, ids=str)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_box_means_equal_opencvs_inter_area_of_the_decoded_image(photo, encoding, mode):
    cv2 = pytest.importorskip("cv2")
    data = jpeg(photo, mode, **encoding)
    full = decode_image(data)
    height, width, _ = full.shape
    # 2×2 takes OpenCV's vector path (rounds ties up), the others its float path (ties to even)
    for ky, kx in [(1, 1), (1, 2), (2, 1), (2, 2), (3, 5), (11, 15), (7, 4), (83, 131), (40, 2)]:
        boxes = full[: height - height % ky, : width - width % kx]
        expected = cv2.resize(boxes, (width // kx, height // ky), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(box_means(data, ky, kx), expected.reshape(-1, width // kx, 3))


def test_bad_boxes_raise_value_errors(photo):
    data = jpeg(photo)
    with pytest.raises(ValueError, match=r"boxes of at least 1×1"):
        cjpeg.box_means_into(data, np.empty(3, np.uint8), 0, 1)
    with pytest.raises(ValueError, match=r"holds 3 bytes where this image needs 6"):
        cjpeg.box_means_into(data, np.empty(3, np.uint8), 83, 65)
    with pytest.raises(ValueError, match=r"JPEG"):
        cjpeg.box_means_into(data[: len(data) // 2], np.empty((4, 6, 3), np.uint8), 20, 20)


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    (root / "a").mkdir(parents=True)
    for name, data in files.items():
        (root / "a" / name).write_bytes(data)
    return root


def test_unusual_files_take_the_full_decode(photo, tmp_path):
    """CMYK, PNG, trailing bytes and a damaged stream: the full decode's pixels or its error."""
    rgb = jpeg(photo)
    files = {
        "cmyk.jpg": jpeg(photo, "CMYK"),
        "png.jpg": (lambda b: (PIL.Image.fromarray(photo).save(b, "PNG"), b.getvalue())[1])(
            io.BytesIO()
        ),
        "trailing.jpg": rgb + b"\x00trailing bytes",
        "plain.jpg": rgb,
    }
    root = _folder(tmp_path, files)
    for name in ("cmyk.jpg", "png.jpg", "trailing.jpg"):
        opened = open_undecoded(root / "a" / name)
        assert isinstance(opened, np.ndarray)  # decoded whole
        np.testing.assert_array_equal(opened, decode_image(root / "a" / name))
    opened = open_undecoded(root / "a" / "plain.jpg")
    assert isinstance(opened, UndecodedJpeg) and (opened.height, opened.width) == (83, 131)
    np.testing.assert_array_equal(opened.decode(), decode_image(rgb))
    # A stream damaged inside the window: libjpeg's warning sends it to the full decode,
    # which gives what decode_image gives for the file (here its pixels or a DatasetError).
    damaged = bytearray(rgb)
    damaged[len(rgb) // 3 : len(rgb) // 3 + 40] = b"\xff\x00" * 20
    path = root / "a" / "damaged.jpg"
    path.write_bytes(bytes(damaged))
    undecoded = open_undecoded(path)
    assert isinstance(undecoded, UndecodedJpeg)
    try:
        expected = decode_image(path)
    except DatasetError as exc:
        with pytest.raises(DatasetError, match=str(path)) as raised:
            undecoded.window(0, 0, 83, 131)
        assert str(raised.value) == str(exc)
    else:
        np.testing.assert_array_equal(undecoded.window(0, 0, 83, 131), expected)


def test_a_truncated_file_fails_even_when_the_window_is_above_the_damage(photo, tmp_path):
    data = jpeg(photo)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * 0.8)])
    crop = T.RandomResizedCrop(8, scale=(0.001, 0.002))  # a tiny window, most likely on top
    with pytest.raises(DatasetError, match=rf"{path}: cannot decode the image"):
        crop(open_undecoded(path))


def test_any_other_transform_sees_the_whole_decoded_image(photo, tmp_path):
    path = _folder(tmp_path, {"x.jpg": jpeg(photo)}) / "a" / "x.jpg"
    undecoded = open_undecoded(path)
    assert isinstance(undecoded, UndecodedJpeg)
    np.testing.assert_array_equal(
        T.Resize((20, 30))(undecoded), T.Resize((20, 30))(decode_image(path))
    )
    np.testing.assert_array_equal(T.CenterCrop(40)(undecoded), T.CenterCrop(40)(decode_image(path)))


def test_compose_accepts_undecoded_only_when_it_starts_with_the_crop():
    crop = T.RandomResizedCrop(32)
    assert T.Compose([crop, T.RandomHorizontalFlip()]).accepts_undecoded
    assert T.Compose([crop], fuse=False).accepts_undecoded
    assert not T.Compose([T.RandomHorizontalFlip(), crop]).accepts_undecoded
    assert not T.Compose([]).accepts_undecoded
    assert not getattr(T.Resize(32), "accepts_undecoded", False)


def _pipeline(backend: str) -> T.Compose:
    return T.Compose(
        [
            T.RandomResizedCrop(48, backend=backend),
            T.RandomHorizontalFlip(),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(MEAN, STD),
        ]
    )


class _DecodedWhole(stoker.Dataset):
    """The same files and transform, every image decoded whole first: the reference."""

    def __init__(self, folder: ImageFolder) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.folder.samples[index]
        return self.folder.transform(decode_image(path)), label


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    images = testdata.photo_like_images(12, 75, 100, seed=8) + testdata.photo_like_images(
        12, 100, 67, seed=9
    )
    for i, pixels in enumerate(images):
        folder = root / f"c{i % 3}"
        folder.mkdir(exist_ok=True)
        (folder / f"{i}.jpg").write_bytes(jpeg(pixels, subsampling=i % 3))
    return root


@pytest.mark.parametrize("backend", ["exact", "opencv"])
@pytest.mark.parametrize(
    "workers",
    [{}, {"num_workers": 2}, {"num_workers": 2, "worker_mode": "thread"}],
    ids=["in-process", "processes", "threads"],
)
def test_loader_batches_equal_decoding_whole(photo_folder, backend, workers):
    if backend == "opencv":
        pytest.importorskip("cv2")
    folder = ImageFolder(photo_folder, transform=_pipeline(backend), image_type="numpy")
    assert isinstance(open_undecoded(Path(folder.samples[0][0])), UndecodedJpeg)
    assert takes_undecoded(folder.transform, folder.image_type, folder.decode_size)
    windowed = stoker.DataLoader(folder, batch_size=5, shuffle=True, seed=4, **workers)
    whole = stoker.DataLoader(_DecodedWhole(folder), batch_size=5, shuffle=True, seed=4)
    for epoch in range(2):
        pairs = list(zip(windowed, whole, strict=True))
        assert len(pairs) == 5, epoch
        for (x, y), (x_ref, y_ref) in pairs:
            assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


@pytest.mark.parametrize("size", [(32, 32), (20, 30), 24, (75, 50)])
def test_an_opencv_resize_first_gives_the_bits_of_decoding_first(photo_folder, size):
    pytest.importorskip("cv2")
    pipeline = T.Compose(
        [
            T.Resize(size, backend="opencv"),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(MEAN, STD),
        ]
    )
    folder = ImageFolder(photo_folder, transform=pipeline, image_type="numpy")
    assert takes_undecoded(folder.transform, folder.image_type, folder.decode_size)
    # one sample at a time: a single int keeps the aspect, so sizes differ between images
    boxed = stoker.DataLoader(folder, batch_size=None, num_workers=2, seed=1)
    whole = stoker.DataLoader(_DecodedWhole(folder), batch_size=None, seed=1)
    for (x, y), (x_ref, y_ref) in zip(boxed, whole, strict=True):
        assert torch.equal(x, x_ref) and y == y_ref


def test_an_exact_resize_is_given_the_decoded_image(photo_folder):
    folder = ImageFolder(photo_folder, transform=T.Resize((32, 32)), image_type="numpy")
    assert not T.Resize(32).accepts_undecoded and not takes_undecoded(
        folder.transform, folder.image_type, folder.decode_size
    )


def test_a_damaged_file_under_the_resize_takes_the_full_decode(photo, tmp_path):
    pytest.importorskip("cv2")
    data = bytearray(jpeg(photo))
    data[len(data) // 3 : len(data) // 3 + 40] = b"\xff\x00" * 20
    path = tmp_path / "damaged.jpg"
    path.write_bytes(bytes(data))
    undecoded = open_undecoded(path)
    assert isinstance(undecoded, UndecodedJpeg)
    resize = T.Resize((16, 16), backend="opencv")
    try:
        expected = resize(decode_image(path))
    except DatasetError as exc:
        with pytest.raises(DatasetError, match=str(path)) as raised:
            resize(undecoded)
        assert str(raised.value) == str(exc)
    else:
        np.testing.assert_array_equal(resize(undecoded), expected)


def test_without_the_module_images_are_decoded_whole(photo_folder, monkeypatch):
    folder = ImageFolder(photo_folder, transform=_pipeline("exact"), image_type="numpy")
    with_windows = list(stoker.DataLoader(folder, batch_size=6, seed=2))
    monkeypatch.setattr(_undecoded_jpeg, "_cjpeg", None)
    assert not takes_undecoded(folder.transform, folder.image_type, folder.decode_size)
    assert isinstance(open_undecoded(Path(folder.samples[0][0])), np.ndarray)
    whole = list(stoker.DataLoader(folder, batch_size=6, seed=2))
    for (x, y), (x2, y2) in zip(with_windows, whole, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)


def test_pil_images_and_reduced_decoding_keep_their_paths(photo_folder):
    pil = ImageFolder(photo_folder, transform=_pipeline("exact"))
    reduced = ImageFolder(
        photo_folder, transform=_pipeline("exact"), image_type="numpy", decode_size=16
    )
    plain = ImageFolder(photo_folder, transform=T.Resize((8, 8)), image_type="numpy")
    assert not any(
        takes_undecoded(f.transform, f.image_type, f.decode_size) for f in (pil, reduced, plain)
    )


def test_voc_to_cifar_hands_the_resize_undecoded_jpegs_with_the_same_bits(tmp_path, monkeypatch):
    pytest.importorskip("cv2")
    from stoker.datasets import FilteredVOCtoCIFAR

    testdata.write_voc2007(tmp_path, 40, seed=3)
    pipeline = T.Compose([T.Resize((8, 8), backend="opencv"), T.ToImage()])
    voc = FilteredVOCtoCIFAR(tmp_path, image_set="train", transform=pipeline, image_type="numpy")
    assert len(voc) > 0 and takes_undecoded(voc.transform, voc.image_type, voc.decode_size)
    boxed = list(stoker.DataLoader(voc, batch_size=4, num_workers=2))
    monkeypatch.setattr(_undecoded_jpeg, "_cjpeg", None)
    whole = list(stoker.DataLoader(voc, batch_size=4))
    for (x, y), (x_ref, y_ref) in zip(boxed, whole, strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
