"""FilteredVOCtoCIFAR keeps exactly the single-object images of mapped classes, cached."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
