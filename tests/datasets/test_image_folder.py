"""ImageFolder: one folder per class, labels pinned by the saved label → class mapping."""

from __future__ import annotations

import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from stoker.datasets import ImageFolder, testdata
from stoker.datasets.image_folder import MAPPING_FILE
from stoker.errors import DatasetError


def test_reads_images_and_labels(tmp_path: Path) -> None:
    cats, dogs = testdata.random_images(2, 8, 8, seed=1), testdata.random_images(3, 8, 8, seed=2)
    testdata.write_image_folder(tmp_path, {"dog": dogs, "cat": cats})
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert ds.targets == [0, 0, 1, 1, 1]
    image, label = ds[3]
    np.testing.assert_array_equal(np.asarray(image), dogs[1])
    assert label == 1
    assert json.loads((tmp_path / MAPPING_FILE).read_text()) == {"0": "cat", "1": "dog"}


def test_mapping_is_saved_and_then_pins_labels(tmp_path: Path) -> None:
    testdata.write_image_folder(
        tmp_path, {"dog": testdata.random_images(1, 8, 8)}, save_mapping=False
    )
    assert ImageFolder(tmp_path).classes == ["dog"]
    assert json.loads((tmp_path / MAPPING_FILE).read_text()) == {"0": "dog"}
    # A new class sorting first must not shift existing labels once the mapping is saved.
    mapping = {"0": "dog", "1": "ant"}
    (tmp_path / MAPPING_FILE).write_text(json.dumps(mapping))
    testdata.write_image_folder(
        tmp_path, {"ant": testdata.random_images(1, 8, 8)}, save_mapping=False
    )
    ds = ImageFolder(tmp_path, target_transform=lambda y: y * 10)
    assert ds.classes == ["dog", "ant"]
    assert sorted(ds[i][1] for i in range(2)) == [0, 10]


def test_folder_missing_from_mapping_is_an_error(tmp_path: Path) -> None:
    testdata.write_image_folder(tmp_path)
    (tmp_path / MAPPING_FILE).write_text(json.dumps({"0": "cat"}))
    with pytest.raises(DatasetError, match=r"label_to_class\.json.*'dog'"):
        ImageFolder(tmp_path)


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        ImageFolder(tmp_path / "absent")
    (tmp_path / "cat").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        ImageFolder(tmp_path)
    bad = tmp_path / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match=r"broken\.png"):
        ImageFolder(tmp_path)[0]


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG with only its IHDR header: it declares width x height pixels and holds none."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_a_dataset_error_naming_the_file(tmp_path: Path) -> None:
    testdata.write_image_folder(tmp_path)
    bomb = _png_header(tmp_path / "cat" / "bomb.png", 20_000, 20_000)  # 400 megapixels, 60 bytes
    ds = ImageFolder(tmp_path)
    with pytest.raises(DatasetError, match=r"bomb\.png.*DecompressionBombError"):
        ds[ds.samples.index((str(bomb), 0))]  # str paths, as torchvision has them


def test_decompression_bomb_warning_as_error_is_a_dataset_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from stoker.datasets._images import open_rgb

    # Between MAX_IMAGE_PIXELS and twice that, PIL only warns; as an error it must be ours.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    big = _png_header(tmp_path / "big.png", 15, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(DatasetError, match=r"big\.png.*DecompressionBombWarning"):
            open_rgb(big)
