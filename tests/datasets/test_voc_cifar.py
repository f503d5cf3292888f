"""FilteredVOCtoCIFAR keeps exactly the single-object images of mapped classes, cached."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from stoker.datasets import (
    CIFAR10_CLASSES,
    DEFAULT_VOC_TO_CIFAR,
    VOC_CLASSES,
    FilteredVOCtoCIFAR,
    testdata,
)
from stoker.datasets import _voc_xml as voc_xml

# Few classes, so that random trees have plenty of single-object images of mapped classes.
_CLASSES = ("aeroplane", "car", "bird", "cat", "dog", "person", "chair")


def _brute_force(
    samples: list[testdata.VOCSample], split: str, mapping: dict[str, str]
) -> list[tuple[str, int]]:
    """The filter's definition, applied to what the generator wrote (no parsing involved)."""
    wanted = ("train", "val") if split == "trainval" else (split,)
    return [
        (s.image_id, CIFAR10_CLASSES.index(mapping[s.objects[0].name]))
        for s in samples
        if s.split in wanted and len(s.objects) == 1 and s.objects[0].name in mapping
    ]


@pytest.fixture(scope="module")
def voc_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[testdata.VOCSample]]:
    root = tmp_path_factory.mktemp("voc")
    samples = testdata.random_voc_samples(40, seed=11, max_objects=2, classes=_CLASSES)
    testdata.write_voc2007(root, samples)
    return root, samples


def test_default_mapping(voc_tree: tuple[Path, list[testdata.VOCSample]]) -> None:
    root, samples = voc_tree
    ds = FilteredVOCtoCIFAR(root)
    expected = _brute_force(samples, "val", dict(DEFAULT_VOC_TO_CIFAR))
    assert list(zip(ds.image_ids, ds.targets)) == expected and expected
    assert ds.classes == list(CIFAR10_CLASSES)
    image, label = ds[0]
    assert isinstance(image, Image.Image) and label == expected[0][1]


_MAPPINGS = st.dictionaries(
    st.sampled_from(VOC_CLASSES), st.sampled_from(CIFAR10_CLASSES), max_size=8
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mapping=_MAPPINGS, split=st.sampled_from(["train", "val", "trainval", "test"]))
def test_equals_brute_force_for_any_mapping(
    voc_tree: tuple[Path, list[testdata.VOCSample]], mapping: dict[str, str], split: str
) -> None:
    root, samples = voc_tree
    expected = _brute_force(samples, split, mapping)
    for _ in range(2):  # computed, then from the cache
        ds = FilteredVOCtoCIFAR(root, image_set=split, class_mapping=mapping)
        assert list(zip(ds.image_ids, ds.targets)) == expected
        assert len(ds) == len(expected)


def test_filter_never_decodes_an_image(tmp_path: Path) -> None:
    samples = testdata.random_voc_samples(10, seed=2, classes=_CLASSES, splits=("val",))
    voc_root = testdata.write_voc2007(tmp_path, samples)
    for jpeg in (voc_root / "JPEGImages").iterdir():
        jpeg.write_bytes(b"not a jpeg")
    ds = FilteredVOCtoCIFAR(tmp_path)
    assert list(zip(ds.image_ids, ds.targets)) == _brute_force(
        samples, "val", dict(DEFAULT_VOC_TO_CIFAR)
    )


def test_cache_is_used_then_invalidated_by_an_annotation_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_cat = (testdata.VOCObject("cat"),)
    samples = [testdata.VOCSample(f"{i:06d}", one_cat, "val") for i in range(1, 5)]
    voc_root = testdata.write_voc2007(tmp_path, samples)
    first = FilteredVOCtoCIFAR(tmp_path)
    assert not first.cache_hit and first.cache_path.is_file()
    assert first.cache_path.parent.parent == voc_root

    parsed: list[Path] = []
    real = voc_xml.object_names
    monkeypatch.setattr(
        "stoker.datasets.voc_cifar.object_names", lambda p: parsed.append(p) or real(p)
    )
    second = FilteredVOCtoCIFAR(tmp_path)
    assert second.cache_hit and parsed == [] and second.targets == first.targets

    # Image 2 gains a dog: no longer a single object, so it must drop out.
    samples[1] = testdata.VOCSample("000002", (*one_cat, testdata.VOCObject("dog")), "val")
    testdata.write_voc2007(tmp_path, samples)
    xml = voc_root / "Annotations" / "000002.xml"
    third = FilteredVOCtoCIFAR(tmp_path)
    assert not third.cache_hit and len(parsed) == 4
    assert third.image_ids == ["000001", "000003", "000004"]

    # Same size, only the mtime moves: still invalidated.
    stat = xml.stat()
    os.utime(xml, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert not FilteredVOCtoCIFAR(tmp_path).cache_hit


def test_different_mappings_cache_separately(tmp_path: Path) -> None:
    samples = [testdata.VOCSample("000001", (testdata.VOCObject("cat"),), "val")]
    testdata.write_voc2007(tmp_path, samples)
    as_cat = FilteredVOCtoCIFAR(tmp_path, class_mapping={"cat": "cat"})
    as_dog = FilteredVOCtoCIFAR(tmp_path, class_mapping={"cat": "dog"})
    assert as_cat.targets == [3] and as_dog.targets == [5]
    assert FilteredVOCtoCIFAR(tmp_path, class_mapping={"cat": "cat"}).cache_hit


def test_read_only_folder_still_works(tmp_path: Path) -> None:
    samples = [testdata.VOCSample("000001", (testdata.VOCObject("car"),), "val")]
    voc_root = testdata.write_voc2007(tmp_path, samples)
    voc_root.chmod(0o555)
    try:
        if os.access(voc_root, os.W_OK):
            pytest.skip("running as a user who can write anyway (root)")
        ds = FilteredVOCtoCIFAR(tmp_path)
        assert ds.targets == [1] and not ds.cache_path.exists()
    finally:
        voc_root.chmod(0o755)


def test_transform_and_bad_mapping(tmp_path: Path) -> None:
    samples = [testdata.VOCSample("000001", (testdata.VOCObject("bird"),), "val", 20, 10)]
    testdata.write_voc2007(tmp_path, samples)
    ds = FilteredVOCtoCIFAR(tmp_path, transform=lambda im: np.asarray(im).shape)
    assert ds[0] == ((10, 20, 3), 2)
    with pytest.raises(ValueError, match=r"class_mapping\['bird'\].*'parrot'"):
        FilteredVOCtoCIFAR(tmp_path, class_mapping={"bird": "parrot"})


def test_a_garbled_cache_is_recomputed(tmp_path: Path) -> None:
    samples = [testdata.VOCSample("000001", (testdata.VOCObject("dog"),), "val")]
    testdata.write_voc2007(tmp_path, samples)
    cache = FilteredVOCtoCIFAR(tmp_path).cache_path
    stored = json.loads(cache.read_text())
    bad_values = (3, [[99, 0]], [["a", "b"]])
    for garbage in ["{not json", *(json.dumps({**stored, "value": v}) for v in bad_values)]:
        cache.write_text(garbage)
        ds = FilteredVOCtoCIFAR(tmp_path)
        assert not ds.cache_hit and ds.targets == [5]


# What a genuine cache holds for the tree below (mapping cat→cat, dog→dog): image 2 has two
# objects, so it is left out.
_GOOD_CACHE = [["000001", 5], ["000003", 3]]


def _cache_tree(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """Three val images (dog, cat+dog, cat); returns the cache path and what it stores."""
    cat, dog = testdata.VOCObject("cat"), testdata.VOCObject("dog")
    samples = [
        testdata.VOCSample("000001", (dog,), "val"),
        testdata.VOCSample("000002", (cat, dog), "val"),
        testdata.VOCSample("000003", (cat,), "val"),
    ]
    testdata.write_voc2007(tmp_path, samples)
    first = FilteredVOCtoCIFAR(tmp_path, class_mapping={"cat": "cat", "dog": "dog"})
    stored = json.loads(first.cache_path.read_text())
    assert not first.cache_hit and stored["value"] == _GOOD_CACHE
    return first.cache_path, stored


@pytest.mark.parametrize(
    "value",
    [
        *(0, {}, "", False, None, 3),  # not a list (the falsy ones once meant "no samples")
        [["000001", 5], ["000001", 5], ["000003", 3]],  # a duplicate
        [["000001", 5], ["000003", 3], []],  # a malformed entry
        [["000001", 5], ["000003", 3, 0]],
        [("000001", 5), ["000003", 3], {"0": 1}],
        [[0, 5], [2, 3]],  # indices, as older stoker wrote
        [["000001", True], ["000003", 3]],  # a bool is not a label
        [["000001", 5.0], ["000003", 3]],
        [["000001", 10], ["000003", 3]],  # out of CIFAR-10's range
        [["000001", 0], ["000003", 3]],  # in range, but no class maps to airplane
        [["000001", 5], ["000004", 3]],  # not in the split
        [["000001", 5], ["../../../../etc/passwd", 3]],  # outside the root
        [["000001", 5], [["000003"], 3]],  # unhashable id
    ],
)
def test_an_invalid_cache_is_recomputed_and_overwritten(tmp_path: Path, value: Any) -> None:
    cache, stored = _cache_tree(tmp_path)
    cache.write_text(json.dumps({**stored, "value": value}))
    ds = FilteredVOCtoCIFAR(tmp_path, class_mapping={"cat": "cat", "dog": "dog"})
    assert not ds.cache_hit
    assert list(zip(ds.image_ids, ds.targets)) == [("000001", 5), ("000003", 3)]
    assert json.loads(cache.read_text())["value"] == _GOOD_CACHE
    assert FilteredVOCtoCIFAR(tmp_path, class_mapping={"cat": "cat", "dog": "dog"}).cache_hit


def test_a_cache_never_makes_it_open_files_outside_the_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, stored = _cache_tree(tmp_path)
    # A valid cache, reordered: the samples still follow the split file, and only the
    # images that file lists are opened.
    cache.write_text(json.dumps({**stored, "value": _GOOD_CACHE[::-1]}))
    opened: list[Path] = []
    monkeypatch.setattr(
        "stoker.datasets.voc_cifar.load_for", lambda _, p, *__: opened.append(p) or p
    )
    ds = FilteredVOCtoCIFAR(tmp_path, class_mapping={"cat": "cat", "dog": "dog"})
    assert ds.cache_hit and ds.image_ids == ["000001", "000003"] and ds.targets == [5, 3]
    assert [ds[i][0] for i in range(len(ds))] == opened
    assert [p.relative_to(tmp_path).as_posix() for p in opened] == [
        "VOCdevkit/VOC2007/JPEGImages/000001.jpg",
        "VOCdevkit/VOC2007/JPEGImages/000003.jpg",
    ]


def test_an_empty_result_is_cached(tmp_path: Path) -> None:
    samples = [testdata.VOCSample("000001", (testdata.VOCObject("person"),), "val")]
    testdata.write_voc2007(tmp_path, samples)
    first = FilteredVOCtoCIFAR(tmp_path)
    assert len(first) == 0 and not first.cache_hit
    assert json.loads(first.cache_path.read_text())["value"] == []
    assert FilteredVOCtoCIFAR(tmp_path).cache_hit


def test_an_id_listed_twice_in_the_split_is_kept_twice_and_cached_once(tmp_path: Path) -> None:
    samples = [testdata.VOCSample("000001", (testdata.VOCObject("dog"),), "val")]
    voc_root = testdata.write_voc2007(tmp_path, samples)
    (voc_root / "ImageSets" / "Main" / "val.txt").write_text("000001\n000001\n")
    for hit in (False, True):
        ds = FilteredVOCtoCIFAR(tmp_path)
        assert ds.cache_hit is hit and ds.indices == [0, 1] and ds.targets == [5, 5]
    assert json.loads(ds.cache_path.read_text())["value"] == [["000001", 5]]
