"""Downloads: a tqdm bar on terminals only, clean failures, the public surface of the package."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest
import tqdm.auto

import stoker.datasets
from stoker.datasets import CIFAR10, _download, testdata
from stoker.datasets._download import download_and_extract, file_md5
from stoker.errors import DatasetError, UnsafeDataError


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, as tqdm's ``disable=None`` asks."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_is_tqdm_on_a_terminal(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    testdata.write_cifar10(tmp_path / "src")
    _, md5 = testdata.make_tarball(
        tmp_path / "src" / "cifar-10-batches-py", file_server.directory / "c.tgz"
    )
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    download_and_extract(file_server.url("c.tgz"), tmp_path / "data", "c.tgz", md5)
    drawn = terminal.getvalue()
    assert "downloading c.tgz" in drawn and "100%" in drawn and "\r" in drawn
    assert _download.tqdm is tqdm.auto.tqdm  # a widget in notebooks, a bar in terminals


def test_no_progress_bar_off_a_terminal(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server, capfd: pytest.CaptureFixture[str]
) -> None:
    testdata.write_cifar10(tmp_path / "src")
    _, md5 = testdata.make_tarball(
        tmp_path / "src" / "cifar-10-batches-py", file_server.directory / "c.tgz"
    )
    download_and_extract(file_server.url("c.tgz"), tmp_path / "data", "c.tgz", md5)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # logs get no carriage-return spam
    assert (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1").is_file()


def test_missing_file_on_the_server_names_the_url_and_leaves_nothing(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server
) -> None:
    root = tmp_path / "data"
    url = file_server.url("absent.tar.gz")
    with pytest.raises(DatasetError, match=r"could not download .*absent\.tar\.gz.*404"):
        CIFAR10(root, download=True, url=url)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("length", ["12abc", "-5", "1e3", "\u00b2", ""])
def test_garbled_content_length_means_size_unknown(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server, monkeypatch: pytest.MonkeyPatch, length: str
) -> None:
    testdata.write_cifar10(tmp_path / "src")
    _, md5 = testdata.make_tarball(
        tmp_path / "src" / "cifar-10-batches-py", file_server.directory / "c.tgz"
    )
    file_server.headers["Content-Length"] = length
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    download_and_extract(file_server.url("c.tgz"), tmp_path / "data", "c.tgz", md5)
    assert (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1").is_file()
    assert "downloading c.tgz" in terminal.getvalue()  # a bar without a total


def _served_cifar(tmp_path: Path, file_server) -> str:  # type: ignore[no-untyped-def]
    testdata.write_cifar10(tmp_path / "src")
    testdata.make_tarball(tmp_path / "src" / "cifar-10-batches-py", file_server.directory / "c.tgz")
    return str(file_server.url("c.tgz"))


def test_download_without_md5_warns_that_it_is_unverified(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server, caplog: pytest.LogCaptureFixture
) -> None:
    url = _served_cifar(tmp_path, file_server)
    with caplog.at_level(logging.WARNING, logger="stoker"):
        assert len(CIFAR10(tmp_path / "data", download=True, url=url)) > 0
    assert url in caplog.text and "no md5" in caplog.text and "unverified" in caplog.text


def test_download_with_md5_does_not_warn(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server, caplog: pytest.LogCaptureFixture
) -> None:
    url = _served_cifar(tmp_path, file_server)
    md5 = file_md5(file_server.directory / "c.tgz")
    with caplog.at_level(logging.WARNING, logger="stoker"):
        download_and_extract(url, tmp_path / "data", "c.tgz", md5)
    assert caplog.text == ""


def test_download_past_the_size_limit_leaves_nothing(  # type: ignore[no-untyped-def]
    tmp_path: Path, file_server
) -> None:
    url = _served_cifar(tmp_path, file_server)
    root = tmp_path / "data"
    with pytest.raises(UnsafeDataError, match=r"c\.tgz: member .*max_bytes"):
        download_and_extract(url, root, "c.tgz", None, max_bytes=1000)
    assert list(root.iterdir()) == []


def test_only_download_schemes_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ftp://"):
        download_and_extract("ftp://example.invalid/x.tgz", tmp_path, "x.tgz", None)


def test_public_names() -> None:
    assert sorted(stoker.datasets.__all__) == [
        "CIFAR10",
        "CIFAR100",
        "CIFAR10_CLASSES",
        "DEFAULT_VOC_TO_CIFAR",
        "FilteredVOCtoCIFAR",
        "ImageFolder",
        "VOCDetection",
        "VOC_CLASSES",
        "decode_image",
        "testdata",
    ]
    assert sorted(testdata.__all__) == [
        "VOCObject",
        "VOCSample",
        "make_tarball",
        "photo_like_images",
        "random_cifar",
        "random_images",
        "random_voc_samples",
        "write_cifar10",
        "write_cifar100",
        "write_image_folder",
        "write_voc2007",
    ]
