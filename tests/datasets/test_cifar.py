"""CIFAR-10/100: the real pickle layout read back exactly, batched fetches, safe downloads."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from stoker import seeding
from stoker._collated import CollatedSamples
from stoker.datasets import CIFAR10, CIFAR10_CLASSES, CIFAR100, testdata
from stoker.datasets._download import file_md5
from stoker.errors import DatasetError, IntegrityError


class _BatchFlip:
    """A stand-in for a stoker batched transform: HWC or NHWC uint8 in, float tensor out."""

    supports_batches = True

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        self.calls.append(images.shape)
        batch = images if images.ndim == 4 else images[None]
        keys = seeding.current_keys(len(batch))
        flip = seeding.uniform(keys, seeding.stream_id("flip")) < 0.5
        out = np.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
        tensor = torch.from_numpy(np.ascontiguousarray(out)).float()
        return tensor if images.ndim == 4 else tensor[0]


@pytest.fixture
def cifar_root(tmp_path: Path) -> tuple[Path, tuple[np.ndarray, np.ndarray]]:
    train = testdata.random_cifar(23, seed=5)
    testdata.write_cifar10(tmp_path, train=train, test=testdata.random_cifar(7, seed=6))
    return tmp_path, train


def test_reads_what_was_written(cifar_root: tuple[Path, tuple[np.ndarray, np.ndarray]]) -> None:
    root, (images, labels) = cifar_root
    ds = CIFAR10(root, train=True)
    assert ds.data.shape == (23, 32, 32, 3) and ds.data.dtype == np.uint8
    assert ds.data.flags.c_contiguous
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)
    assert ds.targets.dtype == np.int64
    assert ds.classes == list(CIFAR10_CLASSES)
    assert ds.class_to_idx["cat"] == 3
    image, label = ds[4]
    assert isinstance(image, Image.Image) and image.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(image), images[4])
    assert label == labels[4] and type(label) is int
    assert len(CIFAR10(root, train=False)) == 7


def test_files_match_the_official_pickle_layout(tmp_path: Path) -> None:
    images, labels = testdata.random_cifar(10, seed=1)
    folder = testdata.write_cifar10(tmp_path, train=(images, labels))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    )
    with open(folder / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    assert set(entry) == {b"data", b"labels", b"batch_label", b"filenames"}
    assert entry[b"data"].shape == (2, 3072) and entry[b"data"].dtype == np.uint8
    # Row layout: the red plane, then green, then blue, each 32×32 row-major.
    np.testing.assert_array_equal(entry[b"data"][0, :1024].reshape(32, 32), images[0, :, :, 0])
    np.testing.assert_array_equal(entry[b"data"][1, 2048:].reshape(32, 32), images[1, :, :, 2])
    assert entry[b"labels"] == [int(v) for v in labels[:2]]
    assert entry[b"batch_label"] == b"training batch 1 of 5"


def test_torchvision_reads_the_generated_files(
    cifar_root: tuple[Path, tuple[np.ndarray, np.ndarray]],
) -> None:
    root, _ = cifar_root
    folder = root / "cifar-10-batches-py"
    md5 = file_md5  # the generated files are not the official ones; give their MD5s

    local = type(
        "LocalCIFAR10",
        (torchvision.datasets.CIFAR10,),
        {
            "train_list": [
                [f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)
            ],
            "test_list": [["test_batch", md5(folder / "test_batch")]],
            "meta": {
                "filename": "batches.meta",
                "key": "label_names",
                "md5": md5(folder / "batches.meta"),
            },
        },
    )
    theirs, ours = local(str(root), train=True), CIFAR10(root, train=True)
    np.testing.assert_array_equal(theirs.data, ours.data)
    assert theirs.targets == ours.targets.tolist()
    assert theirs.classes == ours.classes
    assert np.array_equal(np.asarray(theirs[3][0]), np.asarray(ours[3][0]))


def test_getitems_batched_transform_is_one_call_and_matches_per_sample(
    cifar_root: tuple[Path, tuple[np.ndarray, np.ndarray]],
) -> None:
    root, (_, labels) = cifar_root
    flip = _BatchFlip()
    ds = CIFAR10(root, transform=flip)
    indices = [3, 0, 17, 9, 9]
    with seeding.sample_context(7, 2, indices):
        batch = ds.__getitems__(indices)
    assert isinstance(batch, CollatedSamples) and len(batch) == len(indices)
    assert flip.calls == [(5, 32, 32, 3)]
    images, targets = batch.collated
    assert images.shape == (5, 32, 32, 3)
    assert targets.tolist() == [int(labels[i]) for i in indices]
    for position, index in enumerate(indices):
        with seeding.sample_context(7, 2, [index]):
            alone, label = ds[index]
        assert torch.equal(alone, images[position]) and label == targets[position]


def test_getitems_without_transform_gives_pil_samples(
    cifar_root: tuple[Path, tuple[np.ndarray, np.ndarray]],
) -> None:
    root, (_, labels) = cifar_root
    batch = CIFAR10(root).__getitems__([1, 2])
    assert [label for _, label in batch] == [labels[1], labels[2]]
    assert all(isinstance(image, Image.Image) for image, _ in batch)


def test_getitems_per_sample_transform_sees_one_sample_context(
    cifar_root: tuple[Path, tuple[np.ndarray, np.ndarray]],
) -> None:
    root, _ = cifar_root
    seen: list[list[int]] = []

    def transform(image: Image.Image) -> int:
        ctx = seeding.current_context()
        assert ctx is not None
        seen.append(ctx.indices.tolist())
        return int(seeding.sample_rng().integers(1000))

    ds = CIFAR10(root, transform=transform, target_transform=lambda y: y + 100)
    with seeding.sample_context(1, 0, [5, 6]):
        batch = ds.__getitems__([5, 6])
    assert seen == [[5], [6]]
    assert all(label >= 100 for _, label in batch)


def test_batched_target_transform(
    cifar_root: tuple[Path, tuple[np.ndarray, np.ndarray]],
) -> None:
    root, (_, labels) = cifar_root
    ds = CIFAR10(root, transform=_BatchFlip(), target_transform=lambda y: y * 2)
    batch = ds.__getitems__([0, 1])
    assert isinstance(batch, CollatedSamples)
    assert batch.collated[1].tolist() == [2 * int(labels[0]), 2 * int(labels[1])]
    named = CIFAR10(root, transform=_BatchFlip(), target_transform=lambda y: f"c{y}")
    assert [label for _, label in named.__getitems__([0])] == [f"c{labels[0]}"]


def test_cifar100_fine_and_coarse(tmp_path: Path) -> None:
    images, fine = testdata.random_cifar(12, 100, seed=3)
    coarse = (fine // 5).tolist()
    testdata.write_cifar100(tmp_path, train=(images, fine, coarse))
    ds = CIFAR100(tmp_path)
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, fine)
    np.testing.assert_array_equal(ds.coarse_targets, coarse)
    assert len(ds.classes) == 100 and len(ds.coarse_classes) == 20
    assert len(CIFAR100(tmp_path, train=False)) == 10


def test_missing_without_download_says_where_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"cifar-10-batches-py.*download=True"):
        CIFAR10(tmp_path)


def test_truncated_pickle_names_the_file(
    cifar_root: tuple[Path, tuple[np.ndarray, np.ndarray]],
) -> None:
    root, _ = cifar_root
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[: batch.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"data_batch_3.*truncated or corrupt"):
        CIFAR10(root)


def test_download_over_http(tmp_path: Path, file_server) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "source"
    images, labels = testdata.random_cifar(15, seed=9)
    testdata.write_cifar10(source, train=(images, labels))
    _, md5 = testdata.make_tarball(
        source / "cifar-10-batches-py", file_server.directory / "cifar-10-python.tar.gz"
    )
    root = tmp_path / "data"
    ds = CIFAR10(root, download=True, url=file_server.url("cifar-10-python.tar.gz"), md5=md5)
    np.testing.assert_array_equal(ds.data, images)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]
    # Already complete: no second download (the server no longer has the file).
    (file_server.directory / "cifar-10-python.tar.gz").unlink()
    assert len(CIFAR10(root, download=True, url=file_server.url("gone"), md5=md5)) == 15


def test_download_with_one_corrupted_byte_leaves_nothing(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server
) -> None:
    source = tmp_path / "source"
    testdata.write_cifar10(source)
    archive, md5 = testdata.make_tarball(
        source / "cifar-10-batches-py", file_server.directory / "c.tar.gz"
    )
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    root = tmp_path / "data"
    with pytest.raises(IntegrityError, match=rf"c\.tar\.gz.*{md5}"):
        CIFAR10(root, download=True, url=file_server.url("c.tar.gz"), md5=md5)
    assert list(root.iterdir()) == []


def test_class_attributes_point_at_the_official_archives() -> None:
    assert CIFAR10.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert CIFAR10.tgz_md5 == "c58f30108f718f92721af3b95e74349a"
    assert CIFAR100.tgz_md5 == "eb9058c3a382ffc7106e4002c42a8d85"
