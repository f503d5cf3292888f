"""VOCDetection: the VOCdevkit layout read as torchvision reads it, and downloaded over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torchvision
from PIL import Image

import stoker
from stoker import seeding
from stoker.datasets import VOCDetection, testdata
from stoker.errors import DatasetError


@pytest.fixture(scope="module")
def voc_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[testdata.VOCSample]]:
    root = tmp_path_factory.mktemp("voc")
    samples = testdata.random_voc_samples(24, seed=3)
    testdata.write_voc2007(root, samples)
    return root, samples


@pytest.mark.parametrize("image_set", ["train", "val", "trainval", "test"])
def test_matches_torchvision(
    voc_tree: tuple[Path, list[testdata.VOCSample]], image_set: str
) -> None:
    root, samples = voc_tree
    ours = VOCDetection(root, "2007", image_set)
    theirs = torchvision.datasets.VOCDetection(str(root), "2007", image_set)
    wanted = {"trainval": ("train", "val")}.get(image_set, (image_set,))
    assert ours.ids == [s.image_id for s in samples if s.split in wanted]
    assert len(ours) == len(theirs) > 0
    for index in range(len(ours)):
        (image, target), (their_image, their_target) = ours[index], theirs[index]
        assert target == their_target
        assert isinstance(image, Image.Image) and image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), np.asarray(their_image))


def test_objects_always_a_list_with_the_written_fields(
    voc_tree: tuple[Path, list[testdata.VOCSample]],
) -> None:
    root, samples = voc_tree
    ds = VOCDetection(root, image_set="trainval")
    by_id = {s.image_id: s for s in samples}
    for index, image_id in enumerate(ds.ids):
        annotation = ds[index][1]["annotation"]
        written = by_id[image_id]
        assert isinstance(annotation["object"], list)
        assert [o["name"] for o in annotation["object"]] == [o.name for o in written.objects]
        first = annotation["object"][0]["bndbox"]
        assert tuple(int(first[k]) for k in ("xmin", "ymin", "xmax", "ymax")) == (
            written.objects[0].bbox
        )
        assert annotation["size"] == {
            "width": str(written.width),
            "height": str(written.height),
            "depth": "3",
        }


def test_transforms_as_torchvision(voc_tree: tuple[Path, list[testdata.VOCSample]]) -> None:
    root, _ = voc_tree
    sized = VOCDetection(root, transform=lambda im: im.size, target_transform=lambda t: "t")
    assert sized[0][1] == "t" and isinstance(sized[0][0], tuple)
    joint = VOCDetection(root, transforms=lambda im, t: (im.size, len(t["annotation"]["object"])))
    assert isinstance(joint[0][1], int)
    with pytest.raises(ValueError, match="either transforms or transform"):
        VOCDetection(root, transform=lambda x: x, transforms=lambda x, y: (x, y))


def test_getitems_narrows_the_seed_context_per_sample(
    voc_tree: tuple[Path, list[testdata.VOCSample]],
) -> None:
    root, _ = voc_tree
    seen: list[Any] = []

    def transform(image: Image.Image) -> Image.Image:
        ctx = seeding.current_context()
        seen.append(None if ctx is None else ctx.indices.tolist())
        return image

    ds = VOCDetection(root, transform=transform)
    batch = next(iter(stoker.DataLoader(ds, batch_size=2, sampler=[2, 0], collate_fn=list)))
    assert len(batch) == 2
    assert seen == [[2], [0]]  # the loader gives each sample its own seeding context


def test_truncated_jpeg_names_the_file(tmp_path: Path) -> None:
    voc_root = testdata.write_voc2007(tmp_path, 3)
    ds = VOCDetection(tmp_path, image_set="trainval")
    jpeg = voc_root / "JPEGImages" / f"{ds.ids[0]}.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    with pytest.raises(DatasetError, match=rf"{ds.ids[0]}\.jpg.*truncated or corrupt"):
        ds[0]


def test_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"VOC2007.*ImageSets.*val\.txt.*download=True"):
        VOCDetection(tmp_path, image_set="val")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="image_set"):
        VOCDetection("/nonexistent", image_set="everything")
    with pytest.raises(ValueError, match="year"):
        VOCDetection("/nonexistent", year="1999")


def test_download_trainval_and_test_over_http(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server
) -> None:
    samples = testdata.random_voc_samples(12, seed=8)
    trainval = [s for s in samples if s.split != "test"]
    test = [s for s in samples if s.split == "test"]
    testdata.write_voc2007(tmp_path / "tv", trainval)
    testdata.write_voc2007(tmp_path / "te", test)
    _, tv_md5 = testdata.make_tarball(
        tmp_path / "tv" / "VOCdevkit", file_server.directory / "tv.tar"
    )
    _, te_md5 = testdata.make_tarball(
        tmp_path / "te" / "VOCdevkit", file_server.directory / "te.tar"
    )
    root = tmp_path / "data"
    val = VOCDetection(
        root, image_set="val", download=True, url=file_server.url("tv.tar"), md5=tv_md5
    )
    assert val.ids == [s.image_id for s in samples if s.split == "val"]
    tested = VOCDetection(
        root, image_set="test", download=True, url=file_server.url("te.tar"), md5=te_md5
    )
    # The second tarball merged into the same VOCdevkit/VOC2007 tree.
    assert tested.ids == [s.image_id for s in test]
    assert len(VOCDetection(root, image_set="trainval")) == len(trainval)
    assert tested[0][1]["annotation"]["filename"] == f"{test[0].image_id}.jpg"
    assert sorted(p.name for p in root.iterdir()) == ["VOCdevkit"]


def test_official_resources_match_torchvision() -> None:
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    from stoker.datasets.voc import voc_resource

    for key, image_set in (("2007", "train"), ("2007-test", "test"), ("2012", "val")):
        ours = voc_resource(key.split("-")[0], image_set)
        assert (ours.url, ours.md5) == (
            DATASET_YEAR_DICT[key]["url"],
            DATASET_YEAR_DICT[key]["md5"],
        )


@pytest.mark.parametrize(
    "bad_id",
    ["/etc/passwd", "../../elsewhere/private", "..", "a/b", "a\\b", "000001 000002", "id.x", "é"],
)
def test_split_ids_that_are_not_plain_ids_are_refused(tmp_path: Path, bad_id: str) -> None:
    voc_root = testdata.write_voc2007(tmp_path, 2)
    split = voc_root / "ImageSets" / "Main" / "trainval.txt"
    split.write_text(f"000001\n\n{bad_id}\n000002\n")
    with pytest.raises(DatasetError, match=r"trainval\.txt, line 3: .* is not a VOC image id"):
        VOCDetection(tmp_path, image_set="trainval")


def test_split_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    voc_root = testdata.write_voc2007(tmp_path, 2)
    split = voc_root / "ImageSets" / "Main" / "trainval.txt"
    split.write_bytes(b"000001\n\xff\xfe\n")
    with pytest.raises(DatasetError, match=r"trainval\.txt: not a text file of image ids"):
        VOCDetection(tmp_path, image_set="trainval")


def test_voc2012_style_ids_and_crlf_lines_are_accepted(tmp_path: Path) -> None:
    samples = [
        testdata.VOCSample("2008_000008", (testdata.VOCObject("cat"),)),
        testdata.VOCSample("2010-x_01", (testdata.VOCObject("dog"),)),
    ]
    voc_root = testdata.write_voc2007(tmp_path, samples)
    (voc_root / "ImageSets" / "Main" / "train.txt").write_bytes(b"2008_000008\r\n 2010-x_01 \r\n")
    ds = VOCDetection(tmp_path, image_set="train")
    assert ds.ids == ["2008_000008", "2010-x_01"]
    assert ds[1][1]["annotation"]["object"][0]["name"] == "dog"
