"""Untrusted inputs are refused before they can act: archives, pickles and XML."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import pytest

from stoker.datasets import CIFAR10, VOCDetection, testdata
from stoker.datasets._archive import safe_extract
from stoker.datasets._unpickle import load_pickle
from stoker.datasets._voc_xml import MAX_DEPTH, annotation_dict, object_names
from stoker.errors import DatasetError, UnsafeDataError


def _tar_with(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w") as tar:
        tar.addfile(_file("ok/readme.txt"), io.BytesIO(b"hello"))
        for member in members:
            data = io.BytesIO(b"x" * member.size) if member.isfile() else None
            tar.addfile(member, data)
    return path


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 5
    return info


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_file("../evil.txt"), "'..'"),
        (_file("ok/../../evil.txt"), "'..'"),
        (_file("/tmp/stoker-evil.txt"), "absolute path"),
        (_file("C:/evil.txt"), "absolute path"),
        (_link("ok/escape", "../../outside"), "symlink"),
        (_link("ok/escape", "/etc/passwd"), "symlink"),
        (_link("ok/hard", "../outside", tarfile.LNKTYPE), "hard link"),
        (_link("ok/dev", "", tarfile.CHRTYPE), "device"),
        (_link("ok/fifo", "", tarfile.FIFOTYPE), "device file or FIFO"),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_written(
    tmp_path: Path, member: tarfile.TarInfo, why: str
) -> None:
    archive = _tar_with(tmp_path / "bad.tar", member)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeDataError, match=r"bad\.tar") as caught:
        safe_extract(archive, dest)
    assert repr(member.name) in str(caught.value) and why in str(caught.value)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_link("ok/alias", "readme.txt"), "is a symlink (to 'readme.txt')"),
        (_link("ok/alias", "readme.txt", tarfile.LNKTYPE), "is a hard link (to 'ok/readme.txt')"),
    ],
)
def test_links_are_refused_even_inside_the_folder(
    tmp_path: Path, member: tarfile.TarInfo, why: str
) -> None:
    if member.islnk():
        member.linkname = "ok/readme.txt"
    archive = _tar_with(tmp_path / "links.tar", member)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeDataError, match=r"links\.tar.*'ok/alias'") as caught:
        safe_extract(archive, dest)
    assert why in str(caught.value)
    assert list(dest.iterdir()) == []


def _add(tar: tarfile.TarFile, name: str, kind: bytes, link: str = "", data: bytes = b"") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, link, 0o755, len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _symlink_chain_archive(path: Path, outside: Path) -> Path:
    """CVE-2025-4517: links through names so long that realpath gives up resolving them.

    Every link reads as staying inside, and Python 3.11.7's "data" filter agrees, yet
    ``escape/pwned.txt`` lands in ``outside``.
    """
    long_dir, steps, parent = "d" * 247, "abcdefghijklmnop", ""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for step in steps:
            _add(tar, f"{parent}{long_dir}", tarfile.DIRTYPE)
            _add(tar, f"{parent}{step}", tarfile.SYMTYPE, long_dir)
            parent = f"{parent}{long_dir}/"
        deep_link = "/".join([*steps, "l" * 254])
        _add(tar, deep_link, tarfile.SYMTYPE, "../" * len(steps))
        target = deep_link + "/.." * (len(steps) + 1) + str(outside)
        _add(tar, "escape", tarfile.SYMTYPE, target)
        _add(tar, "escape/pwned.txt", tarfile.REGTYPE, data=b"written outside\n")
    return path


def test_symlink_chain_that_resolves_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = _symlink_chain_archive(tmp_path / "chain.tar", outside)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeDataError, match=r"chain\.tar: member 'a' is a symlink"):
        safe_extract(archive, dest)
    assert list(outside.iterdir()) == [] and list(dest.iterdir()) == []


def test_negative_member_size_is_refused_instead_of_looping(tmp_path: Path) -> None:
    # CVE-2025-8194: tarfile re-reads a header whose size is negative forever.
    header = bytearray(tarfile.TarInfo("ok/readme.txt").tobuf(format=tarfile.GNU_FORMAT))
    header[124:136] = b"\xff" * 4 + (-512 & (2**64 - 1)).to_bytes(8, "big")  # base-256 size
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header[:512])
    archive = tmp_path / "negative.tar"
    archive.write_bytes(bytes(header) + bytes(1024))
    dest = tmp_path / "dest"
    dest.mkdir()
    # max_members bounds the loop should the size check ever go.
    with pytest.raises(UnsafeDataError, match=r"negative\.tar.*'ok/readme\.txt'.*negative size"):
        safe_extract(archive, dest, max_members=10)


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, produced on demand: a big member without a big buffer."""

    def __init__(self, size: int):
        self.left = size

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _zeros_archive(path: Path, sizes: dict[str, int]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, size in sizes.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, _Zeros(size))
    return path


def test_archive_past_the_size_limit_is_refused_before_writing(tmp_path: Path) -> None:
    archive = _zeros_archive(tmp_path / "bomb.tgz", {"a/small": 2**10, "a/big": 2**20})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeDataError, match=r"bomb\.tgz: member 'a/big'.*max_bytes"):
        safe_extract(archive, dest, max_bytes=2**20)
    assert list(dest.iterdir()) == []
    safe_extract(archive, dest, max_bytes=2**20 + 2**10)  # exactly at the limit is fine
    assert (dest / "a" / "big").stat().st_size == 2**20


def test_archive_past_the_member_limit_is_refused(tmp_path: Path) -> None:
    archive = _zeros_archive(tmp_path / "many.tgz", {f"a/{i}": 1 for i in range(4)})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeDataError, match=r"many\.tgz: member 'a/3'.*3 members"):
        safe_extract(archive, dest, max_members=3)
    assert list(dest.iterdir()) == []


def test_archive_larger_than_the_free_space_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    archive = _zeros_archive(tmp_path / "big.tgz", {"a/big": 2**20})
    dest = tmp_path / "dest"
    dest.mkdir()
    full = shutil.disk_usage(dest)._replace(free=2**19)
    monkeypatch.setattr("stoker.datasets._archive.shutil.disk_usage", lambda _: full)
    with pytest.raises(DatasetError, match=r"big\.tgz: extracting needs .* free"):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []


def test_truncated_archive_is_a_dataset_error(tmp_path: Path) -> None:
    testdata.write_cifar10(tmp_path / "src")
    archive, _ = testdata.make_tarball(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "a.tgz")
    archive.write_bytes(archive.read_bytes()[:-2000])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DatasetError, match=r"a\.tgz.*truncated or corrupt"):
        safe_extract(archive, dest)


def test_download_of_an_unsafe_archive_leaves_nothing(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server
) -> None:
    archive = _tar_with(file_server.directory / "evil.tar", _file("../escaped.txt"))
    root = tmp_path / "data"
    with pytest.raises(UnsafeDataError, match="escaped"):
        CIFAR10(root, download=True, url=file_server.url(archive.name), md5=None)
    assert list(root.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists()


class _System:
    """Pickles as a call to os.system, the classic code-execution payload."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (self.command,))


def test_pickle_naming_os_system_is_refused_without_running(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": _System(f"touch {sentinel}")}, protocol=2))
    with pytest.raises(UnsafeDataError, match=r"data_batch_1.*(posix|os)\.system"):
        load_pickle(path)
    assert not sentinel.exists()


def test_cifar_refuses_a_poisoned_batch(tmp_path: Path) -> None:
    folder = testdata.write_cifar10(tmp_path)
    sentinel = tmp_path / "ran"
    payload = {"data": _System(f"touch {sentinel}"), "labels": []}
    (folder / "test_batch").write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafeDataError, match="test_batch"):
        CIFAR10(tmp_path, train=False)
    assert not sentinel.exists()


def test_pickles_written_by_python3_still_load(tmp_path: Path) -> None:
    import numpy as np

    value = {b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": [1, 2]}
    for protocol in (2, 3, 4):
        path = tmp_path / f"p{protocol}"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        loaded = load_pickle(path)
        np.testing.assert_array_equal(loaded[b"data"], value[b"data"])


_BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE annotation [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<annotation><filename>&lol9;</filename></annotation>
"""

_EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<annotation><filename>&secret;</filename></annotation>
"""


@pytest.mark.parametrize("xml", [_BILLION_LAUGHS, _EXTERNAL_ENTITY], ids=["laughs", "external"])
def test_hostile_xml_is_refused_naming_the_file(tmp_path: Path, xml: str) -> None:
    samples = [testdata.VOCSample("000001", (testdata.VOCObject("cat"),))]
    voc_root = testdata.write_voc2007(tmp_path, samples)
    (voc_root / "Annotations" / "000001.xml").write_text(xml)
    with pytest.raises(UnsafeDataError, match=r"000001\.xml"):
        VOCDetection(tmp_path, image_set="train")[0]


def test_broken_xml_is_a_dataset_error(tmp_path: Path) -> None:
    samples = [testdata.VOCSample("000001", (testdata.VOCObject("cat"),))]
    voc_root = testdata.write_voc2007(tmp_path, samples)
    xml = voc_root / "Annotations" / "000001.xml"
    xml.write_text(xml.read_text()[:100])
    with pytest.raises(DatasetError, match=r"000001\.xml.*not well-formed"):
        VOCDetection(tmp_path, image_set="train")[0]


def _voc_with_annotation(tmp_path: Path, xml: bytes) -> Path:
    """A one-image VOC tree whose annotation is ``xml``; returns the annotation's path."""
    samples = [testdata.VOCSample("000001", (testdata.VOCObject("cat"),))]
    voc_root = testdata.write_voc2007(tmp_path, samples)
    path = voc_root / "Annotations" / "000001.xml"
    path.write_bytes(xml)
    return path


def _nested(depth: int) -> bytes:
    """An annotation whose elements nest ``depth`` levels deep, the root included."""
    return b"<annotation>" + b"<a>" * (depth - 1) + b"x" + b"</a>" * (depth - 1) + b"</annotation>"


def test_deeply_nested_xml_is_a_dataset_error_naming_the_file(tmp_path: Path) -> None:
    path = _voc_with_annotation(tmp_path, _nested(100_000))
    with pytest.raises(DatasetError, match=r"000001\.xml.*more than 64 levels deep"):
        VOCDetection(tmp_path, image_set="train")[0]
    with pytest.raises(DatasetError, match=r"000001\.xml.*more than 64 levels deep"):
        object_names(path)  # the VOC→CIFAR filter refuses it too, rather than skip it


def test_nesting_up_to_the_cap_still_parses(tmp_path: Path) -> None:
    path = _voc_with_annotation(tmp_path, _nested(MAX_DEPTH))
    assert annotation_dict(path)["annotation"]["object"] == []
    path.write_bytes(_nested(MAX_DEPTH + 1))
    with pytest.raises(DatasetError, match="levels deep"):
        annotation_dict(path)


@pytest.mark.parametrize(
    "encoding",
    ["x-nonexistent", "rot13", "base64", "shift_jis", "utf-32", "idna", "undefined"],
    ids=["unknown", "bytes-codec", "bytes-codec2", "multi-byte", "wide", "idna", "undefined"],
)
def test_unusable_xml_encoding_is_a_dataset_error_naming_the_file(
    tmp_path: Path, encoding: str
) -> None:
    xml = f'<?xml version="1.0" encoding="{encoding}"?><annotation/>'.encode()
    _voc_with_annotation(tmp_path, xml)
    with pytest.raises(DatasetError, match=r"000001\.xml: cannot decode.*names an encoding"):
        VOCDetection(tmp_path, image_set="train")[0]


def test_unreadable_annotation_is_a_dataset_error(tmp_path: Path) -> None:
    path = _voc_with_annotation(tmp_path, b"")
    path.unlink()
    path.mkdir()  # IsADirectoryError: an OSError other than FileNotFoundError
    with pytest.raises(DatasetError, match=r"000001\.xml: cannot read"):
        annotation_dict(path)
